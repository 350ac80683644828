//! pip invocations that say what they mean. The machine's `PIP_*` variables and pip config files are ignored
//! (this machine sets `PIP_FIND_LINKS`, which would silently add wheels from elsewhere); every call names its
//! index, find-links and cache itself. TLS trust is the one setting kept: a CA bundle named by `PIP_CERT`,
//! `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE` becomes an explicit `--cert`, so pip works behind a TLS proxy. A run
//! that fails keeps the end of pip's output, so that the caller can name the cause (a full disk, an index gone).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use xshell::{cmd, Cmd, Shell};

/// The index pip uses when the project declares none.
pub(crate) const PYPI_SIMPLE: &str = "https://pypi.org/simple";

/// `<python> -m pip <subcommand>` with a clean pip environment. Add the subcommand's own flags to it.
pub(crate) fn pip<'a>(sh: &'a Shell, python: &Path, subcommand: &str) -> Cmd<'a> {
    let mut command = cmd!(sh, "{python} -m pip {subcommand}");
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PIP_")) {
            command = command.env_remove(key);
        }
    }
    command = command
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_PROGRESS_BAR", "off");
    if let Some(cert) = ca_bundle() {
        command = command.arg("--cert").arg(cert);
    }
    command
}

/// A pip command that ended with a failure: its exit status, and the end of what it printed (both streams, in
/// the order they came), for the caller to tell a full disk or an index gone from a package that cannot be had.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) what: String,
    pub(crate) status: ExitStatus,
    pub(crate) output: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed ({})", self.what, self.status)
    }
}

impl std::error::Error for Failed {}

/// How much of pip's output `Failed` keeps: its last lines, where pip says what went wrong.
const KEPT_OUTPUT: usize = 64 * 1024;

/// Runs a pip command (printed first, as xshell does) to its end, its output shown as it comes; a stop signal
/// stops it (`signals::wait`), so the caller's clean-up guards run. `what` names it in errors; a failure is a
/// `Failed`, with the end of pip's output.
pub(crate) fn run(command: Cmd<'_>, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    println!("$ {command}");
    let mut command = std::process::Command::from(command);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("cannot run {what}"))?;
    let kept = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().map(|from| tee(from, std::io::stdout(), kept.clone()));
    let stderr = child.stderr.take().map(|from| tee(from, std::io::stderr(), kept.clone()));
    let status = crate::signals::wait(&mut child, what)?;
    // pip has ended: its pipes are closed, unless something it started holds them still.
    for thread in [stdout, stderr].into_iter().flatten() {
        let _ = thread.join();
    }
    if !status.success() {
        let output = String::from_utf8_lossy(&kept.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        return Err(Failed { what: what.to_string(), status, output }.into());
    }
    Ok(())
}

/// Copies `from` to `to` line by line as it comes, and keeps the last `KEPT_OUTPUT` bytes in `kept`.
fn tee(
    from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    kept: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        while from.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let _ = to.write_all(&line);
            let _ = to.flush();
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend_from_slice(&line);
            let excess = kept.len().saturating_sub(KEPT_OUTPUT);
            kept.drain(..excess);
            line.clear();
        }
    })
}

/// The CA bundle the machine trusts, if it names one.
pub(crate) fn ca_bundle() -> Option<PathBuf> {
    ["PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_pip_settings_do_not_leak() {
        let sh = Shell::new().unwrap();
        let _env = sh.push_env("PIP_FIND_LINKS", "/opt/wheels-from-the-host");
        // Control: plain pip sees the variable...
        let plain = cmd!(sh, "python3 -m pip config list").read().unwrap();
        assert!(plain.contains("wheels-from-the-host"), "{plain}");
        // ...ours does not.
        let ours = pip(&sh, Path::new("python3"), "config").arg("list").read().unwrap();
        assert!(!ours.contains("wheels-from-the-host"), "{ours}");
    }
}
