//! `poetry export` without Poetry: the export engine of `cargo xtask`. Reads pyproject.toml and poetry.lock (lock
//! versions 1.0 to 2.1) and writes requirements.txt / constraints.txt byte for byte as poetry 2.5 with
//! poetry-plugin-export 1.10 does, with the selected packages and their locked files for the wheel stage.
//!
//! Modules in data-flow order: `toml_tree` (a fast read-only TOML tree), `pep440` (versions and constraints),
//! `markers` (PEP 508 marker algebra), `poetry` (the project and lock model), `export` (selection and lines);
//! `memo` and `sha256` are their helpers. All but `poetry` and `export` are the crate `poetry-export-core`,
//! compiled optimized on its own (an export spends most of its time there, and `sha256` hashes whole wheelhouses),
//! used here under the same names.

mod export;
mod poetry;

pub use poetry_export_core::sha256;
use poetry_export_core::{markers, memo, pep440, toml_tree};

pub use export::{export, select, ExportRequest, Format, SelectedPackage, Selection};
pub use markers::canonicalize_name;
pub use poetry::PackageFile;
