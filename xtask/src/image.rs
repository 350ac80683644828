//! `cargo xtask image`: build the app's Docker image: export, wheels, Dockerfile, docker build.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "image",
    summary: "build the app's Docker image: export, wheels, Dockerfile, docker build",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask image` is not implemented yet")
}
