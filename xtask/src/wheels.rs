//! `cargo xtask wheels`: the wheelhouse for the image's target (its Python version and platform, not the
//! host's), checked against poetry.lock's hashes, so that the image build needs no network and no compiler.
//!
//! Each locked package the image needs (its marker evaluated for the target) comes from one of:
//! - a published wheel that fits the target: the locked file pip would pick (`Target::preference`, the order of
//!   `packaging.tags` for the target: manylinux tags up to the base image's glibc, then `linux_<arch>`, which pip
//!   takes on Linux: PyTorch's local versions such as `torch 2.0.1+cu118` publish those), from the download
//!   cache or fetched while its index page is looked up (`index.rs`), checked against the lock's sha256; `pip
//!   download --only-binary=:all: --python-version X.Y ...` for what the look-up cannot fetch;
//! - its sdist, when no wheel fits: fetched and checked against the lock's hash, then built for the target in
//!   a container of the base image with `tool.xtask.build-packages` (`sdists.rs`), cached by the sdist's hash
//!   and the target; on the host, and only to a pure-Python wheel, when no base image is at hand;
//! - a URL dependency: its wheel fetched and checked against the lock's sha256, or its sdist built as above;
//! - a git dependency: the locked commit built on the host (`git_deps.rs`);
//! - a path dependency: built on the host (`path_deps.rs`).
//!
//! Every package that cannot be had is listed at once, each with what would make it buildable: first what the
//! lock alone tells (no file fits, a folder missing), then what the indexes and builds tell. Private indexes get
//! their credentials (`credentials.rs`) on the host only. Every file is checked against the lock's sha256 (or,
//! built here, recorded with its own). A stamp records the inputs (requirements, target, build packages, base
//! image) and each file's size, time and hash: when nothing changed the wheelhouse is reused without running
//! pip, after checking the files are still the ones recorded.
//!
//! The wheelhouse is made in `wheelhouse.tmp` (removed however the run ends) and replaces the one there only when
//! complete and checked. A full disk, or an index that stops answering in the middle, is an error that says so
//! (`Fault`), with what to do; the next run starts again from what is there.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use poetry_export::sha256::Sha256;
use poetry_export::{ExportRequest, SelectedPackage, Selection};
use xshell::Shell;

use crate::config::{Config, PythonVersion};
use crate::credentials::IndexAuth;
use crate::engine::{Engine, ImageInfo};
use crate::export;
use crate::flags::Wheels;
use crate::git_deps::{self, GitSource};
use crate::identity::{self, Identity};
use crate::sdists::{self, Need};
use crate::settings;
use crate::{gen, index, path_deps, paths, pip, signals};

/// The glibc assumed when the base image cannot be asked (no engine, or the image is not there yet): the
/// manylinux_2_28 baseline, which Debian 10+, Ubuntu 18.10+ and RHEL 8+ meet.
const ASSUMED_GLIBC: (u32, u32) = (2, 28);

impl Wheels {
    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        let config = settings::resolve(&self.settings)?.config;
        let engine = settings::engine_choice(&self.engine).and_then(|choice| choice.engine(self.dry_run));
        fill(sh, &config, engine.ok(), self.dry_run)
    }
}

/// `cargo xtask wheels`: the wheelhouse for the base image's target when the engine has it, else for an assumed
/// glibc.
fn fill(sh: &Shell, config: &Config, engine: Option<Engine>, dry_run: bool) -> Result<()> {
    signals::watch()?;
    let _lock = if dry_run { None } else { Some(lock_state(config)?) };
    let selection = select(config)?;
    let base = match &engine {
        Some(engine) if !dry_run => match engine.images(sh, &[&config.base_image]) {
            Ok(mut found) => found.pop().flatten(),
            Err(e) => {
                println!("wheels: note: cannot ask the engine about the base image ({e})");
                None
            }
        },
        _ => None,
    };
    let facts = match (&engine, &base) {
        (Some(engine), Some(base)) => Some(base_facts(sh, engine, config, base)?),
        _ => {
            if !dry_run {
                println!(
                    "wheels: note: the base image {} is not available locally; assuming glibc {}.{} for the wheels \
                     (`cargo xtask image` asks the base image itself)",
                    config.base_image, ASSUMED_GLIBC.0, ASSUMED_GLIBC.1
                );
            }
            None
        }
    };
    let target = Target::new(config, facts.as_ref())?;
    let host = match (&engine, &base) {
        (Some(engine), Some(base)) => Some(BuildHost { engine, image: base.id.clone() }),
        (Some(engine), None) if dry_run => Some(BuildHost { engine, image: config.base_image.clone() }),
        _ => None,
    };
    let wheelhouse = ensure(sh, config, &selection, &target, host.as_ref(), dry_run)?;
    if !dry_run {
        let needed: BTreeSet<&str> =
            wheelhouse.needs.iter().flat_map(|(_, needs)| needs.iter().map(|n| n.package.as_str())).collect();
        if !needed.is_empty() {
            println!(
                "wheels: note: the wheels built here link libraries the base image lacks, from {}: the image \
                 installs them from tool.xtask.system-packages (`cargo xtask image` checks it does)",
                needed.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        println!("wheels: requirements for the image in {}", paths::display(&wheelhouse.requirements));
    }
    Ok(())
}

/// What builds sdists for the target: the engine, and the base image (its id; its name in a dry run).
pub(crate) struct BuildHost<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) image: String,
}

/// The hash-pinned requirements of the image (main, `tool.xtask.groups`, `tool.xtask.extras`), with the
/// packages and files behind them.
pub(crate) fn select(config: &Config) -> Result<Selection> {
    export::select(&config.app_dir, &ExportRequest::for_image(&config.groups, &config.extras))
        .with_context(|| format!("cannot export the locked requirements of {}", paths::display(&config.app_dir)))
}

/// Holds an exclusive lock on the app's state directory (wheelhouse, build context) until dropped; waits, saying
/// so, while another `cargo xtask image`/`wheels`/`run` of the same image name holds it.
pub(crate) fn lock_state(config: &Config) -> Result<File> {
    let dir = config.state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", paths::display(&dir)))?;
    let path = dir.join("image.lock");
    let file = File::create(&path).with_context(|| format!("cannot open {}", paths::display(&path)))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            println!("wheels: waiting for another cargo xtask working on {}", paths::display(&dir));
            file.lock().with_context(|| format!("cannot lock {}", paths::display(&path)))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", paths::display(&path)))
        }
    }
    Ok(file)
}

// ---------------------------------------------------------------------------------------------------------
// The target
// ---------------------------------------------------------------------------------------------------------

/// What the base image holds, asked once per image id: `platform.python_version()`, `platform.machine()` and
/// `platform.libc_ver()` of its python3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseFacts {
    pub(crate) id: String,
    pub(crate) python_full: String,
    pub(crate) machine: String,
    /// `(2, 36)`; `None` for a libc other than glibc (musl).
    pub(crate) glibc: Option<(u32, u32)>,
}

const PROBE_SCRIPT: &str =
    "import platform; print(platform.python_version(), platform.machine(), *(platform.libc_ver() or ('', '')))";

/// The base image's facts: from the cache in the state directory when it was asked about this image id before,
/// else from `python3` in a throwaway container of it.
pub(crate) fn base_facts(sh: &Shell, engine: &Engine, config: &Config, base: &ImageInfo) -> Result<BaseFacts> {
    let cache = paths::base_image_facts(&config.state_dir());
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some(facts) = parse_facts(&text).filter(|f| f.id == base.id) {
            return Ok(facts);
        }
    }
    println!("wheels: asking the base image {} for its Python, machine and libc", config.base_image);
    std::thread::spawn(MarkerEvaluator::start);
    let answer = engine.python_in(sh, &base.id, PROBE_SCRIPT).with_context(|| {
        format!("the base image {} must have python3 on PATH (an official python:<X.Y>-slim does)", config.base_image)
    })?;
    let text = format!("{} {}\n", base.id, answer.trim());
    let facts = parse_facts(&text)
        .ok_or_else(|| format_err!("unexpected answer from python3 in {}: {answer:?}", config.base_image))?;
    gen::write_atomic(&cache, text.as_bytes())?;
    Ok(facts)
}

/// The base image's facts as last asked, whatever its id now (for a dry run, which asks the engine nothing).
pub(crate) fn cached_facts(config: &Config) -> Option<BaseFacts> {
    let text = std::fs::read_to_string(paths::base_image_facts(&config.state_dir())).ok()?;
    parse_facts(&text)
}

/// `<id> <python version> <machine> [glibc <version>]`.
fn parse_facts(text: &str) -> Option<BaseFacts> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let glibc = match words.get(3..) {
        Some(["glibc", version]) => {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        }
        _ => None,
    };
    match words.as_slice() {
        [id, python, machine, ..] => {
            Some(BaseFacts { id: id.to_string(), python_full: python.to_string(), machine: machine.to_string(), glibc })
        }
        _ => None,
    }
}

/// What the wheelhouse is built for: the image's Python and platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) python: PythonVersion,
    /// The base image's full version (`3.11.2`), for `python_full_version` markers; `X.Y.0` when unknown.
    pub(crate) python_full: String,
    /// `linux/amd64`
    pub(crate) platform: String,
    /// `x86_64`: the wheel tags' and `platform_machine`'s name for the platform.
    pub(crate) machine: String,
    /// The newest glibc the image has.
    pub(crate) glibc: (u32, u32),
    /// Where `glibc` and `python_full` come from, for messages.
    pub(crate) origin: String,
}

impl Target {
    /// The target of `config`, checked against what the base image holds (`facts`) when known.
    pub(crate) fn new(config: &Config, facts: Option<&BaseFacts>) -> Result<Target> {
        let python = config.python;
        let machine = machine_of(&config.platform)?;
        let Some(facts) = facts else {
            return Ok(Target {
                python,
                python_full: format!("{}.0", config.python),
                platform: config.platform.clone(),
                machine: machine.to_string(),
                glibc: ASSUMED_GLIBC,
                origin: "assumed: the base image was not asked".to_string(),
            });
        };
        let base_minor = facts.python_full.split('.').take(2).collect::<Vec<_>>().join(".");
        if base_minor != config.python.to_string() {
            bail!(
                "the base image {} has Python {}, but the image is for Python {} (tool.xtask.python or --python): \
                 pass a base image with Python {} (--base-image or {}), or build for Python {base_minor} \
                 (--python {base_minor})",
                config.base_image,
                facts.python_full,
                config.python,
                config.python,
                settings::BASE_IMAGE_ENV
            );
        }
        let same_machine = facts.machine == machine || (machine == "i686" && facts.machine.starts_with('i'));
        if !same_machine {
            bail!(
                "the base image {} is for {} machines, but the image's platform is {} ({machine}): pull the base \
                 image for that platform (`docker pull --platform {} {}`) or pass --platform",
                config.base_image,
                facts.machine,
                config.platform,
                config.platform,
                config.base_image
            );
        }
        let Some(glibc) = facts.glibc else {
            bail!(
                "the base image {} does not use glibc (Alpine and other musl images are not supported): use a \
                 Debian or Ubuntu based image such as python:{}-slim",
                config.base_image,
                config.python
            );
        };
        Ok(Target {
            python,
            python_full: facts.python_full.clone(),
            platform: config.platform.clone(),
            machine: machine.to_string(),
            glibc,
            origin: format!("asked from {}", config.base_image),
        })
    }

    /// `CPython 3.11 on linux/amd64 (glibc 2.36)`.
    pub(crate) fn short(&self) -> String {
        format!("CPython {} on {} (glibc {}.{})", self.python, self.platform, self.glibc.0, self.glibc.1)
    }

