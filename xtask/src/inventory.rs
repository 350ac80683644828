//! What the image's virtualenv will hold, read from its wheels before anything is built: the console scripts
//! (the command's and the release step's executables must be among them), the top-level modules (the app's
//! module must be the app's own or one of them), and whether every requirement of every wheel is met by
//! another one for the target (a lock that lost a `[[package]]` gives an image that answers /health and fails
//! on first use: `anyio requires idna`), and the license each wheel's metadata states, for the SBOM. Read with
//! the host's python (zipfile, email, pip's packaging), once per set of wheels: the answer is kept in the state
//! directory under a key of the wheels' hashes and the target.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::config::Config;
use crate::gen;
use poetry_export::sha256::Sha256;

/// The wheels' contents that `image` checks the settings against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Inventory {
    pub(crate) scripts: BTreeSet<String>,
    pub(crate) modules: BTreeSet<String>,
    /// `anyio 4.4.0 requires idna>=2.8`: requirements no wheel meets.
    pub(crate) missing: Vec<String>,
    /// What each wheel's metadata says of its license, by the wheel's file name: its `License-Expression`
    /// (PEP 639), else the names of its `License ::` classifiers, else the first line of its `License` field.
    pub(crate) licenses: std::collections::BTreeMap<String, License>,
}

/// A wheel's license as its metadata states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum License {
    /// An SPDX expression (`MIT OR Apache-2.0`).
    Expression(String),
    /// Names (`MIT License`, `BSD-3-Clause`).
    Names(Vec<String>),
}

const SCRIPT: &str = r#"
import configparser, email.parser, os, sys, zipfile
from pip._vendor.packaging.markers import Marker
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
env = dict(a.split("=", 1) for a in sys.argv[1:])
env["extra"] = ""
names, requires = set(), []
for path in sys.stdin.read().splitlines():
    with zipfile.ZipFile(path) as z:
        files = z.namelist()
        info = next(f.split("/")[0] for f in files if f.endswith(".dist-info/METADATA") and f.count("/") == 1)
        text = z.read(info + "/METADATA").decode("utf-8", "replace")
        metadata = text.split("\n\n")[0]
        fields = [line.split(": ", 1) for line in metadata.splitlines() if ": " in line]
        headers = email.parser.HeaderParser().parsestr(text)
        clean = lambda v: " ".join(str(v).split())
        wheel = os.path.basename(path)
        if headers.get("License-Expression"):
            print("license", wheel, "expression", clean(headers["License-Expression"]), sep="\t")
        else:
            stated = [c.split("::")[-1].strip() for c in headers.get_all("Classifier") or [] if c.startswith("License ::")]
            stated = [n for n in stated if n and n != "OSI Approved"]
            if not stated and headers.get("License") and str(headers["License"]).strip() not in ("", "UNKNOWN"):
                stated = [clean(str(headers["License"]).strip().splitlines()[0])[:100]]
            for license in stated:
                print("license", wheel, "name", license, sep="\t")
        name = next(v for k, v in fields if k == "Name")
        version = next((v for k, v in fields if k == "Version"), "")
        names.add(canonicalize_name(name))
        requires += [(name, version, v) for k, v in fields if k == "Requires-Dist"]
        if info + "/entry_points.txt" in files:
            points = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            points.optionxform = str
            points.read_string(z.read(info + "/entry_points.txt").decode("utf-8", "replace"))
            for group in ("console_scripts", "gui_scripts"):
                if points.has_section(group):
                    for script in points.options(group):
                        print("script", script.strip())
        for f in files:
            top = f.split("/")[0]
            if top.endswith((".dist-info", ".data")) or top.endswith(".pth"):
                continue
            if "/" in f or top.endswith(".py") or top.endswith(".so"):
                print("module", top.split(".")[0])
for name, version, text in requires:
    try:
        requirement = Requirement(text)
    except Exception:
        continue
    if requirement.marker is not None and not requirement.marker.evaluate(env):
        continue
    if canonicalize_name(requirement.name) not in names:
        print("missing", name, version, "requires", str(requirement).split(";")[0].strip())
"#;

