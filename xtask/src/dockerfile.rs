//! `cargo xtask dockerfile`: render docker/Dockerfile from the configuration (--check, --dry-run).

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "dockerfile",
    summary: "render docker/Dockerfile from the configuration (--check, --dry-run)",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask dockerfile` is not implemented yet")
}
