//! The hot core of the export engine `poetry-export`, the part an export spends most of its time in, compiled
//! optimized on its own: `toml_tree` (a fast read-only TOML tree), `pep440` (versions and constraints), `markers`
//! (PEP 508 marker algebra), `memo` (the memo tables and the fast hasher they share) and `sha256` (the lock's
//! content-hash, and every file hash of the wheelhouse and the image's inputs).

pub mod markers;
pub mod memo;
pub mod pep440;
pub mod sha256;
pub mod toml_tree;
