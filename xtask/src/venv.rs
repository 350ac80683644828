//! The app's local virtualenv (`<app>/.venv`), shared by `cargo xtask server` and `cargo xtask test`: made with
//! the host's `python3 -m venv`, filled from the locked requirements (main and every non-optional group, so the
//! tests' tools are there too) with hash checking, and refreshed only when those requirements or the Python
//! change. A stamp written after a complete install records what is there; no stamp, no trust.

use std::fs::File;
use std::path::PathBuf;

use anyhow::{bail, format_err, Context, Result};
use poetry_export::ExportRequest;
use xshell::{cmd, Shell};

use crate::config::Config;
use crate::export;
use crate::toml_file::TomlFile;
use crate::{gen, paths, pip};

/// A local virtualenv that holds the app's locked requirements.
pub(crate) struct Venv {
    pub(crate) dir: PathBuf,
}

impl Venv {
    pub(crate) fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// `<venv>/bin/<script>`, or an error saying which locked dependency would provide it.
    pub(crate) fn script(&self, script: &str, package: &str) -> Result<PathBuf> {
        let path = self.dir.join("bin").join(script);
        if !path.is_file() {
            bail!(
                "{} has no `{script}`: add `{package}` to the app's dependencies (`poetry add {package}`) and lock again",
                paths::display(&self.dir)
            );
        }
        Ok(path)
    }

    /// Whether `package` (an import name) is installed in the virtualenv.
    pub(crate) fn has_module(&self, module: &str) -> bool {
        let Ok(lib) = std::fs::read_dir(self.dir.join("lib")) else { return false };
        lib.flatten().any(|python| python.path().join("site-packages").join(module).is_dir())
    }
}

/// `PYTHONPATH` for running the app from its directory: the roots of packages that do not sit at the top (src
/// layout: `src/pkg` is imported as `pkg`), before whatever the environment already has. None when every
/// package is at the top (the app directory itself is on the path when a server or pytest runs there).
pub(crate) fn python_path(config: &Config) -> Option<std::ffi::OsString> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for include in &config.include {
        let Some(prefix) = include.source.strip_suffix(&include.dest) else { continue };
        let prefix = prefix.trim_end_matches('/');
        let root = config.app_dir.join(prefix);
        if !prefix.is_empty() && !roots.contains(&root) {
            roots.push(root);
        }
    }
    if roots.is_empty() {
        return None;
    }
    roots.extend(std::env::var_os("PYTHONPATH").iter().flat_map(std::env::split_paths));
    std::env::join_paths(roots).ok()
}

/// The Python on the host that makes the virtualenv.
struct HostPython {
    /// The real interpreter (`sys.executable`), not a launcher or a pyenv shim.
    executable: String,
    /// `X.Y.Z`
    version: String,
}