    /// `CPython 3.11.2, linux/amd64 (x86_64, glibc 2.36)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "CPython {}, {} ({}, glibc {}.{}, {})",
            self.python_full, self.platform, self.machine, self.glibc.0, self.glibc.1, self.origin
        )
    }

    /// Everything that decides which files the wheelhouse holds.
    fn key(&self) -> String {
        format!("{} {} {} glibc {}.{}", self.python.cp(), self.python_full, self.machine, self.glibc.0, self.glibc.1)
    }

    /// The platform tags of wheels that run on the target, newest first: `manylinux_2_<N>_<arch>` for every glibc
    /// from the target's down to 2.17 (2.5 on x86), their legacy aliases, and last `linux_<arch>`: pip on Linux
    /// takes those (wheels built for "this machine": PyTorch's `+cu118` builds, and the ones built here).
    pub(crate) fn platform_tags(&self) -> Vec<String> {
        let arch = &self.machine;
        let legacy_x86 = arch == "x86_64" || arch == "i686";
        let lowest = if legacy_x86 { 5 } else { 17 };
        let mut tags = Vec::new();
        if self.glibc.0 != 2 {
            return tags;
        }
        for minor in (lowest..=self.glibc.1).rev() {
            tags.push(format!("manylinux_2_{minor}_{arch}"));
            match minor {
                17 => tags.push(format!("manylinux2014_{arch}")),
                12 if legacy_x86 => tags.push(format!("manylinux2010_{arch}")),
                5 if legacy_x86 => tags.push(format!("manylinux1_{arch}")),
                _ => {}
            }
        }
        tags.push(format!("linux_{arch}"));
        tags
    }

    /// Whether a wheel (by its file name) installs on the target: one of its tag triples is one pip accepts for
    /// CPython X.Y on these platforms.
    pub(crate) fn fits(&self, wheel: &str, platforms: &[String]) -> bool {
        let Some(stem) = wheel.strip_suffix(".whl") else { return false };
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() < 5 {
            return false;
        }
        let n = parts.len();
        let cp = self.python.cp();
        parts[n - 3].split('.').any(|py| {
            parts[n - 2].split('.').any(|abi| {
                parts[n - 1].split('.').any(|plat| {
                    let platform_ok = plat == "any" || platforms.iter().any(|p| p == plat);
                    let python_ok = match abi {
                        "none" => py == cp || self.at_most(py, "py", 0),
                        "abi3" => self.at_most(py, "cp", 2),
                        abi => abi == cp && py == cp,
                    };
                    platform_ok && python_ok
                })
            })
        })
    }

    /// How much pip prefers a wheel (by its file name) on the target, lower first: the best place among its tag
    /// triples in the order of `packaging.tags.sys_tags()` for CPython X.Y on these platforms (the interpreter's
    /// ABI, then abi3, then none, each over the platforms newest first; abi3 of older CPythons; `pyXY`/`py3`
    /// with a platform; `cpXY-none-any`; `pyXY-none-any`, `py3-none-any` and older). `None` when it does not fit.
    pub(crate) fn preference(&self, wheel: &str, platforms: &[String]) -> Option<usize> {
        let stem = wheel.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() < 5 {
            return None;
        }
        let n = parts.len();
        let (major, minor) = (self.python.major, self.python.minor as usize);
        let cp = self.python.cp();
        let count = platforms.len();
        // `pyXY`, `pyX`, `pyX(Y-1)` ... `pyX0`: pip's range of Python tags, best first.
        let mut py_range = vec![format!("py{major}{minor}"), format!("py{major}")];
        py_range.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
        let abi3_older = minor.saturating_sub(2);
        let generic = 3 * count + abi3_older * count;
        let mut best: Option<usize> = None;
        for py in parts[n - 3].split('.') {
            for abi in parts[n - 2].split('.') {
                for plat in parts[n - 1].split('.') {
                    let place = platforms.iter().position(|p| p == plat);
                    let rank = match (abi, place) {
                        (a, Some(i)) if a == cp && py == cp => Some(i),
                        ("abi3", Some(i)) if py == cp => Some(count + i),
                        ("none", Some(i)) if py == cp => Some(2 * count + i),
                        ("abi3", Some(i)) => py
                            .strip_prefix(&format!("cp{major}"))
                            .and_then(|m| m.parse::<usize>().ok())
                            .filter(|m| *m >= 2 && *m < minor)
                            .map(|m| 3 * count + (minor - 1 - m) * count + i),
                        ("none", Some(i)) => py_range.iter().position(|t| t == py).map(|r| generic + r * count + i),
                        ("none", None) if plat == "any" && py == cp => Some(generic + py_range.len() * count),
                        ("none", None) if plat == "any" => {
                            py_range.iter().position(|t| t == py).map(|r| generic + py_range.len() * count + 1 + r)
                        }
                        _ => None,
                    };
                    best = match (best, rank) {
                        (Some(b), Some(r)) => Some(b.min(r)),
                        (b, r) => b.or(r),
                    };
                }
            }
        }
        best
    }

    /// Why a wheel that does not fit the target comes near (`CPython 3.12`, `glibc 2.38`, `musl libc`), with a
    /// rank (lower is nearer); `None` when it fits or is far (macOS, Windows, another Python and platform).
    fn near_miss(&self, wheel: &str, platforms: &[String]) -> Option<(u32, String)> {
        let (_, _, tags) = path_deps::parse_wheel_name(wheel)?;
        let mut parts = tags.splitn(3, '-');
        let (py, abi, plat) = (parts.next()?, parts.next()?, parts.next()?);
        let platform_ok = plat.split('.').any(|p| p == "any" || platforms.iter().any(|t| t == p));
        let python_ok = self.fits(&format!("x-1-{py}-{abi}-any.whl"), platforms);
        let arch = &self.machine;
        let linux = |p: &str| {
            let rest = p.strip_prefix("manylinux").or_else(|| p.strip_prefix("linux"))?;
            let arch_ok = rest.ends_with(&format!("_{arch}"));
            let glibc = rest.strip_prefix("_2_").and_then(|r| r.split('_').next()).and_then(|m| m.parse::<u32>().ok());
            Some((arch_ok, glibc))
        };
        let same_arch_linux = plat.split('.').any(|p| linux(p).is_some_and(|(ok, _)| ok));
        match (python_ok, platform_ok) {
            (true, true) => None,
            (false, true) => {
                let minor = py
                    .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                    .get(1..)
                    .and_then(|m| m.parse::<i64>().ok());
                let distance = minor.map(|m| (m - i64::from(self.python.minor)).unsigned_abs() as u32).unwrap_or(9);
                Some((10 + distance, python_tag(py, abi)))
            }
            (true, false) => {
                if let Some(minor) =
                    plat.split('.').filter_map(linux).filter(|(ok, _)| *ok).filter_map(|(_, g)| g).min()
                {
                    return Some((
                        1,
                        format!("needs glibc 2.{minor}, the base image has {}.{}", self.glibc.0, self.glibc.1),
                    ));
                }
                if plat.split('.').any(|p| p.starts_with("musllinux") && p.ends_with(&format!("_{arch}"))) {
                    return Some((20, "for musl libc (Alpine)".to_string()));
                }
                const MACHINES: [&str; 7] = ["aarch64", "x86_64", "i686", "armv7l", "ppc64le", "s390x", "riscv64"];
                let machine = plat
                    .split('.')
                    .filter(|p| p.starts_with("manylinux") || p.starts_with("linux_") || p.starts_with("musllinux"))
                    .find_map(|p| MACHINES.into_iter().find(|m| p.ends_with(m)))?;
                Some((30, format!("for {machine}")))
            }
            (false, false) if same_arch_linux => Some((40, format!("{} on {plat}", python_tag(py, abi)))),
            (false, false) => None,
        }
    }

    /// Whether a Python tag (`py3`, `py311`, `cp38`) with `prefix` names a version the target runs: same major,
    /// minor (if given) at least `lowest_minor` and at most the target's.
    fn at_most(&self, tag: &str, prefix: &str, lowest_minor: u32) -> bool {
        let Some(digits) = tag.strip_prefix(prefix) else { return false };
        let mut chars = digits.chars();
        let Some(major) = chars.next().and_then(|c| c.to_digit(10)) else { return false };
        let minor: String = chars.collect();
        if major != self.python.major {
            return false;
        }
        if minor.is_empty() {
            return prefix == "py";
        }
        minor.parse::<u32>().is_ok_and(|m| m >= lowest_minor && m <= self.python.minor)
    }

    /// The PEP 508 marker environment of the target (what `packaging.markers.default_environment()` gives inside
    /// the image, as far as it is known without running it).
    pub(crate) fn marker_environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("implementation_name", "cpython".into()),
            ("implementation_version", self.python_full.clone()),
            ("os_name", "posix".into()),
            ("platform_machine", self.machine.clone()),
            ("platform_python_implementation", "CPython".into()),
            ("platform_release", String::new()),
            ("platform_system", "Linux".into()),
            ("platform_version", String::new()),
            ("python_full_version", self.python_full.clone()),
            ("python_version", self.python.to_string()),
            ("sys_platform", "linux".into()),
        ]
    }
}

/// `linux/amd64` → `x86_64`.
fn machine_of(platform: &str) -> Result<&'static str> {
    let arch = platform.strip_prefix("linux/").unwrap_or(platform);
    Ok(match arch {
        "amd64" => "x86_64",
        "arm64" | "arm64/v8" => "aarch64",
        "386" => "i686",
        "arm/v7" => "armv7l",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => bail!(
            "unsupported platform '{platform}': expected linux/amd64, linux/arm64, linux/386, linux/arm/v7, \
             linux/ppc64le, linux/s390x or linux/riscv64"
        ),
    })
}

// ---------------------------------------------------------------------------------------------------------
// The plan: where each package's wheel comes from
// ---------------------------------------------------------------------------------------------------------

/// `cp312`/`cp312` → `CPython 3.12`; `pp39` → `PyPy 3.9`; `py2` → `Python 2`.
fn python_tag(py: &str, abi: &str) -> String {
    let tag = py.split('.').next().unwrap_or(py);
    let (implementation, digits) = match tag.get(..2) {
        Some("cp") => ("CPython", &tag[2..]),
        Some("pp") => ("PyPy", &tag[2..]),
        Some("py") => ("Python", &tag[2..]),
        _ => return tag.to_string(),
    };
    let version = match digits.len() {
        0 => String::new(),
        1 => format!(" {digits}"),
        _ => format!(" {}.{}", &digits[..1], &digits[1..]),
    };
    let abi3 = if abi == "abi3" { " (abi3)" } else { "" };
    format!("{implementation}{version}{abi3}")
}

/// Where the wheel of one package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A published wheel that fits the target.
    Wheel,
    /// Built for the target from this sdist (no wheel fits): a locked file on the index, or the URL of a URL
    /// dependency.
    Sdist { file: String, url: Option<String> },
    /// A URL dependency's wheel.
    UrlWheel { url: String, file: String },
    /// A git dependency, built on the host from the locked commit.
    Git(GitSource),
    /// A path dependency, built by `path_deps`.
    Local,
}

