//! Differential test of `cargo xtask export`: the real `poetry export` (poetry 2.5.1 + poetry-plugin-export
//! 1.10.1) and ours, on copies of this project's fixtures (`tests/fixtures/export/`, see its README) and of the
//! example app, for a matrix of options: same exit status, same stdout, byte for byte. Then the error cases:
//! the same refusals as Poetry, with our `file:line:col` for broken TOML, and `-o` never half-written.
//!
//! Needs `poetry` with the export plugin: on PATH, or `XTASK_TEST_POETRY=/path/to/poetry`.

mod local;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use local::{copy_dir, poetry, workspace};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export")
}

/// A copy of a project in a temporary directory; kept (and named) when the test fails.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn copy(name: &str, source: &Path, only: Option<&[&str]>) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xtask-export-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        match only {
            Some(files) => {
                std::fs::create_dir_all(&dir).unwrap();
                for f in files {
                    std::fs::copy(source.join(f), dir.join(f)).unwrap();
                }
            }
            None => copy_dir(source, &dir),
        }
        // Poetry's own settings, isolated from the machine's (like the conformance corpus was recorded).
        std::fs::create_dir_all(dir.join(".poetry-home")).unwrap();
        Scratch { dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Credentials for the fixtures' private sources, given to both exporters (used by `--with-credentials`).
const CREDENTIALS: &[(&str, &str)] = &[
    ("POETRY_HTTP_BASIC_MIRROR_USERNAME", "reader"),
    ("POETRY_HTTP_BASIC_MIRROR_PASSWORD", "p@ss/word"),
    ("POETRY_HTTP_BASIC_PRIVATE_USERNAME", "me"),
    ("POETRY_HTTP_BASIC_PRIVATE_PASSWORD", "s3cret"),
];

fn run_poetry(poetry: &Path, dir: &Path, args: &[&str]) -> Output {
    let home = dir.join(".poetry-home");
    Command::new(poetry)
        .arg("export")
        .args(args)
        .current_dir(dir)
        .env("POETRY_CONFIG_DIR", home.join("config"))
        .env("POETRY_CACHE_DIR", home.join("cache"))
        .env("POETRY_DATA_DIR", home.join("data"))
        .envs(CREDENTIALS.iter().copied())
        .output()
        .expect("cannot run poetry")
}

fn run_ours(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["export", "--app"])
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .envs(CREDENTIALS.iter().copied())
        .output()
        .expect("cannot run xtask")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs both exporters on each option set; collects every difference before failing.
fn compare(name: &str, project: &Path, only: Option<&[&str]>, matrix: &[&str]) {
    let poetry = poetry();
    let scratch = Scratch::copy(name, project, only);
    let mut failures = Vec::new();
    let mut exported = 0;
    for options in matrix {
        let args: Vec<&str> = options.split_whitespace().collect();
        let theirs = run_poetry(&poetry, &scratch.dir, &args);
        let ours = run_ours(&scratch.dir, &args);
        if theirs.status.success() {
            exported += 1;
        }
        if theirs.status.success() != ours.status.success() || theirs.stdout != ours.stdout {
            let (t, o) = (text(&theirs.stdout), text(&ours.stdout));
            let line = t.lines().zip(o.lines()).position(|(a, b)| a != b).map(|i| i + 1);
            failures.push(format!(
                "[{options}] poetry: {}, ours: {}; first differing line: {line:?}\n  poetry line: {:?}\n  ours line:   {:?}\n  poetry stderr: {}\n  our stderr: {}",
                theirs.status,
                ours.status,
                line.and_then(|l| t.lines().nth(l - 1)),
                line.and_then(|l| o.lines().nth(l - 1)),
                text(&theirs.stderr).trim(),
                text(&ours.stderr).trim(),
            ));
        }
    }
    assert!(failures.is_empty(), "{name}: `xtask export` differs from `poetry export`:\n{}", failures.join("\n"));
    assert!(exported * 2 > matrix.len(), "{name}: most option sets should export, not fail in both tools");
}

/// Options every fixture is exported with.
const COMMON: &[&str] = &[
    "",
    "--without-hashes",
    "--with dev",
    "--all-groups --all-extras",
    "--only dev --without-hashes",
    "-f constraints.txt --without-hashes",
    "--without-urls",
    "--with-credentials --without-hashes",
];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    COMMON.iter().chain(extra).copied().collect()
}

#[test]
fn lock_2_1_features() {
    compare(
        "features-21",
        &fixtures().join("features-21"),
        None,
        &with(&["-E dotenv --without-hashes", "--with docs,dev --without-hashes", "--with docs --without docs"]),
    );
}

#[test]
fn lock_2_0_features() {
    compare(
        "features-20",
        &fixtures().join("features-20"),
        None,
        &with(&["--extras dotenv --without-hashes", "--with docs -f constraints.txt"]),
    );
}

#[test]
fn lock_1_1() {
    compare(
        "legacy-11",
        &fixtures().join("legacy-11"),
        None,
        &with(&["-E dotenv", "--with dev -E dotenv --without-hashes"]),
    );
}

#[test]
fn lock_1_0() {
    compare("legacy-10", &fixtures().join("legacy-10"), None, &with(&["-E dotenv --without-hashes"]));
}

