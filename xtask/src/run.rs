//! `cargo xtask run`: build the image if needed and run it on 127.0.0.1, streaming logs.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "run",
    summary: "build the image if needed and run it on 127.0.0.1, streaming logs",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask run` is not implemented yet")
}
