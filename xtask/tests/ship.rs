//! Shipping end to end: `cargo xtask push` to real registries (Debian's docker-registry, started by each test
//! on 127.0.0.1), a multi-platform index with an arm64 image run under emulation, the registry cache measured
//! on a second, fresh dockerd, the SBOM checked against the CycloneDX schema and `cargo xtask export`, and
//! Podman: its containers, its pushes and its reproducible digests.
//!
//! Each test has image names and repositories of its own (`xtask-test-ship-*`), ports of its own in
//! 18600-18699, and removes what it made. The second engine (its own data root, socket and bridge) is used by
//! one test at a time. Docker builds use BuildKit (a client that offers it), so tests building the same app
//! share the engine's cache safely.

mod local;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use local::*;

// ---------------------------------------------------------------------------------------------------------
// Registries
// ---------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone may push.
    Open,
    /// htpasswd: `user` / `pass`.
    Login,
    /// Answers, and refuses every write (maintenance read-only mode).
    ReadOnly,
}

/// A registry of the test's own on 127.0.0.1, stopped (SIGTERM) and its storage removed when dropped.
struct Registry {
    port: u16,
    child: Child,
    dir: PathBuf,
    /// `Authorization` for its API: the test's own look at what it holds (user:pass).
    authorization: Option<&'static str>,
}

