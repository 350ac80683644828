//! What the image's virtualenv will hold, read from its wheels before anything is built: the console scripts
//! (the command's and the release step's executables must be among them), the top-level modules (the app's
//! module must be the app's own or one of them), and whether every requirement of every wheel is met by
//! another one for the target (a lock that lost a `[[package]]` gives an image that answers /health and fails
//! on first use: `anyio requires idna`), and the license each wheel's metadata states, for the SBOM. Read with
//! the host's python (zipfile, email, pip's packaging), once per wheel: what a wheel holds is kept in a cache
//! shared by every app, by the wheel's sha256, and the markers' values in the markers memo of the target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use xshell::Shell;

use crate::config::Config;
use crate::gen;

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

/// Reads each wheel given on stdin (`path<TAB>sha256`) and prints what it holds, a block per wheel that starts
/// with `wheel<TAB>sha256`; then each distinct marker of their requirements with its value for the marker
/// environment given as arguments (`marker<TAB>0|1<TAB>marker`).
const SCRIPT: &str = r#"
import configparser, email.parser, sys, zipfile
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
env = dict(a.split("=", 1) for a in sys.argv[1:])
env["extra"] = ""
markers = {}
clean = lambda v: " ".join(str(v).split())
for line in sys.stdin.read().splitlines():
    path, sha256 = line.split("\t")
    print("wheel", sha256, sep="\t")
    with zipfile.ZipFile(path) as z:
        files = z.namelist()
        info = next(f.split("/")[0] for f in files if f.endswith(".dist-info/METADATA") and f.count("/") == 1)
        text = z.read(info + "/METADATA").decode("utf-8", "replace")
        metadata = text.split("\n\n")[0]
        fields = [line.split(": ", 1) for line in metadata.splitlines() if ": " in line]
        headers = email.parser.HeaderParser().parsestr(text)
        if headers.get("License-Expression"):
            print("license", "expression", clean(headers["License-Expression"]), sep="\t")
        else:
            stated = [c.split("::")[-1].strip() for c in headers.get_all("Classifier") or [] if c.startswith("License ::")]
            stated = [n for n in stated if n and n != "OSI Approved"]
            if not stated and headers.get("License") and str(headers["License"]).strip() not in ("", "UNKNOWN"):
                stated = [clean(str(headers["License"]).strip().splitlines()[0])[:100]]
            for license in stated:
                print("license", "name", license, sep="\t")
        name = next(v for k, v in fields if k == "Name")
        version = next((v for k, v in fields if k == "Version"), "")
        print("dist", canonicalize_name(name), clean(name), clean(version), sep="\t")
        for k, v in fields:
            if k != "Requires-Dist":
                continue
            try:
                requirement = Requirement(v)
            except Exception:
                continue
            marker = str(requirement.marker) if requirement.marker is not None else ""
            if marker and marker not in markers and "\n" not in marker:
                markers[marker] = requirement.marker.evaluate(env)
            print("requires", canonicalize_name(requirement.name), clean(str(requirement).split(";")[0].strip()), marker, sep="\t")
        if info + "/entry_points.txt" in files:
            points = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            points.optionxform = str
            points.read_string(z.read(info + "/entry_points.txt").decode("utf-8", "replace"))
            for group in ("console_scripts", "gui_scripts"):
                if points.has_section(group):
                    for script in points.options(group):
                        print("script", script.strip(), sep="\t")
        tops = set()
        for f in files:
            top = f.split("/")[0]
            if top.endswith((".dist-info", ".data", ".pth")):
                continue
            if "/" in f or top.endswith(".py") or top.endswith(".so"):
                tops.add(top.split(".")[0])
        for top in sorted(tops):
            print("module", top, sep="\t")
for marker, value in markers.items():
    print("marker", int(value), marker, sep="\t")
"#;