/// Creates or refreshes the app's virtualenv, and returns it. Prints what it does; does nothing (and runs no
/// pip) when the stamp says the virtualenv already holds these requirements for this Python.
pub(crate) fn ensure(sh: &Shell, config: &Config) -> Result<Venv> {
    let venv = Venv { dir: paths::local_venv(&config.app_dir) };
    let shown = paths::display(&venv.dir);
    // Another `cargo xtask server`/`test` of the same app may be refreshing it right now (parallel tests do).
    let _lock = lock(config)?;

    let host = host_python(sh)?;
    if !host.version.starts_with(&format!("{}.", config.python)) {
        println!(
            "venv: note: the host's python3 is {}, the image uses Python {} (tool.xtask.python)",
            host.version, config.python
        );
    }
    let groups = local_groups(config)?;
    let requirements = locked_requirements(config, &groups)?;
    let packages = requirements.lines().filter(|l| l.contains("==")).count();
    let stamp = stamp(&host, &requirements);
    let stamp_path = paths::venv_stamp(&venv.dir);
    let groups_shown = std::iter::once("main").chain(groups.iter().map(String::as_str)).collect::<Vec<_>>().join(", ");

    let current = std::fs::read_to_string(&stamp_path).ok();
    if current.as_deref() == Some(stamp.as_str()) && venv.python().exists() {
        println!(
            "venv: {shown} is up to date ({packages} locked packages, groups {groups_shown}, Python {})",
            host.version
        );
        return Ok(venv);
    }

    // From here on the virtualenv is incomplete until the new stamp is written: an interrupted refresh is
    // redone on the next run.
    match std::fs::remove_file(&stamp_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", paths::display(&stamp_path))),
    }
    let why = match current {
        None => "no complete install recorded",
        Some(_) => "the locked requirements or the Python changed",
    };
    println!("venv: creating {shown} with Python {} ({}): {why}", host.version, host.executable);
    let executable = &host.executable;
    let dir = &venv.dir;
    cmd!(sh, "{executable} -m venv --clear {dir}").run().with_context(|| {
        format!("cannot create {shown}: the host's Python needs the venv module (Debian: `apt-get install -y python3-venv`)")
    })?;

    let requirements_path = paths::venv_requirements(&venv.dir);
    // Path dependencies (`-e file:///...`) cannot be hash-checked: installed after the rest, without hashes.
    let (hashed, local) = crate::path_deps::split_off(&requirements)?;
    gen::write_atomic(&requirements_path, hashed.as_bytes())?;
    println!("venv: installing {packages} locked packages (groups {groups_shown}) with hash checking");
    let cache = paths::pip_cache();
    pip::pip(sh, &venv.python(), "install")
        .args(["--require-hashes", "--index-url", pip::PYPI_SIMPLE, "--cache-dir"])
        .arg(&cache)
        .arg("--requirement")
        .arg(&requirements_path)
        .run()
        .with_context(|| format!("cannot install the locked requirements into {shown}"))?;
    if !local.is_empty() {
        let local_path = paths::venv_path_requirements(&venv.dir);
        gen::write_atomic(&local_path, local.as_bytes())?;
        println!("venv: installing the path dependencies (editable where Poetry says develop = true)");
        pip::pip(sh, &venv.python(), "install")
            .args(["--no-deps", "--index-url", pip::PYPI_SIMPLE, "--cache-dir"])
            .arg(&cache)
            .arg("--requirement")
            .arg(&local_path)
            .run()
            .with_context(|| format!("cannot install the path dependencies into {shown}"))?;
    }
    gen::write_atomic(&stamp_path, stamp.as_bytes())?;
    println!("venv: {shown} is ready");
    Ok(venv)
}

/// The hash-pinned requirements of the lock, for main and `groups`, with the configured extras: the native
/// exporter's output, the same text `poetry export --with <groups>` writes (Poetry is not needed).
pub(crate) fn locked_requirements(config: &Config, groups: &[String]) -> Result<String> {
    export::export(&config.app_dir, &ExportRequest::for_image(groups, &config.extras))
        .with_context(|| format!("cannot export the locked requirements of {}", paths::display(&config.app_dir)))
}

/// The dependency groups a local virtualenv gets besides main: every group `poetry install` installs by default
/// (those not marked `optional = true`), plus `tool.xtask.groups`.
pub(crate) fn local_groups(config: &Config) -> Result<Vec<String>> {
    let path = config.app_dir.join("pyproject.toml");
    let file = TomlFile::read(&path, &paths::display(&path))?;
    let mut groups = Vec::new();
    let poetry_groups = file.doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("group"));
    if let Some(table) = poetry_groups.and_then(|g| g.as_table_like()) {
        for (name, group) in table.iter() {
            let optional = group.get("optional").and_then(|o| o.as_bool()).unwrap_or(false);
            if !optional && name != "main" {
                groups.push(name.to_string());
            }
        }
    }
    if let Some(table) = file.doc.get("dependency-groups").and_then(|g| g.as_table_like()) {
        for (name, _) in table.iter() {
            if !groups.iter().any(|g| g == name) {
                groups.push(name.to_string());
            }
        }
    }
    for group in &config.groups {
        if !groups.contains(group) && group != "main" {
            groups.push(group.clone());
        }
    }
    Ok(groups)
}

