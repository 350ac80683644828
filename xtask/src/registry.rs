//! Image references and registries (pure): the repository `push` ships to, the registry it names, which
//! registries the engines reach without TLS, and the engine's failures turned into errors that name the registry
//! and say what to do.

use anyhow::{bail, format_err, Result};

/// The registry of a reference without a registry part: Docker Hub.
pub(crate) const DOCKER_HUB: &str = "docker.io";

/// A repository in a registry: `127.0.0.1:5000/team/svc`, `ghcr.io/org/app`, `team/app` (Docker Hub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repository {
    /// `127.0.0.1:5000`, `ghcr.io`, or `docker.io` for a reference without a registry part.
    pub(crate) registry: String,
    /// As written: what the engine is given, followed by `:<tag>` or `@<digest>`.
    pub(crate) name: String,
}

impl Repository {
    /// A repository reference without tag or digest; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Repository> {
        let shape = "a repository such as 127.0.0.1:5000/team/app or ghcr.io/org/app, without a tag";
        if text.contains('@') {
            bail!("'{text}' is not a repository: it has a digest; give {shape}");
        }
        let (first, rest) = match text.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), rest),
            _ => (None, text),
        };
        if let Some(registry) = first {
            let (host, port) = match registry.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (registry, None),
            };
            let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c));
            if !host_ok || port.is_some_and(|p| p.parse::<u16>().is_err()) {
                bail!("'{text}' does not start with a registry host[:port]; give {shape}");
            }
        }
        if rest.contains(':') {
            bail!("'{text}' has a tag; give {shape} (push tags it itself)");
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !rest.split('/').all(component_ok) {
            bail!("'{text}' is not a valid repository: lowercase letters and digits, separated by . _ - or /; give {shape}");
        }
        let registry = first.unwrap_or(DOCKER_HUB).to_string();
        Ok(Repository { registry, name: text.to_string() })
    }

    /// `<name>:<tag>`
    pub(crate) fn tag(&self, tag: &str) -> String {
        format!("{}:{tag}", self.name)
    }

    /// `<name>@<digest>`
    pub(crate) fn at(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name)
    }
}

/// The registry an image reference names (`python:3.11-slim` → Docker Hub).
pub(crate) fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

/// `name:tag@digest` or `name:tag` → `name`: the reference without its tag and digest.
pub(crate) fn without_tag(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[last_slash..].rfind(':') {
        Some(colon) => &reference[..last_slash + colon],
        None => reference,
    }
}

/// Whether `registry` (`host[:port]`) is on this machine: 127.0.0.0/8, ::1 or localhost. dockerd reaches such a
/// registry without TLS by default (its insecure registries start with 127.0.0.0/8); podman and `docker
/// manifest` must be told (`--tls-verify=false`, `--insecure`).
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry),
    };
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `registry` is in one of dockerd's insecure CIDRs (`127.0.0.0/8`) or among its insecure registries.
pub(crate) fn in_insecure_list(registry: &str, cidrs: &[String], names: &[String]) -> bool {
    if names.iter().any(|n| n == registry) {
        return true;
    }
    let host = registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry);
    let Ok(ip) = host.parse::<std::net::Ipv4Addr>() else { return false };
    cidrs.iter().any(|cidr| {
        let Some((net, bits)) = cidr.split_once('/') else { return false };
        let (Ok(net), Ok(bits)) = (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) else { return false };
        if bits > 32 {
            return false;
        }
        let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
        u32::from(ip) & mask == u32::from(net) & mask
    })
}

/// What went wrong talking to a registry, from the engine's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It wants credentials, or the ones given may not do this.
    Login,
    /// Nothing answers at that address, or not in the protocol the engine speaks.
    Unreachable,
    /// It speaks plain HTTP and the engine expects TLS, or its certificate is not trusted.
    Tls,
    /// It answered and said no.
    Refused,
}

/// Sorts the engine's error text.
pub(crate) fn classify(text: &str) -> Failure {
    let lower = text.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if any(&["no basic auth credentials", "unauthorized", "authentication required", "denied"]) {
        Failure::Login
    } else if any(&["server gave http response to https client", "x509:", "tls: ", "certificate"]) {
        Failure::Tls
    } else if any(&[
        "connection refused",
        "no such host",
        "i/o timeout",
        "network is unreachable",
        "no route to host",
        "connection reset",
        "dial tcp",
        "temporary failure in name resolution",
        "context deadline exceeded",
    ]) {
        Failure::Unreachable
    } else {
        Failure::Refused
    }
}

