//! `cargo xtask init`: set up this tool in a repository with a Poetry app.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "init",
    summary: "set up this tool in a repository with a Poetry app",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask init` is not implemented yet")
}