/// Decides where `package`'s wheel comes from, or says why there is no way and what would make one (pure).
fn plan(package: &SelectedPackage, target: &Target, platforms: &[String]) -> Result<Source, String> {
    let what = format!("{} {}", package.name, package.version);
    match package.source_kind.as_deref() {
        None | Some("legacy") => {}
        Some("file") | Some("directory") => return Ok(Source::Local),
        Some("url") => {
            let url = package.source_url.clone().unwrap_or_default();
            let file = url.split(['#', '?']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
            let file = path_deps::percent_decode(file).unwrap_or_else(|| file.to_string());
            if !package.files.iter().any(|f| f.file == file) {
                return Err(format!(
                    "{what}: the lock has no hash for the file of its URL ({url}): lock again with a Poetry that                      records it (`poetry lock`)"
                ));
            }
            if file.ends_with(".whl") {
                if target.fits(&file, platforms) {
                    return Ok(Source::UrlWheel { url, file });
                }
                let why = target.near_miss(&file, platforms).map(|(_, why)| format!(" ({why})")).unwrap_or_default();
                return Err(format!(
                    "{what}: its URL is a wheel for another target, {file}{why}, not {}: point the dependency at the                      wheel for this target (markers can pick one per Python and platform)",
                    target.short()
                ));
            }
            if is_sdist(&file) {
                return Ok(Source::Sdist { file, url: Some(url) });
            }
            return Err(format!("{what}: its URL ({url}) is neither a wheel nor an sdist"));
        }
        Some("git") => {
            return git_deps::parse(&package.line).map(Source::Git).ok_or_else(|| {
                format!("{what}: cannot read the locked commit of the git dependency in `{}`", package.line)
            })
        }
        Some(kind) => {
            return Err(format!(
                "{what} is a {kind} dependency ({}): the image can be built from index, URL, git and path                  dependencies; publish it to an index, or vendor it into the repository as a path dependency",
                package.source_url.as_deref().unwrap_or("?")
            ))
        }
    }
    let names: Vec<&str> = package.files.iter().map(|f| f.file.as_str()).collect();
    if names.iter().any(|f| target.fits(f, platforms)) {
        return Ok(Source::Wheel);
    }
    if let Some(sdist) = names.iter().find(|f| is_sdist(f)) {
        return Ok(Source::Sdist { file: sdist.to_string(), url: None });
    }
    let mut near: Vec<(u32, &str, String)> =
        names.iter().filter_map(|f| target.near_miss(f, platforms).map(|(rank, why)| (rank, *f, why))).collect();
    near.sort();
    let shown: Vec<String> = near.iter().take(4).map(|(_, f, why)| format!("{f} ({why})")).collect();
    let others = names.len() - shown.len();
    let files = match (shown.is_empty(), others) {
        (_, _) if names.is_empty() => "the lock lists no file of it".to_string(),
        (true, _) => format!("its {} files are for other systems (macOS, Windows) or other Pythons", names.len()),
        (false, 0) => format!("the nearest: {}", shown.join(", ")),
        (false, n) => format!(
            "the nearest: {}; {n} more for {}",
            shown.join(", "),
            if near.len() > shown.len() { "other targets" } else { "other systems or Pythons" }
        ),
    };
    Err(format!(
        "{what}: no wheel for {} and no sdist; {files}: pick a version of {} that publishes a wheel for this target \
         or an sdist, or build the image for another Python (--python) or platform (--platform)",
        target.short(),
        package.name
    ))
}

fn is_sdist(file: &str) -> bool {
    [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"].iter().any(|ext| file.ends_with(ext))
}

/// The error for `blockers`: one line each, all at once.
fn blocked(target: &Target, blockers: &[String]) -> anyhow::Error {
    match blockers {
        [one] => format_err!("the wheelhouse for {} cannot be made: {one}", target.short()),
        many => format_err!(
            "the wheelhouse for {} cannot be made; {} packages block it:\n  - {}",
            target.short(),
            many.len(),
            many.join("\n  - ")
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The wheelhouse
// ---------------------------------------------------------------------------------------------------------

/// A complete, verified wheelhouse.
#[derive(Debug, Clone)]
pub(crate) struct Wheelhouse {
    pub(crate) dir: PathBuf,
    /// What the image installs: the exported requirements without index options, path dependencies pinned to
    /// their wheels, and the hashes of wheels built here added.
    pub(crate) requirements: PathBuf,
    /// Each file's name and sha256 (hex), sorted by name.
    pub(crate) files: Vec<(String, String)>,
    /// For each wheel built here from an sdist: the libraries it links that the base image lacks.
    pub(crate) needs: Vec<(String, Vec<Need>)>,
    /// Whether this run downloaded or built anything.
    pub(crate) refreshed: bool,
    /// The process still compiling the bytecode of the wheels fetched (`index::BytecodeCache`), if any.
    pub(crate) compiling: Option<u32>,
}

/// One file as the stamp records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StampedFile {
    name: String,
    /// Its size, times, inode and device when it was hashed (`identity.rs`): while they are the same, so is
    /// the content; a byte changed in place moves the change time, whatever the modification time says.
    identity: Identity,
    sha256: String,
}

/// Makes sure the wheelhouse holds exactly the wheels of `selection` for `target`; runs no pip when the stamp
/// says it does and the files are still the ones recorded.
pub(crate) fn ensure(
    sh: &Shell,
    config: &Config,
    selection: &Selection,
    target: &Target,
    host: Option<&BuildHost<'_>>,
    dry_run: bool,
) -> Result<Wheelhouse> {
    let state = config.state_dir();
    let dir = paths::wheelhouse(&state);
    let requirements = paths::image_requirements(&state);
    let stamp_path = paths::wheelhouse_stamp(&state);
    let key = inputs_key(selection, target, config, host)?;
    let shown = paths::display(&dir);

    let previous = std::fs::read_to_string(&stamp_path).ok().and_then(|text| parse_stamp(&text));
    let why = match &previous {
        Some(stamp) if stamp.key != key => "the locked requirements or the target changed".to_string(),
        Some(stamp) if requirements.is_file() => match verify(&dir, &stamp_path, stamp, &target.describe())? {
            None => {
                let count = stamp.files.len();
                println!("wheels: {shown} is up to date ({count} wheels for {})", target.describe());
                let files = stamp.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect();
                let needs = stamp.needs.clone();
                return Ok(Wheelhouse { dir, requirements, files, needs, refreshed: false, compiling: None });
            }
            Some(why) => why,
        },
        _ => "no complete wheelhouse recorded".to_string(),
    };
    println!("wheels: filling {shown} for {}: {why}", target.describe());
    let inputs = Inputs { config, selection, target, key: &key, previous: previous.as_ref(), host };
    build(sh, &inputs, dry_run).map_err(|e| name_full_disk(e, &state))
}

/// A checksum of everything that decides the wheelhouse: the exported requirements, the target, the build
/// packages and base image that sdists are built with, and the sources of path dependencies.
fn inputs_key(selection: &Selection, target: &Target, config: &Config, host: Option<&BuildHost<'_>>) -> Result<String> {
    let mut hasher = Sha256::default();
    hasher.update(b"xtask wheelhouse 2\n");
    hasher.update(selection.requirements.as_bytes());
    hasher.update(target.key().as_bytes());
    let base = host.map(|h| h.image.as_str()).unwrap_or("no base image");
    hasher.update(format!("\nbuilt in {base} with {}\n", config.build_packages.join(" ")).as_bytes());
    for requirement in path_deps::find(&selection.requirements)? {
        let fingerprint = match requirement.path.canonicalize() {
            Ok(path) => path_deps::fingerprint(&path)?,
            Err(_) => 0,
        };
        hasher.update(format!("\n{} {fingerprint:016x}", requirement.path.display()).as_bytes());
    }
    Ok(hasher.hex())
}

/// What the stamp records: the inputs' key, the target (`Target::key`), each file, and what the wheels built
/// here need from the base image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    key: String,
    target: Option<String>,
    files: Vec<StampedFile>,
    needs: Vec<(String, Vec<Need>)>,
    /// When the identities were recorded (`identity::now_ns`), for the racy rule.
    checked_ns: i128,
}

fn parse_stamp(text: &str) -> Option<Stamp> {
    let mut key = None;
    let mut target = None;
    let mut files = Vec::new();
    let mut needs: Vec<(String, Vec<Need>)> = Vec::new();
    let mut checked_ns = None;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["key", k] => key = Some(k.to_string()),
            ["target", rest @ ..] => target = Some(rest.join(" ")),
            ["checked", ns] => checked_ns = Some(ns.parse().ok()?),
            ["file", name, identity, sha256] => files.push(StampedFile {
                name: name.to_string(),
                identity: Identity::parse(identity)?,
                sha256: sha256.to_string(),
            }),
            ["need", wheel, package, library] => {
                let need = Need { package: package.to_string(), library: library.to_string() };
                match needs.iter_mut().find(|(w, _)| w == wheel) {
                    Some((_, list)) => list.push(need),
                    None => needs.push((wheel.to_string(), vec![need])),
                }
            }
            _ => return None,
        }
    }
    Some(Stamp { key: key?, target, files, needs, checked_ns: checked_ns? })
}

fn render_stamp(stamp: &Stamp, describe: &str) -> String {
    let Stamp { key, target, files, needs, checked_ns } = stamp;
    let mut text = format!(
        "# Written by cargo xtask after a complete, verified wheelhouse; rebuilt when the key changes.\n\
         # target: {describe}\nkey {key}\ntarget {}\nchecked {checked_ns}\n",
        target.as_deref().unwrap_or_default(),
    );
    for f in files {
        text.push_str(&format!("file {} {} {}\n", f.name, f.identity.to_text(), f.sha256));
    }
    for (wheel, list) in needs {
        for need in list {
            text.push_str(&format!("need {wheel} {} {}\n", need.package, need.library));
        }
    }
    text
}

/// Whether `path` holds the stamped file's content: its identity vouches for it (`Identity::vouches`), or its
/// hash is the stamped one (then `rehashed` is set, so that the stamp records the file's identity anew).
fn still_checked(path: &Path, file: &StampedFile, checked_ns: i128, rehashed: &mut bool) -> Result<bool> {
    let Ok(identity) = Identity::read(path) else { return Ok(false) };
    if identity.vouches(&file.identity, checked_ns) {
        return Ok(true);
    }
    if identity.size() != file.identity.size() || gen::sha256_file(path)? != file.sha256 {
        return Ok(false);
    }
    *rehashed = true;
    Ok(true)
}

/// The stamped files with the identities the files in `dir` have now (their content known to be the stamped one).
fn restamp(dir: &Path, files: &[StampedFile]) -> Result<Vec<StampedFile>> {
    let mut now = Vec::new();
    for file in files {
        let path = dir.join(&file.name);
        let identity = Identity::read(&path).with_context(|| format!("cannot read {}", paths::display(&path)))?;
        now.push(StampedFile { identity, ..file.clone() });
    }
    Ok(now)
}

/// Checks that `dir` holds exactly the stamped files, each with its stamped content (`still_checked`); when a
/// file had to be hashed again to know, the stamp is written again with what the files are now. Returns why
/// not, if not.
fn verify(dir: &Path, stamp_path: &Path, stamp: &Stamp, describe: &str) -> Result<Option<String>> {
    let files = &stamp.files;
    let mut present: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect(),
        Err(_) => return Ok(Some("the wheelhouse is missing".to_string())),
    };
    present.sort();
    let mut expected: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    expected.sort();
    if present != expected {
        return Ok(Some("the wheelhouse's files are not the ones recorded".to_string()));
    }
    let mut rehashed = false;
    let checked_ns = identity::now_ns();
    for file in files {
        if !still_checked(&dir.join(&file.name), file, stamp.checked_ns, &mut rehashed)? {
            return Ok(Some(format!("{} changed since it was checked", file.name)));
        }
    }
    if rehashed {
        let files = restamp(dir, files)?;
        gen::write_atomic(
            stamp_path,
            render_stamp(&Stamp { files, checked_ns, ..stamp.clone() }, describe).as_bytes(),
        )?;
    }
    Ok(None)
}

