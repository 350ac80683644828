//! `cargo xtask export`: write requirements.txt from poetry.lock, exactly as `poetry export` does.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "export",
    summary: "write requirements.txt from poetry.lock, exactly as `poetry export` does",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask export` is not implemented yet")
}