/// The inventory of `wheels` (paths and sha256) for a target with the marker environment `environment`,
/// from the cache `cache` when it was read for the same wheels before.
pub(crate) fn read(
    sh: &Shell,
    python: &Path,
    wheels: &[(PathBuf, String)],
    environment: &[(&'static str, String)],
    cache: &Path,
) -> Result<Inventory> {
    let mut hasher = Sha256::default();
    hasher.update(b"xtask inventory 2\n");
    let mut sorted: Vec<&(PathBuf, String)> = wheels.iter().collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1));
    for (_, sha256) in &sorted {
        hasher.update(format!("{sha256}\n").as_bytes());
    }
    for (key, value) in environment {
        hasher.update(format!("{key}={value}\n").as_bytes());
    }
    let key = hasher.hex();
    if let Ok(text) = std::fs::read_to_string(cache) {
        if let Some(rest) = text.strip_prefix(&format!("key {key}\n")) {
            return Ok(parse(rest));
        }
    }
    let env: Vec<String> = environment.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let input: String = wheels.iter().map(|(path, _)| format!("{}\n", path.display())).collect();
    let output = sh
        .cmd(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(&env)
        .stdin(input)
        .quiet()
        .read()
        .context("cannot read the wheels' metadata with the host's python3")?;
    let text = format!("{output}\n");
    gen::write_atomic(cache, format!("key {key}\n{text}").as_bytes())?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Inventory {
    let mut inventory = Inventory::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("license\t") {
            let fields: Vec<&str> = rest.split('\t').collect();
            if let [wheel, kind, value] = fields.as_slice() {
                let entry = inventory.licenses.entry(wheel.to_string());
                match *kind {
                    "expression" => {
                        entry.or_insert_with(|| License::Expression(value.to_string()));
                    }
                    _ => {
                        if let License::Names(names) = entry.or_insert_with(|| License::Names(Vec::new())) {
                            if !names.iter().any(|n| n == value) {
                                names.push(value.to_string());
                            }
                        }
                    }
                }
            }
            continue;
        }
        match line.split_once(' ') {
            Some(("script", name)) => {
                inventory.scripts.insert(name.to_string());
            }
            Some(("module", name)) => {
                inventory.modules.insert(name.to_string());
            }
            Some(("missing", what)) => inventory.missing.push(what.to_string()),
            _ => {}
        }
    }
    inventory
}

/// Programs every base image has besides the virtualenv's scripts.
const BASE_PROGRAMS: &[&str] = &["python", "python3", "sh", "bash", "env"];

/// Checks the settings against what the image will hold: the dependency closure, the executables of the
/// command and of the release step, and the module of `app` when the command serves it.
pub(crate) fn check(config: &Config, inventory: &Inventory) -> Result<()> {
    if !inventory.missing.is_empty() {
        bail!(
            "the locked dependencies are incomplete for the image: {}. poetry.lock lacks a package that another \
             one needs on this target: run `poetry lock` (and check the lock's [[package]] entries)",
            inventory.missing.join("; ")
        );
    }
    for (setting, command) in [("command", &config.command), ("release", &config.release)] {
        let Some(program) = command.first() else { continue };
        let python = program.starts_with("python3.") && program[8..].chars().all(|c| c.is_ascii_digit());
        if program.contains('/') || python || BASE_PROGRAMS.contains(&program.as_str()) {
            continue;
        }
        if !inventory.scripts.contains(program) {
            let known: Vec<&str> = inventory.scripts.iter().map(String::as_str).take(12).collect();
            bail!(
                "the executable of tool.xtask.{setting}, `{program}`, is not in the image: no package the image \
                 installs provides it (it has: {}). Add the package that provides {program} to the project's \
                 dependencies and lock again, or change tool.xtask.{setting}",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            );
        }
    }
    let Some(app) = &config.app else { return Ok(()) };
    let served = app.trim_end_matches("()");
    if !config.command.iter().any(|word| word == app || word == served) {
        return Ok(());
    }
    let module = served.split(':').next().unwrap_or_default();
    if !module_in_app(config, module) && !inventory.modules.contains(module.split('.').next().unwrap_or_default()) {
        let included: Vec<&str> = config.include.iter().map(|i| i.dest.as_str()).collect();
        bail!(
            "the module of tool.xtask.app, `{module}`, is not in the image: neither the app's files (tool.xtask.include: \
             {}) nor a dependency has it. Set tool.xtask.app to the module that makes the app, or include it",
            if included.is_empty() { "nothing".to_string() } else { included.join(", ") }
        );
    }
    Ok(())
}

/// Whether the app's own files, as the image gets them, hold `module` (`pkg.web` → `pkg/web.py` or
/// `pkg/web/__init__.py` under an included `pkg`, or an included `pkg.py` for a top-level module).
fn module_in_app(config: &Config, module: &str) -> bool {
    let parts: Vec<&str> = module.split('.').collect();
    config.include.iter().any(|include| {
        let dest = include.dest.trim_end_matches('/');
        let source = config.app_dir.join(&include.source);
        if parts.len() == 1 && dest == format!("{}.py", parts[0]) {
            return source.is_file();
        }
        if dest != parts[0] || !source.is_dir() {
            return false;
        }
        let rest = parts[1..].join("/");
        if rest.is_empty() {
            return source.join("__init__.py").is_file();
        }
        source.join(format!("{rest}.py")).is_file() || source.join(&rest).join("__init__.py").is_file()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_answer() {
        let inventory = parse(
            "script uvicorn\nmodule uvicorn\nmodule h11\nmissing anyio 4.4.0 requires idna>=2.8\n\
             license\ta-1-py3-none-any.whl\texpression\tMIT OR Apache-2.0\n\
             license\tb-1-py3-none-any.whl\tname\tBSD License\nlicense\tb-1-py3-none-any.whl\tname\tBSD License\n",
        );
        assert_eq!(inventory.licenses["a-1-py3-none-any.whl"], License::Expression("MIT OR Apache-2.0".into()));
        assert_eq!(inventory.licenses["b-1-py3-none-any.whl"], License::Names(vec!["BSD License".into()]));
        assert_eq!(inventory.scripts.iter().collect::<Vec<_>>(), ["uvicorn"]);
        assert_eq!(inventory.modules.len(), 2);
        assert_eq!(inventory.missing, ["anyio 4.4.0 requires idna>=2.8"]);
    }
}
