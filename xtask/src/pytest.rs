//! `cargo xtask test`: run the app's pytest suite in the local virtualenv (the one `cargo xtask server` uses,
//! refreshed from the lock when needed).

use std::process::Command;

use anyhow::{bail, Context, Result};
use signal_hook::consts::SIGINT;
use signal_hook::iterator::Signals;
use xshell::{cmd, Shell};

use crate::flags::{Overrides, Test};
use crate::{paths, settings, venv};

impl Test {
    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        run(sh, self)
    }
}

fn run(sh: &Shell, flags: Test) -> Result<()> {
    let config = settings::resolve(&Overrides { app: flags.app, ..Overrides::default() })?.config;
    let venv = venv::ensure(sh, &config)?;
    if !venv.has_module("pytest") && !venv.has_module("_pytest") {
        bail!(
            "{} has no pytest: add it to the app's dev group (`poetry add --group dev pytest`) and lock again",
            paths::display(&venv.dir)
        );
    }
    let python = venv.python();
    let rest = &flags.pytest_args;
    let _dir = sh.push_dir(&config.app_dir);
    let _path = venv::python_path(&config).map(|path| sh.push_env("PYTHONPATH", path));
    let pytest = cmd!(sh, "{python} -m pytest {rest...}");
    println!("$ cd {} && {pytest}", paths::display(&config.app_dir));
    // A Ctrl-C reaches pytest too (same process group); we wait for its summary instead of dying first.
    let _signals = Signals::new([SIGINT]).context("cannot install a SIGINT handler")?;
    let status = Command::from(pytest).status().context("cannot run pytest")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(5) => bail!("pytest collected no tests in {}", paths::display(&config.app_dir)),
        _ => bail!("the app's tests failed (pytest exited with {status})"),
    }
}
