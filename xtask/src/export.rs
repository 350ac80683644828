//! `cargo xtask export`: requirements.txt / constraints.txt from poetry.lock and pyproject.toml, byte for byte
//! what `poetry export` writes, by the `poetry-export` crate (no Poetry needed). This module reads the task's
//! flags and names the app's files in messages as the rest of the tool does.

use std::path::{Path, PathBuf};

use anyhow::{format_err, Context, Result};
use poetry_export::{ExportRequest, Format, Selection};
use xshell::Shell;

use crate::config;
use crate::flags::{Args, Opt, Task, APP};
use crate::{gen, paths};

pub(crate) const TASK: Task = Task {
    name: "export",
    summary: "write requirements.txt from poetry.lock, exactly as `poetry export` does",
    about: "Reads the app's pyproject.toml and poetry.lock (lock versions 1.0 to 2.1) and prints what\n\
            `poetry export` (poetry 2.5 + poetry-plugin-export 1.10) prints, without Poetry. The lock must be\n\
            fresh (its content-hash must match pyproject.toml): run `poetry lock` after editing dependencies.",
    positional: "",
    options: &[
        APP,
        Opt::value("format", "FORMAT", "requirements.txt (default) or constraints.txt").short('f'),
        Opt::value("output", "FILE", "write to FILE (atomically) instead of stdout").short('o'),
        Opt::switch("without-hashes", "leave out --hash lines"),
        Opt::switch("without-urls", "leave out the --index-url/--extra-index-url header"),
        Opt::value("with", "GROUPS", "also export these dependency groups (comma-separated, repeatable)"),
        Opt::value("without", "GROUPS", "leave out these dependency groups (deprecated in Poetry)"),
        Opt::value("only", "GROUPS", "export only these dependency groups"),
        Opt::switch("all-groups", "export every dependency group"),
        Opt::value("extras", "EXTRAS", "extras to include (space-separated, repeatable)").short('E'),
        Opt::switch("all-extras", "include every extra"),
        Opt::switch("with-credentials", "put credentials of private indexes (POETRY_HTTP_BASIC_*) in the URLs"),
    ],
};

fn request_from_args(args: &Args) -> Result<ExportRequest> {
    let format = match args.value("format") {
        Some(f) => f.parse::<Format>().map_err(|e| format_err!("{e}"))?,
        None => Format::RequirementsTxt,
    };
    Ok(ExportRequest {
        format,
        with_hashes: !args.has("without-hashes"),
        with_urls: !args.has("without-urls"),
        with_credentials: args.has("with-credentials"),
        with: args.values("with"),
        without: args.values("without"),
        only: args.values("only"),
        all_groups: args.has("all-groups"),
        extras: args.values("extras"),
        all_extras: args.has("all-extras"),
    })
}

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

/// `cargo xtask export`.
pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let request = request_from_args(args)?;
    let app_dir = config::app_dir(args.value("app"))?;
    let selection = poetry_export::export(&app_dir, &shown(&app_dir), &request)?;
    for w in &selection.warnings {
        eprintln!("{w}");
    }
    match args.value("output") {
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