impl Registry {
    /// Starts one on the first free port of `ports`.
    fn start(test: &str, ports: std::ops::Range<u16>, access: Access) -> Registry {
        let dir = scratch(&format!("registry-{test}-{}", ports.start));
        let mut auth = String::new();
        if access == Access::Login {
            let output = Command::new("/usr/bin/python3")
                .args(["-W", "ignore", "-c"])
                .arg("import crypt; print('user:' + crypt.crypt('pass', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))")
                .output()
                .unwrap();
            assert_success("htpasswd", &output);
            std::fs::write(dir.join("htpasswd"), stdout(&output)).unwrap();
            auth = format!("auth: {{htpasswd: {{realm: r, path: {}}}}}\n", dir.join("htpasswd").display());
        }
        let read_only = if access == Access::ReadOnly { ", maintenance: {readonly: {enabled: true}}" } else { "" };
        for port in ports.clone() {
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let config = dir.join(format!("config-{port}.yml"));
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: \
                     {{rootdirectory: {}}}, delete: {{enabled: true}}{read_only}}}\nhttp: {{addr: 127.0.0.1:{port}, \
                     secret: any-fixed-string}}\n{auth}",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry is not installed: `bash .ci/setup` installs it (Debian's docker-registry)");
            let authorization = (access == Access::Login).then_some("Basic dXNlcjpwYXNz");
            let mut registry = Registry { port, child, dir: dir.clone(), authorization };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if registry.child.try_wait().unwrap().is_some() {
                    break; // the port was taken in between: the next one
                }
                if let Ok((status, ..)) = request(port, "GET", "/v2/", &[]) {
                    assert!(status == 200 || status == 401, "GET /v2/ answered {status}");
                    return registry;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = registry.child.kill();
        }
        panic!("no registry could start on 127.0.0.1 ports {ports:?}");
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The tags the registry has of `repository` (its path, without the host).
    fn tags(&self, repository: &str) -> Vec<String> {
        let auth: Vec<(&str, &str)> = self.authorization.iter().map(|a| ("Authorization", *a)).collect();
        let (status, _, body) = request(self.port, "GET", &format!("/v2/{repository}/tags/list"), &auth).unwrap();
        assert_eq!(status, 200, "{body}");
        let mut tags = json_strings(&body, "tags");
        tags.sort();
        tags
    }

    /// The digest the registry has `<repository>:<tag>` under (an image or an index).
    fn digest(&self, repository: &str, tag: &str) -> String {
        let accept = "application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
        let path = format!("/v2/{repository}/manifests/{tag}");
        let mut headers = vec![("Accept", accept)];
        headers.extend(self.authorization.iter().map(|a| ("Authorization", *a)));
        let (status, headers, _) = request(self.port, "HEAD", &path, &headers).unwrap();
        assert_eq!(status, 200, "HEAD {path}");
        headers.get("docker-content-digest").cloned().unwrap_or_else(|| panic!("no digest for {path}: {headers:?}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request with headers; the status, the headers (lowercase names) and the body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, BTreeMap<String, String>, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string())).collect();
    Ok((status, headers, body.to_string()))
}

/// The strings of the array `"key": [...]` in a JSON text (enough for the registry's answers).
fn json_strings(text: &str, key: &str) -> Vec<String> {
    let Some(start) = text.find(&format!("\"{key}\"")) else { return Vec::new() };
    let rest = &text[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else { return Vec::new() };
    rest[open + 1..close].split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
}

/// A value of a JSON document, by a Python expression on `d` (`d["platforms"][0]["platform"]`), read with the
/// host's python3: lists come back one item a line.
fn json_get(document: &str, expression: &str) -> String {
    let script = format!(
        "import json, sys\nd = json.load(sys.stdin)\nv = {expression}\nprint('\\n'.join(map(str, v)) if isinstance(v, list) else v)"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(document.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success(&format!("reading {expression} of the JSON document\n{document}"), &output);
    stdout(&output).trim_end().to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------------------------------------

/// A docker client that offers BuildKit: one with the buildx plugin, or a client before 23 (DOCKER_BUILDKIT=1).
fn buildkit_client() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for candidate in std::env::split_paths(&path).map(|dir| dir.join("docker")).filter(|p| p.is_file()) {
        if Command::new(&candidate).args(["buildx", "version"]).output().is_ok_and(|o| o.status.success()) {
            return candidate;
        }
        let version = Command::new(&candidate).args(["version", "--format", "{{.Client.Version}}"]).output();
        let major = version.ok().and_then(|o| stdout(&o).split('.').next().and_then(|m| m.trim().parse::<u32>().ok()));
        if major.is_some_and(|m| m < 23) {
            return candidate;
        }
    }
    panic!("no docker client on PATH offers BuildKit: install the buildx plugin (`apt-get install -y docker-buildx`)");
}

fn docker_out(args: &[&str]) -> String {
    let output = docker().args(args).output().unwrap();
    assert_success(&format!("docker {}", args.join(" ")), &output);
    stdout(&output)
}

/// The second engine is one at a time: its bridge and subnet are fixed.
static SECOND_ENGINE: Mutex<()> = Mutex::new(());

/// A second, fresh dockerd on this machine (`Dockerd`): its own data root, socket and bridge, no images, no
/// cache; one at a time.
struct SecondEngine {
    daemon: Dockerd,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl SecondEngine {
    fn start() -> SecondEngine {
        let turn = SECOND_ENGINE.lock().unwrap_or_else(|e| e.into_inner());
        SecondEngine { daemon: Dockerd::new("ship", "xtship", 240), _turn: turn }
    }

    fn host(&self) -> String {
        self.daemon.host()
    }

    fn docker(&self) -> Command {
        self.daemon.docker()
    }

    fn images(&self) -> usize {
        let output = self.docker().args(["images", "--all", "--quiet"]).output().unwrap();
        stdout(&output).lines().count()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Apps and images
// ---------------------------------------------------------------------------------------------------------

/// A copy of the example app named `name`, in a git repository of its own with one commit (so that its tags
/// do not depend on the state of this checkout): the directory and the short commit.
fn committed_app(test: &str, name: &str) -> (PathBuf, String) {
    let dir = scratch(test).join("app");
    copy_source_tree(&example_app(), &dir);
    let pyproject = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(&pyproject, text.replace("\n[tool.xtask]\n", &format!("\n[tool.xtask]\nname = \"{name}\"\n")))
        .unwrap();
    std::os::unix::fs::symlink(example_app().join(".venv"), dir.join(".venv")).ok();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["-c", "user.name=xtask tests", "-c", "user.email=tests@xtask.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert_success(&format!("git {}", args.join(" ")), &output);
        stdout(&output).trim().to_string()
    };
    git(&["init", "-q"]);
    std::fs::write(dir.join(".gitignore"), ".venv\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "the example app"]);
    let short = git(&["log", "-1", "--format=%h"]);
    (dir, short)
}

/// `xtask <args>` in `app` with the BuildKit client (or `engine`), its output captured, timed.
fn xtask_in(app: &Path, engine: &str, args: &[&str], env: &[(&str, String)]) -> (Output, Duration) {
    let mut command = xtask_clean();
    command.args(args).arg("--app").arg(app).args(["--engine", engine]);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let output = command.output().unwrap();
    (output, started.elapsed())
}

/// Removes the images, tags and state of the image name `name` and every local image named after the registry
/// `host` (what pulls by digest left), in the main engine.
fn clean_ship(name: &str, host: Option<&str>) {
    clean(name);
    for platform in ["linux-amd64", "linux-arm64"] {
        let _ = std::fs::remove_dir_all(state_dir(&format!("{name}@{platform}")));
    }
    let Some(host) = host else { return };
    let listed = docker().args(["images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"]).output();
    for line in listed.map(|o| stdout(&o)).unwrap_or_default().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [repository, tag, digest] = fields.as_slice() else { continue };
        if !repository.starts_with(&format!("{host}/")) {
            continue;
        }
        if *tag != "<none>" {
            let _ = docker().args(["rmi", "--no-prune", &format!("{repository}:{tag}")]).output();
        }
        if *digest != "<none>" {
            let _ = docker().args(["rmi", &format!("{repository}@{digest}")]).output();
        }
    }
}

/// The local tags named after the registry `host`.
fn local_tags_of(host: &str) -> Vec<String> {
    let listed = docker_out(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    listed
        .lines()
        .filter(|l| l.starts_with(&format!("{host}/")) && !l.ends_with(":<none>"))
        .map(str::to_string)
        .collect()
}

/// Pushes the local image `image` to `registry` as `<repository>:<tag>` with the main engine's docker client.
fn publish(image: &str, remote: &str) {
    docker_out(&["tag", image, remote]);
    docker_out(&["push", "-q", remote]);
    docker_out(&["rmi", "--no-prune", remote]);
}

/// Waits until GET /health on 127.0.0.1:`port` answers 200.
fn wait_healthy(port: u16, timeout: Duration, logs: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, body)) = http(port, "GET", "/health", None) {
            assert_eq!(body, r#"{"status":"ok"}"#);
            return;
        }
        assert!(Instant::now() < deadline, "no 200 on /health within {timeout:?}\n{}", logs());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn arm64_base() -> String {
    base_image("XTASK_TEST_BASE_IMAGE_ARM64", "xtask-local/python:3.11-slim-arm64")
}

/// The `image: steps: ...` line of a build's output.
fn steps_line(log: &str) -> String {
    log.lines().rev().find(|l| l.starts_with("image: steps: ")).unwrap_or("(no steps line)").to_string()
}

/// The build steps BuildKit took from a cache (`#7 [builder 3/3] RUN ...` then `#7 CACHED`), and those it ran.
fn buildkit_steps(log: &str) -> (Vec<String>, Vec<String>) {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut cached = Vec::new();
    for line in log.lines() {
        let line = line.trim_start_matches("  | ");
        let Some((id, rest)) = line.split_once(' ') else { continue };
        if rest.starts_with('[') && !rest.starts_with("[internal]") && !rest.contains(" FROM ") {
            let step: String = rest.chars().take(60).collect();
            names.entry(id.to_string()).or_insert(step);
        } else if rest == "CACHED" {
            cached.push(id.to_string());
        }
    }
    let (hit, ran): (Vec<_>, Vec<_>) = names.into_iter().partition(|(id, _)| cached.contains(id));
    (hit.into_iter().map(|(_, s)| s).collect(), ran.into_iter().map(|(_, s)| s).collect())
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

/// `cargo xtask push --to <registry>/...` pushes the image under both of its tags and prints (and, with --json,
/// returns) the digest the registry has both under; nothing of the registry's is left tagged locally; a fresh
/// engine pulls that digest and serves /health from it.
#[test]
fn push_sends_both_tags_and_a_fresh_engine_runs_the_digest() {
    let name = "xtask-test-ship-push";
    let registry = Registry::start("push", 18600..18610, Access::Open);
    let host = registry.host();
    clean_ship(name, Some(&host));
    let (app, short) = committed_app("ship-push", name);
    let repository = format!("{host}/xtask-test-ship-push/string-service");
    let client = buildkit_client().display().to_string();
    let base = base_311();
    let (output, took) = xtask_in(&app, &client, &["push", "--to", &repository, "--base-image", &base, "--json"], &[]);
    assert_success("xtask push --json", &output);
    let result = stdout(&output);
    eprintln!("push --json took {:.1} s; it printed:\n{result}", took.as_secs_f64());
    let log = String::from_utf8_lossy(&output.stderr).into_owned();

    // The JSON result, parsed.
    assert_eq!(json_get(&result, "d['repository']"), repository);
    assert_eq!(json_get(&result, "d['tags']"), format!("0.1.0\n{short}"));
    let digest = json_get(&result, "d['digest']");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert_eq!(json_get(&result, "[p['platform'] for p in d['platforms']]"), "linux/amd64");
    assert_eq!(json_get(&result, "d['platforms'][0]['digest']"), digest);
    assert!(json_get(&result, "d['size']").parse::<u64>().unwrap() > 100_000_000, "{result}");
    // What the registry has: both tags, one digest, the one printed.
    let path = "xtask-test-ship-push/string-service";
    assert_eq!(registry.tags(path), {
        let mut tags = vec!["0.1.0".to_string(), short.clone()];
        tags.sort();
        tags
    });
    assert_eq!(registry.digest(path, "0.1.0"), digest);
    assert_eq!(registry.digest(path, &short), digest);
    assert!(log.contains(&format!("push: digest {digest}")), "{log}");
    // The registry's names were the push's only: the engine keeps the tags `image` made.
    assert_eq!(local_tags_of(&host), Vec::<String>::new());
    assert!(docker_out(&["images", "--format", "{{.Repository}}:{{.Tag}}", name]).contains(&format!("{name}:{short}")));
    let kept = std::fs::read_to_string(state_dir(name).join("push.json")).unwrap();
    assert_eq!(kept, result, "push.json keeps what --json printed");

    // A fresh engine pulls the digest and serves it.
    let fresh = SecondEngine::start();
    assert_eq!(fresh.images(), 0, "the second engine starts empty");
    let reference = format!("{repository}@{digest}");
    let pull = fresh.docker().args(["pull", &reference]).output().unwrap();
    assert_success(&format!("docker pull {reference} on the fresh engine"), &pull);
    let port = free_port();
    let run = fresh
        .docker()
        .args(["run", "--detach", "--name", "xtask-test-ship-push-fresh", "--read-only", "--tmpfs", "/tmp"])
        .args(["--publish", &format!("127.0.0.1:{port}:8080"), &reference])
        .output()
        .unwrap();
    assert_success("docker run of the digest on the fresh engine", &run);
    wait_healthy(port, Duration::from_secs(60), || {
        let logs = fresh.docker().args(["logs", "xtask-test-ship-push-fresh"]).output().unwrap();
        format!("{}{}", stdout(&logs), String::from_utf8_lossy(&logs.stderr))
    });
    check_string_endpoints(port);
    let _ = fresh.docker().args(["rm", "--force", "xtask-test-ship-push-fresh"]).output();
    drop(fresh);
    clean_ship(name, Some(&host));
}

/// A registry that needs a login, refuses, or does not answer: an error naming the registry and the remedy,
/// and nothing left tagged; with the engine's own login (`docker login`) the push goes through and no
/// credential shows; an interrupted push leaves nothing of the registry's tagged; a tree that differs from its
/// commit is refused unless --dirty, which pushes `<commit>-dirty`.
#[test]
fn push_failures_name_the_registry_and_leave_nothing_tagged() {
    let name = "xtask-test-ship-fail";
    let login = Registry::start("fail-login", 18610..18620, Access::Login);
    let read_only = Registry::start("fail-ro", 18620..18625, Access::ReadOnly);
    clean_ship(name, None);
    let (app, short) = committed_app("ship-fail", name);
    let client = buildkit_client().display().to_string();
    let base = base_311();
    let push = |to: &str, extra: &[&str], env: &[(&str, String)]| {
        let mut args = vec!["push", "--to", to, "--base-image", &base];
        args.extend(extra);
        xtask_in(&app, &client, &args, env).0
    };
    let failure = |output: &Output| {
        assert!(!output.status.success(), "the push succeeded\n{}", text(output));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    // Needs a login.
    let to = format!("{}/xtask-test-ship-fail/app", login.host());
    let error = failure(&push(&to, &[], &[]));
    assert!(error.contains(&format!("the registry {} wants a login", login.host())), "{error}");
    assert!(error.contains(&format!("login {}`", login.host())), "the remedy names the command: {error}");
    // Refuses (read-only).
    let to_ro = format!("{}/xtask-test-ship-fail/app", read_only.host());
    let error = failure(&push(&to_ro, &[], &[]));
    assert!(error.contains(&format!("the registry {} refused to push", read_only.host())), "{error}");
    // Does not answer: a port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let to_closed = format!("127.0.0.1:{closed}/xtask-test-ship-fail/app");
    let error = failure(&push(&to_closed, &[], &[]));
    assert!(error.contains(&format!("cannot reach the registry 127.0.0.1:{closed}")), "{error}");
    assert!(error.contains("check the address"), "{error}");
    for host in [login.host(), read_only.host(), format!("127.0.0.1:{closed}")] {
        assert_eq!(local_tags_of(&host), Vec::<String>::new(), "a failed push left a tag");
    }

    // With the engine's login: through, and the credential is nowhere in what we print.
    let config = scratch("ship-fail-docker-config");
    let mut docker_login = Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args(["login", "-u", "user", "--password-stdin", &login.host()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    docker_login.stdin.take().unwrap().write_all(b"pass\n").unwrap();
    assert_success("docker login", &docker_login.wait_with_output().unwrap());
    let output = push(&to, &["--json"], &[("DOCKER_CONFIG", config.display().to_string())]);
    assert_success("xtask push after docker login", &output);
    let all = text(&output);
    assert!(!all.contains("dXNlcjpwYXNz") && !all.contains("pass\n"), "a credential in the output\n{all}");
    assert_eq!(login.tags("xtask-test-ship-fail/app"), {
        let mut tags = vec!["0.1.0".to_string(), short.clone()];
        tags.sort();
        tags
    });
    assert_eq!(json_get(&stdout(&output), "d['digest']"), login.digest("xtask-test-ship-fail/app", "0.1.0"));

    // Interrupted: a registry that accepts connections and never answers, and Ctrl-C (SIGINT to us alone).
    let tarpit = TcpListener::bind("127.0.0.1:0").unwrap();
    let tarpit_port = tarpit.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in tarpit.incoming().flatten() {
            held.push(stream);
        }
    });
    let mut child = xtask_clean()
        .args(["push", "--to", &format!("127.0.0.1:{tarpit_port}/xtask-test-ship-fail/app"), "--base-image", &base])
        .arg("--app")
        .arg(&app)
        .args(["--engine", &client])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("$ ") && line.contains(" push 127.0.0.1:") {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(local_tags_of(&format!("127.0.0.1:{tarpit_port}")).len() == 1, "the push tagged the image\n{seen}");
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{}", rest.join("\n"));
    assert!(rest.iter().any(|l| l.starts_with("push: stopped by SIGINT")), "{}", rest.join("\n"));
    assert_eq!(local_tags_of(&format!("127.0.0.1:{tarpit_port}")), Vec::<String>::new(), "half-tagged");

    // A tree that differs from its commit: refused, then pushed as <commit>-dirty with --dirty.
    std::fs::write(app.join("app/uncommitted.txt"), "work in progress\n").unwrap();
    let error = failure(&push(&to, &[], &[("DOCKER_CONFIG", config.display().to_string())]));
    assert!(error.contains(&format!("differ from the commit {short}")) && error.contains("--dirty"), "{error}");
    let output = push(&to, &["--dirty", "--json"], &[("DOCKER_CONFIG", config.display().to_string())]);
    assert_success("xtask push --dirty", &output);
    assert_eq!(json_get(&stdout(&output), "d['tags']"), format!("0.1.0\n{short}-dirty"));
    assert!(login.tags("xtask-test-ship-fail/app").contains(&format!("{short}-dirty")));

    clean_ship(name, Some(&login.host()));
}

/// Multi-platform: one wheelhouse and one image per platform (arm64 built under emulation from the arm64 image
/// of a base index in the registry), one index pushed under each tag that lists both; its arm64 image runs
/// under emulation, says aarch64 and serves /health.
#[test]
fn multi_platform_push_makes_one_index_and_its_arm64_image_runs_under_emulation() {
    let name = "xtask-test-ship-multi";
    let registry = Registry::start("multi", 18630..18640, Access::Open);
    let host = registry.host();
    clean_ship(name, Some(&host));
    let (app, short) = committed_app("ship-multi", name);
    let client = buildkit_client().display().to_string();

    // The base image as python:3.11-slim is on Docker Hub: an index of both platforms, in the registry.
    let base = format!("{host}/xtask-test-ship-multi/python:3.11-slim");
    publish(&base_311(), &format!("{base}-amd64"));
    publish(&arm64_base(), &format!("{base}-arm64"));
    let manifests = scratch("ship-multi-docker-config");
    let index = |args: &[&str]| {
        let output = docker().env("DOCKER_CONFIG", &manifests).arg("manifest").args(args).output().unwrap();
        assert_success(&format!("docker manifest {}", args.join(" ")), &output);
        stdout(&output)
    };
    index(&["create", "--insecure", &base, &format!("{base}-amd64"), &format!("{base}-arm64")]);
    index(&["push", "--insecure", "--purge", &base]);

    let repository = format!("{host}/xtask-test-ship-multi/string-service");
    let args = ["push", "--to", &repository, "--platform", "linux/amd64,linux/arm64", "--base-image", &base, "--json"];
    let (output, took) = xtask_in(&app, &client, &args, &[]);
    assert_success("xtask push --platform linux/amd64,linux/arm64", &output);
    let result = stdout(&output);
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("multi-platform push took {:.1} s", took.as_secs_f64());
    for line in log.lines().filter(|l| l.starts_with("image: steps:")) {
        eprintln!("  {line}");
    }
    assert_eq!(json_get(&result, "[p['platform'] for p in d['platforms']]"), "linux/amd64\nlinux/arm64");
    assert_eq!(json_get(&result, "[p['tag'] for p in d['platforms']]"), "0.1.0-amd64\n0.1.0-arm64");
    let digest = json_get(&result, "d['digest']");
    // A wheelhouse per platform, each for its machine.
    let amd64 = std::fs::read_dir(state_dir(name).join("wheelhouse")).unwrap().count();
    let arm64_dir = state_dir(&format!("{name}@linux-arm64")).join("wheelhouse");
    let arm64: Vec<String> =
        std::fs::read_dir(&arm64_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(amd64, arm64.len());
    assert!(arm64.iter().any(|w| w.starts_with("pydantic_core-") && w.contains("aarch64")), "{arm64:?}");

    // One index under each tag, listing both.
    let path = "xtask-test-ship-multi/string-service";
    assert_eq!(registry.digest(path, "0.1.0"), digest);
    assert_eq!(registry.digest(path, &short), digest);
    let inspected = index(&["inspect", "--insecure", &format!("{repository}:{short}")]);
    assert_eq!(
        json_get(
            &inspected,
            "sorted(m['platform']['os'] + '/' + m['platform']['architecture'] for m in d['manifests'])"
        ),
        "linux/amd64\nlinux/arm64"
    );
    assert_eq!(local_tags_of(&host), Vec::<String>::new(), "the per-platform tags of the push are gone");

    // The arm64 image of the index, pulled by the index's digest, under emulation.
    let reference = format!("{repository}@{digest}");
    docker_out(&["pull", "--platform", "linux/arm64", &reference]);
    assert_eq!(docker_out(&["run", "--rm", "--platform", "linux/arm64", &reference, "uname", "-m"]).trim(), "aarch64");
    let port = free_port();
    let container = "xtask-test-ship-multi-arm64";
    let _ = docker().args(["rm", "--force", container]).output();
    let publish_port = format!("127.0.0.1:{port}:8080");
    docker_out(&[
        "run",
        "--detach",
        "--name",
        container,
        "--platform",
        "linux/arm64",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--publish",
        &publish_port,
        &reference,
    ]);
    wait_healthy(port, Duration::from_secs(180), || {
        let logs = docker().args(["logs", container]).output().unwrap();
        format!("{}{}", stdout(&logs), String::from_utf8_lossy(&logs.stderr))
    });
    assert_eq!(post(port, "/strings/reverse", "arm"), r#"{"result":"mra"}"#);
    let _ = docker().args(["rm", "--force", container]).output();
    clean_ship(name, Some(&host));
}

/// The registry cache: engine 1 builds with no cache and pushes; a second, fresh dockerd with an empty target/
/// builds the same commit with BuildKit, taking every layer from the registry (inline cache, `--cache-from` the
/// repository's images of the commit and the version). Prints both times and the steps that were cached.
#[test]
fn a_fresh_engine_takes_every_layer_from_the_registry_cache() {
    let name = "xtask-test-ship-cache";
    let registry = Registry::start("cache", 18640..18650, Access::Open);
    let host = registry.host();
    clean_ship(name, Some(&host));
    let (app, short) = committed_app("ship-cache", name);
    let client = buildkit_client().display().to_string();
    let base = format!("{host}/xtask-test-ship-cache/python:3.11-slim");
    publish(&base_311(), &base);
    let repository = format!("{host}/xtask-test-ship-cache/string-service");

    let args = ["push", "--to", &repository, "--base-image", &base];
    let (first, first_took) = xtask_in(&app, &client, &[&args[..], &["--no-cache"]].concat(), &[]);
    assert_success("xtask push --no-cache on engine 1", &first);
    let first_log = stdout(&first);
    let (_, ran_first) = buildkit_steps(&first_log);
    assert!(ran_first.iter().any(|s| s.contains("RUN python3 -m compileall")), "engine 1 built cold: {ran_first:?}");

    let fresh = SecondEngine::start();
    let target = scratch("ship-cache-target");
    let env = [("DOCKER_HOST", fresh.host()), ("CARGO_TARGET_DIR", target.display().to_string())];
    let (second, second_took) = xtask_in(&app, &client, &args, &env);
    assert_success("xtask push on the fresh engine", &second);
    let second_log = stdout(&second);
    let (cached, ran) = buildkit_steps(&second_log);
    eprintln!(
        "registry cache (BuildKit inline cache, --cache-from {repository}:{short} and :0.1.0):\n  engine 1, --no-cache: \
         push {:.1} s; {}\n  fresh engine, empty target/: push {:.1} s; {}\n  cached on the fresh engine: {cached:#?}\n  \
         ran there: {ran:#?}",
        first_took.as_secs_f64(),
        steps_line(&first_log),
        second_took.as_secs_f64(),
        steps_line(&second_log)
    );
    assert!(second_log.contains("wheels: filling"), "the fresh target/ has no wheelhouse\n{second_log}");
    for step in ["RUN python3 -m compileall", "ADD venv.tar", "COPY app/"] {
        assert!(
            cached.iter().any(|s| s.contains(step)),
            "`{step}` was not cached on the fresh engine: {cached:?}\n{second_log}"
        );
    }
    assert_eq!(ran, Vec::<String>::new(), "a step ran on the fresh engine\n{second_log}");
    drop(fresh);
    clean_ship(name, Some(&host));
}

/// The SBOM: valid CycloneDX 1.5 (the schema cyclonedx-python-lib ships), listing every package `cargo xtask
/// export` locks for the target with its version and the sha256 of the file installed (one of the lock's
/// hashes), the license its wheel states, the base image; the image holds the same bytes at the path its label
/// names.
#[test]
fn the_sbom_validates_and_lists_what_the_lock_installs() {
    let name = "xtask-test-ship-sbom";
    clean_ship(name, None);
    let (app, _) = committed_app("ship-sbom", name);
    let client = buildkit_client().display().to_string();
    let base = base_311();
    let (output, _) = xtask_in(&app, &client, &["image", "--base-image", &base], &[]);
    assert_success("xtask image", &output);
    let path = state_dir(name).join("sbom.cdx.json");
    let document = std::fs::read_to_string(&path).unwrap();

    // Valid against the schema of the CycloneDX version it says.
    let python =
        std::env::var("XTASK_TEST_CYCLONEDX_PYTHON").unwrap_or_else(|_| "/opt/xtask-cyclonedx/bin/python".into());
    assert!(Path::new(&python).is_file(), "{python} is missing: `bash .ci/setup` installs cyclonedx-python-lib there");
    let validate = "import sys\nfrom cyclonedx.schema import SchemaVersion\nfrom cyclonedx.validation.json import \
                    JsonStrictValidator\nerrors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
                    print(errors or 'valid')";
    let check = |file: &Path| {
        let output = Command::new(&python).args(["-c", validate]).arg(file).output().unwrap();
        assert_success("the CycloneDX validator", &output);
        stdout(&output).trim().to_string()
    };
    assert_eq!(json_get(&document, "d['specVersion']"), "1.5");
    assert_eq!(check(&path), "valid");
    // The validator is not a rubber stamp: a wrong hash algorithm is caught.
    let broken = scratch("ship-sbom-broken").join("bom.json");
    std::fs::write(&broken, document.replacen("\"SHA-256\"", "\"sha256\"", 1)).unwrap();
    assert!(check(&broken).contains("is not one of"), "the broken document validated");

    // Every package export locks for this target, with its version and a locked hash; nothing else.
    let export = xtask_clean().arg("export").arg("--app").arg(&app).output().unwrap();
    assert_success("xtask export", &export);
    let mut locked: BTreeMap<String, (String, Vec<String>, String)> = BTreeMap::new();
    let mut current = String::new();
    for line in stdout(&export).lines() {
        let line = line.trim().trim_end_matches('\\').trim();
        if let Some(hash) = line.strip_prefix("--hash=sha256:") {
            locked.get_mut(&current).unwrap().1.push(hash.to_string());
        } else if let Some((name, rest)) = line.split_once("==") {
            let (version, marker) = rest.split_once(" ; ").unwrap_or((rest, ""));
            current = name.to_string();
            locked.insert(current.clone(), (version.trim().to_string(), Vec::new(), marker.to_string()));
        }
    }
    let markers: Vec<&str> =
        locked.values().map(|(_, _, m)| if m.is_empty() { "python_version > '0'" } else { m.as_str() }).collect();
    let applies = {
        let script = "import sys\nfrom pip._vendor.packaging.markers import Marker\nenv = {'implementation_name': \
                      'cpython', 'platform_machine': 'x86_64', 'platform_system': 'Linux', 'sys_platform': 'linux', \
                      'os_name': 'posix', 'python_version': '3.11', 'python_full_version': '3.11.2', \
                      'platform_python_implementation': 'CPython', 'extra': ''}\nfor m in sys.argv[1:]: \
                      print(int(Marker(m).evaluate(env)))";
        let output = Command::new("python3").args(["-c", script]).args(&markers).output().unwrap();
        assert_success("evaluating the markers", &output);
        stdout(&output).lines().map(|l| l == "1").collect::<Vec<_>>()
    };
    let expected: Vec<&String> = locked.keys().zip(&applies).filter(|(_, a)| **a).map(|(k, _)| k).collect();
    assert!(expected.len() > 10, "{locked:?}");
    let listed = json_get(
        &document,
        "[c['name'] + ' ' + c['version'] + ' ' + c['purl'] + ' ' + c['hashes'][0]['content'] for c in d['components'] if c['type'] == 'library']",
    );
    let mut seen = Vec::new();
    for line in listed.lines() {
        let [package, version, purl, sha256] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("{line}") };
        let (locked_version, hashes, _) =
            locked.get(package).unwrap_or_else(|| panic!("the SBOM lists {package}, which export does not"));
        assert_eq!(version, locked_version, "{package}");
        assert_eq!(purl, format!("pkg:pypi/{package}@{version}"));
        assert!(hashes.iter().any(|h| h == sha256), "{package}: {sha256} is not among the locked hashes {hashes:?}");
        seen.push(package.to_string());
    }
    seen.sort();
    assert_eq!(seen.iter().collect::<Vec<_>>(), expected, "the SBOM lists exactly what export locks for linux/amd64");
    assert_eq!(
        json_get(&document, "[c['licenses'] for c in d['components'] if c['name'] == 'fastapi'][0]"),
        "{'expression': 'MIT'}"
    );
    assert_eq!(json_get(&document, "d['metadata']['component']['name']"), "string-service");
    assert_eq!(json_get(&document, "[c['name'] for c in d['components'] if c['type'] == 'container'][0]"), base);

    // In the image, at the path its label names: the same bytes.
    let image = format!("{name}:0.1.0");
    let label = docker_out(&["image", "inspect", "--format", "{{index .Config.Labels \"xtask.sbom\"}}", &image]);
    assert_eq!(label.trim(), "/opt/sbom.cdx.json");
    let inside = docker_out(&["run", "--rm", &image, "cat", label.trim()]);
    assert_eq!(inside, document, "docker run {image} cat {} prints the document", label.trim());
    clean_ship(name, None);
}

/// Podman as an engine: the base image's facts, the build, `run` (its containers start here: the tool gives
/// them this process's resource limits), a push to a registry; and two `--no-cache` builds of the same commit a
/// minute apart have the same image id and digest (buildah's `--timestamp` from the commit time, hash-based
/// bytecode and the shadow file's date from SOURCE_DATE_EPOCH), and push to the same registry digest.
#[test]
fn podman_builds_runs_pushes_and_two_builds_a_minute_apart_have_one_digest() {
    let name = "xtask-test-ship-podman";
    let podman = || Command::new("podman");
    let base = std::env::var("XTASK_TEST_BASE_IMAGE").unwrap_or_else(|_| "xtask-local/python:3.11-slim".into());
    let exists = podman().args(["image", "exists", &base]).status();
    assert!(
        exists.is_ok_and(|s| s.success()),
        "{base} is not in podman's store: `bash .ci/setup` loads it (`docker save {base} | podman load`)"
    );
    let remove = || {
        let _ = podman().args(["rm", "--force", name]).output();
        let listed = podman().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]).output();
        for tag in listed.map(|o| stdout(&o)).unwrap_or_default().lines().filter(|t| t.contains(name)) {
            let _ = podman().args(["rmi", tag]).output();
        }
        let _ = std::fs::remove_dir_all(state_dir(name));
    };
    remove();
    let registry = Registry::start("podman", 18650..18660, Access::Open);
    let (app, short) = committed_app("ship-podman", name);
    let inspect = || {
        let output = podman()
            .args(["image", "inspect", "--format", "{{.Id}} {{.Digest}}", &format!("{name}:0.1.0")])
            .output()
            .unwrap();
        assert_success("podman image inspect", &output);
        stdout(&output).trim().to_string()
    };

    let started = Instant::now();
    let (first, took) = xtask_in(&app, "podman", &["image", "--no-cache", "--base-image", &base], &[]);
    assert_success("xtask image --engine podman --no-cache", &first);
    let first_log = stdout(&first);
    assert!(first_log.contains("--timestamp "), "{first_log}");
    let built = inspect();
    eprintln!("podman build 1 ({:.1} s): {built}", took.as_secs_f64());

    // Its containers start and serve.
    let port = free_port();
    let run = xtask_in(&app, "podman", &["run", "--detach", "--port", &port.to_string(), "--base-image", &base], &[]).0;
    assert_success("xtask run --engine podman --detach", &run);
    assert!(stdout(&run).contains("--ulimit nofile="), "{}", stdout(&run));
    check_string_endpoints(port);
    let _ = podman().args(["rm", "--force", name]).output();

    // Pushed: the registry has both tags under the digest printed.
    let repository = format!("{}/xtask-test-ship-podman/string-service", registry.host());
    let pushed = xtask_in(&app, "podman", &["push", "--to", &repository, "--base-image", &base, "--json"], &[]).0;
    assert_success("xtask push --engine podman", &pushed);
    let digest = json_get(&stdout(&pushed), "d['digest']");
    let path = "xtask-test-ship-podman/string-service";
    assert_eq!(registry.digest(path, "0.1.0"), digest);
    assert_eq!(registry.digest(path, &short), digest);

    // A minute after the first build started, the same commit again with no cache: the same image.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    let (second, took) = xtask_in(&app, "podman", &["image", "--no-cache", "--base-image", &base], &[]);
    assert_success("the second xtask image --engine podman --no-cache", &second);
    let rebuilt = inspect();
    eprintln!(
        "podman build 2 ({:.1} s, started {:.0} s after the first): {rebuilt}",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64() - took.as_secs_f64()
    );
    assert_eq!(rebuilt, built, "two --no-cache builds of one commit, a minute apart, differ");
    let again = xtask_in(&app, "podman", &["push", "--to", &repository, "--base-image", &base, "--json"], &[]).0;
    assert_success("the second xtask push --engine podman", &again);
    assert_eq!(json_get(&stdout(&again), "d['digest']"), digest, "the rebuilt image pushed to another digest");
    remove();
}