/// The `--index-url`/`--extra-index-url`/`--trusted-host` options at the top of exported requirements, and the
/// rest of the text.
fn split_index_options(requirements: &str) -> (Vec<(String, String)>, String) {
    let mut options = Vec::new();
    let mut rest = requirements;
    while let Some(line) = rest.lines().next() {
        let Some((option, value)) = line.split_once(' ') else { break };
        if !matches!(option, "--index-url" | "--extra-index-url" | "--trusted-host") {
            break;
        }
        options.push((option.to_string(), value.trim().to_string()));
        rest = &rest[line.len()..];
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    if !options.is_empty() {
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    if !options.iter().any(|(o, _)| o == "--index-url") {
        options.insert(0, ("--index-url".to_string(), pip::PYPI_SIMPLE.to_string()));
    }
    (options, rest.to_string())
}

/// The host's python3, which runs pip and the look-ups: the interpreter itself when `python3` on PATH is a
/// launcher (pyenv's or asdf's shim: a script that takes longer to start than most of what it runs), resolved once
/// and remembered for the same launcher, directory and `PYENV_VERSION`.
pub(crate) fn host_python() -> Result<PathBuf> {
    // Once, whichever thread asks first; the others wait for its answer (a launcher takes 0.5 s to say).
    static RESOLVED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let resolved = RESOLVED.get_or_init(|| {
        let python3 = which::which("python3").ok()?;
        Some(resolve_launcher(&python3).unwrap_or(python3))
    });
    resolved.clone().ok_or_else(|| {
        format_err!(
            "python3 is not on PATH: the wheelhouse is made with the host's pip (Debian: `apt-get install -y python3 \
             python3-pip`)"
        )
    })
}

/// The interpreter a launcher `python3` starts (`sys.executable`); `None` when `python3` is an executable
/// itself (or the launcher cannot say).
fn resolve_launcher(python3: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(python3).ok()?;
    if file.read_exact(&mut head).is_err() || &head == b"\x7fELF" {
        return None;
    }
    let key = format!(
        "{}\t{}\t{}",
        python3.display(),
        std::env::var("PYENV_VERSION").unwrap_or_default(),
        std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
    );
    let memo = paths::host_python_launcher_memo();
    if let Some((remembered_key, python)) =
        std::fs::read_to_string(&memo).ok().as_deref().and_then(|t| t.trim_end().rsplit_once('\t'))
    {
        if remembered_key == key && Path::new(python).is_file() {
            return Some(PathBuf::from(python));
        }
    }
    let output = std::process::Command::new(python3)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let python = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !output.status.success() || !python.is_file() {
        return None;
    }
    let _ = gen::write_atomic(&memo, format!("{key}\t{}\n", python.display()).as_bytes());
    Some(python)
}

/// Evaluates markers with pip's `packaging`: the marker environment (`key=value`, tab-separated) on the first line
/// of stdin, then a marker a line; answers `1` or `0` a line.
const MARKERS_SCRIPT: &str = "import sys\n\
    from pip._vendor.packaging.markers import Marker\n\
    lines = sys.stdin.read().splitlines()\n\
    env = dict(a.split('=', 1) for a in lines.pop(0).split('\\t') if a)\n\
    env.setdefault('extra', '')\n\
    for line in lines:\n    print(int(Marker(line).evaluate(env)))\n";

/// The markers' Python started before the base image has said what it holds (a container, 0.6-1 s on a new base
/// image): its start and its import of pip's `packaging` (0.3-0.5 s here) go on meanwhile, off the way to the
/// wheels' look-up, which waits for the markers. The first evaluation that needs one takes it.
pub(crate) struct MarkerEvaluator {
    child: std::process::Child,
    /// The interpreter it runs: only an evaluation by the same one takes it.
    python: PathBuf,
}

static STARTED_EVALUATOR: std::sync::Mutex<Option<MarkerEvaluator>> = std::sync::Mutex::new(None);

impl MarkerEvaluator {
    /// Starts one for the next evaluation (when none is waiting).
    pub(crate) fn start() {
        use std::process::{Command, Stdio};
        let Ok(python) = host_python() else { return };
        let Ok(mut slot) = STARTED_EVALUATOR.lock() else { return };
        if slot.is_none() {
            let child = Command::new(&python)
                .args(["-c", MARKERS_SCRIPT])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            *slot = child.ok().map(|child| MarkerEvaluator { child, python });
        }
    }

    /// The one waiting, if it runs `python`.
    fn take(python: &Path) -> Option<MarkerEvaluator> {
        let mut slot = STARTED_EVALUATOR.lock().ok()?;
        if slot.as_ref()?.python != python {
            return None;
        }
        slot.take()
    }

    /// Its answer to `input`, or `None` when it failed (the caller asks a new process, which reports why).
    fn answer(mut self, input: &str) -> Option<String> {
        use std::io::Write;
        let mut stdin = self.child.stdin.take()?;
        let written = stdin.write_all(input.as_bytes());
        drop(stdin);
        let output = self.child.wait_with_output().ok()?;
        (written.is_ok() && output.status.success()).then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Evaluates each distinct marker for the target with `packaging` (pip's own copy), the reference
/// implementation: `pip download` would evaluate them for the host instead.
fn evaluate_markers(sh: &Shell, python: &Path, target: &Target, markers: &[String]) -> Result<BTreeMap<String, bool>> {
    let env: Vec<String> = target.marker_environment().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    marker_values(sh, python, &env, markers, BTreeMap::new())
}

/// The value of each of `markers` in the marker environment `env` (`key=value`), from the answers of earlier
/// runs for the same environment (a marker's value for it never changes) and `learned` (answers given by
/// another of this run's Python processes), else from pip's `packaging`; all of them remembered for the next
/// runs.
pub(crate) fn marker_values(
    sh: &Shell,
    python: &Path,
    env: &[String],
    markers: &[String],
    learned: BTreeMap<String, bool>,
) -> Result<BTreeMap<String, bool>> {
    let mut distinct: Vec<String> = markers.iter().filter(|m| !m.trim().is_empty()).cloned().collect();
    distinct.sort();
    distinct.dedup();
    let mut out = BTreeMap::new();
    if distinct.is_empty() {
        return Ok(out);
    }
    let memo = paths::markers_memo(&poetry_export::sha256::hex_digest(env.join("\n").as_bytes())[..16]);
    let remembered: BTreeMap<String, bool> = std::fs::read_to_string(&memo)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(value, marker)| (marker.to_string(), value == "1"))
        .collect();
    // Written back when this run learned anything.
    let mut changed = learned.keys().any(|m| !remembered.contains_key(m));
    let mut known = remembered;
    known.extend(learned);
    distinct.retain(|marker| match known.get(marker) {
        Some(&value) => {
            out.insert(marker.clone(), value);
            false
        }
        None => true,
    });
    if !distinct.is_empty() {
        let input = format!("{}\n{}\n", env.join("\t"), distinct.join("\n"));
        let answer = match MarkerEvaluator::take(python).and_then(|started| started.answer(&input)) {
            Some(answer) => answer,
            None => sh
                .cmd(python)
                .arg("-c")
                .arg(MARKERS_SCRIPT)
                .stdin(input)
                .quiet()
                .read()
                .context("cannot evaluate the requirements' markers for the target with the host's pip")?,
        };
        let answers: Vec<&str> = answer.lines().collect();
        if answers.len() != distinct.len() {
            bail!("unexpected answer evaluating markers: {answer:?}");
        }
        for (marker, value) in distinct.into_iter().zip(answers) {
            let value = value.trim() == "1";
            out.insert(marker.clone(), value);
            known.insert(marker, value);
        }
        changed = true;
    }
    if !changed {
        return Ok(out);
    }
    let mut text = String::new();
    for (marker, value) in &known {
        if !marker.contains('\n') {
            text.push_str(&format!("{}\t{marker}\n", u8::from(*value)));
        }
    }
    if let Some(dir) = memo.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = gen::write_atomic(&memo, text.as_bytes());
    Ok(out)
}

/// What `build` works from.
struct Inputs<'a> {
    config: &'a Config,
    selection: &'a Selection,
    target: &'a Target,
    /// `inputs_key`.
    key: &'a str,
    /// The stamp of the wheelhouse there now, if any.
    previous: Option<&'a Stamp>,
    host: Option<&'a BuildHost<'a>>,
}

/// A file made or fetched here for the wheelhouse (not picked by pip among the locked ones): its name and sha256.
struct Made {
    name: String,
    sha256: String,
}

/// Downloads, fetches and builds the wheelhouse into a temporary directory, verifies it, and puts it in place
/// with its requirements and stamp. Every package that cannot be had is reported at once.
fn build(sh: &Shell, inputs: &Inputs<'_>, dry_run: bool) -> Result<Wheelhouse> {
    let Inputs { config, selection, target, .. } = *inputs;
    let state = config.state_dir();
    let dir = paths::wheelhouse(&state);
    let tmp = state.join("wheelhouse.tmp");
    let python = host_python()?;
    let platforms = target.platform_tags();

    // Which packages the image installs, and where each one's wheel comes from: decided before anything is
    // fetched, so that what the lock alone rules out is listed at once.
    let (index_options, mut requirements_text, plans) = plan_all(sh, &python, selection, target, &platforms, dry_run)?;
    // What blocks a package later (its download, fetch or build), reported together.
    let mut blockers: Vec<String> = Vec::new();
    let by_kind = |f: fn(&Source) -> bool| plans.iter().filter(move |(_, s)| f(s));
    let wheels: Vec<&SelectedPackage> = by_kind(|s| *s == Source::Wheel).map(|(p, _)| *p).collect();
    let index_args: Vec<String> = index_options.iter().flat_map(|(o, v)| [o.clone(), v.clone()]).collect();
    let primary_index = index_options.iter().find(|(o, _)| o == "--index-url").map(|(_, v)| v.clone()).unwrap();
    let primary_index = crate::credentials::split_userinfo(&primary_index).0;
    let trusted: Vec<String> =
        index_options.iter().filter(|(o, _)| o == "--trusted-host").flat_map(|(o, v)| [o.clone(), v.clone()]).collect();
    let cache = paths::pip_cache();

    // The credentials of private indexes, for pip and the look-ups; the file goes when this function returns.
    let auth = IndexAuth::read(&config.app_dir)?;
    let netrc = if dry_run { None } else { auth.netrc_file(&paths::credentials_dir(&state))? };
    let netrc_path = netrc.as_ref().map(|n| n.path.as_path());
    if !dry_run {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", paths::display(&tmp)))?;
    }
    // Gone however this ends; on success it has become the wheelhouse already.
    let _tmp = (!dry_run).then(|| gen::Scratch(tmp.clone()));

    // The sdists whose wheel is built already (same sdist, target, base image and build packages).
    let builder = inputs.host.map(|host| sdists::Builder {
        engine: host.engine,
        base_image: &config.base_image,
        base_id: &host.image,
        platform: &config.platform,
        target_key: target.key(),
        build_packages: &config.build_packages,
        index_url: primary_index.clone(),
        logs: state.join("build-logs"),
    });
    let mut jobs: Vec<(&SelectedPackage, sdists::Job, Option<String>)> = Vec::new();
    for (package, source) in &plans {
        if let Source::Sdist { file, url } = source {
            let sha256 = locked_sha256(package, file);
            let sdist = paths::fetched_files_cache().join(&sha256[..sha256.len().min(32)]).join(file);
            let job = sdists::Job { name: package.name.clone(), version: package.version.clone(), sdist, sha256 };
            jobs.push((package, job, url.clone()));
        }
    }
    let mut built: Vec<(&SelectedPackage, sdists::Built)> = Vec::new();
    if let Some(builder) = builder.as_ref().filter(|_| !dry_run) {
        jobs.retain(|(package, job, _)| match sdists::cached(builder, job) {
            Some(wheel) => {
                println!(
                    "wheels: {} built before from {} ({})",
                    wheel.file_name,
                    job.name,
                    paths::display(&wheel.wheel)
                );
                built.push((package, wheel));
                false
            }
            None => true,
        });
    }

    // The wheels the previous wheelhouse holds for the same target are kept, not downloaded again.
    let kept = if dry_run { Vec::new() } else { keep_previous(&state, inputs.previous, target, &wheels, &tmp)? };
    if !kept.is_empty() {
        println!("wheels: {} wheels kept from the previous wheelhouse (same files, same target)", kept.len());
    }
    // The files whose content this run has checked against the lock's sha256 already (the previous stamp's,
    // the download cache's, the look-up's as it fetched): not hashed a second time below.
    let mut checked: BTreeMap<String, String> = BTreeMap::new();
    for (_, file) in &kept {
        checked.insert(file.name.clone(), file.sha256.clone());
    }
    let missing: Vec<&SelectedPackage> =
        wheels.iter().filter(|p| !kept.iter().any(|(name, _)| *name == p.name)).copied().collect();

    // Each missing wheel is the one pip would pick among the package's locked files (its best tags for the
    // target), taken from the download cache when it holds it, else fetched from the index while its page is
    // looked up (the URLs of the locked files, from the packages' index pages), checked against the lock's
    // sha256. pip downloads only what the look-up could not fetch.
    let mut wanted: Vec<index::Want<'_>> = Vec::new();
    let mut from_cache = 0;
    let mut cached: BTreeSet<String> = BTreeSet::new();
    for package in &missing {
        let files = package.files.iter().map(|f| f.file.clone()).filter(|f| f.ends_with(".whl")).collect();
        let mut ranked: Vec<(usize, &str)> = package
            .files
            .iter()
            .filter_map(|f| target.preference(&f.file, &platforms).map(|rank| (rank, f.file.as_str())))
            .collect();
        ranked.sort();
        let fetch: Vec<(String, String)> =
            ranked.iter().map(|(_, file)| (file.to_string(), locked_sha256(package, file))).collect();
        if let Some((file, sha256)) = fetch.first().filter(|_| !dry_run) {
            let kept = paths::fetched_files_cache().join(&sha256[..sha256.len().min(32)]).join(file);
            if wheels_sha_matches(&kept, sha256) {
                // A copy, not a link: another wheelhouse's link to the same file would change its identity
                // (its change time) under this wheelhouse's stamp.
                std::fs::copy(&kept, tmp.join(file))
                    .with_context(|| format!("cannot copy {}", paths::display(&kept)))
                    .map_err(|e| name_full_disk(e, &state))?;
                checked.insert(file.clone(), sha256.clone());
                cached.insert(package.name.clone());
                from_cache += 1;
                continue;
            }
            // Changed since it was kept (a wheelhouse's copy is the same file): fetched again below.
            let _ = std::fs::remove_file(&kept);
        }
        wanted.push(index::Want { package, files, fetch });
    }
    if from_cache > 0 {
        println!(
            "wheels: {from_cache} wheels taken from the download cache ({})",
            paths::display(&paths::fetched_files_cache())
        );
    }
    let fetching = wanted.len();
    for (package, job, url) in &jobs {
        let fetched = wheels_sha_matches(&job.sdist, &job.sha256);
        if url.is_none() && !fetched {
            let file = job.sdist.file_name().unwrap().to_string_lossy().into_owned();
            wanted.push(index::Want { package, files: vec![file], fetch: Vec::new() });
        }
    }
    if fetching > 0 && !dry_run {
        println!("wheels: downloading {fetching} wheels for {} from their indexes", target.describe());
    }
    let lookup = if dry_run || wanted.is_empty() {
        None
    } else {
        // The wheels' bytecode, compiled as they arrive (`site.rs` links it into the virtualenv).
        let bytecode = index::BytecodeCache {
            dir: paths::bytecode_cache(&target.python.to_string()),
            site: format!("{}/{}", crate::dockerfile::VENV, crate::bytecode::site_packages(target.python)),
            version: target.python.to_string(),
            moved_to: dir.clone(),
        };
        match index::lookup(sh, &python, &auth, netrc_path, &wanted, Some(&tmp), Some(&bytecode)) {
            Ok(lookup) => Some(lookup),
            Err(why) => {
                println!("wheels: note: {why:#}; pip searches the indexes instead");
                None
            }
        }
    };
    let mut unavailable: BTreeSet<String> = BTreeSet::new();
    let mut fetched: BTreeSet<String> = cached;
    if let Some(lookup) = &lookup {
        for (name, blocker) in &lookup.blockers {
            unavailable.insert(name.clone());
            blockers.push(blocker.clone());
        }
        for want in wanted.iter().take(fetching) {
            let package = want.package;
            let Some((file, (status, why))) =
                want.fetch.iter().find_map(|(file, _)| lookup.fetched.get(file).map(|got| (file, got)))
            else {
                continue;
            };
            let url = lookup.files.get(file).map_or(file.as_str(), |f| f.url.as_str());
            let sha256 = locked_sha256(package, file);
            match status.as_str() {
                "ok" => {
                    fetched.insert(package.name.clone());
                    checked.insert(file.clone(), sha256.clone());
                    // Kept for the next wheelhouse that needs it (a hard link: no space taken; none across
                    // file systems).
                    let kept = paths::fetched_files_cache().join(&sha256[..sha256.len().min(32)]);
                    if std::fs::create_dir_all(&kept).is_ok() {
                        let _ = std::fs::hard_link(tmp.join(file), kept.join(file));
                    }
                }
                status => {
                    // A server gone in the middle of the file can leave it short without saying so: a hash that
                    // differs is a fault too when the server no longer answers.
                    let said = if status == "hash" { format!("its sha256 was {why}") } else { why.clone() };
                    if let Some(fault) = fetch_fault(&said, url, &index::index_of(package), &state) {
                        return Err(fault.into());
                    }
                    unavailable.insert(package.name.clone());
                    blockers.push(match status {
                        "hash" => format!(
                            "{} {}: {url} is not the file the lock pins: its sha256 is {why}, the lock says {sha256}; \
                             check the index, then `poetry lock`",
                            package.name, package.version
                        ),
                        _ => format!("{} {}: cannot download {url}: {why}", package.name, package.version),
                    });
                }
            }
        }
    }
    signals::check()?;

    // Wheels from the indexes that the look-up did not fetch: pip picks each one among the package's locked
    // files and checks its hash.
    let downloadable: Vec<&SelectedPackage> =
        missing.iter().filter(|p| !unavailable.contains(&p.name) && !fetched.contains(&p.name)).copied().collect();
    if !downloadable.is_empty() {
        let request = Download {
            python: &python,
            target,
            platforms: &platforms,
            index_args: &index_args,
            trusted: &trusted,
            cache: &cache,
            netrc: netrc_path,
        };
        let found = lookup.as_ref().map(|l| &l.files);
        match download(sh, &request, &state, &downloadable, found, &tmp, dry_run) {
            Ok(()) => {}
            // The machine or the network, not a package: nothing else is worth trying.
            Err(fault) if fault.is::<Fault>() => return Err(fault),
            Err(why) => blockers.push(format!("{why:#}")),
        }
    }

    // Files by URL: the sdists to build and the URL dependencies' wheels, each checked against the lock's hash.
    let mut fetches: Vec<(String, index::Fetch)> = Vec::new();
    for (package, job, url) in &jobs {
        if wheels_sha_matches(&job.sdist, &job.sha256) || unavailable.contains(&package.name) {
            continue;
        }
        let file = job.sdist.file_name().unwrap().to_string_lossy().into_owned();
        let url = match url {
            Some(url) => Some(url.clone()),
            None => lookup.as_ref().and_then(|l| l.files.get(&file)).map(|f| f.url.clone()),
        };
        match url {
            Some(url) => {
                let fetch = index::Fetch { url, dest: job.sdist.clone(), sha256: job.sha256.clone() };
                fetches.push((format!("{} {}", package.name, package.version), fetch));
            }
            None if dry_run => println!("wheels: would look up and fetch {file}"),
            None => blockers.push(format!(
                "{} {}: cannot find the URL of its sdist {file} on {} (the look-up failed: see the note above)",
                package.name,
                package.version,
                index::index_of(package)
            )),
        }
    }
    let mut url_wheels: Vec<(&SelectedPackage, String, String)> = Vec::new();
    for (package, source) in &plans {
        if let Source::UrlWheel { url, file } = source {
            let sha256 = locked_sha256(package, file);
            let dest = paths::fetched_files_cache().join(&sha256[..sha256.len().min(32)]).join(file);
            if !wheels_sha_matches(&dest, &sha256) {
                let fetch = index::Fetch { url: url.clone(), dest: dest.clone(), sha256: sha256.clone() };
                fetches.push((format!("{} {}", package.name, package.version), fetch));
            }
            url_wheels.push((package, file.clone(), sha256));
        }
    }
    if dry_run {
        for (_, fetch) in &fetches {
            println!("wheels: would fetch {} (sha256 {})", fetch.url, fetch.sha256);
        }
    } else {
        let requests: Vec<index::Fetch> = fetches.iter().map(|(_, f)| f.clone()).collect();
        for ((what, _), result) in fetches.iter().zip(index::fetch(sh, &python, netrc_path, &requests)?) {
            if let Err(why) = result {
                blockers.push(format!("{what}: {why}"));
            }
        }
    }
    signals::check()?;

    // Sdists: built for the target in a container of the base image, else (no base image here) on the host.
    let jobs: Vec<(&SelectedPackage, sdists::Job, Option<String>)> =
        jobs.into_iter().filter(|(_, job, _)| dry_run || wheels_sha_matches(&job.sdist, &job.sha256)).collect();
    if !jobs.is_empty() {
        match &builder {
            Some(builder) if dry_run => {
                let job_refs: Vec<&sdists::Job> = jobs.iter().map(|(_, j, _)| j).collect();
                sdists::build(builder, &job_refs, &state.join("sdist-builds"))?;
            }
            Some(builder) => {
                let job_refs: Vec<&sdists::Job> = jobs.iter().map(|(_, j, _)| j).collect();
                let results = sdists::build(builder, &job_refs, &state.join("sdist-builds"))?;
                for ((package, _, _), result) in jobs.iter().zip(results) {
                    match result {
                        Ok(wheel) if target.fits(&wheel.file_name, &platforms) => built.push((package, wheel)),
                        Ok(wheel) => blockers.push(format!(
                            "{} {}: its sdist built {}, which does not fit {}",
                            package.name,
                            package.version,
                            wheel.file_name,
                            target.short()
                        )),
                        Err(blocker) => blockers.push(blocker),
                    }
                }
            }
            None => {
                println!(
                    "wheels: note: no base image at hand: sdists are built on the host, and must give pure-Python wheels \
                     (`cargo xtask image` builds them in a container of the base image)"
                );
                for (package, job, _) in &jobs {
                    match host_build(sh, &python, job, &primary_index, &state, target, &platforms, dry_run) {
                        Ok(Some(wheel)) => built.push((package, wheel)),
                        Ok(None) => {}
                        Err(why) => blockers.push(format!("{} {}: {why:#}", package.name, package.version)),
                    }
                }
            }
        }
    }
    signals::check()?;

    // Git dependencies: the locked commit, built on the host.
    let mut made: Vec<Made> = Vec::new();
    for (package, source) in &plans {
        let Source::Git(git) = source else { continue };
        if dry_run {
            println!("wheels: would build {} from {} at {}", package.name, git.url, git.commit);
            continue;
        }
        match git_deps::build(sh, &python, git, &tmp, &state.join("git-deps"), &primary_index) {
            Ok(wheel) => {
                let sha256 = wheel.hash.trim_start_matches("sha256:").to_string();
                println!("wheels: {} {} built from {} at {}", wheel.name, wheel.version, git.url, git.commit);
                requirements_text = pin(&requirements_text, package, &sha256)?;
                made.push(Made { name: file_name(&wheel.file), sha256 });
            }
            Err(why) => blockers.push(format!("{} {} (git dependency): {why:#}", package.name, package.version)),
        }
    }
    signals::check()?;

    if !blockers.is_empty() {
        return Err(blocked(target, &blockers));
    }
    if dry_run {
        return Ok(Wheelhouse {
            dir,
            requirements: paths::image_requirements(&state),
            files: Vec::new(),
            needs: Vec::new(),
            refreshed: true,
            compiling: None,
        });
    }

    // The built and fetched wheels into the wheelhouse, their requirements pinned to their hashes.
    let mut needs: Vec<(String, Vec<Need>)> = Vec::new();
    for (package, wheel) in &built {
        link_or_copy(&wheel.wheel, &tmp.join(&wheel.file_name))?;
        requirements_text = match plans.iter().find(|(p, _)| p.name == package.name && p.version == package.version) {
            Some((_, Source::Sdist { url: Some(_), .. })) => pin(&requirements_text, package, &wheel.sha256)?,
            _ => add_hash(&requirements_text, package, &wheel.sha256)?,
        };
        if !wheel.needs.is_empty() {
            needs.push((wheel.file_name.clone(), wheel.needs.clone()));
        }
        made.push(Made { name: wheel.file_name.clone(), sha256: wheel.sha256.clone() });
    }
    for (package, file, sha256) in &url_wheels {
        let source = paths::fetched_files_cache().join(&sha256[..sha256.len().min(32)]).join(file);
        link_or_copy(&source, &tmp.join(file))?;
        requirements_text = pin(&requirements_text, package, sha256)?;
        made.push(Made { name: file.clone(), sha256: sha256.clone() });
    }

    // Path dependencies: built on the host, their requirement lines pinned to the wheels' hashes.
    let (requirements_text, local) =
        path_deps::localize(sh, &python, &requirements_text, &tmp, &state.join("path-deps"), &primary_index)?;
    for wheel in &local {
        made.push(Made { name: file_name(&wheel.file), sha256: wheel.hash.trim_start_matches("sha256:").to_string() });
    }

    // Every file against the lock.
    let stamped = check_against_lock(&tmp, &made, &wheels, &checked)?;
    let total: u64 = stamped.iter().map(|f| f.identity.size()).sum();
    println!(
        "wheels: {} wheels ({:.1} MB) checked against poetry.lock's sha256 hashes{}",
        stamped.len(),
        total as f64 / 1e6,
        match (made.len() - url_wheels.len(), url_wheels.len()) {
            (0, 0) => String::new(),
            (built, 0) => format!(" ({built} built here)"),
            (0, fetched) => format!(" ({fetched} fetched by URL)"),
            (built, fetched) => format!(" ({built} built here, {fetched} fetched by URL)"),
        }
    );

    // Into place: the old wheelhouse goes first, so an interruption leaves no stamp that matches.
    let stamp_path = paths::wheelhouse_stamp(&state);
    let _ = std::fs::remove_file(&stamp_path);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", paths::display(&dir)))?;
    }
    std::fs::rename(&tmp, &dir).with_context(|| format!("cannot move the wheelhouse to {}", paths::display(&dir)))?;
    let requirements = paths::image_requirements(&state);
    gen::write_atomic(&requirements, requirements_text.as_bytes())?;
    // The identities as the files are now: moving and unlinking the old wheelhouse changed the change time of
    // the wheels it shared with the new one.
    let checked_ns = identity::now_ns();
    let stamped = restamp(&dir, &stamped)?;
    let stamp = Stamp {
        key: inputs.key.to_string(),
        target: Some(target.key()),
        files: stamped,
        needs: needs.clone(),
        checked_ns,
    };
    gen::write_atomic(&stamp_path, render_stamp(&stamp, &target.describe()).as_bytes())?;
    let stamped = stamp.files;
    let files = stamped.into_iter().map(|f| (f.name, f.sha256)).collect();
    let compiling = lookup.as_ref().and_then(|l| l.compiler);
    Ok(Wheelhouse { dir, requirements, files, needs, refreshed: true, compiling })
}

/// The plan of every package of `selection` that applies to `target` (its markers), with the index options
/// split off the requirements and the lines of packages that do not apply removed. Every blocker at once.
type Plans<'a> = (Vec<(String, String)>, String, Vec<(&'a SelectedPackage, Source)>);

