//! End to end: `xtask/` copied into another repository works there unchanged. The repository is
//! `tests/fixtures/second-app` (a Flask app served by gunicorn's sync workers, in src layout, in a
//! subdirectory, with a path dependency, an extra and an sdist-only dependency); the test copies our `xtask/`,
//! workspace files and `.cargo/` into it, runs `cargo xtask init`, builds the image, runs it, and checks real
//! HTTP answers.
//!
//! Needs: a container engine, `git`, the host's Python with pip, `poetry` with its export plugin on PATH (the
//! export is compared with `poetry export`), and the base image named by `XTASK_TEST_BASE_IMAGE` (CI sets it to
//! `xtask-local/python:3.11-slim`, made by `.ci/base-image`).

mod local;

use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect;

/// The image and container name of this test (so that it touches nothing of anyone else's).
const NAME: &str = "xtask-portable-greeter";

/// Removes the test's container, however the test ends.
struct Container;

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "--force", NAME]).output();
    }
}

/// The temporary repository; removed when the test passes, kept (and named) when it fails.
struct Repo {
    root: PathBuf,
    /// cargo's target directory for the copied workspace: ours cannot be shared while `cargo test` holds its
    /// lock, so it lives next to it and persists between runs (dependencies compile once).
    target: PathBuf,
}

