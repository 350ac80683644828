//! The defects a bad-input and fault audit found, one test each, with the real engine: stale app code in a new
//! image, a corrupt wheel in the wheelhouse, `export -o` replacing what it writes to, exit codes after signals, leftovers of failed builds and
//! empty labels, what `run` hardens, and graceful shutdown under load.

mod local;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use local::*;

fn image(app: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = xtask_clean();
    command.arg("image").arg("--app").arg(app).args(["--base-image", &base_311(), "--builder", "legacy"]);
    command.args(extra).output().unwrap()
}

fn docker_out(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert_success(&format!("docker {}", args.join(" ")), &output);
    stdout(&output)
}

/// An edit that keeps the file's size and puts its time back (`touch -r`; rsync -a, cp -p, tar and CI caches
/// do the same) reaches the next image: the context follows the bytes, not sizes and times.
#[test]
fn an_edit_keeping_size_and_time_reaches_the_image() {
    let name = "xtask-test-trust-stale";
    clean(name);
    let dir = scratch("trust-stale");
    let app = example_copy(&dir, name);
    assert_success("xtask image", &image(&app, &[]));
    let health = app.join("app/route/health.py");
    let before = std::fs::metadata(&health).unwrap().modified().unwrap();
    let code = std::fs::read_to_string(&health).unwrap();
    let edited = code.replace("status=\"ok\"", "status=\"OK\"");
    assert_eq!(edited.len(), code.len());
    std::fs::write(&health, edited).unwrap();
    std::fs::File::options().write(true).open(&health).unwrap().set_modified(before).unwrap();
    let output = image(&app, &["--no-cache"]);
    assert_success("xtask image --no-cache after the edit", &output);
    let said = docker_out(&[
        "run",
        "--rm",
        &format!("{name}:0.1.0"),
        "grep",
        "-o",
        "status=\"[a-zA-Z]*\"",
        "/app/app/route/health.py",
    ]);
    assert_eq!(said.trim(), "status=\"OK\"", "the image has the old file\n{}", text(&output));
    clean(name);
}

/// A byte of a wheel flipped in the wheelhouse, its size and time kept: the next `image` sees it (the wheel's
/// change time moved), fetches that wheel again and builds; the wheel is the locked one again.
#[test]
fn a_corrupt_wheel_is_fetched_again() {
    let name = "xtask-test-trust-corrupt";
    clean(name);
    let dir = scratch("trust-corrupt");
    let app = example_copy(&dir, name);
    assert_success("xtask image", &image(&app, &[]));
    let wheelhouse = state_dir(name).join("wheelhouse");
    let wheel = std::fs::read_dir(&wheelhouse)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("fastapi-"))
        .expect("the wheelhouse has fastapi's wheel");
    let good = std::fs::read(&wheel).unwrap();
    let before = std::fs::metadata(&wheel).unwrap().modified().unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    // Written in place (the same file, as a disk or a careless tool would), its time put back.
    std::fs::File::options().write(true).open(&wheel).unwrap().write_all(&bad).unwrap();
    std::fs::File::options().write(true).open(&wheel).unwrap().set_modified(before).unwrap();
    assert_eq!(std::fs::metadata(&wheel).unwrap().len(), good.len() as u64);
    // The context is made again from the wheelhouse (as for a new checkout's first build).
    std::fs::remove_dir_all(state_dir(name).join("context")).unwrap();
    let output = image(&app, &["--no-cache"]);
    assert_success("xtask image --no-cache after the wheel was corrupted", &output);
    assert!(text(&output).contains("changed since it was checked"), "{}", text(&output));
    assert!(std::fs::read(&wheel).unwrap() == good, "the wheel in the wheelhouse is not the locked one again");
    // And the next run trusts it again without fetching anything.
    let output = image(&app, &[]);
    assert_success("xtask image", &output);
    assert!(text(&output).contains("is up to date"), "{}", text(&output));
    clean(name);
}

