//! `cargo xtask wheels`: fill the wheelhouse for the image's Python and platform, checked against the lock's hashes.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "wheels",
    summary: "fill the wheelhouse for the image's Python and platform, checked against the lock's hashes",
    about: "",
    positional: "",
    options: &[APP],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    let _ = Opt::switch;
    bail!("`cargo xtask wheels` is not implemented yet")
}