fn plan_all<'a>(
    sh: &Shell,
    python: &Path,
    selection: &'a Selection,
    target: &Target,
    platforms: &[String],
    dry_run: bool,
) -> Result<Plans<'a>> {
    let markers: Vec<String> = selection.packages.iter().filter_map(|p| p.marker.clone()).collect();
    // A dry run runs nothing, not even the marker evaluation: it lists every package.
    let evaluated = if dry_run { BTreeMap::new() } else { evaluate_markers(sh, python, target, &markers)? };
    let (index_options, mut requirements_text) = split_index_options(&selection.requirements);
    let mut plans: Vec<(&SelectedPackage, Source)> = Vec::new();
    let mut blockers = Vec::new();
    let mut skipped = Vec::new();
    for package in &selection.packages {
        let applies = package.marker.as_ref().map(|m| evaluated.get(m).copied().unwrap_or(true)).unwrap_or(true);
        if !applies {
            skipped.push(format!("{} ({})", package.name, package.marker.as_deref().unwrap_or("")));
            // Not the image's: its line goes, so the image's requirements name no URL it does not use.
            requirements_text = requirements_text.replacen(&format!("{}\n", package.line), "", 1);
            continue;
        }
        match plan(package, target, platforms) {
            Ok(Source::Local) => {
                let problems = path_deps::problems(&format!("{}\n", package.line))?;
                blockers.extend(problems.iter().map(|p| format!("{} {}: {p}", package.name, package.version)));
                plans.push((package, Source::Local));
            }
            Ok(source) => plans.push((package, source)),
            Err(blocker) => blockers.push(blocker),
        }
    }
    if !skipped.is_empty() {
        println!("wheels: not for this target (markers): {}", skipped.join(", "));
    }
    if !blockers.is_empty() {
        return Err(blocked(target, &blockers));
    }
    Ok((index_options, requirements_text, plans))
}