impl Drop for Repo {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the test repository is kept for inspection: {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

impl Repo {
    /// The fixture, plus what a team copies from this repository (`xtask/`, `.cargo/`, `Cargo.lock`) and the
    /// workspace `Cargo.toml` the README tells them to write.
    fn create() -> Repo {
        let ours = local::workspace();
        let root = std::env::temp_dir().join(format!("xtask-portable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        local::copy_dir(&ours.join("xtask/tests/fixtures/second-app"), &root);
        local::copy_dir(&ours.join("xtask"), &root.join("xtask"));
        local::copy_dir(&ours.join(".cargo"), &root.join(".cargo"));
        std::fs::copy(ours.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
        // The workspace manifest the README's "Use it in your repository" tells a team to write.
        let manifest = "[workspace]\nmembers = [\"xtask\"]\nresolver = \"2\"\n";
        std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
        let target = target_dir().join("xtask-portable-test");
        let repo = Repo { root, target };
        repo.git(&["init", "--quiet"]);
        repo.git(&["add", "--all"]);
        repo.git(&["commit", "--quiet", "--message", "a repository with a Flask app, and xtask/ copied in"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let mut command = Command::new("git");
        command
            .args([
                "-c",
                "user.name=xtask tests",
                "-c",
                "user.email=xtask@example.invalid",
                "-c",
                "core.autocrlf=false",
            ])
            .args(args)
            .current_dir(&self.root);
        run(command, "git (install it with `apt-get install git`)")
    }

    /// `git diff` of the work tree, without the `index` lines (blob ids) and trailing spaces.
    fn diff(&self) -> String {
        let diff = self.git(&["diff", "--no-color", "--no-ext-diff"]);
        diff.lines().filter(|l| !l.starts_with("index ")).map(|l| format!("{}\n", l.trim_end())).collect()
    }

    /// `cargo xtask <args>` in the repository; its stdout.
    fn xtask(&self, args: &[&str]) -> String {
        self.xtask_with(args, &[])
    }

    /// `cargo xtask <args>` with environment variables `env`; its stdout.
    fn xtask_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        command
            .args(["--locked", "--quiet", "xtask"])
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", &self.target)
            .envs(env.iter().copied());
        run(command, "cargo")
    }

    /// Fails when any file of the copied `xtask/` differs from ours, or the copy gained or lost a file.
    fn assert_xtask_is_ours(&self) {
        let ours = files(&local::workspace().join("xtask"));
        let theirs = files(&self.root.join("xtask"));
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "the copied xtask/ changed");
        for (path, contents) in &ours {
            assert!(theirs[path] == *contents, "the copied xtask/{path} changed");
        }
    }
}

#[test]
fn second_app_in_a_copied_repository() {
    let base_image = std::env::var("XTASK_TEST_BASE_IMAGE").unwrap_or_default();
    assert!(
        !base_image.is_empty(),
        "set XTASK_TEST_BASE_IMAGE to a local Python base image, e.g. xtask-local/python:3.11-slim \
         (make it with `bash .ci/base-image bookworm xtask-local/python:3.11-slim`; `.ci/run` does both)"
    );
    let repo = Repo::create();

    // init adds where the app lives and the commented settings; the workspace member and the alias are there.
    let printed = repo.xtask(&["init"]);
    expect![[r#"
        Cargo.toml (changed):
          + [workspace.metadata.xtask] app = "services/greeter"
        services/greeter/pyproject.toml (changed):
          + 15 commented settings with their derived values in [tool.xtask]
        .gitignore (created):
          + /target/ (cargo's and this tool's build output)
        Set up for the app in services/greeter. Next: `cargo xtask image`, then commit these files, docker/Dockerfile and Cargo.lock.
    "#]]
    .assert_eq(&printed);
    expect![[r#"
         M Cargo.toml
         M services/greeter/pyproject.toml
        ?? .gitignore
    "#]]
    .assert_eq(&repo.git(&["status", "--short"]));
    expect![[r#"
        diff --git a/Cargo.toml b/Cargo.toml
        --- a/Cargo.toml
        +++ b/Cargo.toml
        @@ -1,3 +1,7 @@
         [workspace]
         members = ["xtask"]
         resolver = "2"
        +
        +# Where the Python app lives, relative to this file. `cargo xtask <task> --app DIR` overrides it.
        +[workspace.metadata.xtask]
        +app = "services/greeter"
        diff --git a/services/greeter/pyproject.toml b/services/greeter/pyproject.toml
        --- a/services/greeter/pyproject.toml
        +++ b/services/greeter/pyproject.toml
        @@ -23,6 +23,22 @@ sizes = ["humanize"]
         pytest = "^8"

         [tool.xtask]
        +# Defaults `cargo xtask init` derived from this project; uncomment a line to change it.
        +# name = "greeter"  # image name: tags <name>:<version> and <name>:<git sha>
        +# version = "0.3.0"  # image version tag and OCI label
        +# python = "3.11"  # Python of the image and its wheelhouse (--python)
        +# base-image = "python:3.11-slim"  # base image of the image and of the containers that build its sdists (--base-image, env XTASK_BASE_IMAGE)
        +# platform = "linux/amd64"  # platform of the image and its wheels (--platform)
        +# platforms = ["linux/amd64"]  # the platforms cargo xtask push ships as one multi-platform index (--platform linux/amd64,linux/arm64): a wheelhouse and an image per platform
        +# repository: none set; repository = "<registry>/<path>/greeter" is where cargo xtask push pushes (--to), e.g. ghcr.io/org/app; the registry cache BuildKit builds from
        +# stop-timeout = 30  # seconds the server gets to finish the requests in flight when stopped: the default command's graceful timeout; the engine waits 5 more before it kills (docker run --stop-timeout, label xtask.stop-timeout: set Kubernetes' terminationGracePeriodSeconds to it)
        +# command = ["gunicorn", "--bind", "0.0.0.0:5050", "--graceful-timeout", "30", "greeter_web.wsgi:application"]  # the container's command (exec form); its executable must be in the image
        +# release = []  # the release step: run by cargo xtask run in a container of the image before the server, e.g. migrations
        +# include = [{ include = "greeter_web", from = "src" }]  # files and folders of the app copied into the image's workdir
        +# volumes = []  # where the app writes data: owned by its user in the image; cargo xtask run mounts a named volume on each
        +# groups = []  # Poetry dependency groups installed besides main (each must exist)
        +# build-packages = []  # packages (as the base image's apt names them) installed in the container of the base image where sdists without a wheel for the target are built, e.g. ["gcc", "libc6-dev", "python3-dev", "libldap-dev"]; never in the image
        +# system-packages = []  # packages installed in the image's base stage from .deb files fetched beforehand in a container of the base image (the build stays offline): the libraries built wheels link (libldap-2.5-0), or what a package needs at run time (libmagic1)
         app = "greeter_web.wsgi:application"
         interface = "wsgi"
         port = 5050
    "#]]
    .assert_eq(&repo.diff());
    repo.git(&["add", "--all"]);
    repo.git(&["commit", "--quiet", "--message", "cargo xtask init"]);
    expect![[r#"
        Nothing to change: this repository is set up for the app in services/greeter.
    "#]]
    .assert_eq(&repo.xtask(&["init"]));

    // The native export agrees with Poetry here too, path dependency and extra included.
    let exported = repo.xtask(&["export", "--extras", "sizes"]);
    let mut poetry = Command::new(local::poetry());
    poetry.args(["export", "--no-interaction", "--extras", "sizes"]).current_dir(repo.root.join("services/greeter"));
    assert_eq!(exported, run(poetry, "poetry (on PATH; `.ci/setup` installs it in /opt/xtask-ci/bin)"));
    let shout = format!("-e file://{}/libs/shout ;", repo.root.display());
    assert!(
        exported.contains(&shout) && exported.contains("\nhumanize==") && exported.contains("\ndocopt=="),
        "{exported}"
    );

    // The image: from the base image the test names, under a name of the test's own.
    let _container = Container;
    let env = [("XTASK_BASE_IMAGE", base_image.as_str())];
    let printed = repo.xtask_with(&["image", "--name", NAME], &env);
    assert!(printed.contains(&format!("image: {NAME}:0.3.0, {NAME}:")), "{printed}");
    let size_line = printed.lines().find(|l| l.starts_with("image: size")).unwrap_or_else(|| panic!("{printed}"));
    eprintln!("{size_line}");
    // What the image build generated, to be committed: the Dockerfile.
    expect![[r#"
        ?? docker/
    "#]]
    .assert_eq(&repo.git(&["status", "--short"]));
    let inspect = |format: &str| {
        let mut command = Command::new("docker");
        command.args(["image", "inspect", "--format", format, &format!("{NAME}:0.3.0")]);
        run(command, "docker").trim().to_string()
    };
    expect!["20001:20001 /srv/greeter greeters [gunicorn --bind 0.0.0.0:5050 --graceful-timeout 30 greeter_web.wsgi:application]"]
        .assert_eq(&inspect(
            "{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Labels \"org.example.team\"}} {{.Config.Cmd}}",
        ));
    // No host path in the image: the path dependency is a wheel installed like the others (pip writes
    // direct_url.json, with a file:// URL, only for what it installs from a URL or a directory).
    let mut command = Command::new("docker");
    command.args(["run", "--rm", "--entrypoint", "python", &format!("{NAME}:0.3.0"), "-c"]).arg(
        "import importlib.metadata as m, pathlib, sys\n\
         names = sorted(d.metadata['Name'].lower() for d in m.distributions())\n\
         urls = [str(p) for p in pathlib.Path(sys.prefix).rglob('direct_url.json')]\n\
         print(' '.join(names)); print(urls)",
    );
    expect![[r#"
        blinker click docopt flask greeter gunicorn humanize itsdangerous jinja2 markupsafe shout werkzeug
        []
    "#]]
    .assert_eq(&run(command, "docker"));
    // What uv installed the virtualenv from: the wheelhouse's requirements and the project's wheel.
    let context = repo.target.join("xtask/apps").join(NAME).join("context.requirements.txt");
    let requirements = std::fs::read_to_string(&context).unwrap_or_else(|e| panic!("{}: {e}", context.display()));
    assert!(
        !requirements.contains("file:") && requirements.lines().any(|l| l.starts_with("shout==0.1.0 ;")),
        "{requirements}"
    );

    // Run it on a free port, and ask the app: the health path, the path dependency and the baked-in env, the
    // extra, the sdist-only dependency.
    let port = local::free_port().to_string();
    let printed = repo.xtask_with(&["run", "--name", NAME, "--detach", "--port", &port], &env);
    assert!(printed.contains(&format!("http://127.0.0.1:{port} answers (GET /healthz → 200)")), "{printed}");
    let port: u16 = port.parse().unwrap();
    let get = |path: &str| {
        let (status, body) = local::http(port, "GET", path, None).unwrap();
        format!("{status} {}\n", body.trim())
    };
    expect![[r#"
        200 {"status":"ok"}
        200 {"greeting":"HELLO WORLD!!","uid":20001}
        200 {"size":"3.0 MB"}
        200 {"--times":"3","<name>":"alice"}
        400 {"error":"usage","usage":"Usage: greet <name> [--times=<n>]"}
    "#]]
    .assert_eq(
        &["/healthz", "/greet/world", "/size/3000000", "/parse?argv=alice+--times=3", "/parse?argv="].map(get).concat(),
    );
    let mut stop = Command::new("docker");
    stop.args(["rm", "--force", NAME]);
    run(stop, "docker");
    assert!(!local::listening(port), "the container still answers on {port}");

    repo.assert_xtask_is_ours();
}

/// Runs `command`, failing the test with its output when it fails; its stdout. `tool` says what to install.
fn run(mut command: Command, tool: &str) -> String {
    let shown = format!("{command:?}");
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {tool}: {e}\n{shown}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{shown} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}", output.status);
    stdout
}

/// cargo's target directory for this workspace (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => local::workspace().join(dir),
        None => local::workspace().join("target"),
    }
}

/// Every file under `dir`, by relative path, with its contents.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &entry.path(), out);
            } else {
                let relative = entry.path().strip_prefix(base).unwrap().display().to_string();
                out.insert(relative, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    let mut out = Default::default();
    walk(dir, dir, &mut out);
    out
}
