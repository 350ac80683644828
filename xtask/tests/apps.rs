//! Real app layouts end to end (the fixtures in `tests/fixtures/apps/`, shaped like public FastAPI, Flask and
//! Django apps): what `init` writes is what builds and serves, with real images, containers and HTTP. The
//! port that was asked for is the one served, with or without a gunicorn config that reads `PORT`; an app that
//! migrates a SQLite database in a data folder before it serves keeps its rows from one `run` to the next; a
//! package-mode project is installed with its console script; an env file's secret reaches the container and
//! nothing else.
//!
//! Each test works on a copy of its app under `target/xtask-tests/` (inside the workspace, where `init` may
//! edit it) and uses image, container and volume names of its own.

mod local;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use local::*;

/// A copy of the fixture app `fixture` inside the workspace, for the test `test`.
fn fixture_copy(fixture: &str, test: &str) -> PathBuf {
    let dir = workspace().join("target/xtask-tests").join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_source_tree(&workspace().join("xtask/tests/fixtures/apps").join(fixture), &dir);
    dir
}

/// `cargo xtask init --app <dir>`: writes the app's commented `[tool.xtask]` (the workspace is set up already).
fn init(dir: &Path) -> String {
    let output = xtask_clean().arg("init").arg("--app").arg(dir).output().unwrap();
    assert_success("xtask init", &output);
    stdout(&output)
}