fn host_python(sh: &Shell) -> Result<HostPython> {
    let python3 = which::which("python3").map_err(|_| {
        format_err!("python3 is not on PATH: install Python 3 with pip and venv (Debian: `apt-get install -y python3 python3-venv python3-pip`)")
    })?;
    // The base interpreter, resolved: the same whether python3 is a pyenv shim, a symlink or another venv's.
    let script = "import os, sys; print(sys.version.split()[0]); \
                  print(os.path.realpath(getattr(sys, '_base_executable', sys.executable)))";
    let out = cmd!(sh, "{python3} -c {script}")
        .quiet()
        .read()
        .with_context(|| format!("cannot run {}", python3.display()))?;
    let mut lines = out.lines();
    match (lines.next(), lines.next()) {
        (Some(version), Some(executable)) if !executable.is_empty() => {
            Ok(HostPython { version: version.to_string(), executable: executable.to_string() })
        }
        _ => bail!("unexpected answer from {}: {out:?}", python3.display()),
    }
}

/// What the stamp records: the Python that made the virtualenv and a checksum of the requirements installed.
fn stamp(host: &HostPython, requirements: &str) -> String {
    format!(
        "# Written by cargo xtask after a complete install; the virtualenv is remade when this would change.\n\
         python = {} ({})\nrequirements = fnv1a:{:016x}\n",
        host.version,
        host.executable,
        gen::fnv1a(requirements.as_bytes())
    )
}

/// Holds an exclusive lock on the app's virtualenv until dropped; waits (saying so) while another holds it.
fn lock(config: &Config) -> Result<File> {
    let path = config.state_dir().join("venv.lock");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", paths::display(dir)))?;
    }
    let file = File::create(&path).with_context(|| format!("cannot open {}", paths::display(&path)))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            println!("venv: waiting for another cargo xtask that is refreshing {}", paths::display(&config.app_dir));
            file.lock().with_context(|| format!("cannot lock {}", paths::display(&path)))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", paths::display(&path)))
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_changes_with_the_requirements_and_the_python() {
        let host = HostPython { version: "3.11.7".into(), executable: "/usr/bin/python3.11".into() };
        let other = HostPython { version: "3.11.9".into(), executable: "/usr/bin/python3.11".into() };
        let a = stamp(&host, "fastapi==0.1 --hash=sha256:aa\n");
        assert_eq!(a, stamp(&host, "fastapi==0.1 --hash=sha256:aa\n"));
        assert_ne!(a, stamp(&host, "fastapi==0.2 --hash=sha256:bb\n"));
        assert_ne!(a, stamp(&other, "fastapi==0.1 --hash=sha256:aa\n"));
    }

    #[test]
    fn local_venv_gets_the_non_optional_groups() {
        let dir = std::env::temp_dir().join(format!("xtask-venv-groups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"demo\"\nversion = \"1.0\"\n\n\
             [tool.poetry.group.dev.dependencies]\npytest = \"*\"\n\n\
             [tool.poetry.group.docs]\noptional = true\n[tool.poetry.group.docs.dependencies]\nmkdocs = \"*\"\n\n\
             [tool.poetry.group.lint.dependencies]\nruff = \"*\"\n\n\
             [tool.xtask]\ngroups = [\"docs\"]\n",
        )
        .unwrap();
        let config = Config::read(&dir).unwrap();
        assert_eq!(local_groups(&config).unwrap(), ["dev", "lint", "docs"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn src_layout_packages_are_put_on_the_python_path() {
        let dir = std::env::temp_dir().join(format!("xtask-venv-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/pkg")).unwrap();
        std::fs::write(dir.join("src/pkg/main.py"), "app = None\n").unwrap();
        let pyproject = "[project]\nname = \"demo\"\nversion = \"1.0\"\n\n[tool.poetry]\npackages = [{ include = \"pkg\", from = \"src\" }]\n";
        std::fs::write(dir.join("pyproject.toml"), pyproject).unwrap();
        let config = Config::read(&dir).unwrap();
        let path = python_path(&config).expect("src layout needs PYTHONPATH");
        assert_eq!(std::env::split_paths(&path).next().unwrap(), dir.join("src"));
        std::fs::write(dir.join("pyproject.toml"), pyproject.replace(", from = \"src\"", "")).unwrap();
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        assert_eq!(python_path(&Config::read(&dir).unwrap()), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