/// The last line of the engine's output that says something, for an error message.
pub(crate) fn reason(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty() && !l.starts_with("Getting image source") && !l.starts_with("Copying "))
        .unwrap_or("no answer");
    line.trim_start_matches("Error: ").trim_start_matches("error: ").to_string()
}

/// The error for `what` (`push 127.0.0.1:5000/team/app:0.1.0`) failing against `registry` with the engine's text
/// `text`: the registry, the engine's reason and the remedy.
pub(crate) fn error(engine: &str, podman: bool, registry: &str, what: &str, text: &str) -> anyhow::Error {
    let why = reason(text);
    let login = format!("{engine} login {registry}");
    match classify(text) {
        Failure::Login => format_err!(
            "the registry {registry} wants a login to {what} ({why}): log in with `{login}` (this tool uses the \
             engine's own credentials and never reads or stores them), and check that the account may push there"
        ),
        Failure::Tls => {
            let remedy = if podman {
                format!("mark it `insecure = true` in /etc/containers/registries.conf ([[registry]] location = \"{registry}\")")
            } else {
                format!("add \"{registry}\" to \"insecure-registries\" in /etc/docker/daemon.json and restart dockerd")
            };
            format_err!(
                "cannot {what}: the registry {registry} does not speak TLS the engine trusts ({why}); if it is a \
                 registry without TLS you trust, {remedy}"
            )
        }
        Failure::Unreachable => format_err!(
            "cannot reach the registry {registry} to {what} ({why}): check the address (--to or \
             tool.xtask.repository), that the registry runs, and that this machine's network (and the engine's \
             proxy settings) reach it"
        ),
        Failure::Refused => format_err!(
            "the registry {registry} refused to {what} ({why}): check that the repository may be pushed to \
             (some registries want it created first, or are read-only), then `{login}` and the registry's logs"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        let r = Repository::parse("127.0.0.1:5000/team/svc").unwrap();
        assert_eq!((r.registry.as_str(), r.tag("0.1.0")), ("127.0.0.1:5000", "127.0.0.1:5000/team/svc:0.1.0".into()));
        assert_eq!(Repository::parse("team/app").unwrap().registry, "docker.io");
        assert_eq!(Repository::parse("localhost/app").unwrap().registry, "localhost");
        assert_eq!(Repository::parse("ghcr.io/org/app").unwrap().at("sha256:1"), "ghcr.io/org/app@sha256:1");
        for bad in ["team/app:1", "r.io/app@sha256:1", "Team/app", "r.io:x/app", "r.io/", "r.io//a", "a/-b"] {
            assert!(Repository::parse(bad).is_err(), "{bad} parsed");
        }
        assert_eq!(registry_of("python:3.11-slim"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:18600/py:3.11"), "127.0.0.1:18600");
        assert_eq!(without_tag("127.0.0.1:18600/py:3.11-slim"), "127.0.0.1:18600/py");
        assert_eq!(without_tag("127.0.0.1:18600/py"), "127.0.0.1:18600/py");
        assert_eq!(without_tag("python:3.11@sha256:ab"), "python");
    }

    #[test]
    fn which_registries_go_without_tls() {
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost:5000") && is_loopback("[::1]:5000"));
        assert!(!is_loopback("10.0.0.1:5000") && !is_loopback("ghcr.io"));
        let cidrs = vec!["127.0.0.0/8".to_string(), "10.1.0.0/16".to_string()];
        assert!(in_insecure_list("10.1.2.3:5000", &cidrs, &[]));
        assert!(!in_insecure_list("10.2.2.3:5000", &cidrs, &[]));
        assert!(in_insecure_list("reg.lan:5000", &cidrs, &["reg.lan:5000".to_string()]));
    }

    #[test]
    fn failures_are_sorted_and_name_the_registry() {
        assert_eq!(classify("no basic auth credentials"), Failure::Login);
        assert_eq!(classify("unauthorized: authentication required"), Failure::Login);
        assert_eq!(
            classify("Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused"),
            Failure::Unreachable
        );
        assert_eq!(classify("http: server gave HTTP response to HTTPS client"), Failure::Tls);
        assert_eq!(classify("error parsing HTTP 405 response body: ... \"Method not allowed\\n\""), Failure::Refused);
        let e =
            error("docker", false, "127.0.0.1:5000", "push x:1", "The push refers to ...\nno basic auth credentials\n")
                .to_string();
        assert!(
            e.starts_with("the registry 127.0.0.1:5000 wants a login to push x:1 (no basic auth credentials)"),
            "{e}"
        );
        assert!(e.contains("`docker login 127.0.0.1:5000`"), "{e}");
        assert_eq!(reason("Copying blob sha256:1\nError: writing blob: 405\n"), "writing blob: 405");
    }
}