/// Uncomments the line of `[tool.xtask]` that `init` wrote for `key`, as a user does.
fn uncomment(dir: &Path, key: &str) {
    let path = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let prefix = format!("# {key} = ");
    assert!(text.lines().any(|l| l.starts_with(&prefix)), "init wrote no {key} line:\n{text}");
    let text: String = text
        .lines()
        .map(|l| if l.starts_with(&prefix) { l.trim_start_matches("# ").split("  # ").next().unwrap() } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
}

/// Appends settings to the `[tool.xtask]` table (the last table of the file).
fn set(dir: &Path, lines: &str) {
    let path = dir.join("pyproject.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.contains("\n[tool.xtask]\n") {
        text.push_str("\n[tool.xtask]\n");
    }
    text.push_str(lines);
    std::fs::write(&path, text).unwrap();
}

/// `cargo xtask <args>` with the base image and the test's image name (before a `--`), waiting for it.
fn xtask_app(dir: &Path, name: &str, args: &[&str]) -> Output {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    xtask_clean()
        .args(&args[..split])
        .arg("--app")
        .arg(dir)
        .args(["--name", name])
        .args(&args[split..])
        .env("XTASK_BASE_IMAGE", base_311())
        .output()
        .unwrap()
}

/// `cargo xtask run` in the foreground, as a user starts it in a terminal.
struct Running {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Running {
    fn start(dir: &Path, name: &str, port: u16) -> Running {
        let log = dir.with_extension(format!("{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = xtask_clean()
            .args(["run", "--port", &port.to_string(), "--name", name, "--app"])
            .arg(dir)
            .env("XTASK_BASE_IMAGE", base_311())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let running = Running { child, log, port };
        running.wait_healthy();
        running
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while http(self.port, "GET", "/health", None).map(|(status, _)| status).ok() != Some(200) {
            assert!(Instant::now() < deadline, "nothing answered /health on {}\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Ctrl-C, and waits for `run` to stop and remove the container.
    fn interrupt(mut self) -> String {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "run did not stop\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        self.log()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the image tags, containers and volumes named after `name`, and the app's copy.
struct Cleanup<'a> {
    name: &'a str,
    dir: &'a Path,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        clean(self.name);
        let volumes = Command::new("docker").args(["volume", "ls", "--quiet"]).output().unwrap();
        for volume in stdout(&volumes).lines().filter(|v| v.starts_with(&format!("{}-", self.name))) {
            let _ = Command::new("docker").args(["volume", "rm", "--force", volume]).output();
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

/// The example app with `port = 19010`: its gunicorn config binds `PORT`; the image binds the port that was
/// asked for, and `run` finds it healthy there. The Flask fixture's gunicorn config hard-codes port 8000 and
/// reads no `PORT`: with `port = 19011`, it is served on 19011 all the same.
#[test]
fn the_port_asked_for_is_the_port_served() {
    let name = "xtask-test-apps-port";
    let dir = workspace().join("target/xtask-tests").join(format!("port-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_source_tree(&example_app(), &dir);
    let _cleanup = Cleanup { name, dir: &dir };
    let pyproject = std::fs::read_to_string(dir.join("pyproject.toml")).unwrap();
    std::fs::write(dir.join("pyproject.toml"), pyproject.replace("\nport = 8080 ", "\nport = 19010 ")).unwrap();
    let output = xtask_app(&dir, name, &["run", "--detach"]);
    assert_success("xtask run --detach (example app, port 19010)", &output);
    let (status, body) = http(19010, "GET", "/health", None).unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let cmd = Command::new("docker").args(["inspect", "--format", "{{json .Config.Cmd}}", name]).output().unwrap();
    assert!(stdout(&cmd).contains(r#""--bind","0.0.0.0:19010""#), "{}", stdout(&cmd));

    let shop_name = "xtask-test-apps-shop";
    let shop = fixture_copy("flask-shop", "port-shop");
    let _shop_cleanup = Cleanup { name: shop_name, dir: &shop };
    init(&shop);
    set(&shop, "port = 19011\n");
    let output = xtask_app(&shop, shop_name, &["run", "--detach"]);
    assert_success("xtask run --detach (flask-shop, port 19011)", &output);
    let (status, body) = http(19011, "GET", "/products", None).unwrap();
    assert_eq!((status, body.trim()), (200, r#"["mug","tea"]"#));
}

/// An app that must migrate before it serves: SQLite under /data, alembic at the root, uvicorn alone. With
/// `init`'s output and its proposed release line uncommented, `run` migrates, serves, keeps the row written
/// through the API across Ctrl-C and a second run, and `run -- alembic current` reads the same volume.
#[test]
fn migrations_run_first_and_data_survives() {
    let name = "xtask-test-apps-notes";
    let dir = fixture_copy("notes", "notes");
    let _cleanup = Cleanup { name, dir: &dir };
    let said = init(&dir);
    assert!(said.contains("found: volumes = /data"), "{said}");
    uncomment(&dir, "release");

    let port = free_port();
    let first = Running::start(&dir, name, port);
    let (status, body) = http(port, "POST", "/notes", Some(r#"{"text": "kept across runs"}"#)).unwrap();
    assert_eq!(status, 201, "{body}\n{}", first.log());
    let log = first.interrupt();
    assert!(log.contains("Running upgrade  -> 976d3386c4a5"), "the release step ran alembic\n{log}");
    assert!(log.contains("run: stopped and removed"), "{log}");

    let second = Running::start(&dir, name, port);
    let (status, body) = http(port, "GET", "/notes", None).unwrap();
    assert_eq!((status, body.as_str()), (200, r#"[{"id":1,"text":"kept across runs"}]"#), "{}", second.log());
    let log = second.interrupt();
    assert!(
        log.contains("Context impl SQLiteImpl") && !log.contains("Running upgrade"),
        "nothing left to migrate\n{log}"
    );

    let output = xtask_app(&dir, name, &["run", "--", "alembic", "current"]);
    assert_success("xtask run -- alembic current", &output);
    assert!(stdout(&output).contains("976d3386c4a5 (head)"), "{}", text(&output));
    // A one-off's exit code is run's.
    let output = xtask_app(&dir, name, &["run", "--", "python", "-c", "raise SystemExit(7)"]);
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
}

/// A package-mode project is installed, not only copied: its console script runs (`--help`), and
/// `importlib.metadata.version` answers with the project's version, in the script and in the app.
#[test]
fn the_project_is_installed_with_its_console_script() {
    let name = "xtask-test-apps-orders";
    let dir = fixture_copy("orders", "orders");
    let _cleanup = Cleanup { name, dir: &dir };
    init(&dir);
    let output = xtask_app(&dir, name, &["image"]);
    assert_success("xtask image (orders)", &output);
    let image = format!("{name}:1.4.0");
    let run = |args: &[&str]| {
        let output = Command::new("docker").args(["run", "--rm", "--read-only", &image]).args(args).output().unwrap();
        assert_success(&format!("docker run {image} {}", args.join(" ")), &output);
        stdout(&output)
    };
    assert!(run(&["orders-admin", "--help"]).contains("usage: orders-admin"));
    assert_eq!(run(&["orders-admin", "--version"]).trim(), "1.4.0");
    assert_eq!(run(&["python", "-c", "import importlib.metadata as m; print(m.version('orders'))"]).trim(), "1.4.0");
    // From another directory, the script still imports the app (the workdir is on the path).
    let output = Command::new("docker")
        .args(["run", "--rm", "--workdir", "/tmp", &image, "orders-admin", "--version"])
        .output()
        .unwrap();
    assert_eq!(stdout(&output).trim(), "1.4.0", "{}", text(&output));
}

/// `run --env-file`: the secret reaches the container, and appears in no output of the tool, no layer, no
/// label and no history of the image.
#[test]
fn an_env_file_reaches_the_container_and_nothing_else() {
    let name = "xtask-test-apps-secret";
    let dir = fixture_copy("web-py", "secret");
    let _cleanup = Cleanup { name, dir: &dir };
    init(&dir);
    let secret = format!("s3cr3t-{}-value", std::process::id());
    let env_file = dir.with_extension("env");
    std::fs::write(&env_file, format!("XTASK_TEST_SECRET={secret}\n")).unwrap();
    let script = "import os, hashlib; print(hashlib.sha256(os.environ['XTASK_TEST_SECRET'].encode()).hexdigest())";
    let output = xtask_clean()
        .args(["run", "--name", name, "--env-file"])
        .arg(&env_file)
        .arg("--app")
        .arg(&dir)
        .args(["--", "python", "-c", script])
        .env("XTASK_BASE_IMAGE", base_311())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success("xtask run --env-file -- python", &output);
    let sha =
        Command::new("sh").args(["-c", &format!("printf %s {secret} | sha256sum | cut -d' ' -f1")]).output().unwrap();
    assert!(stdout(&output).contains(stdout(&sha).trim()), "the container saw the secret\n{}", text(&output));
    assert!(!text(&output).contains(&secret), "the secret was printed\n{}", text(&output));
    let image = format!("{name}:0.2.0");
    for args in [vec!["history", "--no-trunc", &image], vec!["image", "inspect", &image]] {
        let output = Command::new("docker").args(&args).output().unwrap();
        assert_success(&format!("docker {}", args.join(" ")), &output);
        assert!(!text(&output).contains(&secret), "docker {} shows the secret", args.join(" "));
    }
    let files = Command::new("docker")
        .args([
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            "grep -rl \"$0\" / --exclude-dir=proc --exclude-dir=sys 2>/dev/null; true",
            &secret,
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&files).trim(), "", "a file of the image holds the secret");
}

/// `image` refuses, before anything is built, a command whose executable no package of the image provides,
/// and a lock whose dependency closure is incomplete for the target (a `[[package]]` lost: anyio without idna).
#[test]
fn image_refuses_what_would_not_run() {
    let name = "xtask-test-apps-refuse";
    let dir = fixture_copy("web-py", "refuse");
    let _cleanup = Cleanup { name, dir: &dir };
    set(&dir, "command = [\"gunicorn\", \"--bind\", \"0.0.0.0:8080\", \"web:app\"]\n");
    let output = xtask_app(&dir, name, &["image"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("error: the executable of tool.xtask.command, `gunicorn`, is not in the image"),
        "{}",
        text(&output)
    );
    assert!(!text(&output).contains("image: building"), "nothing is built\n{}", text(&output));

    let dir = fixture_copy("web-py", "refuse-closure");
    let _cleanup = Cleanup { name, dir: &dir };
    let lock = std::fs::read_to_string(dir.join("poetry.lock")).unwrap();
    let blocks: Vec<&str> = lock.split("\n[[package]]\n").collect();
    let kept: Vec<&str> = blocks.iter().copied().filter(|b| !b.starts_with("name = \"idna\"\n")).collect();
    assert_eq!(kept.len() + 1, blocks.len(), "the lock has one idna package");
    std::fs::write(dir.join("poetry.lock"), kept.join("\n[[package]]\n")).unwrap();
    let output = xtask_app(&dir, name, &["image"]);
    assert!(!output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("error: the locked dependencies are incomplete for the image: anyio "), "{said}");
    assert!(said.contains(" requires idna"), "{said}");
}
