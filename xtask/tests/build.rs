//! Real apps build, end to end with the real engine, containers, indexes and HTTP: a compiled sdist
//! (python-ldap) built for the target in a container of the base image, amd64 and arm64 under emulation, with
//! an image that holds no compiler and builds nothing a second time; every blocker listed at once; a private
//! index that gets its credentials on the host and nowhere else; git and URL dependencies taken from the lock.
//!
//! Each test works on a copy of its app under `target/xtask-tests/` and uses names of its own
//! (`xtask-test-build-*`); the fixed ports 18431 and 18433 are the ones the fixtures' locks record.

mod local;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use local::*;

/// A copy of the fixture app `fixture` inside the workspace, for the test `test`.
fn fixture_copy(fixture: &str, test: &str) -> PathBuf {
    let dir = workspace().join("target/xtask-tests").join(format!("build-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_source_tree(&workspace().join("xtask/tests/fixtures/apps").join(fixture), &dir);
    dir
}

/// Appends settings to the app's `[tool.xtask]` table (made at the end of the file when there is none).
fn set(dir: &Path, lines: &str) {
    let path = dir.join("pyproject.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !text.contains("\n[tool.xtask]\n") {
        text.push_str("\n[tool.xtask]\n");
    }
    text.push_str(lines);
    std::fs::write(&path, text).unwrap();
}

/// `cargo xtask <args> --app <dir> --name <name> --base-image <base>`.
fn xtask_app(dir: &Path, name: &str, base: &str, args: &[&str]) -> Output {
    command_app(dir, name, base, args).output().unwrap()
}

fn command_app(dir: &Path, name: &str, base: &str, args: &[&str]) -> Command {
    let mut command = xtask_clean();
    command.args(args).arg("--app").arg(dir).args(["--name", name, "--base-image", base]);
    for var in ["POETRY_HTTP_BASIC_PRIVATE_USERNAME", "POETRY_HTTP_BASIC_PRIVATE_PASSWORD", "NETRC"] {
        command.env_remove(var);
    }
    command
}

/// `sh -c <script>` in a throwaway container of `image` (of `platform`), as the image's user; its stdout.
fn in_image(image: &str, platform: &str, script: &str) -> String {
    let output = docker()
        .args(["run", "--rm", "--platform", platform, "--entrypoint", "sh", image, "-c", script])
        .output()
        .unwrap();
    assert_success(&format!("docker run {image} sh -c {script:?}"), &output);
    stdout(&output)
}

/// What shows the image has no compiler and no `-dev` package, and that python-ldap works as the image's user:
/// the user's uid, ldap's version, the number of `-dev` packages, and `no compiler` when none is on PATH.
const LDAP_CHECK: &str =
    "id -u; python -c 'import ldap; print(ldap.__version__)'; dpkg -l | grep -c -- '-dev' || true; \
                          command -v gcc cc c++ x86_64-linux-gnu-gcc aarch64-linux-gnu-gcc || echo no compiler";

/// Forgets the wheels of `prefix` (`python-ldap-3.4.8`) built for `machine`, so that the test builds one.
fn forget_built_wheels(prefix: &str, machine: &str) {
    let cache = workspace().join("target/xtask/cache/built-wheels");
    for entry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        let record = std::fs::read_to_string(entry.path().join("record")).unwrap_or_default();
        if entry.file_name().to_string_lossy().starts_with(prefix) && record.contains(machine) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The sha256 of a file, with sha256sum.
fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&output).split_whitespace().next().unwrap().to_string()
}

const LDAP_BUILD_PACKAGES: &str =
    "build-packages = [\"gcc\", \"libc6-dev\", \"python3-dev\", \"libldap-dev\", \"libsasl2-dev\"]\n";

/// The app on python-ldap (an sdist only, C against OpenLDAP): without build packages the build says what to
/// add; with them the wheel is built in a container of the base image, and the image is refused until the
/// library it links is a system package; then the image builds offline, imports ldap as its non-root user and
/// serves, holds no compiler and no `-dev` package; a second `image` builds nothing.
#[test]
fn a_compiled_sdist_is_built_for_the_target_and_the_image_has_no_compiler() {
    let name = "xtask-test-build-ldap";
    let dir = fixture_copy("ldap-directory", "ldap");
    let _cleanup = Cleanup { name, dir: dir.clone() };
    clean(name);
    forget_built_wheels("python-ldap-3.4.8", "x86_64");
    let base = base_311();

    let output = xtask_app(&dir, name, &base, &["image"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(
            "python-ldap 3.4.8: building python_ldap-3.4.8.tar.gz in a container of xtask-local/python:3.11-slim \
             failed: it compiles C and the container has no compiler: add \"gcc\" and \"libc6-dev\" to \
             tool.xtask.build-packages"
        ),
        "{said}"
    );
    assert!(!said.contains("image: building"), "{said}");

    set(&dir, LDAP_BUILD_PACKAGES);
    let output = xtask_app(&dir, name, &base, &["image"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("installing the build packages: gcc libc6-dev python3-dev libldap-dev libsasl2-dev"),
        "{said}"
    );
    assert!(said.contains("wheels: built python_ldap-3.4.8-cp311-cp311-linux_x86_64.whl (python-ldap)"), "{said}");
    assert!(
        said.contains("python_ldap-3.4.8-cp311-cp311-linux_x86_64.whl links ")
            && said.contains("libldap-2.5.so.0 (from libldap-2.5-0)")
            && said.contains("system-packages = [\"libldap-2.5-0\""),
        "the image would lack libldap: refused, naming the package\n{said}"
    );
    assert!(!said.contains("image: building"), "{said}");

    set(&dir, "system-packages = [\"libldap-2.5-0\"]\n");
    let output = xtask_app(&dir, name, &base, &["image"]);
    let said = text(&output);
    assert_success("xtask image (python-ldap, build and system packages)", &output);
    // The wheelhouse (the built wheel with it) was complete already: only the system packages are new.
    assert!(said.contains("wheelhouse is up to date"), "{said}");
    assert!(!said.contains("installing the build packages"), "no second compile\n{said}");
    assert!(
        said.contains("the SBOM, 3 system packages, 2 app files"),
        "libldap-2.5-0, libsasl2-2, libsasl2-modules-db\n{said}"
    );
    assert!(said.contains(" --network none "), "the build gets no network\n{said}");
    // The stamp records the built wheel with its hash, and what it needs from the system.
    let wheel = state_dir(name).join("wheelhouse/python_ldap-3.4.8-cp311-cp311-linux_x86_64.whl");
    let stamp = std::fs::read_to_string(state_dir(name).join("wheelhouse.stamp")).unwrap();
    assert!(stamp.lines().any(|l| l.starts_with("file python_ldap-3.4.8-") && l.ends_with(&sha256(&wheel))), "{stamp}");
    assert!(
        stamp.contains("need python_ldap-3.4.8-cp311-cp311-linux_x86_64.whl libldap-2.5-0 libldap-2.5.so.0"),
        "{stamp}"
    );
    let requirements = std::fs::read_to_string(state_dir(name).join("requirements.txt")).unwrap();
    assert!(requirements.contains(&format!("--hash=sha256:{}", sha256(&wheel))), "{requirements}");

    let image = format!("{name}:0.1.0");
    assert_eq!(in_image(&image, "linux/amd64", LDAP_CHECK), "10001\n3.4.8\n0\nno compiler\n");
    let port = free_port();
    let output = xtask_app(&dir, name, &base, &["run", "--detach", "--port", &port.to_string()]);
    assert_success("xtask run --detach (python-ldap)", &output);
    let (status, body) = http(port, "GET", "/ldap-version", None).unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"version":"3.4.8","vendor_version":20513}"#));

    let started = Instant::now();
    let output = xtask_app(&dir, name, &base, &["image"]);
    let said = text(&output);
    assert_success("xtask image, again", &output);
    assert!(
        said.contains("wheelhouse is up to date") && said.contains("is up to date (built from this context"),
        "{said}"
    );
    assert!(!said.contains("docker run") && !said.contains("building"), "nothing built, no container\n{said}");
    eprintln!("the second `image` took {:.2} s", started.elapsed().as_secs_f64());
}

/// The same app for linux/arm64 on this amd64 machine: python-ldap built in a container of the arm64 base image
/// (qemu), its aarch64 wheel kept in the cache (minutes on a fresh machine, once), the image arm64, ldap imported
/// as the non-root user, no compiler; a second `image` builds nothing.
#[test]
fn a_compiled_sdist_is_built_for_arm64_under_emulation() {
    let name = "xtask-test-build-ldap-arm64";
    let dir = fixture_copy("ldap-directory", "ldap-arm64");
    let _cleanup = Cleanup { name, dir: dir.clone() };
    clean(name);
    let base = base_arm64();
    set(&dir, &format!("{LDAP_BUILD_PACKAGES}system-packages = [\"libldap-2.5-0\"]\n"));
    let started = Instant::now();
    let output = xtask_app(&dir, name, &base, &["image", "--platform", "linux/arm64"]);
    assert_success("xtask image --platform linux/arm64 (python-ldap)", &output);
    eprintln!("built for arm64 in {:.0} s", started.elapsed().as_secs_f64());
    assert!(
        state_dir(&format!("{name}@linux-arm64"))
            .join("wheelhouse/python_ldap-3.4.8-cp311-cp311-linux_aarch64.whl")
            .is_file(),
        "{}",
        text(&output)
    );
    let image = format!("{name}:0.1.0");
    let arch = docker().args(["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", &image]).output().unwrap();
    assert_eq!(stdout(&arch).trim(), "linux/arm64");
    assert_eq!(
        in_image(&image, "linux/arm64", &format!("uname -m; {LDAP_CHECK}")),
        "aarch64\n10001\n3.4.8\n0\nno compiler\n"
    );

    let output = xtask_app(&dir, name, &base, &["image", "--platform", "linux/arm64"]);
    let said = text(&output);
    assert_success("xtask image --platform linux/arm64, again", &output);
    assert!(
        said.contains("wheelhouse is up to date") && said.contains("is up to date (built from this context"),
        "{said}"
    );
    assert!(!said.contains("docker run") && !said.contains("building"), "nothing built, no container\n{said}");
}

/// A lock with a version the index no longer has (idna 3.999, as a deleted release) and a compiled sdist with no
/// build packages: one error lists both, each with what would fix it.
#[test]
fn every_blocker_is_listed_at_once() {
    let name = "xtask-test-build-blockers";
    let dir = fixture_copy("ldap-directory", "blockers");
    let _cleanup = Cleanup { name, dir: dir.clone() };
    clean(name);
    // A release deleted from PyPI after the lock was made: the lock names files the index no longer lists.
    let lock = std::fs::read_to_string(dir.join("poetry.lock")).unwrap();
    let deleted = lock
        .replace("name = \"idna\"\nversion = \"3.20\"", "name = \"idna\"\nversion = \"3.999\"")
        .replace("idna-3.20", "idna-3.999");
    assert_ne!(lock, deleted);
    std::fs::write(dir.join("poetry.lock"), deleted).unwrap();
    let output = xtask_app(&dir, name, &base_311(), &["image"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("cannot be made; 2 packages block it:\n"), "{said}");
    assert!(
        said.contains(
            "  - idna 3.999: the index https://pypi.org/simple no longer lists its locked files \
             (idna-3.999-py3-none-any.whl): the version was deleted from the index; lock another one (`poetry update idna`)"
        ),
        "{said}"
    );
    assert!(said.contains("  - python-ldap 3.4.8: building python_ldap-3.4.8.tar.gz in a container of "), "{said}");
    assert!(said.contains("the container has no compiler: add \"gcc\""), "{said}");
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` and waits until something listens on 127.0.0.1:`port`.
fn serve(mut command: Command, port: u16) -> Killed {
    assert!(!listening(port), "port {port} is taken: the fixtures' locks need it");
    let child = Killed(command.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The port of the fixtures' private index (recorded in `apps/private-index/poetry.lock`).
const INDEX_PORT: u16 = 18431;

/// An index on 127.0.0.1 that answers 401 without the right Basic credentials: without them, `image` fails
/// naming the index and Poetry's variables; with them it builds; and the credentials appear in no output of the
/// tool, no file it leaves, not the context, the Dockerfile, the image's history or its configuration.
#[test]
fn a_private_index_gets_its_credentials_on_the_host_only() {
    let name = "xtask-test-build-private";
    let dir = fixture_copy("private-index", "private");
    let _cleanup = Cleanup { name, dir: dir.clone() };
    clean(name);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let user = format!("xtask-ci-user-{}", std::process::id());
    let password = format!("pw-{nanos}-secret");
    let log = dir.with_extension("index.log");
    let mut index = Command::new("python3");
    index
        .arg(workspace().join("xtask/tests/fixtures/private-index/serve.py"))
        .arg(INDEX_PORT.to_string())
        .env("XTASK_TEST_INDEX_USER", &user)
        .env("XTASK_TEST_INDEX_PASSWORD", &password)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null());
    let _index = serve(index, INDEX_PORT);
    let base = base_311();

    let output = xtask_app(&dir, name, &base, &["image"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(
            "xtask-private-greeting 1.0.0: the index private (http://127.0.0.1:18431/simple) answers 401 \
             Unauthorized: it needs credentials: set POETRY_HTTP_BASIC_PRIVATE_USERNAME and \
             POETRY_HTTP_BASIC_PRIVATE_PASSWORD (Poetry's own variables)"
        ),
        "{said}"
    );
    assert!(!said.contains("image: building") && !said.contains("No matching distribution"), "{said}");

    let with = |password: &str| {
        command_app(&dir, name, &base, &["image"])
            .env("POETRY_HTTP_BASIC_PRIVATE_USERNAME", &user)
            .env("POETRY_HTTP_BASIC_PRIVATE_PASSWORD", password)
            .output()
            .unwrap()
    };
    let output = with("not-the-password");
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(
            "answers 401 Unauthorized to the credentials from POETRY_HTTP_BASIC_PRIVATE_USERNAME/_PASSWORD: check them"
        ),
        "{}",
        text(&output)
    );

    let output = with(&password);
    assert_success("xtask image with the index's credentials", &output);
    let served = std::fs::read_to_string(&log).unwrap();
    assert!(served.contains("GET /files/xtask_private_greeting-1.0.0-py3-none-any.whl auth 200"), "{served}");
    let image = format!("{name}:0.1.0");
    let greeting =
        in_image(&image, "linux/amd64", "python -c \"from xtask_private_greeting import greet; print(greet('ci'))\"");
    assert_eq!(greeting, "hello, ci, from the private index\n");

    let outputs = [
        ("the tool's output", text(&output)),
        ("docker history --no-trunc", text(&docker().args(["history", "--no-trunc", &image]).output().unwrap())),
        ("docker inspect", text(&docker().args(["image", "inspect", &image]).output().unwrap())),
    ];
    let state = state_dir(name);
    assert!(
        state.join("context/venv.tar").is_file() && state.join("venv").is_dir() && state.join("Dockerfile").is_file()
    );
    assert!(!state.join("credentials/netrc").exists(), "the netrc file is gone");
    for secret in [&user, &password] {
        for (what, shown) in &outputs {
            assert!(!shown.contains(secret.as_str()), "{what} shows a credential");
        }
        // The state directory holds the context, the Dockerfile, the requirements and every scratch file.
        let grep = Command::new("grep").args(["-r", "-l", "-F", secret]).arg(&state).output().unwrap();
        assert_eq!(stdout(&grep), "", "files of the state directory hold a credential");
    }
}

/// The port the URL dependency's wheel is served on (recorded in the lock the test makes).
const FILES_PORT: u16 = 18433;

/// A git dependency on a local repository and a URL dependency on a wheel: `poetry lock` pins the commit and the
/// wheel's hash; the wheelhouse holds the wheel built from the locked commit (not the newer one), the fetched
/// wheel checked against the lock, and the image's requirements pin both by hash. A URL that serves another file
/// and a repository that is gone are one error naming both packages.
#[test]
fn git_and_url_dependencies_come_from_the_lock() {
    let name = "xtask-test-build-git";
    let root = workspace().join("target/xtask-tests").join(format!("build-git-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _cleanup = Cleanup { name, dir: root.clone() };
    clean(name);
    let (repo, app, files) = (root.join("repo"), root.join("app"), root.join("files"));
    std::fs::create_dir_all(repo.join("xtask_git_greeting")).unwrap();
    std::fs::write(
        repo.join("pyproject.toml"),
        "[project]\nname = \"xtask-git-greeting\"\nversion = \"1.0.0\"\nrequires-python = \">=3.9\"\n\n[build-system]\n\
         requires = [\"poetry-core>=2.0.0,<3.0.0\"]\nbuild-backend = \"poetry.core.masonry.api\"\n",
    )
    .unwrap();
    let module = repo.join("xtask_git_greeting/__init__.py");
    std::fs::write(&module, "def greet():\n    return \"from the locked commit\"\n").unwrap();
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(["-c", "user.name=xtask tests", "-c", "user.email=xtask@example.invalid", "-C"])
            .arg(&repo)
            .args(args)
            .output()
            .unwrap();
        assert_success(&format!("git {}", args.join(" ")), &output);
        stdout(&output)
    };
    git(&["init", "--quiet"]);
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "--message", "the locked commit"]);
    let locked = git(&["rev-parse", "HEAD"]).trim().to_string();

    std::fs::create_dir_all(&files).unwrap();
    let wheel = "xtask_private_greeting-1.0.0-py3-none-any.whl";
    let fixture_wheel = workspace().join("xtask/tests/fixtures/private-index/files").join(wheel);
    std::fs::copy(&fixture_wheel, files.join(wheel)).unwrap();
    let mut server = Command::new("python3");
    server
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(&files)
        .arg(FILES_PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = serve(server, FILES_PORT);

    std::fs::create_dir_all(app.join("gapp")).unwrap();
    std::fs::write(app.join("gapp/__init__.py"), "").unwrap();
    std::fs::write(
        app.join("pyproject.toml"),
        format!(
            "[project]\nname = \"gapp\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11,<4.0\"\n\
             dependencies = [\"xtask-git-greeting\", \"xtask-private-greeting\"]\n\n[tool.poetry]\n\
             packages = [{{ include = \"gapp\" }}]\n\n[tool.poetry.dependencies]\n\
             xtask-git-greeting = {{ git = \"file://{}\" }}\n\
             xtask-private-greeting = {{ url = \"http://127.0.0.1:{FILES_PORT}/{wheel}\" }}\n\n[build-system]\n\
             requires = [\"poetry-core>=2.0.0,<3.0.0\"]\nbuild-backend = \"poetry.core.masonry.api\"\n",
            repo.display()
        ),
    )
    .unwrap();
    let output = Command::new(poetry())
        .arg("lock")
        .current_dir(&app)
        .env("POETRY_CACHE_DIR", root.join("poetry-cache"))
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert_success("poetry lock", &output);
    // A newer commit after the lock: the image must still get the locked one.
    std::fs::write(&module, "def greet():\n    return \"from a later commit\"\n").unwrap();
    git(&["commit", "--quiet", "--all", "--message", "a later commit"]);

    let base = base_311();
    let output = xtask_app(&app, name, &base, &["wheels"]);
    let said = text(&output);
    assert_success("xtask wheels (git and URL dependencies)", &output);
    assert!(
        said.contains(&format!("xtask-git-greeting 1.0.0 built from file://{} at {locked}", repo.display())),
        "{said}"
    );
    assert!(said.contains("(1 built here, 1 fetched by URL)"), "{said}");
    let wheelhouse = state_dir(name).join("wheelhouse");
    let built = wheelhouse.join("xtask_git_greeting-1.0.0-py3-none-any.whl");
    let read =
        "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('xtask_git_greeting/__init__.py').decode())";
    let inside = Command::new("python3").args(["-c", read]).arg(&built).output().unwrap();
    assert!(stdout(&inside).contains("from the locked commit"), "{}", text(&inside));
    assert_eq!(sha256(&wheelhouse.join(wheel)), sha256(&fixture_wheel));
    let requirements = std::fs::read_to_string(state_dir(name).join("requirements.txt")).unwrap();
    let marker = "; python_version >= \"3.11\" and python_version < \"4.0\"";
    assert_eq!(
        requirements,
        format!(
            "xtask-git-greeting==1.0.0 {marker} \\\n    --hash=sha256:{}\nxtask-private-greeting==1.0.0 {marker} \\\n    \
             --hash=sha256:{}\n",
            sha256(&built),
            sha256(&fixture_wheel)
        )
    );

    // The URL serves another file, and the repository is gone: one error names both.
    std::fs::write(files.join(wheel), b"not the wheel the lock pins").unwrap();
    std::fs::remove_dir_all(&repo).unwrap();
    let _ = std::fs::remove_dir_all(workspace().join("target/xtask/cache/files").join(&sha256(&fixture_wheel)[..32]));
    let url = format!("file://{}", repo.display());
    let url_hash = Command::new("sh").args(["-c", "printf %s \"$0\" | sha256sum", &url]).output().unwrap();
    let mirror = format!("{}.git", &stdout(&url_hash)[..16]);
    let _ = std::fs::remove_dir_all(workspace().join("target/xtask/cache/git").join(mirror));
    let _ = std::fs::remove_dir_all(state_dir(name));
    let output = xtask_app(&app, name, &base, &["wheels"]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("2 packages block it"), "{said}");
    assert!(
        said.contains(&format!(
            "  - xtask-private-greeting 1.0.0: http://127.0.0.1:{FILES_PORT}/{wheel} is not the file the lock pins"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("  - xtask-git-greeting 1.0.0 (git dependency): cannot reach the git repository {url}")),
        "{said}"
    );
}

/// Ctrl-C while an sdist is being built: the container is stopped and removed, nothing half-made is left in
/// the state directory (no temporary wheelhouse, build files or stamp), and the exit code says SIGINT (130).
#[test]
fn an_interrupted_build_leaves_nothing_behind() {
    let name = "xtask-test-build-interrupted";
    let dir = fixture_copy("ldap-directory", "interrupted");
    let _cleanup = Cleanup { name, dir: dir.clone() };
    clean(name);
    // Build packages of their own: no earlier run of another test has this wheel in the cache.
    set(
        &dir,
        "build-packages = [\"gcc\", \"libc6-dev\", \"python3-dev\", \"libldap-dev\", \"libsasl2-dev\", \"make\"]\n",
    );
    let log = dir.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = command_app(&dir, name, &base_311(), &["wheels"])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !read().contains("installing the build packages") {
        assert!(child.try_wait().unwrap().is_none(), "wheels ended before the build started\n{}", read());
        assert!(Instant::now() < deadline, "the build did not start\n{}", read());
        std::thread::sleep(Duration::from_millis(100));
    }
    let container = format!("xtask-build-{}", child.id());
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "wheels did not stop\n{}", read());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "{}", read());
    assert!(read().contains("error: interrupted (SIGINT)"), "{}", read());
    let listed =
        docker().args(["ps", "--all", "--quiet", "--filter", &format!("name=^{container}$")]).output().unwrap();
    assert_eq!(stdout(&listed), "", "the build container is gone\n{}", read());
    let state = state_dir(name);
    for left in ["wheelhouse.tmp", "sdist-builds", "wheelhouse.stamp", "wheelhouse", "credentials/netrc"] {
        assert!(!state.join(left).exists(), "{left} was left behind\n{}", read());
    }
}
