//! `cargo xtask doctor`: check the tools this needs (python3, pip, docker, ...) and say how to get what is missing.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "doctor",
    summary: "check the tools this needs (python3, pip, docker, ...) and say how to get what is missing",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask doctor` is not implemented yet")
}
