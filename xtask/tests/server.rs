//! `cargo xtask server` as a user runs it: a real gunicorn (or reloading uvicorn) from the app's virtualenv,
//! real HTTP, real signals. After SIGINT, SIGTERM or a terminal's Ctrl-C nothing may listen on the port and no
//! process of the server may remain.

mod local;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use local::*;

/// A running `xtask server`, with its output in a log file.
struct Server {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `xtask server --port <free port> <args>` in a process group of its own, as a shell starts a
    /// foreground job, and waits until `GET /health` answers 200.
    fn start(name: &str, args: &[&str]) -> Server {
        let port = free_port();
        let log = scratch(&format!("{name}-log")).join("server.log");
        let out = File::create(&log).unwrap();
        let child = xtask()
            .args(["server", "--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        let mut server = Server { child, port, log };
        server.wait_healthy();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&mut self) {
        // The first run creates the virtualenv: allow for pip.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok((200, body)) = http(self.port, "GET", "/health", None) {
                assert_eq!(body, r#"{"status":"ok"}"#);
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("xtask server exited with {status} before serving\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no answer on port {} in time\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's process group: the one child of xtask leads a group of its own.
    fn server_group(&self) -> u32 {
        let children: Vec<Process> = processes().into_iter().filter(|p| p.ppid == self.child.id()).collect();
        assert_eq!(children.len(), 1, "xtask should have one child, the server: {children:#?}");
        assert_eq!(children[0].pgrp, children[0].pid, "the server should lead its own process group");
        children[0].pid
    }

    fn signal(&self, signal: libc::c_int, whole_group: bool) {
        let pid = self.child.id() as libc::pid_t;
        let rc = unsafe {
            if whole_group {
                libc::killpg(pid, signal)
            } else {
                libc::kill(pid, signal)
            }
        };
        assert_eq!(rc, 0, "cannot signal xtask");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("xtask server did not exit after the signal\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Signals xtask, waits for it, and checks that the server is gone entirely.
    fn stop_and_check(mut self, signal: libc::c_int, whole_group: bool) {
        let group = self.server_group();
        let members = processes().into_iter().filter(|p| p.pgrp == group).count();
        assert!(members >= 2, "the server should have a master and workers running");
        self.signal(signal, whole_group);
        let status = self.wait_exit();
        let log = self.log();
        // As a shell reports a command a signal stopped: 130 after SIGINT, 143 after SIGTERM.
        assert_eq!(status.code(), Some(128 + signal), "xtask server exited with {status}\n{log}");
        assert!(log.contains("server: stopped"), "{log}");
        assert!(!listening(self.port), "something still listens on {} after xtask exited\n{log}", self.port);
        let port = self.port.to_string();
        let left: Vec<Process> = processes()
            .into_iter()
            .filter(|p| p.pgrp == group || (p.cmdline.contains(&port) && !p.cmdline.contains("cargo")))
            .collect();
        assert!(left.is_empty(), "processes of the server remain: {left:#?}\n{log}");
    }
}

#[test]
fn gunicorn_serves_and_stops_on_sigint() {
    let server = Server::start("server-sigint", &[]);
    check_string_endpoints(server.port);
    let log = server.log();
    assert!(log.contains("gunicorn --bind 127.0.0.1:"), "{log}");
    assert!(log.contains("Using worker: uvicorn_worker.UvicornWorker"), "{log}");
    server.stop_and_check(libc::SIGINT, false);
}

#[test]
fn gunicorn_stops_on_sigterm() {
    let server = Server::start("server-sigterm", &[]);
    server.stop_and_check(libc::SIGTERM, false);
}

#[test]
fn gunicorn_stops_on_ctrl_c_at_a_terminal() {
    // A terminal's Ctrl-C sends SIGINT to the whole foreground process group: here, xtask's group.
    let server = Server::start("server-ctrl-c", &[]);
    server.stop_and_check(libc::SIGINT, true);
}

#[test]
fn reload_serves_changes_and_stops_on_sigint() {
    let app = example_app_copy("server-reload");
    let server = Server::start("server-reload", &["--reload", "--app", app.to_str().unwrap()]);
    let log = server.log();
    assert!(log.contains("uvicorn app.main:app --reload --reload-dir app"), "{log}");
    assert_eq!(post(server.port, "/strings/reverse", "hello"), r#"{"result":"olleh"}"#);

    // Change the code: the reloader restarts the app, on the same port.
    let service = app.join("app/service/string_service.py");
    let code = std::fs::read_to_string(&service).unwrap();
    let changed = code.replace("return text[::-1]", "return text[::-1] + \"!\"");
    assert_ne!(code, changed);
    std::fs::write(&service, changed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, body)) = http(server.port, "POST", "/strings/reverse", Some(r#"{"text": "hello"}"#)) {
            if body == r#"{"result":"olleh!"}"# {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the change was not picked up\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    server.stop_and_check(libc::SIGINT, false);
}

#[test]
fn reload_stops_on_sigterm() {
    let server = Server::start("server-reload-sigterm", &["--reload"]);
    server.stop_and_check(libc::SIGTERM, false);
}

#[test]
fn port_in_use_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let output = xtask().args(["server", "--port", &port]).stdin(Stdio::null()).output().unwrap();
    let text = text(&output);
    assert!(!output.status.success(), "{text}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("error: port {port} is already in use on 127.0.0.1 (by pid {}", std::process::id())),
        "{text}"
    );
    assert!(stderr.contains("pick another port with `cargo xtask server --port <PORT>`"), "{text}");
    assert!(!text.contains("Traceback"), "{text}");
    // Checked before anything else: no virtualenv work, no server started.
    assert!(!text.contains("venv:"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "{text}");
    drop(listener);
}

#[test]
fn help_describes_the_options() {
    let output = xtask().args(["server", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for option in ["--port <PORT>", "--reload", "--app <DIR>"] {
        assert!(help.contains(option), "{help}");
    }
    assert!(Path::new(&example_app()).join("gunicorn_config.py").is_file());
}
