//! The image's virtualenv and bytecode, made on the host into the build context, so that the image build only
//! copies them: the pinned uv (`uv.rs`) installs the image's requirements from the wheelhouse for the target's
//! Python and platform, offline, checking every wheel against the lock's sha256 (`--require-hashes`), into
//! `venv/` in the app's state folder (`lib/pythonX.Y/site-packages/` and `bin/`, console scripts starting
//! `/opt/venv/bin/python`), archived into the build context as `venv.tar` (`tarball.rs`); the Dockerfile makes
//! the virtualenv's interpreter links with the base image's own `python3 -m venv` and unpacks this over them. uv
//! links the files from its cache, so a dependency added costs the new wheel only.
//!
//! Bytecode is compiled by the target's Python version: the host's `python3` when it is that version, else
//! `python3` in a container of the base image. It is hash-based and unchecked (the image's files cannot change;
//! the bytes do not depend on file times, so builders that rewrite them, buildah `--timestamp`, keep them valid),
//! and a `.pyc` whose recorded source hash matches is kept: a rebuild compiles only what changed.

use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use poetry_export::sha256::Sha256;
use xshell::{cmd, Shell};

use crate::bytecode::{site_packages, COMPILE};
use crate::config::{Config, PythonVersion};
use crate::dockerfile;
use crate::engine::FilesRun;
use crate::wheels::{BuildHost, Target};
use crate::{gen, paths, tarball, uv};

/// What the virtualenv was made from, recorded beside it: the same inputs need no uv and no compiler.
pub(crate) struct Site {
    pub(crate) stamp: String,
    /// How the virtualenv is split between `venv/` and `venv-added/` (`Layers`), for the image's fingerprint.
    pub(crate) layers: String,
    pub(crate) packages: usize,
    pub(crate) refreshed: bool,
}

/// The context holds the virtualenv in two parts, one layer each: `venv.tar`, the virtualenv as it was laid down
/// last (`venv/` of the state folder, archived), and `venv-added/`, the files of the packages added since. A
/// dependency added (the common change) leaves `venv.tar` as it is, so the engine takes its layer from the cache
/// and copies and exports only the new package's files: a build of 0.29 s instead of 0.58 s here (12 builds each,
/// BuildKit, the example app's 20 MB virtualenv). Any other change (a package removed or upgraded: a file of
/// `venv/` gone or different) lays the whole virtualenv down again, so the image never carries a file the
/// virtualenv does not have, nor a file twice. For `push` the virtualenv is always whole in `venv.tar`
/// (`Layers::Whole`): the image's layers are then the ones any machine builds from the same lock, whatever this
/// one built before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layers {
    /// `venv-added/` for the packages added since `venv.tar` was written.
    Added,
    /// `venv.tar` alone (`venv-added/` empty).
    Whole,
}

/// The Python that compiles bytecode for the image.
pub(crate) struct Bytecode<'a> {
    pub(crate) python: PythonVersion,
    /// The base image, for a host whose `python3` is another version.
    pub(crate) host: Option<&'a BuildHost<'a>>,
    pub(crate) platform: &'a str,
}

impl Bytecode<'_> {
    /// Compiles what is stale under `root` (which is at `prefix` in the image); `strict`: a file that does not
    /// compile is an error.
    pub(crate) fn compile(&self, sh: &Shell, root: &Path, prefix: &str, strict: bool) -> Result<()> {
        let mode = if strict { "strict" } else { "lenient" };
        let version = self.python.to_string();
        // The host's Python (`wheels::host_python`: a launcher such as pyenv's shim resolved once), when it is the
        // image's version (one start: the script checks the version). `-I -S`: the standard library only, no
        // site-packages to scan at start (30-40 ms here) and no PYTHON* variables of the host.
        if let Ok(python) = crate::wheels::host_python() {
            let output = cmd!(sh, "{python} -I -S -c {COMPILE} {root} {prefix} {mode} {version}")
                .quiet()
                .ignore_status()
                .output()?;
            if compiled(&output, self.python, root)? {
                return Ok(());
            }
        }
        self.in_container(root, prefix, strict)
    }

    /// Compiles as `compile` does, in a container of the base image (the host's Python is another version).
    pub(crate) fn in_container(&self, root: &Path, prefix: &str, strict: bool) -> Result<()> {
        let mode = if strict { "strict" } else { "lenient" };
        let version = self.python.to_string();
        let Some(build_host) = self.host else {
            bail!("no Python {} to compile the image's bytecode: the host's python3 is another version", self.python);
        };
        // In a container of the base image: the tree goes in as a tar, the bytecode comes out as one.
        let script = format!(
            "exec 3>&1 1>&2\nmkdir /w && cd /w && tar -x -f - && python3 -I -S -c '{COMPILE}' /w {prefix} {mode} {version} && find . -name \
             '*.pyc' -path '*/__pycache__/*' | tar -c -f - -T - >&3"
        );
        let shown = format!("<compile the bytecode of {} for Python {}>", paths::display(root), self.python);
        let request = FilesRun {
            name: format!("xtask-bytecode-{}", std::process::id()),
            image: &build_host.image,
            platform: self.platform,
            env: Vec::new(),
            script: &script,
            script_shown: &shown,
            input: root,
            output: root,
        };
        build_host.engine.run_with_files(&request)
    }
}