#[test]
fn private_index() {
    compare("private-index", &fixtures().join("private-index"), None, COMMON);
}

#[test]
fn example_app() {
    compare(
        "example-app",
        &workspace().join("example-app"),
        Some(&["pyproject.toml", "poetry.lock"]),
        &["", "--without-hashes", "--with dev", "--only dev", "-f constraints.txt", "--all-groups --without-hashes"],
    );
}

/// The last non-empty line of Poetry's stderr: its error message.
fn poetry_message(output: &Output) -> String {
    text(&output.stderr).lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
}

#[test]
fn errors_like_poetry() {
    let poetry = poetry();
    let scratch = Scratch::copy("errors", &fixtures().join("features-21"), None);
    let dir = &scratch.dir;

    // Refusals on the command line: the same message, exit status 1.
    for options in [
        "--with nope",
        "--only a,b --without c",
        "-E nope",
        "-E dotenv --all-extras",
        "--with dev --all-groups",
        "-f nope.txt",
    ] {
        let args: Vec<&str> = options.split_whitespace().collect();
        let (theirs, ours) = (run_poetry(&poetry, dir, &args), run_ours(dir, &args));
        assert_eq!(theirs.status.code(), Some(1), "[{options}] poetry should refuse");
        assert_eq!(ours.status.code(), Some(1), "[{options}] we should refuse");
        let message = poetry_message(&theirs);
        assert!(text(&ours.stderr).contains(&message), "[{options}] expected {message:?} in {:?}", text(&ours.stderr));
    }

    let pyproject = dir.join("pyproject.toml");
    let lock = dir.join("poetry.lock");
    let original_pyproject = std::fs::read_to_string(&pyproject).unwrap();
    let original_lock = std::fs::read_to_string(&lock).unwrap();
    let output = dir.join("out/requirements.txt");

    // `-o`: the same bytes as stdout, written atomically.
    let ours = run_ours(dir, &["-o", "out/requirements.txt"]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    assert!(ours.stdout.is_empty());
    assert_eq!(std::fs::read(&output).unwrap(), run_ours(dir, &[]).stdout);

    // A stale lock: Poetry's message, and `-o` leaves the previous file alone.
    std::fs::write(&pyproject, original_pyproject.replace("idna = \"^3.4\"", "idna = \"^3.5\"")).unwrap();
    let (theirs, ours) = (run_poetry(&poetry, dir, &[]), run_ours(dir, &["-o", "out/requirements.txt"]));
    assert!(!theirs.status.success() && !ours.status.success());
    let message = poetry_message(&theirs);
    assert!(message.contains("poetry lock"), "{message}");
    assert!(text(&ours.stderr).contains(&message), "expected {message:?} in {:?}", text(&ours.stderr));
    assert_eq!(std::fs::read(&output).unwrap(), run_ours_fresh(dir, &original_pyproject));

    // Broken TOML, in either file: path:line:col.
    std::fs::write(&pyproject, original_pyproject.replace("python = \"^3.7\"", "python = \"^3.7")).unwrap();
    let (theirs, ours) = (run_poetry(&poetry, dir, &[]), run_ours(dir, &[]));
    assert!(!theirs.status.success() && !ours.status.success());
    assert!(text(&ours.stderr).contains("pyproject.toml:10:15: invalid TOML"), "{}", text(&ours.stderr));
    std::fs::write(&pyproject, &original_pyproject).unwrap();
    std::fs::write(&lock, original_lock.replacen("optional = false", "optional = = false", 1)).unwrap();
    let (theirs, ours) = (run_poetry(&poetry, dir, &[]), run_ours(dir, &[]));
    assert!(!theirs.status.success() && !ours.status.success());
    assert!(text(&ours.stderr).contains("poetry.lock:7:12: invalid TOML"), "{}", text(&ours.stderr));
    std::fs::write(&lock, &original_lock).unwrap();

    // An invalid project (package mode without a name): Poetry's validation message.
    std::fs::write(&pyproject, original_pyproject.replace("name = \"export-features\"\n", "")).unwrap();
    std::fs::write(&pyproject, std::fs::read_to_string(&pyproject).unwrap().replace("package-mode = false\n", ""))
        .unwrap();
    let (theirs, ours) = (run_poetry(&poetry, dir, &[]), run_ours(dir, &[]));
    assert!(!theirs.status.success() && !ours.status.success());
    let message = poetry_message(&theirs);
    assert!(text(&ours.stderr).contains(&message), "expected {message:?} in {:?}", text(&ours.stderr));
    std::fs::write(&pyproject, &original_pyproject).unwrap();

    // No lock: Poetry would lock (we never do); we say how to make one. Not compared: locking needs the network.
    std::fs::remove_file(&lock).unwrap();
    let ours = run_ours(dir, &[]);
    assert_eq!(ours.status.code(), Some(1));
    assert!(text(&ours.stderr).contains("run `poetry lock`"), "{}", text(&ours.stderr));
}

/// Our export of the unmodified project (after a test changed it and before it is restored).
fn run_ours_fresh(dir: &Path, original_pyproject: &str) -> Vec<u8> {
    let pyproject = dir.join("pyproject.toml");
    let changed = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(&pyproject, original_pyproject).unwrap();
    let out = run_ours(dir, &[]).stdout;
    std::fs::write(&pyproject, changed).unwrap();
    out
}