/// Checks every file of `tmp` against the lock: a downloaded wheel must be one of its package's locked files,
/// with the locked hash, one per package of `wheels`; one made here must be the one just made (`made`).
/// `checked`: the files this run has hashed already (file name → sha256), each found equal to the lock's.
fn check_against_lock(
    tmp: &Path,
    made: &[Made],
    wheels: &[&SelectedPackage],
    checked: &BTreeMap<String, String>,
) -> Result<Vec<StampedFile>> {
    let mut stamped = Vec::new();
    let mut covered: Vec<&str> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(tmp)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = file_name(&path);
        let sha256 = match checked.get(&name) {
            Some(sha256) => sha256.clone(),
            None => gen::sha256_file(&path)?,
        };
        if let Some(made) = made.iter().find(|m| m.name == name) {
            if made.sha256 != sha256 {
                bail!("{name} changed while the wheelhouse was made; run the command again");
            }
        } else {
            let package = wheels
                .iter()
                .find(|p| p.files.iter().any(|f| f.file == name))
                .ok_or_else(|| format_err!("pip put {name} in the wheelhouse, which no locked package lists"))?;
            let locked = package.files.iter().find(|f| f.file == name).map(|f| f.hash.as_str()).unwrap_or("");
            if locked.trim_start_matches("sha256:") != sha256 {
                bail!(
                    "{name} does not match poetry.lock: its sha256 is {sha256}, the lock says {locked}; the index \
                     serves a different file than when the lock was made: check the index, then `poetry lock`"
                );
            }
            if covered.contains(&package.name.as_str()) {
                bail!("pip downloaded two files of {}; expected one", package.name);
            }
            covered.push(&package.name);
        }
        let identity = Identity::read(&path).with_context(|| format!("cannot read {}", paths::display(&path)))?;
        stamped.push(StampedFile { name, identity, sha256 });
    }
    if let Some(missing) = wheels.iter().find(|p| !covered.contains(&p.name.as_str())) {
        bail!("pip did not download a wheel of {} {}", missing.name, missing.version);
    }
    Ok(stamped)
}

/// The file name of `path`.
fn file_name(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string()
}

/// The sha256 (hex) the lock records for `file` of `package`.
fn locked_sha256(package: &SelectedPackage, file: &str) -> String {
    let hash = package.files.iter().find(|f| f.file == file).map(|f| f.hash.as_str()).unwrap_or("");
    hash.trim_start_matches("sha256:").to_string()
}

/// Whether `path` exists with the sha256 `expected`.
fn wheels_sha_matches(path: &Path, expected: &str) -> bool {
    path.is_file() && gen::sha256_file(path).is_ok_and(|sha| sha == expected)
}

/// Hard-links (else copies) `source` to `dest`.
fn link_or_copy(source: &Path, dest: &Path) -> Result<()> {
    let _ = std::fs::remove_file(dest);
    if std::fs::hard_link(source, dest).is_err() {
        std::fs::copy(source, dest).with_context(|| format!("cannot copy {}", paths::display(source)))?;
    }
    Ok(())
}

/// An sdist built on the host (no base image at hand): only a pure-Python wheel is accepted. `None` in a dry run.
#[allow(clippy::too_many_arguments)]
fn host_build(
    sh: &Shell,
    python: &Path,
    job: &sdists::Job,
    index_url: &str,
    state: &Path,
    target: &Target,
    platforms: &[String],
    dry_run: bool,
) -> Result<Option<sdists::Built>> {
    let out = state.join("sdist-builds").join(&job.name);
    let command = pip::pip(sh, python, "wheel")
        .args(["--no-deps", "--progress-bar", "off", "--index-url", index_url, "--cache-dir"])
        .arg(paths::pip_cache())
        .arg("--wheel-dir")
        .arg(&out)
        .arg(&job.sdist);
    if dry_run {
        println!("$ {command}");
        return Ok(None);
    }
    let _ = std::fs::remove_dir_all(&out);
    pip::run(command, "pip wheel").context("pip could not build a wheel from the sdist (see its output above)")?;
    let wheel = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|f| path_deps::parse_wheel_name(f).is_some_and(|(name, ..)| name == job.name))
        .ok_or_else(|| format_err!("building {} made no wheel of {}", job.sdist.display(), job.name))?;
    if !wheel.ends_with("-none-any.whl") || !target.fits(&wheel, platforms) {
        bail!(
            "its sdist builds {wheel}, which is not a pure-Python wheel: the host is not the target; give the base \
             image (it must be available to the engine) so that it is built in a container of it"
        );
    }
    let path = out.join(&wheel);
    let sha256 = gen::sha256_file(&path)?;
    Ok(Some(sdists::Built { wheel: path, file_name: wheel, sha256, needs: Vec::new() }))
}

/// What every `pip download` of the wheelhouse shares.
struct Download<'a> {
    python: &'a Path,
    target: &'a Target,
    platforms: &'a [String],
    /// `--index-url ...` and the other index options of the exported requirements.
    index_args: &'a [String],
    /// `--trusted-host` options (plain HTTP indexes), for the links too.
    trusted: &'a [String],
    cache: &'a Path,
    /// The private netrc file of the indexes' credentials.
    netrc: Option<&'a Path>,
}

/// Hard-links into `tmp` the wheels of `packages` that the previous wheelhouse (its stamp: `previous`) holds,
/// when it was made for the same target and the file is one of the package's locked files, unchanged since it
/// was checked. Returns the packages covered, each with its file as the stamp records it.
fn keep_previous(
    state: &Path,
    previous: Option<&Stamp>,
    target: &Target,
    packages: &[&SelectedPackage],
    tmp: &Path,
) -> Result<Vec<(String, StampedFile)>> {
    let Some(stamp) = previous else { return Ok(Vec::new()) };
    if stamp.target.as_deref() != Some(target.key().as_str()) {
        return Ok(Vec::new());
    }
    let dir = paths::wheelhouse(state);
    let mut kept = Vec::new();
    for package in packages {
        let locked = |f: &&StampedFile| {
            package.files.iter().any(|l| l.file == f.name && l.hash.trim_start_matches("sha256:") == f.sha256)
        };
        let Some(file) = stamp.files.iter().find(locked) else { continue };
        let path = dir.join(&file.name);
        if !still_checked(&path, file, stamp.checked_ns, &mut false)? {
            continue;
        }
        link_or_copy(&path, &tmp.join(&file.name))?;
        kept.push((package.name.clone(), file.clone()));
    }
    Ok(kept)
}

/// Downloads the wheel of each of `packages` into `tmp`. pip picks each one among the package's locked files
/// and checks its hash. When the locked files' URLs were found on the indexes (`found`), pip is given them as a
/// page of links (`--no-index --find-links`), because pip's own walk of an index page is slow for projects with
/// thousands of files (pydantic-core: 15 000, 2 seconds); else pip searches the indexes as usual.
fn download(
    sh: &Shell,
    request: &Download<'_>,
    state: &Path,
    packages: &[&SelectedPackage],
    found: Option<&BTreeMap<String, index::Found>>,
    tmp: &Path,
    dry_run: bool,
) -> Result<()> {
    let target = request.target;
    let list = state.join("wheels-download.txt");
    let links = state.join("wheels-links.html");
    let text: String = packages.iter().map(|p| pinned(p)).collect();
    println!("wheels: downloading {} wheels for {}", packages.len(), target.describe());
    let platforms = needed_platforms(target, packages, request.platforms);
    let pip_download = |sources: &[String]| {
        let mut command = pip::pip(sh, request.python, "download")
            .args(["--only-binary=:all:", "--no-deps", "--require-hashes", "--progress-bar", "off"])
            .args(["--python-version", &target.python.to_string()])
            .args(["--implementation", "cp", "--abi", &target.python.cp()]);
        for platform in &platforms {
            command = command.args(["--platform", platform]);
        }
        if let Some(netrc) = request.netrc {
            command = command.env("NETRC", netrc);
        }
        command
            .args(sources)
            .arg("--cache-dir")
            .arg(request.cache)
            .arg("--dest")
            .arg(tmp)
            .arg("--requirement")
            .arg(&list)
    };
    let mut link_args = vec!["--no-index".to_string(), "--find-links".to_string(), links.display().to_string()];
    link_args.extend(request.trusted.iter().cloned());
    let index_args: Vec<String> = request.index_args.iter().map(|a| crate::credentials::split_userinfo(a).0).collect();
    let from_links = pip_download(&link_args);
    let from_index = pip_download(&index_args);
    if dry_run {
        println!("wheels: would look up the URLs of the locked files on the index, write {}, and run", links.display());
        println!("$ {from_links}");
        println!("wheels: or, if that fails:");
        println!("$ {from_index}");
        return Ok(());
    }
    gen::write_atomic(&list, text.as_bytes())?;
    if let Some(found) = found {
        gen::write_atomic(&links, index::links_page(found, packages).as_bytes())?;
        match pip::run(from_links, "pip download") {
            Ok(()) => return Ok(()),
            Err(e) if signals::received().is_some() => return Err(e),
            Err(e) => {
                if let Some(fault) = download_fault(&e, request, state) {
                    return Err(fault.into());
                }
                println!("wheels: note: pip could not download from the links found; it searches the index instead")
            }
        }
    }
    pip::run(from_index, "pip download").map_err(|e| match download_fault(&e, request, state) {
        Some(fault) if signals::received().is_none() => fault.into(),
        _ => e.context("pip could not download the wheels for the image (see its output above)"),
    })
}

/// What stopped a wheelhouse being made that is no package's doing: the disk is full, an index stopped
/// answering. The wheelhouse being made is removed; the one there before is left as it was.
#[derive(Debug)]
struct Fault(String);

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fault {}

/// What the wheelhouse there now becomes when this run fails, for the errors of `Fault`.
const KEPT: &str = "the wheelhouse there before is left as it was";

