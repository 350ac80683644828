//! The container engine: probes docker or podman and what it offers (BuildKit), builds images, runs containers.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long a probe may take before the tool is reported as not answering (a daemon behind an unreachable
/// `DOCKER_HOST` would otherwise hang `docker version` for minutes).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `program args...` and returns its trimmed stdout, or a one-line reason it failed (its stderr's first
/// line, or that it timed out). Never hangs longer than `PROBE_TIMEOUT`.
pub(crate) fn probe(program: &Path, args: &[&str]) -> Result<String, String> {
    let handle = duct::cmd(program, args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match handle.try_wait() {
            Ok(Some(output)) => {
                let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
                if output.status.success() {
                    return Ok(stdout);
                }
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr.lines().chain(stdout.lines()).map(str::trim).find(|l| !l.is_empty());
                return Err(reason.map(str::to_string).unwrap_or_else(|| format!("exited with {}", output.status)));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = handle.kill();
                let _ = handle.wait();
                return Err(format!("no answer within {} seconds", PROBE_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The docker client's version (`docker version`'s Client.Version), without asking the daemon.
pub(crate) fn docker_client_version(docker: &Path) -> Result<String, String> {
    probe(docker, &["version", "--format", "{{.Client.Version}}"]).or_else(|e| {
        // Without a daemon `docker version` fails but still prints the client part.
        probe(docker, &["--version"]).map(|v| parse_docker_version(&v).unwrap_or(v)).map_err(|_| e)
    })
}

/// The engine's version, when a daemon answers the client.
pub(crate) fn docker_server_version(docker: &Path) -> Result<String, String> {
    probe(docker, &["version", "--format", "{{.Server.Version}}"])
}

/// `Docker version 20.10.24+dfsg1, build 297e128` → `20.10.24+dfsg1`.
fn parse_docker_version(text: &str) -> Option<String> {
    let rest = text.strip_prefix("Docker version ")?;
    Some(rest.split(',').next()?.trim().to_string())
}

/// How a docker client gets BuildKit, if it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildKit {
    /// The buildx plugin is installed: `docker build` (client 23+) or `docker buildx build` use BuildKit.
    Buildx(String),
    /// A client before 23 with BuildKit built in: set `DOCKER_BUILDKIT=1`.
    Env,
    /// Only the legacy builder, and why.
    No(String),
}

/// What BuildKit support `docker` (client `client_version`, talking to engine `server_version`) offers.
pub(crate) fn docker_buildkit(docker: &Path, client_version: &str, server_version: &str) -> BuildKit {
    if let Ok(version) = probe(docker, &["buildx", "version"]) {
        return BuildKit::Buildx(version);
    }
    buildkit_without_buildx(client_version, server_version)
}

/// The decision for a client without the buildx plugin (pure, for the tests).
fn buildkit_without_buildx(client_version: &str, server_version: &str) -> BuildKit {
    let (Some(client), Some(server)) = (major_minor(client_version), major_minor(server_version)) else {
        return BuildKit::No(format!("cannot read the versions (client {client_version}, engine {server_version})"));
    };
    if server < (18, 9) {
        return BuildKit::No(format!("engine {server_version} predates BuildKit (18.09)"));
    }
    if client >= (23, 0) {
        return BuildKit::No(format!(
            "client {client_version} has no buildx plugin (BuildKit needs it from client 23.0 on)"
        ));
    }
    BuildKit::Env
}

/// `20.10.24+dfsg1` → `(20, 10)`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_decision() {
        assert_eq!(buildkit_without_buildx("20.10.24+dfsg1", "20.10.24+dfsg1"), BuildKit::Env);
        assert!(
            matches!(buildkit_without_buildx("28.2.2", "20.10.24+dfsg1"), BuildKit::No(why) if why.contains("buildx"))
        );
        assert!(matches!(buildkit_without_buildx("20.10.5", "17.12.1-ce"), BuildKit::No(why) if why.contains("18.09")));
        assert_eq!(parse_docker_version("Docker version 20.10.24+dfsg1, build 297e128").unwrap(), "20.10.24+dfsg1");
        assert_eq!(major_minor("v0.12.1"), Some((0, 12)));
    }
}
