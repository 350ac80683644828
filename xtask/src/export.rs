//! `cargo xtask export`: requirements.txt / constraints.txt from poetry.lock and pyproject.toml, byte for byte
//! what `poetry export` writes, by the `poetry-export` crate (no Poetry needed). This module reads the task's
//! flags and names the app's files in messages as the rest of the tool does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use poetry_export::{ExportRequest, Selection};
use xshell::Shell;

use crate::config;
use crate::flags::Export;
use crate::{gen, paths};

/// Exports the app in `app_dir` as `poetry export` would, returning the file's text.
pub(crate) fn export(app_dir: &Path, request: &ExportRequest) -> Result<String> {
    Ok(poetry_export::export(app_dir, &shown(app_dir), request)?.requirements)
}

/// Like `export`, with the selected packages (names, versions, files and hashes), for the wheel stage.
pub(crate) fn select(app_dir: &Path, request: &ExportRequest) -> Result<Selection> {
    poetry_export::select(app_dir, &shown(app_dir), request)
}

/// The app's directory as messages name it: relative to the current directory, else to the workspace.
fn shown(app_dir: &Path) -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = app_dir.strip_prefix(&cwd) {
            return rel.to_path_buf();
        }
    }
    PathBuf::from(paths::display(app_dir))
}

impl Export {
    /// `cargo xtask export`.
    pub(crate) fn run(self, _sh: &Shell) -> Result<()> {
        let app_dir = config::app_dir(self.app.as_deref())?;
        let selection = poetry_export::export(&app_dir, &shown(&app_dir), &self.request)?;
        for w in &selection.warnings {
            eprintln!("{w}");
        }
        match &self.output {
            Some(output) => {
                let path = std::env::current_dir().context("cannot read the current directory")?.join(output);
                gen::write_atomic(&path, selection.requirements.as_bytes())?;
            }
            None => {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(selection.requirements.as_bytes()).context("cannot write to stdout")?;
            }
        }
        Ok(())
    }
}
