//! Helpers shared by the end-to-end tests: the xtask binary, free ports, a minimal HTTP client and the example
//! app's endpoint checks, tools on PATH (poetry), a look at /proc, copies of trees and of the example app
//! (sharing its virtualenv).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn example_app() -> PathBuf {
    workspace().join("example-app")
}

/// A directory of its own for one test, under cargo's scratch space for tests.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port nothing listens on right now (other tests and other people's servers pick theirs the same way).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// One HTTP/1.1 request; returns the status code and the body.
pub fn http(port: u16, method: &str, path: &str, json: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    match json {
        Some(body) => {
            request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
        }
        None => request.push_str("\r\n"),
    }
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The first `name` in a directory of PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The real Poetry (`XTASK_TEST_POETRY`, else on PATH) with its export plugin, or a failure that says how to
/// get it.
pub fn poetry() -> PathBuf {
    let howto = "this test compares with the real `poetry export`: install poetry 2.5.1 and its export plugin \
                 (`python3 -m pip install poetry==2.5.1 poetry-plugin-export==1.10.1`, or run `.ci/setup`) and put \
                 `poetry` on PATH, or set XTASK_TEST_POETRY=/path/to/poetry";
    let poetry = match std::env::var_os("XTASK_TEST_POETRY") {
        Some(p) => PathBuf::from(p),
        None => on_path("poetry").unwrap_or_else(|| panic!("poetry not found on PATH: {howto}")),
    };
    let ok = Command::new(&poetry).args(["export", "--help"]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "`{} export --help` failed: {howto}", poetry.display());
    poetry
}

/// A live (not zombie) process: pid, parent, process group and command line.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub cmdline: String,
}

/// Every live process on the machine, from /proc.
pub fn processes() -> Vec<Process> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields[0] == "Z" || fields[0] == "X" {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        out.push(Process {
            pid,
            ppid: fields[1].parse().unwrap(),
            pgrp: fields[2].parse().unwrap(),
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " ").trim_end().to_string(),
        });
    }
    out
}

/// Makes sure the example app's virtualenv is complete (a no-op when its stamp matches), so that copies of the
/// app can share it.
pub fn ensure_example_venv() {
    let output = xtask().args(["test", "--", "--collect-only", "-q"]).output().unwrap();
    assert_success("cargo xtask test -- --collect-only", &output);
}

/// A copy of the example app (its code, tests, pyproject.toml and lock) whose `.venv` is a link to the example
/// app's own, already complete virtualenv: the copy's requirements are the same, so its stamp matches.
pub fn example_app_copy(name: &str) -> PathBuf {
    ensure_example_venv();
    let dir = scratch(name).join("app");
    copy_source_tree(&example_app(), &dir);
    std::os::unix::fs::symlink(example_app().join(".venv"), dir.join(".venv")).unwrap();
    dir
}

/// Copies an app's tree without hidden files and folders (`.venv`, `.env`, ...) and bytecode caches.
pub fn copy_source_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        let name = name.to_str().unwrap();
        if name.starts_with('.') || name == "__pycache__" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_source_tree(&path, &to.join(name));
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn assert_success(what: &str, output: &Output) {
    assert!(output.status.success(), "{what} failed\n{}", text(output));
}