/// The fault behind a failed `pip download`, if it is one: pip's output says the disk is full, or the index (or
/// the server of the file pip was downloading) no longer accepts connections. `state` is where the wheelhouse is
/// made.
fn download_fault(error: &anyhow::Error, request: &Download<'_>, state: &Path) -> Option<Fault> {
    let output = error.downcast_ref::<pip::Failed>()?.output.as_str();
    if output.contains("[Errno 28]") || output.contains("No space left on device") {
        return Some(no_space(&[state, request.cache, &std::env::temp_dir()], "pip downloaded the wheels"));
    }
    let indexes: Vec<String> = request
        .index_args
        .chunks(2)
        .filter(|pair| matches!(pair[0].as_str(), "--index-url" | "--extra-index-url"))
        .filter_map(|pair| pair.get(1))
        .map(|url| crate::credentials::split_userinfo(url).0)
        .collect();
    // The last file pip began to download (`  Downloading http://.../x.whl (4.0 MB)`), then the indexes.
    let file = output.lines().rev().find_map(|l| l.trim().strip_prefix("Downloading ")?.split(' ').next());
    let file = file.map(|f| crate::credentials::split_userinfo(f).0);
    for url in file.iter().chain(&indexes) {
        let Some(address) = host_and_port(url) else { continue };
        let Err(why) = connect(&address) else { continue };
        let index = indexes.iter().find(|i| host_and_port(i).as_ref() == Some(&address));
        let named = match (index, indexes.as_slice()) {
            (Some(index), _) => format!("the index {index}"),
            (None, [index]) => format!("the index {index} (its files on {address})"),
            (None, _) => format!("the server {address}"),
        };
        let during = match &file {
            Some(file) => format!("while pip downloaded {file}"),
            None => "while pip downloaded the wheels".to_string(),
        };
        return Some(Fault(format!(
            "{named} stopped answering {during} (connecting to {address}: {why}): check that it is up and that this \
             machine reaches it, then run the command again; {KEPT}"
        )));
    }
    None
}

/// The fault behind a failed fetch of `url` from `index`, if it is one: the disk is full, or the server of the
/// file no longer accepts connections. `state` is where the wheelhouse is made.
fn fetch_fault(why: &str, url: &str, index: &str, state: &Path) -> Option<Fault> {
    if why.contains("[Errno 28]") || why.contains("No space left on device") {
        return Some(no_space(&[state], "the wheels were downloaded"));
    }
    let index = crate::credentials::split_userinfo(index).0;
    let index = index.trim_end_matches('/');
    let url = crate::credentials::split_userinfo(url).0;
    let address = host_and_port(&url)?;
    let refused = connect(&address).err()?;
    let named = if host_and_port(index).as_ref() == Some(&address) {
        format!("the index {index}")
    } else {
        format!("the server {address} (the files of the index {index})")
    };
    Some(Fault(format!(
        "{named} stopped answering while {url} was downloaded ({why}; connecting to {address} now: {refused}): \
         check that it is up and that this machine reaches it, then run the command again; {KEPT}"
    )))
}

/// `host:port` of an http(s) URL (the scheme's port when it names none).
fn host_and_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let has_port =
        authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !authority.ends_with(']');
    match scheme {
        _ if has_port => Some(authority.to_string()),
        "http" => Some(format!("{authority}:80")),
        "https" => Some(format!("{authority}:443")),
        _ => None,
    }
}

/// Whether something accepts connections on `address` (`host:port`), within a few seconds.
fn connect(address: &str) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::other("the name resolves to no address");
    for socket in address.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&socket, std::time::Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The error for a full disk: names the fullest of `dirs` (the state directory, pip's cache, the temporary
/// directory) with its free space, and what to do.
fn no_space(dirs: &[&Path], during: &str) -> Fault {
    let free: Vec<(&Path, u64)> = dirs.iter().filter_map(|dir| Some((*dir, free_bytes(dir)?))).collect();
    let (dir, free) = match free.iter().min_by_key(|(_, bytes)| *bytes) {
        Some((dir, bytes)) => (*dir, format!(" ({:.1} MB free there)", *bytes as f64 / 1e6)),
        None => (dirs[0], String::new()),
    };
    let shown = paths::display(dir);
    Fault(format!(
        "no space left on device in {shown}{free} while {during}: free space on that filesystem (`df -h {shown}`), \
         then run the command again; {KEPT}"
    ))
}

/// The bytes free for this user on the filesystem of `dir` (`df`), if it can tell.
fn free_bytes(dir: &Path) -> Option<u64> {
    let output = std::process::Command::new("df").args(["-P", "-k"]).arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let kilobytes: u64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// `error` with what to do when a full disk is behind it (a write into the state directory failed with ENOSPC).
fn name_full_disk(error: anyhow::Error, state: &Path) -> anyhow::Error {
    let full =
        error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.raw_os_error() == Some(28)));
    if full && !error.is::<Fault>() {
        let fault = no_space(&[state], "the wheelhouse was made");
        return error.context(fault.0);
    }
    error
}

/// The platform tags to give `pip download`: those of `platforms` (in their order) that a locked wheel of
/// `packages` fitting the target carries, or the first one when all are pure. pip tests every link of a
/// project's index page against every tag it is given: with the whole list (35 tags for x86_64 and glibc 2.36)
/// that costs seconds on a project with thousands of files (pydantic-core). pip picks the same wheel, since
/// only locked files can be picked and the tags keep their order of preference.
fn needed_platforms(target: &Target, packages: &[&SelectedPackage], platforms: &[String]) -> Vec<String> {
    let mut carried = std::collections::BTreeSet::new();
    for file in packages.iter().flat_map(|p| &p.files) {
        if let Some(stem) = file.file.strip_suffix(".whl").filter(|_| target.fits(&file.file, platforms)) {
            carried.extend(stem.rsplit('-').next().unwrap_or_default().split('.'));
        }
    }
    let needed: Vec<String> = platforms.iter().filter(|p| carried.contains(p.as_str())).cloned().collect();
    if needed.is_empty() {
        platforms.iter().take(1).cloned().collect()
    } else {
        needed
    }
}

/// `name==version --hash=... --hash=...` (no marker: it was evaluated for the target already).
fn pinned(package: &SelectedPackage) -> String {
    let mut line = format!("{}=={}", package.name, package.version);
    for file in &package.files {
        let hash = if file.hash.contains(':') { file.hash.clone() } else { format!("sha256:{}", file.hash) };
        line.push_str(&format!(" --hash={hash}"));
    }
    line.push('\n');
    line
}

/// `requirements` with `package`'s requirement (a URL or git reference) replaced by a pin to the wheel made or
/// fetched for it: `name==version ; marker --hash=sha256:<hash>`, which the image installs from the wheelhouse.
fn pin(requirements: &str, package: &SelectedPackage, hash: &str) -> Result<String> {
    let line = format!("{}\n", package.line);
    if !requirements.contains(&line) {
        bail!("cannot find the requirement of {} in the exported requirements", package.name);
    }
    let marker = package.marker.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let marker = marker.map(|m| format!(" ; {m}")).unwrap_or_default();
    let pinned = format!("{}=={}{marker} \\\n    --hash=sha256:{hash}\n", package.name, package.version);
    Ok(requirements.replacen(&line, &pinned, 1))
}

