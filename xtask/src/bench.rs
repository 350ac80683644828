//! `cargo xtask bench`: benchmarks, not tests. Each one measures ours and theirs side by side in one run and
//! prints medians and ratios.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags::{Args, Opt, Task, APP};

pub(crate) const TASK: Task = Task {
    name: "bench",
    summary: "benchmarks: `bench export` (vs poetry export), `bench image` (vs the Makefile recipe)",
    about: "BENCHMARKS:\n    export    time `cargo xtask export` against `poetry export` on the same lock files\n    image     build the example app with this tool and with the recipe's two Dockerfiles",
    positional: "<export|image>",
    options: &[APP, Opt::value("runs", "N", "repetitions per measurement (default: 5)")],
};

pub(crate) fn run(_sh: &Shell, args: &Args) -> Result<()> {
    match args.positional.first().map(String::as_str) {
        Some("export") => bail!("`cargo xtask bench export` is not implemented yet"),
        Some("image") => bail!("`cargo xtask bench image` is not implemented yet"),
        Some(other) => bail!("unknown benchmark '{other}': expected `export` or `image`"),
        None => bail!("which benchmark? `cargo xtask bench export` or `cargo xtask bench image`"),
    }
}