/// Whether the compiler's run did it (`false`: the host's Python is another version); an error names the files.
fn compiled(output: &std::process::Output, python: PythonVersion, root: &Path) -> Result<bool> {
    match output.status.code() {
        Some(0) => Ok(true),
        Some(75) => Ok(false),
        _ => bail!(
            "Python {python} cannot compile the files of {}:\n{}",
            paths::display(root),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}

/// The app's bytecode compiler (strict), started before the app's files are in place: a Python start is most of
/// what compiling an edited file costs (20-30 ms here), and it goes on while the context is assembled. Told to
/// compile by `finish`; dropped, it exits having done nothing (its stdin closes).
pub(crate) struct PendingCompile {
    child: std::process::Child,
    python: PythonVersion,
    root: PathBuf,
}

impl PendingCompile {
    /// The host's Python waiting to compile `root` (at `prefix` in the image); `None` without a host Python.
    pub(crate) fn start(python: PythonVersion, root: &Path, prefix: &str) -> Option<PendingCompile> {
        use std::process::{Command, Stdio};
        let interpreter = crate::wheels::host_python().ok()?;
        let child = Command::new(interpreter)
            .args(["-I", "-S", "-c", COMPILE, "--when-told"])
            .arg(root)
            .args([prefix, "strict", &python.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        Some(PendingCompile { child, python, root: root.to_path_buf() })
    }

    /// Compiles what is stale now; `false` when the host's Python is another version (nothing done).
    pub(crate) fn finish(mut self) -> Result<bool> {
        use std::io::Write;
        if let Some(mut stdin) = self.child.stdin.take() {
            // Refused when it has exited already (another version): its status says so below.
            let _ = stdin.write_all(b"go\n");
        }
        let output = self.child.wait_with_output().context("the bytecode compiler did not run")?;
        compiled(&output, self.python, &self.root)
    }
}

/// Makes `context/venv.tar` and `context/venv-added/` hold the virtualenv of `requirements` (hash-pinned,
/// installed from `find_links`), unless its stamp says it does.
pub(crate) fn ensure(
    sh: &Shell,
    config: &Config,
    target: &Target,
    (requirements, find_links, wheelhouse): (&Path, &[&Path], &crate::wheels::Wheelhouse),
    bytecode: &Bytecode<'_>,
    uv: uv::Uv,
    (context_dir, layers): (&Path, Layers),
) -> Result<Site> {
    let state = config.state_dir();
    let text = std::fs::read_to_string(requirements)
        .with_context(|| format!("cannot read {}", paths::display(requirements)))?;
    let packages = text.lines().filter(|l| l.contains("==")).count();
    let mut hasher = Sha256::default();
    hasher.update(
        format!(
            "xtask venv 2\nuv {}\npython {}\nplatform {}\nglibc {}.{}\nvenv {}\n",
            uv::VERSION,
            target.python,
            target.platform,
            target.glibc.0,
            target.glibc.1,
            dockerfile::VENV
        )
        .as_bytes(),
    );
    hasher.update(text.as_bytes());
    let stamp = format!("sha256:{}", hasher.hex());
    let venv = paths::venv_tree(&state);
    let archive = context_dir.join(dockerfile::CONTEXT_VENV_TAR);
    let added = context_dir.join(dockerfile::CONTEXT_VENV_ADDED);
    let stamp_path = paths::venv_stamp_in(&state);
    if std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) && venv.is_dir() && added.is_dir() {
        if layers == Layers::Whole {
            merge_into(&added, &venv, &archive)?;
        }
        if !archive.is_file() {
            tarball::write_tree(&venv, &archive)?;
        }
        let layers = describe_added(&added)?;
        return Ok(Site { stamp, layers, packages, refreshed: false });
    }
    let _ = std::fs::remove_file(&stamp_path);

    let uv = uv.binary()?;
    let staging = paths::venv_staging(&state);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", paths::display(&staging)))?;
    }
    let site_rel = site_packages(target.python);
    let site = staging.join(&site_rel);
    let python_version = target.python.to_string();
    let python_platform = uv_platform(&target.machine, target.glibc);
    let cache = paths::uv_cache();
    let links: Vec<String> =
        find_links.iter().flat_map(|d| ["--find-links".to_string(), d.display().to_string()]).collect();
    println!(
        "venv: installing {packages} packages for Python {python_version} ({python_platform}) with uv {}",
        uv::VERSION
    );
    // The host's interpreter named (uv asks one even with --target; a launcher on PATH would cost a start).
    let interpreter: Vec<String> = match crate::wheels::host_python() {
        Ok(python) => vec!["--python".to_string(), python.display().to_string()],
        Err(_) => Vec::new(),
    };
    let mut command = cmd!(
        sh,
        "{uv} pip sync --no-config --quiet --target {site} --python-version {python_version} --python-platform {python_platform} {interpreter...} --no-index {links...} --require-hashes --no-build --offline --cache-dir {cache} {requirements}"
    );
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("UV_")) {
            command = command.env_remove(key);
        }
    }
    command.run().map_err(|e| {
        format_err!(
            "{e}\nuv could not install the wheelhouse {} (its message is above; a wheel whose sha256 is not the lock's \
             is refused: remove the file it names and run the command again, which downloads it afresh)",
            find_links.iter().map(|d| paths::display(d)).collect::<Vec<_>>().join(" and ")
        )
    })?;

    // uv's own record of when it installed each package (`uv_cache.json`, a time): the same wheels must make
    // the same bytes, or a fresh machine's build would match no cached layer.
    for entry in std::fs::read_dir(&site).with_context(|| format!("cannot read {}", paths::display(&site)))? {
        let dist_info = entry?.path();
        if dist_info.extension().is_some_and(|e| e == "dist-info") {
            forget_uv_cache_record(&dist_info)?;
        }
    }
    // Console scripts: uv puts them in `<target>/bin`, starting with the host's interpreter.
    let scripts = site.join("bin");
    let bin = staging.join("bin");
    if scripts.is_dir() {
        std::fs::rename(&scripts, &bin).with_context(|| format!("cannot move {}", paths::display(&scripts)))?;
        for entry in std::fs::read_dir(&bin)? {
            rewrite_shebang(&entry?.path())?;
        }
    }
    // The bytecode of the virtualenv it replaces, where the source is still there: the compiler checks each one's
    // source hash and recompiles what differs.
    for old in [&venv, &added] {
        let old_site = old.join(&site_rel);
        link_bytecode(&old_site, &site, &old_site)?;
    }
    // And the bytecode the look-up had compiled as each wheel arrived (`index::BytecodeCache`). Its compiler,
    // one process, went on beside uv's install; what it has not done by now, the compiler below does faster
    // (a process per core), so it is stopped.
    let cache = paths::bytecode_cache(&target.python.to_string());
    if let Some(pid) = wheelhouse.compiling {
        stop_compiler(pid, &cache);
    }
    for (_, sha256) in &wheelhouse.files {
        let compiled = cache.join(sha256);
        link_bytecode(&compiled, &site, &compiled)?;
    }
    bytecode.compile(sh, &staging, dockerfile::VENV, false)?;

    std::fs::create_dir_all(context_dir)?;
    let replace = |dir: &Path, with: &Path| -> Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", paths::display(dir)))?;
        }
        std::fs::rename(with, dir).with_context(|| format!("cannot move the virtualenv to {}", paths::display(dir)))
    };
    let only_added = layers == Layers::Added && venv.is_dir() && holds_all_of(&staging, &venv, &venv)?;
    let next_added = context_dir.join(format!("{}.tmp", dockerfile::CONTEXT_VENV_ADDED));
    empty_dir(&next_added)?;
    if only_added {
        link_new_files(&staging, &venv, &next_added)?;
        std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", paths::display(&staging)))?;
        // The context removed meanwhile (the state folder kept its virtualenv).
        if !archive.is_file() {
            tarball::write_tree(&venv, &archive)?;
        }
    } else {
        tarball::write_tree(&staging, &archive)?;
        replace(&venv, &staging)?;
    }
    replace(&added, &next_added)?;
    gen::write_atomic(&stamp_path, stamp.as_bytes())?;
    let layers = describe_added(&added)?;
    Ok(Site { stamp, layers, packages, refreshed: true })
}

