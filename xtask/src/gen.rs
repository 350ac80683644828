//! Generated files: write, check (fail if stale) or print them; atomic writes; a guard against overwriting a
//! file a person edited.