/// What one wheel holds, as `SCRIPT` prints it (and the cache keeps it, by the wheel's sha256): lines
/// `dist`, `license`, `requires` (canonical name, requirement, marker), `script`, `module`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct WheelFacts {
    lines: Vec<String>,
}

/// The inventory of `wheels` (paths and sha256) for a target with the marker environment `environment`. What
/// each wheel holds is read once (the host's python, for the wheels not read before) and kept in `cache`, a
/// folder shared by every app, by the wheel's sha256: a new dependency costs the read of its wheel alone. The
/// requirements' markers are answered through the markers memo of the environment (`wheels::marker_values`).
pub(crate) fn read(
    sh: &Shell,
    python: &Path,
    wheels: &[(PathBuf, String)],
    environment: &[(&'static str, String)],
    cache: &Path,
) -> Result<Inventory> {
    let cached = |sha256: &str| -> Option<WheelFacts> {
        let text = std::fs::read_to_string(cache.join(format!("{sha256}.txt"))).ok()?;
        let lines: Vec<String> = text.strip_prefix("xtask inventory 3\n")?.lines().map(str::to_string).collect();
        Some(WheelFacts { lines })
    };
    let mut facts: BTreeMap<String, WheelFacts> = BTreeMap::new();
    let mut unread: Vec<&(PathBuf, String)> = Vec::new();
    for wheel in wheels {
        match cached(&wheel.1) {
            Some(found) => {
                facts.insert(wheel.1.clone(), found);
            }
            None => unread.push(wheel),
        }
    }
    let env: Vec<String> = environment.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut learned: BTreeMap<String, bool> = BTreeMap::new();
    if !unread.is_empty() {
        let input: String = unread.iter().map(|(path, sha256)| format!("{}\t{sha256}\n", path.display())).collect();
        let output = sh
            .cmd(python)
            .arg("-c")
            .arg(SCRIPT)
            .args(&env)
            .stdin(input)
            .quiet()
            .read()
            .context("cannot read the wheels' metadata with the host's python3")?;
        let mut current: Option<(String, WheelFacts)> = None;
        let mut finished: Vec<(String, WheelFacts)> = Vec::new();
        for line in output.lines() {
            if let Some(sha256) = line.strip_prefix("wheel\t") {
                finished.extend(current.take());
                current = Some((sha256.to_string(), WheelFacts::default()));
            } else if let Some(rest) = line.strip_prefix("marker\t") {
                if let Some((value, marker)) = rest.split_once('\t') {
                    learned.insert(marker.to_string(), value == "1");
                }
            } else if let Some((_, wheel)) = current.as_mut() {
                wheel.lines.push(line.to_string());
            }
        }
        finished.extend(current);
        std::fs::create_dir_all(cache).with_context(|| format!("cannot create {}", crate::paths::display(cache)))?;
        for (sha256, wheel) in finished {
            let text =
                format!("xtask inventory 3\n{}", wheel.lines.iter().map(|l| format!("{l}\n")).collect::<String>());
            gen::write_atomic(&cache.join(format!("{sha256}.txt")), text.as_bytes())?;
            facts.insert(sha256, wheel);
        }
    }
    let mut by_file: Vec<(&str, &WheelFacts)> = Vec::new();
    for (path, sha256) in wheels {
        let facts =
            facts.get(sha256).ok_or_else(|| format_err!("python3 did not read {}", crate::paths::display(path)))?;
        by_file.push((path.file_name().and_then(|n| n.to_str()).unwrap_or_default(), facts));
    }
    let markers: Vec<String> = by_file
        .iter()
        .flat_map(|(_, f)| f.lines.iter().filter_map(|l| l.strip_prefix("requires\t")))
        .filter_map(|rest| rest.splitn(3, '\t').nth(2).filter(|m| !m.is_empty()).map(str::to_string))
        .collect();
    let values = crate::wheels::marker_values(sh, python, &env, &markers, learned)?;
    Ok(assemble(&by_file, &values))
}

/// The inventory of the wheels' facts (`(file name, facts)`), with the value of each requirement's marker.
fn assemble(wheels: &[(&str, &WheelFacts)], markers: &BTreeMap<String, bool>) -> Inventory {
    let mut inventory = Inventory::default();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut requires: Vec<(&str, &str, &str, &str)> = Vec::new();
    for (file, facts) in wheels {
        let mut dist = ("", "");
        for line in &facts.lines {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["dist", canonical, name, version] => {
                    names.insert(canonical);
                    dist = (name, version);
                }
                ["license", "expression", value] => {
                    inventory
                        .licenses
                        .entry(file.to_string())
                        .or_insert_with(|| License::Expression(value.to_string()));
                }
                ["license", _, value] => {
                    let entry =
                        inventory.licenses.entry(file.to_string()).or_insert_with(|| License::Names(Vec::new()));
                    if let License::Names(names) = entry {
                        if !names.iter().any(|n| n == value) {
                            names.push(value.to_string());
                        }
                    }
                }
                ["requires", canonical, requirement, marker]
                    if marker.is_empty() || markers.get(*marker).copied().unwrap_or(true) =>
                {
                    requires.push((dist.0, dist.1, canonical, requirement));
                }
                ["script", name] => {
                    inventory.scripts.insert(name.to_string());
                }
                ["module", name] => {
                    inventory.modules.insert(name.to_string());
                }
                _ => {}
            }
        }
    }
    for (name, version, canonical, requirement) in requires {
        if !names.contains(canonical) {
            inventory.missing.push(format!("{name} {version} requires {requirement}"));
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
    fn assembles_the_wheels_facts_with_their_markers() {
        let anyio = WheelFacts {
            lines: [
                "dist\tanyio\tanyio\t4.4.0",
                "license\texpression\tMIT OR Apache-2.0",
                "requires\tidna\tidna>=2.8\t",
                "requires\tsniffio\tsniffio>=1.1\t",
                "requires\texceptiongroup\texceptiongroup>=1.0.2\tpython_version < \"3.11\"",
                "requires\ttrio\ttrio>=0.23\textra == \"trio\"",
                "module\tanyio",
            ]
            .map(String::from)
            .to_vec(),
        };
        let sniffio = WheelFacts {
            lines: ["dist\tsniffio\tsniffio\t1.3.1", "license\tname\tMIT License", "license\tname\tMIT License"]
                .map(String::from)
                .to_vec(),
        };
        let uvicorn = WheelFacts {
            lines: ["dist\tuvicorn\tuvicorn\t0.30.0", "script\tuvicorn", "module\tuvicorn"].map(String::from).to_vec(),
        };
        let markers: BTreeMap<String, bool> =
            [("python_version < \"3.11\"".to_string(), false), ("extra == \"trio\"".to_string(), false)].into();
        let wheels = [("a-1-py3-none-any.whl", &anyio), ("b-1-py3-none-any.whl", &sniffio), ("u.whl", &uvicorn)];
        let inventory = assemble(&wheels, &markers);
        assert_eq!(inventory.licenses["a-1-py3-none-any.whl"], License::Expression("MIT OR Apache-2.0".into()));
        assert_eq!(inventory.licenses["b-1-py3-none-any.whl"], License::Names(vec!["MIT License".into()]));
        assert_eq!(inventory.scripts.iter().collect::<Vec<_>>(), ["uvicorn"]);
        assert_eq!(inventory.modules.iter().collect::<Vec<_>>(), ["anyio", "uvicorn"]);
        assert_eq!(inventory.missing, ["anyio 4.4.0 requires idna>=2.8"]);
        let markers: BTreeMap<String, bool> = [("python_version < \"3.11\"".to_string(), true)].into();
        let inventory = assemble(&wheels, &markers);
        assert_eq!(inventory.missing.len(), 3, "{:?}", inventory.missing);
    }
}