/// Stops the look-up's compiler `pid` (not a child of this one; checked by its command line, where `/proc` tells)
/// and removes the wheel it was in the middle of (`<sha256>.tmp-<pid>` in `cache`).
fn stop_compiler(pid: u32, cache: &Path) {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let ours = std::fs::read(proc_dir.join("cmdline"))
        .is_ok_and(|line| line.split(|b| *b == 0).any(|word| word == b"--wheels"));
    if !ours {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    // Gone, or a zombie (`Z`) that init reaps.
    let started = std::time::Instant::now();
    let alive = || {
        std::fs::read_to_string(proc_dir.join("stat"))
            .is_ok_and(|text| text.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    };
    while alive() && started.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let suffix = format!(".tmp-{pid}");
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().ends_with(&suffix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether the tree `new` holds every file, link and folder of `old` (under `dir`), with the same content.
fn holds_all_of(new: &Path, old: &Path, dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", paths::display(dir)))? {
        let entry = entry?;
        let path = entry.path();
        let there = new.join(path.strip_prefix(old).unwrap());
        let (Ok(mine), Ok(theirs)) = (std::fs::symlink_metadata(&path), std::fs::symlink_metadata(&there)) else {
            return Ok(false);
        };
        let same = if mine.is_dir() {
            theirs.is_dir() && holds_all_of(new, old, &path)?
        } else if mine.is_symlink() {
            theirs.is_symlink() && std::fs::read_link(&path)? == std::fs::read_link(&there)?
        } else {
            // Most files are the same file: uv links both from its cache, the bytecode is linked over.
            theirs.is_file()
                && mine.len() == theirs.len()
                && mine.mode() == theirs.mode()
                && ((mine.dev(), mine.ino()) == (theirs.dev(), theirs.ino())
                    || std::fs::read(&path)? == std::fs::read(&there)?)
        };
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every file and link under `root` (not the folders), by its path relative to `root`, sorted.
fn files_in(root: &Path) -> Result<Vec<(PathBuf, std::fs::FileType)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, std::fs::FileType)>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", paths::display(dir)))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(root, &entry.path(), out)?;
            } else {
                out.push((entry.path().strip_prefix(root).unwrap().to_path_buf(), kind));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Hard-links into `into` every file and link of the tree `new` that `old` lacks, at the same place.
fn link_new_files(new: &Path, old: &Path, into: &Path) -> Result<()> {
    for (rel, kind) in files_in(new)? {
        if std::fs::symlink_metadata(old.join(&rel)).is_ok() {
            continue;
        }
        let (path, dest) = (new.join(&rel), into.join(&rel));
        std::fs::create_dir_all(dest.parent().unwrap())?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&path)?, &dest)?;
        } else {
            std::fs::hard_link(&path, &dest)
                .with_context(|| format!("cannot link {} into {}", path.display(), paths::display(into)))?;
        }
    }
    Ok(())
}

/// Moves every file of the tree `added` into the same place in `venv`, leaving `added` empty. `archive` (of
/// `venv`) goes first when there is anything to move: an interruption leaves none, which `ensure` writes again.
fn merge_into(added: &Path, venv: &Path, archive: &Path) -> Result<()> {
    let files = files_in(added)?;
    if files.is_empty() {
        return Ok(());
    }
    println!("venv: the packages added since the virtualenv was laid down go into its single layer");
    let _ = std::fs::remove_file(archive);
    for (rel, _) in files {
        let (path, dest) = (added.join(&rel), venv.join(&rel));
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::rename(&path, &dest).with_context(|| format!("cannot move {}", paths::display(&path)))?;
    }
    empty_dir(added)
}

/// `dir`, made empty (created when missing).
fn empty_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", paths::display(dir)))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", paths::display(dir)))
}

