//! The signals that stop a foreground task (`server`, `run`): caught so the task can stop its child and clean up
//! before it exits, instead of dying and leaving the child behind.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Starts catching SIGINT (Ctrl-C), SIGTERM and SIGHUP; read them from the returned iterator.
pub(crate) fn catch_stop_signals() -> Result<Signals> {
    Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")
}

/// The name of a signal `catch_stop_signals` delivers, for messages.
pub(crate) fn name(signal: libc::c_int) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