/// POSTs `{"text": ...}` and returns the 200 answer's body.
pub fn post(port: u16, path: &str, text: &str) -> String {
    let body = format!(r#"{{"text": "{text}"}}"#);
    let (status, answer) = http(port, "POST", path, Some(&body)).unwrap();
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// Every string endpoint of the example app answers correctly on 127.0.0.1:`port`, a bad body is a 422, and
/// the OpenAPI document lists the routes.
pub fn check_string_endpoints(port: u16) {
    assert_eq!(post(port, "/strings/reverse", "hello"), r#"{"result":"olleh"}"#);
    assert_eq!(post(port, "/strings/upper", "Hello"), r#"{"result":"HELLO"}"#);
    assert_eq!(post(port, "/strings/lower", "Hello"), r#"{"result":"hello"}"#);
    assert_eq!(post(port, "/strings/count", "the quick fox"), r#"{"words":3,"characters":13}"#);
    assert_eq!(post(port, "/strings/palindrome", "Never odd or even!"), r#"{"palindrome":true}"#);
    assert_eq!(post(port, "/strings/palindrome", "hello"), r#"{"palindrome":false}"#);
    let (status, answer) = http(port, "POST", "/strings/reverse", Some("{}")).unwrap();
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = http(port, "GET", "/openapi.json", None).unwrap();
    assert_eq!(status, 200);
    assert!(answer.contains("/strings/palindrome"), "{answer}");
}

/// Copies the tree `from` to `to`, every file.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display())) {
        let entry = entry.unwrap();
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&source, &dest);
        } else {
            std::fs::copy(&source, &dest).unwrap();
        }
    }
}

/// The docker client the tests use to look at images and containers.
pub fn docker() -> Command {
    Command::new("docker")
}

/// The base image for Python 3.11 (or 3.13), checked to exist: a clear failure, not a confusing one, when the
/// machine is not set up.
pub fn base_image(var: &str, default: &str) -> String {
    let image = std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string());
    let output = docker()
        .args(["image", "inspect", "--format", "{{.Id}}", &image])
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker ({e}): install Docker (`bash .ci/setup` does)"));
    assert!(
        output.status.success(),
        "the base image {image} is missing ({var}): `bash .ci/setup` builds the local stand-ins \
         (or `bash .ci/base-image bookworm {image}`)\n{}",
        text(&output)
    );
    image
}

pub fn base_311() -> String {
    base_image("XTASK_TEST_BASE_IMAGE", "xtask-local/python:3.11-slim")
}

pub fn base_313() -> String {
    base_image("XTASK_TEST_BASE_IMAGE_313", "xtask-local/python:3.13-slim")
}

/// The arm64 base image (bookworm's Python 3.11), run under qemu's emulation on an amd64 machine.
pub fn base_arm64() -> String {
    base_image("XTASK_TEST_BASE_IMAGE_ARM64", "xtask-local/python:3.11-slim-arm64")
}

/// `xtask <args>` without the caller's engine and base image settings.
pub fn xtask_clean() -> Command {
    let mut command = xtask();
    for var in ["XTASK_ENGINE", "XTASK_BUILDER", "XTASK_BASE_IMAGE", "DOCKER_BUILDKIT"] {
        command.env_remove(var);
    }
    command.stdin(Stdio::null());
    command
}

pub fn run_xtask(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = xtask_clean().args(args).output().unwrap();
    (output, started.elapsed())
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The state directory of an image name (wheelhouse, context).
pub fn state_dir(name: &str) -> PathBuf {
    workspace().join("target/xtask/apps").join(name.replace('/', "+"))
}

/// A copy of the example app with the image name `name`, under `dir` (made).
pub fn example_copy(dir: &Path, name: &str) -> PathBuf {
    let app = dir.join("app");
    copy_source_tree(&example_app(), &app);
    let pyproject = app.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(&pyproject, text.replace("\n[tool.xtask]\n", &format!("\n[tool.xtask]\nname = \"{name}\"\n")))
        .unwrap();
    app
}

/// Removes the image tags, containers and state named after `name`, and the app's copy.
pub struct Cleanup {
    pub name: &'static str,
    pub dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        clean(self.name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory (made empty, with an empty daemon.json) and the bridge (made and up, on 172.31.<subnet>.1/24,
/// `subnet` from `subnet_base` plus 0-14 by pid) of a second dockerd for the test file `tag`. Short paths:
/// containerd's sockets live under the exec root, and a socket's path has at most 107 bytes. Needs root.
pub fn second_engine_dir(tag: &str, bridge_prefix: &str, subnet_base: u32) -> (PathBuf, String) {
    let dir = PathBuf::from(format!("/tmp/xtask-test-{tag}-engine-{}", std::process::id()));
    let bridge = format!("{bridge_prefix}{}", std::process::id() % 100_000);
    let subnet = subnet_base + std::process::id() % 15;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("daemon.json"), "{}").unwrap();
    let ip = |args: &[&str]| {
        let output = Command::new("ip").args(args).output().unwrap();
        assert_success(&format!("ip {} (the second engine needs root)", args.join(" ")), &output);
    };
    let _ = Command::new("ip").args(["link", "del", &bridge]).output();
    ip(&["link", "add", &bridge, "type", "bridge"]);
    ip(&["addr", "add", &format!("172.31.{subnet}.1/24"), "dev", &bridge]);
    ip(&["link", "set", &bridge, "up"]);
    (dir, bridge)
}

/// A second dockerd of the test's own (its data root, exec root, pidfile, socket and bridge: `second_engine_dir`),
/// started at once; a test may stop it and start it again on the same data. Stopped and removed (its
/// containerd, mounts, files, bridge) when dropped.
pub struct Dockerd {
    dir: PathBuf,
    bridge: String,
    pid: Option<u32>,
}

impl Dockerd {
    pub fn new(tag: &str, bridge_prefix: &str, subnet_base: u32) -> Dockerd {
        let (dir, bridge) = second_engine_dir(tag, bridge_prefix, subnet_base);
        let mut daemon = Dockerd { dir, bridge, pid: None };
        daemon.start();
        daemon
    }

    pub fn start(&mut self) {
        let dir = &self.dir;
        let log = std::fs::File::options().create(true).append(true).open(dir.join("log")).unwrap();
        let arg = |name: &str| dir.join(name).display().to_string();
        // Never `--bridge none` (it deletes the main engine's docker0); no iptables of its own.
        let mut child = Command::new("dockerd")
            .args(["--config-file", &arg("daemon.json"), "--data-root", &arg("root"), "--exec-root", &arg("exec")])
            .args(["--pidfile", &arg("pid"), "-H", &format!("unix://{}", arg("sock")), "--bridge", &self.bridge])
            .args(["--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd is not installed: `bash .ci/setup` installs docker.io");
        self.pid = Some(child.id());
        // Reaped by the thread: the daemon runs until it is killed or dropped.
        std::thread::spawn(move || child.wait());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = self.docker().args(["info", "--format", "{{.ServerVersion}}"]).output().unwrap();
            if info.status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "the second dockerd did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` to the daemon and waits (bounded) until it is gone, and the containerd it started with
    /// it (which dies with its parent); a pid file that names no live containerd is removed, or the next daemon
    /// would wait for that containerd's socket and give up (a zombie still has its pid).
    pub fn stop(&mut self, signal: &str) {
        let Some(pid) = self.pid.take() else { return };
        let _ = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Some(containerd) = std::fs::read_to_string(&pidfile).ok().and_then(|t| t.trim().parse().ok()) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(containerd) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !alive(containerd) {
                let _ = std::fs::remove_file(&pidfile);
            }
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("sock").display())
    }

    pub fn docker(&self) -> Command {
        let mut command = Command::new("docker");
        command.env("DOCKER_HOST", self.host());
        command
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop("TERM");
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let prefix = format!("{}/", self.dir.display());
        let mut left: Vec<&str> =
            mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|m| m.starts_with(&prefix)).collect();
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in left {
            // Busy for a moment after the daemon's end: again, then lazily.
            let unmounted = (0..10).any(|_| {
                let done = Command::new("umount").arg(mount).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
                if !done {
                    std::thread::sleep(Duration::from_millis(300));
                }
                done
            });
            if !unmounted {
                let _ = Command::new("umount").args(["--lazy", mount]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}

/// Whether process `pid` runs (exists, and is not a zombie).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Removes what an earlier run left: the state directory, the image's tags and containers. Tags only (no
/// pruning): parallel builds may be reusing the layers underneath.
pub fn clean(name: &str) {
    let _ = std::fs::remove_dir_all(state_dir(name));
    let _ = std::fs::remove_dir_all(state_dir(&format!("{name}@linux-arm64")));
    let _ = docker().args(["rm", "--force", name]).output();
    let listed = docker().args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", name]).output().unwrap();
    for tag in stdout(&listed).lines().filter(|t| !t.is_empty()) {
        let _ = docker().args(["rmi", "--no-prune", tag]).output();
    }
}