/// The files `venv-added/` holds, as one line: `none`, or their count and a checksum of their paths.
fn describe_added(added: &Path) -> Result<String> {
    let files = files_in(added)?;
    if files.is_empty() {
        return Ok("none".to_string());
    }
    let mut hasher = Sha256::default();
    for (file, _) in &files {
        hasher.update(format!("{}\n", file.display()).as_bytes());
    }
    Ok(format!("{} files, sha256:{}", files.len(), hasher.hex()))
}

/// Removes `uv_cache.json` from a `.dist-info` folder and its line from the folder's RECORD (through a new file:
/// uv may have linked RECORD from its cache).
fn forget_uv_cache_record(dist_info: &Path) -> Result<()> {
    let cache_file = dist_info.join("uv_cache.json");
    if !cache_file.exists() {
        return Ok(());
    }
    std::fs::remove_file(&cache_file).with_context(|| format!("cannot remove {}", paths::display(&cache_file)))?;
    let record = dist_info.join("RECORD");
    let Ok(text) = std::fs::read_to_string(&record) else { return Ok(()) };
    let name = format!("{}/uv_cache.json,", dist_info.file_name().unwrap().to_string_lossy());
    let kept: String = text.split_inclusive('\n').filter(|line| !line.starts_with(&name)).collect();
    if kept != text {
        let tmp = record.with_extension("xtask-tmp");
        std::fs::write(&tmp, kept).with_context(|| format!("cannot write {}", paths::display(&tmp)))?;
        std::fs::rename(&tmp, &record).with_context(|| format!("cannot write {}", paths::display(&record)))?;
    }
    Ok(())
}

