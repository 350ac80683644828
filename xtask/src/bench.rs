//! `cargo xtask bench`: the workspace's benchmarks, handed on to the workspace member `xtask-bench` (this
//! repository's `bench/`). They measure this repository's example app against the recipes it replaces, which
//! is app-specific, so they live outside the folder adopters copy; a workspace without them says so.

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::Bench;

/// The benchmarks' package.
const PACKAGE: &str = "xtask-bench";

impl Bench {
    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        let metadata = cmd!(sh, "cargo metadata --no-deps --offline --format-version 1").quiet().read()?;
        if !metadata.contains(&format!("\"name\":\"{PACKAGE}\"")) {
            bail!(
                "this workspace has no benchmarks: `cargo xtask bench` runs the workspace member {PACKAGE}, which \
                 is not here (it measures the repository xtask comes from against the recipes it replaces)"
            );
        }
        let args = self.args;
        // The same profile as the running tool, so that its crates are shared. The benchmark prints its own
        // errors: its exit status is ours.
        let status = std::process::Command::from(cmd!(sh, "cargo run --quiet --package {PACKAGE} -- {args...}"))
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            std::process::exit(status.code().unwrap_or(1));
        }
        Ok(())
    }
}
