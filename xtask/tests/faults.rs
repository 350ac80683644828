//! Faults in the middle of the work, with the real pip, Poetry, engine and filesystems: the index going away
//! while pip downloads (a local index on 127.0.0.1, killed mid-file), a full disk while the wheelhouse fills (a
//! small tmpfs mounted over the state directory), and the engine's daemon going away mid-build (a second dockerd,
//! killed with SIGKILL). Each gives an error that names what failed and what to do, leaves the previous
//! wheelhouse and image usable, and the next run recovers without anything deleted by hand.
//!
//! A daemon that is stopped (SIGSTOP) rather than killed would hang the engine's client forever: the client has
//! no timeout of its own, and the build is as long as the app makes it, so only a daemon that is gone can be
//! bounded by the tool and by this test. That is the case tested.
//!
//! Each test has image names of its own (`xtask-test-faults-*`), ports of its own in 18700-18719, package names
//! of its own (pip's cache is shared by the workspace; the index forbids caching anyway), and removes what it
//! made.

mod local;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use local::*;

// ---------------------------------------------------------------------------------------------------------
// A local index, and apps locked against it
// ---------------------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    workspace().join("xtask/tests/fixtures/fault-index").join(name)
}

/// Writes the wheel `<name>-1.0-py3-none-any.whl` holding `size` random bytes into `dir`; its file name.
fn make_wheel(dir: &Path, name: &str, size: usize) -> String {
    let output = Command::new("python3")
        .arg(fixture("wheel.py"))
        .arg(dir)
        .args([name, "1.0", &size.to_string()])
        .output()
        .unwrap();
    assert_success(&format!("wheel.py {name}"), &output);
    format!("{}-1.0-py3-none-any.whl", name.replace('-', "_"))
}

/// `fixtures/fault-index/serve.py` on 127.0.0.1:`port`, serving the wheels of `files` with `delay` seconds
/// between chunks of 64 KiB; killed (SIGKILL) when dropped.
struct Index {
    child: Option<Child>,
    port: u16,
    files: PathBuf,
    log: PathBuf,
}

impl Index {
    fn start(port: u16, files: &Path, delay: f64) -> Index {
        let mut index = Index { child: None, port, files: files.to_path_buf(), log: files.with_extension("log") };
        index.restart(delay);
        index
    }