/// uv's `--python-platform` for a glibc: the newest manylinux it names (`manylinux2014`, `_2_28`, `_2_31` to
/// `_2_40` in uv 0.13) that the glibc runs; the wheelhouse holds only wheels the glibc runs already.
fn uv_platform(machine: &str, glibc: (u32, u32)) -> String {
    match glibc {
        (2, minor) if minor >= 40 => format!("{machine}-manylinux_2_40"),
        (2, minor) if minor >= 31 => format!("{machine}-manylinux_2_{minor}"),
        (2, minor) if minor >= 28 => format!("{machine}-manylinux_2_28"),
        _ => format!("{machine}-manylinux2014"),
    }
}

/// `#!<host python>` (or uv's `/bin/sh` trampoline for a long path) becomes `#!/opt/venv/bin/python`; through a
/// new file, since uv may have linked the script from its cache.
fn rewrite_shebang(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", paths::display(path)))?;
    let Some(rest) = bytes.strip_prefix(b"#!") else { return Ok(()) };
    let line_end = |b: &[u8]| b.iter().position(|&c| c == b'\n').map_or(b.len(), |i| i + 1);
    let first = &rest[..line_end(rest)];
    let body = if first.starts_with(b"/bin/sh") {
        // `#!/bin/sh`, `'''exec' <python> "$0" "$@"`, `' '''`
        let mut body = &rest[first.len()..];
        if !body.starts_with(b"'''exec'") {
            return Ok(());
        }
        for _ in 0..2 {
            body = &body[line_end(body)..];
        }
        body
    } else if first.windows(6).any(|w| w == b"python") {
        &rest[first.len()..]
    } else {
        return Ok(());
    };
    let mut text = format!("#!{}/bin/python\n", dockerfile::VENV).into_bytes();
    text.extend_from_slice(body);
    let tmp = path.with_extension("xtask-tmp");
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", paths::display(&tmp)))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", paths::display(path)))?;
    Ok(())
}

/// Hard-links each `__pycache__/*.pyc` under `dir` (of the tree `old`) into the same place under `new`, when
/// `new` has its source.
fn link_bytecode(dir: &Path, new: &Path, old: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if entry.file_name() != "__pycache__" {
            link_bytecode(&path, new, old)?;
            continue;
        }
        let rel = path.strip_prefix(old).unwrap();
        let (target_cache, source_dir) = (new.join(rel), new.join(rel).parent().unwrap().to_path_buf());
        for pyc in std::fs::read_dir(&path)?.flatten() {
            let name = pyc.file_name();
            let Some(module) = name.to_str().and_then(|n| n.split('.').next()) else { continue };
            if source_dir.join(format!("{module}.py")).is_file() {
                std::fs::create_dir_all(&target_cache)?;
                let _ = std::fs::hard_link(pyc.path(), target_cache.join(&name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn uv_is_given_a_platform_it_names() {
        assert_eq!(super::uv_platform("x86_64", (2, 41)), "x86_64-manylinux_2_40");
        assert_eq!(super::uv_platform("x86_64", (2, 36)), "x86_64-manylinux_2_36");
        assert_eq!(super::uv_platform("aarch64", (2, 30)), "aarch64-manylinux_2_28");
        assert_eq!(super::uv_platform("x86_64", (2, 24)), "x86_64-manylinux2014");
    }
}
