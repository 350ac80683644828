//! `cargo xtask server`: run the app on the host from a local virtualenv (what `make server` did).

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "server",
    summary: "run the app on the host from a local virtualenv (what `make server` did)",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask server` is not implemented yet")
}