/// `export -o` writes into what is there: a symbolic link stays a link (its target gets the text), a FIFO stays
/// a FIFO (its reader gets the text).
#[test]
fn export_writes_through_links_and_fifos() {
    let dir = scratch("trust-export");
    let real = dir.join("requirements.txt");
    std::fs::write(&real, "old\n").unwrap();
    let link = dir.join("link.txt");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let output = xtask_clean().args(["export", "-o"]).arg(&link).output().unwrap();
    assert_success("xtask export -o link", &output);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert!(std::fs::read_to_string(&real).unwrap().starts_with("annotated-doc=="), "the target has the text");

    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let output = xtask_clean().args(["export", "-o"]).arg(&fifo).output().unwrap();
    assert_success("xtask export -o fifo", &output);
    assert!(reader.join().unwrap().starts_with("annotated-doc=="), "the reader got the text");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
}

/// `cargo xtask run` in the foreground on the example app's copy.
fn start_run(app: &Path, name: &str, port: u16) -> (Child, PathBuf) {
    let log = app.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let child = xtask_clean()
        .args(["run", "--port", &port.to_string(), "--app"])
        .arg(app)
        .args(["--base-image", &base_311(), "--name", name])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    // Until `run` says the app answers (and follows its logs), as a user at a terminal sees it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let answered = format!("run: http://127.0.0.1:{port} answers");
    while !std::fs::read_to_string(&log).unwrap_or_default().contains(&answered) {
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    (child, log)
}

fn wait(child: &mut Child, log: &Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After Ctrl-C `run` exits 130, after SIGTERM 143, as a shell reports a command a signal stopped: a CI
/// supervisor must not read success.
#[test]
fn run_exits_with_the_signals_code() {
    let name = "xtask-test-trust-signal";
    clean(name);
    let dir = scratch("trust-signal");
    let app = example_copy(&dir, name);
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let port = free_port();
        let (mut child, log) = start_run(&app, name, port);
        assert!(Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = wait(&mut child, &log);
        let log = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}\n{log}");
        assert!(log.contains("run: stopped and removed"), "{log}");
    }
    clean(name);
}

/// An app file that is not valid Python is refused before any build, naming it; a failed build with the legacy
/// builder leaves no exited intermediate container; a checkout without git gets no empty labels; a repository
/// whose remote is a local path gets no source label.
#[test]
fn failures_and_unknowns_leave_nothing_behind() {
    let name = "xtask-test-trust-leftovers";
    clean(name);
    let dir = std::env::temp_dir().join(format!("xtask-test-trust-leftovers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let app = example_copy(&dir, name);
    let broken = app.join("app/broken.py");
    std::fs::write(&broken, "def (:\n").unwrap();
    // The app's bytecode is compiled on the host: a syntax error stops `image` there, naming the file.
    let output = image(&app, &[]);
    assert!(!output.status.success(), "a syntax error fails the image\n{}", text(&output));
    let said = text(&output);
    assert!(said.contains("cannot compile") && said.contains("broken.py"), "{said}");
    assert!(!said.contains(&format!("--tag {name}:0.1.0")), "the image's build was not started\n{said}");
    std::fs::remove_file(&broken).unwrap();

    // A step of the build that fails (a uid whose group the base image has: `groupadd` refuses it).
    let pyproject = app.join("pyproject.toml");
    let declared = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(&pyproject, declared.replace("\n[tool.xtask]\n", "\n[tool.xtask]\nuid = 100\n")).unwrap();
    let exited = || {
        let listed =
            docker_out(&["ps", "--all", "--no-trunc", "--filter", "status=exited", "--format", "{{.ID}} {{.Command}}"]);
        listed.lines().filter(|l| l.contains("groupadd --gid 100 ")).map(str::to_string).collect::<Vec<_>>()
    };
    let before = exited();
    let output = image(&app, &[]);
    assert!(!output.status.success(), "groupadd's refusal fails the build\n{}", text(&output));
    // Other tests' builds pass through exited containers for a moment: a leftover is one that stays.
    let new: Vec<String> = exited().into_iter().filter(|c| !before.contains(c)).collect();
    std::thread::sleep(Duration::from_secs(3));
    let left: Vec<String> = exited().into_iter().filter(|c| new.contains(c)).collect();
    assert!(left.is_empty(), "the failed build left containers: {left:?}");
    std::fs::write(&pyproject, declared).unwrap();

    // Outside any git repository: no revision, time or source to say, so no such label.
    assert_success("xtask image outside git", &image(&app, &[]));
    let labels = docker_out(&["image", "inspect", "--format", "{{json .Config.Labels}}", &format!("{name}:0.1.0")]);
    for label in ["revision", "created", "source"] {
        assert!(!labels.contains(&format!("org.opencontainers.image.{label}\"")), "{label}: {labels}");
    }

    // In a repository whose origin is a path on this machine: a revision, and no source.
    let git = |args: &[&str]| {
        let output = Command::new("git").arg("-C").arg(&app).args(args).output().unwrap();
        assert_success(&format!("git {}", args.join(" ")), &output);
    };
    git(&["init", "--quiet"]);
    git(&["add", "--all"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "app"]);
    git(&["remote", "add", "origin", "/srv/git/app.git"]);
    assert_success("xtask image in a repository", &image(&app, &[]));
    let labels = docker_out(&["image", "inspect", "--format", "{{json .Config.Labels}}", &format!("{name}:0.1.0")]);
    assert!(labels.contains("org.opencontainers.image.revision\""), "{labels}");
    assert!(!labels.contains("org.opencontainers.image.source\""), "{labels}");
    assert!(!labels.contains("/srv/git"), "{labels}");
    clean(name);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `run` starts drops every capability, cannot gain privileges and has a pids limit; the image itself
/// has no setuid or setgid file left to execute.
#[test]
fn run_hardens_what_it_starts() {
    let name = "xtask-test-trust-hardened";
    clean(name);
    let dir = scratch("trust-hardened");
    let app = example_copy(&dir, name);
    let output = xtask_clean()
        .args(["run", "--detach", "--port", &free_port().to_string(), "--app"])
        .arg(&app)
        .args(["--base-image", &base_311(), "--name", name])
        .output()
        .unwrap();
    assert_success("xtask run --detach", &output);
    let format = "{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.PidsLimit}} {{.HostConfig.ReadonlyRootfs}}";
    let host = docker_out(&["inspect", "--format", format, name]);
    assert!(host.contains("\"ALL\""), "{host}");
    assert!(host.contains("no-new-privileges"), "{host}");
    let pids: i64 = host.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(pids > 0, "{host}");
    assert!(host.trim().ends_with("true"), "{host}");
    let setuid = docker_out(&["exec", name, "sh", "-c", "find / -xdev -perm /6000 -type f 2>/dev/null; true"]);
    assert_eq!(setuid.trim(), "", "setuid/setgid files in the image");
    clean(name);
}

/// Requests the server accepted before `docker stop` all get their whole response: the container's stop
/// timeout covers the server's graceful timeout. Each request sends its headers, then its body slowly, for
/// longer than docker's default 10 seconds.
#[test]
fn stop_under_load_completes_accepted_requests() {
    let name = "xtask-test-trust-graceful";
    clean(name);
    let dir = scratch("trust-graceful");
    let app = example_copy(&dir, name);
    let port = free_port();
    let output = xtask_clean()
        .args(["run", "--detach", "--port", &port.to_string(), "--app"])
        .arg(&app)
        .args(["--base-image", &base_311(), "--name", name])
        .output()
        .unwrap();
    assert_success("xtask run --detach", &output);
    const REQUESTS: usize = 8;
    const SECONDS: u64 = 14;
    let body = br#"{"text": "graceful shutdown"}"#;
    let mut streams = Vec::new();
    for _ in 0..REQUESTS {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "POST /strings/reverse HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body[..1]).unwrap();
        streams.push(stream);
    }
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    let stop = std::thread::spawn({
        let name = name.to_string();
        move || Command::new("docker").args(["stop", &name]).output().unwrap()
    });
    let senders: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                // The rest of the body, a byte at a time, over SECONDS.
                let rest = &body[1..];
                for byte in rest {
                    std::thread::sleep(Duration::from_millis(SECONDS * 1000 / rest.len() as u64));
                    if stream.write_all(&[*byte]).is_err() {
                        return String::from("cut while sending");
                    }
                }
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                response
            })
        })
        .collect();
    let responses: Vec<String> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let stop = stop.join().unwrap();
    let took = stopped.elapsed();
    let complete = responses.iter().filter(|r| r.starts_with("HTTP/1.1 200") && r.ends_with("\"}")).count();
    eprintln!(
        "graceful stop: {REQUESTS} requests in flight, {complete} complete, {} failed; docker stop took {:.1} s",
        REQUESTS - complete,
        took.as_secs_f64()
    );
    assert_success("docker stop", &stop);
    assert_eq!(complete, REQUESTS, "every accepted request gets its response: {responses:?}");
    let _ = Stdio::null();
    clean(name);
}
