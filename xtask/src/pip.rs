//! pip invocations that say what they mean. The machine's `PIP_*` variables and pip config files are ignored
//! (this machine sets `PIP_FIND_LINKS`, which would silently add wheels from elsewhere); every call names its
//! index, find-links and cache itself. TLS trust is the one setting kept: a CA bundle named by `PIP_CERT`,
//! `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE` becomes an explicit `--cert`, so pip works behind a TLS proxy.

use std::path::{Path, PathBuf};

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

/// Runs a pip command (printed first, as xshell does) to its end; a stop signal stops it (`signals::wait`), so
/// the caller's clean-up guards run. `what` names it in errors.
pub(crate) fn run(command: Cmd<'_>, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    println!("$ {command}");
    let mut child = std::process::Command::from(command).spawn().with_context(|| format!("cannot run {what}"))?;
    let status = crate::signals::wait(&mut child, what)?;
    if !status.success() {
        anyhow::bail!("{what} failed ({status})");
    }
    Ok(())
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
