//! The signals that stop a foreground task (`server`, `run`): caught so the task can stop its child and clean up
//! before it exits, instead of dying and leaving the child behind. The tasks that make files on the way
//! (`image`, `wheels`: credentials for pip, build containers, half-made wheelhouses) `watch` them instead: a
//! signal is recorded, the child it reached (or that `wait` holds) ends, and the task unwinds through its
//! clean-up guards to an error.

use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The last stop signal received since `watch` (0: none).
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// From now on, SIGINT, SIGTERM and SIGHUP no longer end the process: they are recorded for `check` and `wait`.
/// Idempotent; the handlers stay until the process ends.
pub(crate) fn watch() -> Result<()> {
    if RECEIVED.get().is_some() {
        return Ok(());
    }
    let received = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize)
            .context("cannot install signal handlers")?;
    }
    let _ = RECEIVED.set(received);
    Ok(())
}

/// The stop signal received since `watch`, if any.
pub(crate) fn received() -> Option<i32> {
    let signal = RECEIVED.get()?.load(Ordering::SeqCst);
    (signal != 0).then_some(signal as i32)
}

/// An error when a stop signal was received since `watch`.
pub(crate) fn check() -> Result<()> {
    match received() {
        Some(signal) => bail!("interrupted ({})", name(signal)),
        None => Ok(()),
    }
}

/// Waits for `child`; when a stop signal arrives first, sends it SIGTERM (SIGKILL after 10 seconds), reaps it
/// and fails. `what` names the child in the error.
pub(crate) fn wait(child: &mut Child, what: &str) -> Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().with_context(|| format!("cannot wait for {what}"))? {
            check()?;
            return Ok(status);
        }
        if let Some(signal) = received() {
            kill(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted ({}): stopped {what}", name(signal));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts catching SIGINT (Ctrl-C), SIGTERM and SIGHUP; read them from the returned iterator.
pub(crate) fn catch_stop_signals() -> Result<Signals> {
    Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")
}

/// The name of a signal `catch_stop_signals` delivers, for messages.
pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The exit code of a task a signal stopped: 128 + its number (130 for SIGINT, 143 for SIGTERM), as a shell
/// reports a command a signal ended, so that no supervisor reads success.
pub(crate) fn exit_code(signal: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
}

/// The error of a task step a stop signal ended (its child was stopped): the caller cleans up, then exits with
/// `exit_code` of the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupted(pub(crate) i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", name(self.0))
    }
}

impl std::error::Error for Interrupted {}

/// Sends `signal` (`TERM`, `KILL`, `INT`) to the process `pid` with the shell's `kill` (POSIX, no unsafe code);
/// whether it was delivered.
pub fn kill(pid: u32, signal: &str) -> bool {
    shell_kill(signal, &pid.to_string())
}

/// Sends `signal` to every process of the process group `pgid` (`kill -- -PGID`).
pub fn kill_group(pgid: u32, signal: &str) -> bool {
    shell_kill(signal, &format!("-{pgid}"))
}

/// Whether the process group `pgid` has a process (`kill -0`).
pub(crate) fn group_exists(pgid: u32) -> bool {
    shell_kill("0", &format!("-{pgid}"))
}

fn shell_kill(signal: &str, target: &str) -> bool {
    std::process::Command::new("/bin/sh")
        .args(["-c", "kill -s \"$1\" -- \"$2\" 2>/dev/null", "sh", signal, target])
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_process_and_a_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let pid = child.id();
        assert!(group_exists(pid));
        assert!(kill(pid, "TERM"));
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(15));
        let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        assert!(kill_group(child.id(), "KILL"));
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&child.wait().unwrap()), Some(9));
        assert!(!group_exists(child.id()));
    }
}