/// `requirements` with `--hash=sha256:<hash>` added to `package`'s requirement.
fn add_hash(requirements: &str, package: &SelectedPackage, hash: &str) -> Result<String> {
    let line = format!("{}\n", package.line);
    if !requirements.contains(&line) {
        bail!("cannot find the requirement of {} in the exported requirements", package.name);
    }
    Ok(requirements.replacen(&line, &format!("{} \\\n    --hash=sha256:{hash}\n", package.line), 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use poetry_export::PackageFile;

    fn target(python: (u32, u32), glibc: (u32, u32)) -> Target {
        Target {
            python: PythonVersion { major: python.0, minor: python.1 },
            python_full: format!("{}.{}.2", python.0, python.1),
            platform: "linux/amd64".into(),
            machine: "x86_64".into(),
            glibc,
            origin: "test".into(),
        }
    }

    #[test]
    fn addresses_of_index_urls() {
        assert_eq!(host_and_port("http://127.0.0.1:18700/simple").as_deref(), Some("127.0.0.1:18700"));
        assert_eq!(host_and_port("https://pypi.org/simple").as_deref(), Some("pypi.org:443"));
        assert_eq!(host_and_port("http://user:pw@example.org/simple/").as_deref(), Some("example.org:80"));
        assert_eq!(host_and_port("https://[::1]:8443/x").as_deref(), Some("[::1]:8443"));
        assert_eq!(host_and_port("file:///wheels"), None);
    }

    #[test]
    fn platform_tags_go_down_from_the_base_images_glibc() {
        let tags = target((3, 11), (2, 36)).platform_tags();
        assert_eq!(tags.first().unwrap(), "manylinux_2_36_x86_64");
        assert!(tags.contains(&"manylinux2014_x86_64".to_string()));
        assert_eq!(tags[tags.len() - 2], "manylinux1_x86_64");
        assert_eq!(tags.last().unwrap(), "linux_x86_64", "pip takes linux_<arch> wheels on Linux, last");
        let mut arm = target((3, 11), (2, 28));
        arm.machine = "aarch64".into();
        let tags = arm.platform_tags();
        assert_eq!(tags, {
            let mut t: Vec<String> = (17..=28).rev().map(|m| format!("manylinux_2_{m}_aarch64")).collect();
            t.push("manylinux2014_aarch64".into());
            t.push("linux_aarch64".into());
            t
        });
    }

    #[test]
    fn which_wheels_fit() {
        let t = target((3, 13), (2, 36));
        let p = t.platform_tags();
        let fits = |f: &str| t.fits(f, &p);
        assert!(fits("pydantic_core-2.50.5-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"));
        assert!(!fits("pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"));
        assert!(!fits("pydantic_core-2.50.5-cp313-cp313-manylinux_2_17_aarch64.whl"));
        assert!(!fits("pydantic_core-2.50.5-cp313-cp313-musllinux_1_1_x86_64.whl"));
        assert!(!fits("pydantic_core-2.50.5-cp313-cp313-manylinux_2_38_x86_64.whl"), "newer glibc than the base");
        assert!(!fits("pydantic_core-2.50.5-cp313-cp313-win_amd64.whl"));
        assert!(fits("fastapi-0.1-py3-none-any.whl"));
        assert!(fits("docopt-0.6.2-py2.py3-none-any.whl"));
        assert!(!fits("old-1.0-py2-none-any.whl"));
        assert!(fits("cryptography-44-cp39-abi3-manylinux_2_28_x86_64.whl"));
        assert!(!fits("future-1-cp314-abi3-manylinux_2_28_x86_64.whl"));
        assert!(fits("x-1-py313-none-any.whl"));
        assert!(!fits("x-1-py314-none-any.whl"));
        assert!(fits("x-1-cp313-none-manylinux_2_17_x86_64.whl"));
        assert!(fits("x-1-1build-py3-none-any.whl"), "build tag");
    }

    /// The wheel pip would take: `preference` is each wheel's best place in `packaging.tags`' own order of the
    /// target's tags (pip's copy, run on the host: the reference), and `None` for the wheels that do not fit.
    #[test]
    fn preference_is_the_place_in_packagings_order_of_tags() {
        let wheels = [
            "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "pydantic_core-2.50.5-cp311-cp311-manylinux_2_28_x86_64.whl",
            "pydantic_core-2.50.5-cp311-cp311-linux_x86_64.whl",
            "pydantic_core-2.50.5-cp311-cp311-musllinux_1_1_x86_64.whl",
            "cryptography-44-cp39-abi3-manylinux_2_28_x86_64.whl",
            "cryptography-44-cp311-abi3-manylinux_2_17_x86_64.whl",
            "cryptography-44-cp37-abi3-manylinux1_x86_64.whl",
            "x-1-cp311-none-manylinux_2_17_x86_64.whl",
            "x-1-py3-none-manylinux_2_17_x86_64.whl",
            "x-1-py310-none-linux_x86_64.whl",
            "x-1-cp311-none-any.whl",
            "x-1-py311-none-any.whl",
            "docopt-0.6.2-py2.py3-none-any.whl",
            "x-1-py38-none-any.whl",
            "x-1-py30-none-any.whl",
            "x-1-1build-py3-none-any.whl",
            "x-1-cp312-cp312-manylinux_2_17_x86_64.whl",
            "x-1-py2-none-any.whl",
            "x-1-cp311-cp311-win_amd64.whl",
        ];
        let t = target((3, 11), (2, 36));
        let p = t.platform_tags();
        let ours: Vec<Option<usize>> = wheels.iter().map(|w| t.preference(w, &p)).collect();
        let script = "import sys\n\
            from pip._vendor.packaging import tags, utils\n\
            plats = sys.argv[1].split(',')\n\
            order = list(tags.cpython_tags((3, 11), ['cp311'], plats)) + list(tags.compatible_tags((3, 11), 'cp311', plats))\n\
            place = {t: i for i, t in reversed(list(enumerate(order)))}\n\
            for w in sys.argv[2:]:\n    \
                found = [place[t] for t in utils.parse_wheel_filename(w)[3] if t in place]\n    \
                print(min(found) if found else '-')\n";
        let output = std::process::Command::new("python3")
            .args(["-c", script, &p.join(",")])
            .args(wheels)
            .output()
            .expect("python3 runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let reference: Vec<Option<usize>> =
            String::from_utf8_lossy(&output.stdout).lines().map(|l| l.trim().parse().ok()).collect();
        assert_eq!(ours, reference);
        assert!(ours[1] < ours[0] && ours[0] < ours[2], "newest manylinux first, linux_ last");
    }

    fn package(name: &str, files: &[&str], kind: Option<&str>) -> SelectedPackage {
        SelectedPackage {
            name: name.into(),
            version: "1.0".into(),
            marker: None,
            source_kind: kind.map(str::to_string),
            source_url: kind.map(|_| "https://example.org/x".to_string()),
            files: files.iter().map(|f| PackageFile { file: f.to_string(), hash: "sha256:00".into() }).collect(),
            line: format!("{name}==1.0"),
        }
    }

    #[test]
    fn plans_each_package() {
        let t = target((3, 11), (2, 36));
        let p = t.platform_tags();
        let wheel = package("a", &["a-1.0-py3-none-any.whl", "a-1.0.tar.gz"], None);
        assert_eq!(plan(&wheel, &t, &p).unwrap(), Source::Wheel);
        let sdist = package("docopt", &["docopt-0.6.2.tar.gz"], None);
        assert_eq!(plan(&sdist, &t, &p).unwrap(), Source::Sdist { file: "docopt-0.6.2.tar.gz".into(), url: None });
        // An sdist with compiled code is built for the target, not refused (SQLAlchemy 1.4.26 on 3.11).
        let compiled = package(
            "sqlalchemy",
            &[
                "SQLAlchemy-1.4.26-cp27-cp27m-macosx_10_14_x86_64.whl",
                "SQLAlchemy-1.4.26-cp310-cp310-manylinux_2_17_x86_64.whl",
                "SQLAlchemy-1.4.26.tar.gz",
            ],
            None,
        );
        assert_eq!(
            plan(&compiled, &t, &p).unwrap(),
            Source::Sdist { file: "SQLAlchemy-1.4.26.tar.gz".into(), url: None }
        );
        assert_eq!(plan(&package("d", &[], Some("directory")), &t, &p).unwrap(), Source::Local);
        let mut git = package("e", &[], Some("git"));
        git.line = "e @ git+https://example.org/e.git@0a1b2c ; python_version >= \"3.9\"".into();
        assert_eq!(
            plan(&git, &t, &p).unwrap(),
            Source::Git(GitSource {
                url: "https://example.org/e.git".into(),
                commit: "0a1b2c".into(),
                subdirectory: None
            })
        );
        let mut url = package("u", &["u-1.0-py3-none-any.whl"], Some("url"));
        url.source_url = Some("https://example.org/dl/u-1.0-py3-none-any.whl".into());
        assert_eq!(
            plan(&url, &t, &p).unwrap(),
            Source::UrlWheel {
                url: "https://example.org/dl/u-1.0-py3-none-any.whl".into(),
                file: "u-1.0-py3-none-any.whl".into()
            }
        );
        url.files[0].file = "u-1.0.tar.gz".into();
        url.source_url = Some("https://example.org/dl/u-1.0.tar.gz".into());
        assert_eq!(
            plan(&url, &t, &p).unwrap(),
            Source::Sdist { file: "u-1.0.tar.gz".into(), url: Some("https://example.org/dl/u-1.0.tar.gz".into()) }
        );
    }

    /// PyTorch's local versions publish `linux_x86_64` wheels, which pip takes on Linux; without one for the
    /// target, the message shows the near misses, not the first files of the list (cp27, macOS).
    #[test]
    fn local_version_wheels_and_near_misses() {
        let torch = package(
            "torch",
            &[
                "torch-2.0.1+cu118-cp310-cp310-linux_x86_64.whl",
                "torch-2.0.1+cu118-cp310-cp310-win_amd64.whl",
                "torch-2.0.1+cu118-cp311-cp311-linux_x86_64.whl",
                "torch-2.0.1+cu118-cp311-cp311-win_amd64.whl",
                "torch-2.0.1+cu118-cp38-cp38-linux_x86_64.whl",
            ],
            None,
        );
        let t311 = target((3, 11), (2, 36));
        assert_eq!(plan(&torch, &t311, &t311.platform_tags()).unwrap(), Source::Wheel);
        let t313 = target((3, 13), (2, 41));
        expect![[r#"torch 1.0: no wheel for CPython 3.13 on linux/amd64 (glibc 2.41) and no sdist; the nearest: torch-2.0.1+cu118-cp311-cp311-linux_x86_64.whl (CPython 3.11), torch-2.0.1+cu118-cp310-cp310-linux_x86_64.whl (CPython 3.10), torch-2.0.1+cu118-cp38-cp38-linux_x86_64.whl (CPython 3.8); 2 more for other systems or Pythons: pick a version of torch that publishes a wheel for this target or an sdist, or build the image for another Python (--python) or platform (--platform)"#]]
            .assert_eq(&plan(&torch, &t313, &t313.platform_tags()).unwrap_err());
        let new_glibc = package(
            "fast",
            &[
                "fast-1.0-cp27-cp27m-macosx_10_9_x86_64.whl",
                "fast-1.0-cp311-cp311-macosx_11_0_arm64.whl",
                "fast-1.0-cp311-cp311-manylinux_2_38_x86_64.whl",
                "fast-1.0-cp311-cp311-musllinux_1_2_x86_64.whl",
                "fast-1.0-cp311-cp311-manylinux_2_28_aarch64.whl",
            ],
            None,
        );
        expect![[r#"fast 1.0: no wheel for CPython 3.11 on linux/amd64 (glibc 2.36) and no sdist; the nearest: fast-1.0-cp311-cp311-manylinux_2_38_x86_64.whl (needs glibc 2.38, the base image has 2.36), fast-1.0-cp311-cp311-musllinux_1_2_x86_64.whl (for musl libc (Alpine)), fast-1.0-cp311-cp311-manylinux_2_28_aarch64.whl (for aarch64); 2 more for other systems or Pythons: pick a version of fast that publishes a wheel for this target or an sdist, or build the image for another Python (--python) or platform (--platform)"#]]
            .assert_eq(&plan(&new_glibc, &t311, &t311.platform_tags()).unwrap_err());
        let far =
            package("far", &["far-1.0-cp311-cp311-win_amd64.whl", "far-1.0-cp27-none-macosx_10_9_x86_64.whl"], None);
        let err = plan(&far, &t311, &t311.platform_tags()).unwrap_err();
        assert!(
            err.contains("no sdist; its 2 files are for other systems (macOS, Windows) or other Pythons: pick"),
            "{err}"
        );
        let mut url = package("flash-attn", &["flash_attn-2.0-cp310-cp310-linux_x86_64.whl"], Some("url"));
        url.source_url = Some("https://example.org/flash_attn-2.0-cp310-cp310-linux_x86_64.whl".into());
        let err = plan(&url, &t311, &t311.platform_tags()).unwrap_err();
        assert!(
            err.contains(
                "its URL is a wheel for another target, flash_attn-2.0-cp310-cp310-linux_x86_64.whl (CPython 3.10)"
            ),
            "{err}"
        );
        assert_eq!(python_tag("cp312", "cp312"), "CPython 3.12");
        assert_eq!(python_tag("cp37", "abi3"), "CPython 3.7 (abi3)");
        assert_eq!(python_tag("pp39", "pypy39_pp73"), "PyPy 3.9");
        assert_eq!(python_tag("py2", "none"), "Python 2");
    }

    /// Every blocker is listed at once.
    #[test]
    fn blockers_are_listed_together() {
        let t = target((3, 11), (2, 36));
        let one = blocked(&t, &["a 1.0: gone".to_string()]).to_string();
        assert_eq!(one, "the wheelhouse for CPython 3.11 on linux/amd64 (glibc 2.36) cannot be made: a 1.0: gone");
        let two = blocked(&t, &["a 1.0: gone".to_string(), "b 2.0: also".to_string()]).to_string();
        assert_eq!(
            two,
            "the wheelhouse for CPython 3.11 on linux/amd64 (glibc 2.36) cannot be made; 2 packages block it:\n  - a \
             1.0: gone\n  - b 2.0: also"
        );
    }

    #[test]
    fn pip_is_given_only_the_platforms_of_locked_wheels() {
        let t = target((3, 11), (2, 36));
        let p = t.platform_tags();
        let core = package(
            "pydantic-core",
            &[
                "pydantic_core-2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "pydantic_core-2-cp311-cp311-musllinux_1_1_x86_64.whl",
                "pydantic_core-2-cp312-cp312-manylinux_2_5_x86_64.manylinux1_x86_64.whl",
                "pydantic_core-2.tar.gz",
            ],
            None,
        );
        let pure = package("a", &["a-1.0-py3-none-any.whl"], None);
        assert_eq!(needed_platforms(&t, &[&core, &pure], &p), ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]);
        assert_eq!(needed_platforms(&t, &[&pure], &p), ["manylinux_2_36_x86_64"]);
    }

    #[test]
    fn index_options_are_split_off() {
        let (options, rest) = split_index_options("a==1 \\\n    --hash=sha256:00\n");
        assert_eq!(options, [("--index-url".to_string(), pip::PYPI_SIMPLE.to_string())]);
        assert_eq!(rest, "a==1 \\\n    --hash=sha256:00\n");
        let (options, rest) = split_index_options("--trusted-host h\n--extra-index-url http://h/simple\n\na==1\n");
        assert_eq!(
            options,
            [
                ("--index-url".to_string(), pip::PYPI_SIMPLE.to_string()),
                ("--trusted-host".to_string(), "h".to_string()),
                ("--extra-index-url".to_string(), "http://h/simple".to_string())
            ]
        );
        assert_eq!(rest, "a==1\n");
    }

    #[test]
    fn stamp_round_trip_and_facts() {
        let t = target((3, 11), (2, 36));
        let identity = Identity::parse("3:7:8:9:10").unwrap();
        let files = vec![StampedFile { name: "a-1-py3-none-any.whl".into(), identity, sha256: "ab".into() }];
        let needs = vec![(
            "x-1-cp311-cp311-linux_x86_64.whl".to_string(),
            vec![Need { package: "libx1".into(), library: "libx.so.1".into() }],
        )];
        let stamp = Stamp { key: "k".to_string(), target: Some(t.key()), files, needs, checked_ns: 12 };
        let text = render_stamp(&stamp, &t.describe());
        assert_eq!(t.key(), "cp311 3.11.2 x86_64 glibc 2.36");
        assert_eq!(parse_stamp(&text), Some(stamp));
        let facts = parse_facts("sha256:1 3.11.2 x86_64 glibc 2.36\n").unwrap();
        assert_eq!((facts.python_full.as_str(), facts.glibc), ("3.11.2", Some((2, 36))));
        assert_eq!(parse_facts("sha256:1 3.12.1 x86_64\n").unwrap().glibc, None);
    }

    #[test]
    fn hashes_of_built_wheels_are_added() {
        let mut p = package("docopt", &["docopt-0.6.2.tar.gz"], None);
        p.line = "docopt==0.6.2 ; python_version >= \"3.8\" \\\n    --hash=sha256:49b3".into();
        let text = format!("a==1\n{}\nb==2\n", p.line);
        assert_eq!(
            add_hash(&text, &p, "ff").unwrap(),
            "a==1\ndocopt==0.6.2 ; python_version >= \"3.8\" \\\n    --hash=sha256:49b3 \\\n    --hash=sha256:ff\nb==2\n"
        );
    }
}