    fn restart(&mut self, delay: f64) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while listening(self.port) {
            assert!(Instant::now() < deadline, "port {} is taken: this test needs it", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
        let child = Command::new("python3")
            .arg(fixture("serve.py"))
            .arg(self.port.to_string())
            .arg(&self.files)
            .arg(delay.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&self.log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listening(self.port) {
            assert!(Instant::now() < deadline, "the index does not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the connections it serves are cut where they are.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The most bytes of `file` the index sent so far.
    fn sent(&self, file: &str) -> u64 {
        let prefix = format!("sent /files/{file} ");
        self.log().lines().filter_map(|l| l.strip_prefix(&prefix)?.parse().ok()).max().unwrap_or(0)
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes an app (package `fapp`) that depends on `packages`, all from the index on 127.0.0.1:`port` (the primary
/// source: PyPI is not asked), and locks it with the real `poetry lock`. Returns its pyproject.toml and lock.
fn lock_app(app: &Path, port: u16, packages: &[&str]) -> (String, String) {
    std::fs::create_dir_all(app.join("fapp")).unwrap();
    std::fs::write(app.join("fapp/__init__.py"), "").unwrap();
    let dependencies: Vec<String> = packages.iter().map(|p| format!("\"{p}==1.0\"")).collect();
    let pyproject = format!(
        "[project]\nname = \"fault-app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11,<4.0\"\n\
         dependencies = [{}]\n\n[tool.poetry]\npackages = [{{ include = \"fapp\" }}]\n\n[[tool.poetry.source]]\n\
         name = \"faults\"\nurl = \"http://127.0.0.1:{port}/simple\"\npriority = \"primary\"\n\n[build-system]\n\
         requires = [\"poetry-core>=2.0.0,<3.0.0\"]\nbuild-backend = \"poetry.core.masonry.api\"\n",
        dependencies.join(", ")
    );
    std::fs::write(app.join("pyproject.toml"), &pyproject).unwrap();
    let output = Command::new(poetry())
        .arg("lock")
        .current_dir(app)
        .env("POETRY_CACHE_DIR", app.with_extension("poetry-cache"))
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert_success("poetry lock", &output);
    (pyproject, std::fs::read_to_string(app.join("poetry.lock")).unwrap())
}

/// Puts back an app's pyproject.toml and lock.
fn restore(app: &Path, (pyproject, lock): &(String, String)) {
    std::fs::write(app.join("pyproject.toml"), pyproject).unwrap();
    std::fs::write(app.join("poetry.lock"), lock).unwrap();
}

fn command_app(app: &Path, name: &str, args: &[&str]) -> Command {
    let mut command = xtask_clean();
    command.args(args).arg("--app").arg(app).args(["--name", name, "--base-image", &base_311()]);
    command
}

fn xtask_app(app: &Path, name: &str, args: &[&str]) -> Output {
    command_app(app, name, args).output().unwrap()
}

/// The tool's error: its stderr from the `error:` line on.
fn error_of(said: &str) -> String {
    said.find("\nerror: ").map(|at| said[at + 1..].to_string()).unwrap_or_default()
}

/// The wheelhouse of `name` as it is: each file's name and bytes' length and hash, and the stamp.
fn wheelhouse_of(name: &str) -> (Vec<(String, String)>, String) {
    let dir = state_dir(name).join("wheelhouse");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|path| {
            let output = Command::new("sha256sum").arg(&path).output().unwrap();
            let sum = stdout(&output).split_whitespace().next().unwrap_or_default().to_string();
            (path.file_name().unwrap().to_string_lossy().into_owned(), sum)
        })
        .collect();
    files.sort();
    let stamp = std::fs::read_to_string(state_dir(name).join("wheelhouse.stamp")).unwrap_or_default();
    (files, stamp)
}

/// What a failed run must not leave in the state directory: the wheelhouse being made, partial downloads.
fn assert_nothing_half_written(name: &str, said: &str) {
    let state = state_dir(name);
    assert!(!state.join("wheelhouse.tmp").exists(), "wheelhouse.tmp was left behind\n{said}");
    let find = Command::new("find").arg(&state).args(["-name", "*.part", "-o", "-name", "*.tmp"]).output().unwrap();
    assert_eq!(stdout(&find), "", "partial files were left behind\n{said}");
}

/// Waits (at most `timeout`) for `child` to end.
fn wait_for(child: &mut Child, timeout: Duration, log: impl Fn() -> String) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the tool did not end within {} s\n{}", timeout.as_secs(), log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------------------
// The index goes away
// ---------------------------------------------------------------------------------------------------------

/// The index is killed while pip downloads a 4 MB wheel: the error names the index, the file and what to do; the
/// previous wheelhouse and its stamp are as they were, nothing half-made is left, and the previous lock's
/// wheelhouse is still used without the index; once the index is back, the next run fills the new wheelhouse.
#[test]
fn the_index_going_away_mid_download_is_named_and_the_next_run_recovers() {
    let name = "xtask-test-faults-index";
    let port = 18700;
    let root = scratch("faults-index");
    let _cleanup = Cleanup { name, dir: root.clone() };
    clean(name);
    let (files, app) = (root.join("files"), root.join("app"));
    let small = make_wheel(&files, "xtask-fault-index-small", 1_000);
    let big = make_wheel(&files, "xtask-fault-index-big", 4_000_000);
    let mut index = Index::start(port, &files, 0.0);

    let lock1 = lock_app(&app, port, &["xtask-fault-index-small"]);
    let output = xtask_app(&app, name, &["wheels"]);
    assert_success("xtask wheels (lock 1)", &output);
    let before = wheelhouse_of(name);
    assert_eq!(before.0.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), [small.as_str()]);

    let lock2 = lock_app(&app, port, &["xtask-fault-index-small", "xtask-fault-index-big"]);
    index.restart(0.05);
    let log = root.join("wheels.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = command_app(&app, name, &["wheels"]).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while index.sent(&big) < 1 << 20 {
        assert!(child.try_wait().unwrap().is_none(), "wheels ended before the download was cut\n{}", read());
        assert!(Instant::now() < deadline, "the big wheel's download did not start\n{}\n{}", read(), index.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    index.kill();
    let status = wait_for(&mut child, Duration::from_secs(90), read);
    let said = read();
    assert!(!status.success(), "{said}");
    let error = error_of(&said);
    assert!(
        error.contains(&format!("the index http://127.0.0.1:{port}/simple stopped answering"))
            && error.contains(&big)
            && error.contains("run the command again"),
        "the error names the index that went away, the file and what to do\n{said}"
    );
    eprintln!("{error}");
    // pip's own output calls the cut file a hash mismatch ("someone may have tampered with them"); the error
    // that ends the run says what happened.
    assert!(!error.contains("tamper") && !error.contains("HASHES"), "a cut download is not a tampered file\n{said}");
    assert_nothing_half_written(name, &said);
    assert_eq!(wheelhouse_of(name), before, "the previous wheelhouse and its stamp are as they were\n{said}");

    // The previous lock's wheelhouse is still complete: used as it is, with the index down.
    restore(&app, &lock1);
    let output = xtask_app(&app, name, &["wheels"]);
    let said = text(&output);
    assert_success("xtask wheels (lock 1 again, the index down)", &output);
    assert!(said.contains("is up to date (1 wheels") && !said.contains("pip download"), "{said}");

    // The index is back: the next run fills the new wheelhouse, nothing deleted by hand.
    restore(&app, &lock2);
    index.restart(0.0);
    let output = xtask_app(&app, name, &["wheels"]);
    let said = text(&output);
    assert_success("xtask wheels (lock 2, the index back)", &output);
    let after = wheelhouse_of(name);
    assert_eq!(after.0.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), [big.as_str(), small.as_str()], "{said}");
}

// ---------------------------------------------------------------------------------------------------------
// The disk fills
// ---------------------------------------------------------------------------------------------------------

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert_success(&format!("mount -t tmpfs -o size={size} tmpfs {}", dir.display()), &output);
        Mount(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let output = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).output().unwrap();
        assert_success(&format!("mount -o remount,size={size} {}", self.0.display()), &output);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
        }
    }
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    stdout(&output).trim() == "0"
}

/// The state directory is a 6 MiB tmpfs: a wheelhouse of one 4 MB wheel fits, one of three does not. The error
/// says the device is full, names the directory and what to do; the previous wheelhouse and its stamp are as they
/// were and nothing half-made is left; with room again, the next run fills the new wheelhouse.
#[test]
fn a_full_disk_is_named_and_the_next_run_recovers() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs over the state directory needs root (`.ci/run` runs as root)");
        return;
    }
    let name = "xtask-test-faults-disk";
    let port = 18701;
    let root = scratch("faults-disk");
    let _cleanup = Cleanup { name, dir: root.clone() };
    clean(name);
    let (files, app) = (root.join("files"), root.join("app"));
    let packages = ["xtask-fault-disk-one", "xtask-fault-disk-two", "xtask-fault-disk-three"];
    let wheels: Vec<String> = packages.iter().map(|p| make_wheel(&files, p, 4_000_000)).collect();
    let _index = Index::start(port, &files, 0.0);
    let mount = Mount::tmpfs(&state_dir(name), "6m");

    lock_app(&app, port, &packages[..1]);
    let output = xtask_app(&app, name, &["wheels"]);
    assert_success("xtask wheels (one 4 MB wheel in 6 MiB)", &output);
    let before = wheelhouse_of(name);
    assert_eq!(before.0.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), [wheels[0].as_str()]);

    lock_app(&app, port, &packages);
    let output = xtask_app(&app, name, &["wheels"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    let error = error_of(&said);
    assert!(
        error.contains("no space left on device")
            && error.contains(&format!("target/xtask/apps/{name}"))
            && error.contains("free space")
            && error.contains("run the command again"),
        "the error says the disk is full, where, and what to do\n{said}"
    );
    eprintln!("{error}");
    assert_nothing_half_written(name, &said);
    assert_eq!(wheelhouse_of(name), before, "the previous wheelhouse and its stamp are as they were\n{said}");

    mount.resize("40m");
    let output = xtask_app(&app, name, &["wheels"]);
    let said = text(&output);
    assert_success("xtask wheels (three 4 MB wheels in 40 MiB)", &output);
    let mut expected: Vec<&str> = wheels.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(wheelhouse_of(name).0.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), expected, "{said}");
    drop(mount);
}

// ---------------------------------------------------------------------------------------------------------
// The engine's daemon goes away
// ---------------------------------------------------------------------------------------------------------

/// The id of `image` on `daemon`.
fn image_id(daemon: &Dockerd, image: &str) -> String {
    let output = daemon.docker().args(["image", "inspect", "--format", "{{.Id}}", image]).output().unwrap();
    assert_success(&format!("docker image inspect {image} (the second engine)"), &output);
    stdout(&output).trim().to_string()
}

/// `cargo xtask image` of `app` on the engine at `host`, with the legacy builder (its output says when a step
/// runs).
fn image_command(app: &Path, host: &str, extra: &[&str]) -> Command {
    let mut command = xtask_clean();
    command.arg("image").arg("--app").arg(app).args(["--base-image", &base_311(), "--builder", "legacy"]);
    command.args(extra).env("DOCKER_HOST", host);
    command
}

/// The daemon is killed (SIGKILL) while a build's step runs: the error says the engine stopped answering and
/// what to do; the image built before is still there once the daemon is back, and the next `image` builds.
#[test]
fn the_engine_going_away_mid_build_is_named_and_the_next_run_recovers() {
    let name = "xtask-test-faults-engine";
    let root = scratch("faults-engine");
    let _cleanup = Cleanup { name, dir: root.clone() };
    clean(name);
    let base = base_311();
    let mut daemon = Dockerd::new("faults", "xtfault", 220);
    // The base image, from the machine's engine into the second one.
    let mut save = docker().args(["save", &base]).stdout(Stdio::piped()).spawn().unwrap();
    let load = daemon.docker().arg("load").stdin(save.stdout.take().unwrap()).output().unwrap();
    assert!(save.wait().unwrap().success(), "docker save {base}");
    assert_success(&format!("docker load {base} (the second engine)"), &load);

    let app = example_copy(&root, name);
    let output = image_command(&app, &daemon.host(), &[]).output().unwrap();
    assert_success("xtask image (the second engine)", &output);
    let tag = format!("{name}:0.1.0");
    let previous = image_id(&daemon, &tag);

    // A change, so that the next image is a new one; --no-cache, so that its steps run and take time.
    let health = app.join("app/route/health.py");
    let code = std::fs::read_to_string(&health).unwrap();
    std::fs::write(&health, format!("{code}\n# a change after the first image\n")).unwrap();
    let log = root.join("image.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = image_command(&app, &daemon.host(), &["--no-cache"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    // A RUN step's container has started (the venv being installed).
    let running = |log: &str| log.find(" : RUN ").is_some_and(|at| log[at..].contains("---> Running in"));
    while !running(&read()) {
        assert!(child.try_wait().unwrap().is_none(), "image ended before a step ran\n{}", read());
        assert!(Instant::now() < deadline, "no step of the build ran\n{}", read());
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.stop("KILL");
    let status = wait_for(&mut child, Duration::from_secs(90), read);
    let said = read();
    assert!(!status.success(), "{said}");
    let error = error_of(&said);
    assert!(
        error.contains("stopped answering during the build")
            && error.contains(&daemon.host())
            && error.contains("docker info")
            && error.contains("run the command again"),
        "the error says the engine went away, which one, and what to do\n{said}"
    );
    eprintln!("{error}");

    // Back: the image built before is there, and the next run builds the new one, nothing deleted by hand.
    daemon.start();
    assert_eq!(image_id(&daemon, &tag), previous, "the image built before is still {tag}\n{said}");
    let output = image_command(&app, &daemon.host(), &[]).output().unwrap();
    assert_success("xtask image (the daemon back)", &output);
    let rebuilt = image_id(&daemon, &tag);
    assert_ne!(rebuilt, previous, "{}", text(&output));
    let file = "/app/app/route/health.py";
    let check = daemon.docker().args(["run", "--rm", &tag, "grep", "-c", "a change after", file]).output().unwrap();
    assert_eq!(stdout(&check).trim(), "1", "{}", text(&check));
}
