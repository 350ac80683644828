//! `cargo xtask wheels`: the wheelhouse for the image's target (its Python version and platform, not the
//! host's), checked against poetry.lock's hashes, so that the image build needs no network and no compiler.
//!
//! Each locked package the image needs (its marker evaluated for the target) comes from one of:
//! - a published wheel that fits the target: `pip download --only-binary=:all: --python-version X.Y
//!   --implementation cp --abi cpXY --platform manylinux_2_<N>_<arch>...` (the tags, up to the base image's
//!   glibc, that the locked wheels carry);
//! - its sdist, when it publishes no wheel for the target: downloaded hash-checked and built on the host with
//!   `pip wheel`; only a pure-Python result (`*-none-any.whl`) is accepted, anything else stops here;
//! - a path dependency: built on the host (`path_deps.rs`).
//!
//! Every file is then checked against the lock's sha256 hashes (pip checked them at download too). A stamp
//! records the inputs (requirements, target) and each file's size, time and hash: when nothing changed the
//! wheelhouse is reused without running pip, after checking the files are still the ones recorded.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{bail, format_err, Context, Result};
use poetry_export::sha256::Sha256;
use poetry_export::{ExportRequest, SelectedPackage, Selection};
use xshell::Shell;

use crate::config::{Config, PythonVersion};
use crate::engine::{Engine, ImageInfo};
use crate::export;
use crate::flags::Wheels;
use crate::settings;
use crate::{gen, path_deps, paths, pip};

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
    let wheelhouse = ensure(sh, config, &selection, &target, dry_run)?;
    if !dry_run {
        println!("wheels: requirements for the image in {}", paths::display(&wheelhouse.requirements));
    }
    Ok(())
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
    /// from the target's down to 2.17 (2.5 on x86), and their legacy aliases.
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

/// Where the wheel of one package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A published wheel that fits the target.
    Wheel,
    /// Built on the host from this sdist (no wheel fits the target).
    Sdist(String),
    /// A path dependency, built by `path_deps`.
    Local,
}

/// Decides where `package`'s wheel comes from, or says why there is no way (pure).
fn plan(package: &SelectedPackage, target: &Target, platforms: &[String]) -> Result<Source> {
    match package.source_kind.as_deref() {
        None | Some("legacy") => {}
        Some("file") | Some("directory") => return Ok(Source::Local),
        Some(kind) => bail!(
            "{} {} is a {kind} dependency ({}): the image can only be built from index packages and path \
             dependencies; publish it to an index, or vendor it into the repository as a path dependency",
            package.name,
            package.version,
            package.source_url.as_deref().unwrap_or("?")
        ),
    }
    let names: Vec<&str> = package.files.iter().map(|f| f.file.as_str()).collect();
    if names.iter().any(|f| target.fits(f, platforms)) {
        return Ok(Source::Wheel);
    }
    let wheels: Vec<&str> = names.iter().filter(|f| f.ends_with(".whl")).copied().take(4).collect();
    // A project that publishes platform wheels has compiled code: its sdist would need a compiler and the
    // target's headers, and still make a wheel for the host. Say so now rather than after a long build.
    let compiled = names.iter().any(|f| f.ends_with(".whl") && !f.ends_with("-any.whl"));
    if let Some(sdist) = names.iter().find(|f| is_sdist(f)).filter(|_| !compiled) {
        return Ok(Source::Sdist(sdist.to_string()));
    }
    bail!(
        "{} {} publishes no wheel for {} on {} (glibc {}.{}){}{}: pick a version of {} that publishes a wheel for \
         this target, or build the image for another Python (--python) or platform (--platform)",
        package.name,
        package.version,
        format_args!("CPython {}", target.python),
        target.platform,
        target.glibc.0,
        target.glibc.1,
        if compiled { ", and its sdist has compiled code" } else { " and no sdist to build one from" },
        if wheels.is_empty() { String::new() } else { format!(" (its wheels: {}, ...)", wheels.join(", ")) },
        package.name
    )
}

fn is_sdist(file: &str) -> bool {
    [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"].iter().any(|ext| file.ends_with(ext))
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
    /// Whether this run downloaded or built anything.
    pub(crate) refreshed: bool,
}

/// One file as the stamp records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StampedFile {
    name: String,
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

/// Makes sure the wheelhouse holds exactly the wheels of `selection` for `target`; runs no pip when the stamp
/// says it does and the files are still the ones recorded.
pub(crate) fn ensure(
    sh: &Shell,
    config: &Config,
    selection: &Selection,
    target: &Target,
    dry_run: bool,
) -> Result<Wheelhouse> {
    let state = config.state_dir();
    let dir = paths::wheelhouse(&state);
    let requirements = paths::image_requirements(&state);
    let stamp_path = paths::wheelhouse_stamp(&state);
    let key = inputs_key(selection, target)?;
    let shown = paths::display(&dir);

    let previous = std::fs::read_to_string(&stamp_path).ok().and_then(|text| parse_stamp(&text));
    let why = match &previous {
        Some(stamp) if stamp.key != key => "the locked requirements or the target changed".to_string(),
        Some(stamp) if requirements.is_file() => match verify(&dir, &stamp.files)? {
            None => {
                let count = stamp.files.len();
                println!("wheels: {shown} is up to date ({count} wheels for {})", target.describe());
                let files = stamp.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect();
                return Ok(Wheelhouse { dir, requirements, files, refreshed: false });
            }
            Some(why) => why,
        },
        _ => "no complete wheelhouse recorded".to_string(),
    };
    println!("wheels: filling {shown} for {}: {why}", target.describe());
    build(sh, config, selection, target, &key, previous.as_ref(), dry_run)
}

/// A checksum of everything that decides the wheelhouse: the exported requirements, the target, and the
/// sources of path dependencies.
fn inputs_key(selection: &Selection, target: &Target) -> Result<String> {
    let mut hasher = Sha256::default();
    hasher.update(b"xtask wheelhouse 1\n");
    hasher.update(selection.requirements.as_bytes());
    hasher.update(target.key().as_bytes());
    for requirement in path_deps::find(&selection.requirements)? {
        let fingerprint = match requirement.path.canonicalize() {
            Ok(path) => path_deps::fingerprint(&path)?,
            Err(_) => 0,
        };
        hasher.update(format!("\n{} {fingerprint:016x}", requirement.path.display()).as_bytes());
    }
    Ok(hasher.hex())
}

/// What the stamp records: the inputs' key, the target (`Target::key`) and each file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    key: String,
    target: Option<String>,
    files: Vec<StampedFile>,
}

fn parse_stamp(text: &str) -> Option<Stamp> {
    let mut key = None;
    let mut target = None;
    let mut files = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["key", k] => key = Some(k.to_string()),
            ["target", rest @ ..] => target = Some(rest.join(" ")),
            ["file", name, size, mtime, sha256] => files.push(StampedFile {
                name: name.to_string(),
                size: size.parse().ok()?,
                mtime_ns: mtime.parse().ok()?,
                sha256: sha256.to_string(),
            }),
            _ => return None,
        }
    }
    Some(Stamp { key: key?, target, files })
}

fn render_stamp(key: &str, target: &Target, files: &[StampedFile]) -> String {
    let mut text = format!(
        "# Written by cargo xtask after a complete, verified wheelhouse; rebuilt when the key changes.\n\
         # target: {}\nkey {key}\ntarget {}\n",
        target.describe(),
        target.key()
    );
    for f in files {
        text.push_str(&format!("file {} {} {} {}\n", f.name, f.size, f.mtime_ns, f.sha256));
    }
    text
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0)
}

/// SHA-256 of a file, as hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = File::open(path).with_context(|| format!("cannot read {}", paths::display(path)))?;
    let mut hasher = Sha256::default();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).with_context(|| format!("cannot read {}", paths::display(path)))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.hex())
}

/// Checks that `dir` holds exactly the stamped files: same names, and the same size and time (or, when the time
/// changed, the same hash). Returns why not, if not.
fn verify(dir: &Path, files: &[StampedFile]) -> Result<Option<String>> {
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
    for file in files {
        let path = dir.join(&file.name);
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {}", paths::display(&path)))?;
        if meta.len() == file.size && mtime_ns(&meta) == file.mtime_ns {
            continue;
        }
        if meta.len() != file.size || sha256_file(&path)? != file.sha256 {
            return Ok(Some(format!("{} changed since it was checked", file.name)));
        }
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

/// The host's python3, which runs pip.
pub(crate) fn host_python() -> Result<PathBuf> {
    which::which("python3").map_err(|_| {
        format_err!(
            "python3 is not on PATH: the wheelhouse is made with the host's pip (Debian: `apt-get install -y python3 \
             python3-pip`)"
        )
    })
}

/// Evaluates each distinct marker for the target with `packaging` (pip's own copy), the reference
/// implementation: `pip download` would evaluate them for the host instead.
fn evaluate_markers(sh: &Shell, python: &Path, target: &Target, markers: &[String]) -> Result<BTreeMap<String, bool>> {
    let mut distinct: Vec<String> = markers.iter().filter(|m| !m.trim().is_empty()).cloned().collect();
    distinct.sort();
    distinct.dedup();
    let mut out = BTreeMap::new();
    if distinct.is_empty() {
        return Ok(out);
    }
    const SCRIPT: &str = "import sys\n\
        from pip._vendor.packaging.markers import Marker\n\
        env = dict(a.split('=', 1) for a in sys.argv[1:])\n\
        env.setdefault('extra', '')\n\
        for line in sys.stdin.read().splitlines():\n    print(int(Marker(line).evaluate(env)))\n";
    let env: Vec<String> = target.marker_environment().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let input = distinct.join("\n") + "\n";
    let answer = sh
        .cmd(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(&env)
        .stdin(input)
        .quiet()
        .read()
        .context("cannot evaluate the requirements' markers for the target with the host's pip")?;
    let answers: Vec<&str> = answer.lines().collect();
    if answers.len() != distinct.len() {
        bail!("unexpected answer evaluating markers: {answer:?}");
    }
    for (marker, value) in distinct.into_iter().zip(answers) {
        out.insert(marker, value.trim() == "1");
    }
    Ok(out)
}

/// Downloads and builds the wheelhouse from scratch into a temporary directory, verifies it, and puts it in
/// place with its requirements and stamp. `previous` is the stamp of the wheelhouse there now, if any.
fn build(
    sh: &Shell,
    config: &Config,
    selection: &Selection,
    target: &Target,
    key: &str,
    previous: Option<&Stamp>,
    dry_run: bool,
) -> Result<Wheelhouse> {
    let state = config.state_dir();
    let dir = paths::wheelhouse(&state);
    let tmp = state.join("wheelhouse.tmp");
    let python = host_python()?;
    let platforms = target.platform_tags();

    // Which packages the image installs, and where each one's wheel comes from: decided before pip runs, so a
    // package that cannot be had stops everything here.
    let markers: Vec<String> = selection.packages.iter().filter_map(|p| p.marker.clone()).collect();
    // A dry run runs nothing, not even the marker evaluation: it lists every package.
    let evaluated = if dry_run { BTreeMap::new() } else { evaluate_markers(sh, &python, target, &markers)? };
    let mut wheels = Vec::new();
    let mut sdists = Vec::new();
    let mut skipped = Vec::new();
    for package in &selection.packages {
        let applies = package.marker.as_ref().map(|m| evaluated.get(m).copied().unwrap_or(true)).unwrap_or(true);
        if !applies {
            skipped.push(format!("{} ({})", package.name, package.marker.as_deref().unwrap_or("")));
            continue;
        }
        match plan(package, target, &platforms)? {
            Source::Wheel => wheels.push(package),
            Source::Sdist(file) => sdists.push((package, file)),
            Source::Local => {}
        }
    }
    if !skipped.is_empty() {
        println!("wheels: not for this target (markers): {}", skipped.join(", "));
    }
    let (index_options, requirements_text) = split_index_options(&selection.requirements);
    let index_args: Vec<String> = index_options.iter().flat_map(|(o, v)| [o.clone(), v.clone()]).collect();
    let primary_index = index_options.iter().find(|(o, _)| o == "--index-url").map(|(_, v)| v.clone()).unwrap();

    if !dry_run {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", paths::display(&tmp)))?;
    }
    let cache = paths::pip_cache();
    if !wheels.is_empty() {
        // The wheels the previous wheelhouse holds for the same target are kept, not downloaded again.
        let kept = if dry_run { Vec::new() } else { keep_previous(&state, previous, target, &wheels, &tmp)? };
        if !kept.is_empty() {
            println!("wheels: {} wheels kept from the previous wheelhouse (same files, same target)", kept.len());
        }
        let missing: Vec<&SelectedPackage> = wheels.iter().filter(|p| !kept.contains(&p.name)).copied().collect();
        if !missing.is_empty() {
            let request =
                Download { python: &python, target, platforms: &platforms, index_args: &index_args, cache: &cache };
            download(sh, &request, &state, &missing, &tmp, dry_run)?;
        }
    }

    let mut built: Vec<(String, String)> = Vec::new(); // (file name, sha256) of wheels built here
    let mut requirements_text = requirements_text;
    if !sdists.is_empty() {
        let list = state.join("wheels-sdists.txt");
        let out = state.join("wheels-sdists.tmp");
        let text: String = sdists.iter().map(|(p, _)| pinned(p)).collect();
        let names: Vec<&str> = sdists.iter().map(|(p, _)| p.name.as_str()).collect();
        let shown: Vec<String> = sdists.iter().map(|(p, f)| format!("{} {} ({f})", p.name, p.version)).collect();
        println!("wheels: building from source on the host (no wheel fits the target): {}", shown.join(", "));
        let command = pip::pip(sh, &python, "wheel")
            .args(["--no-deps", "--require-hashes", "--progress-bar", "off", "--no-binary", &names.join(",")])
            .args(&index_args)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--wheel-dir")
            .arg(&out)
            .arg("--requirement")
            .arg(&list);
        if dry_run {
            println!("$ {command}");
        } else {
            gen::write_atomic(&list, text.as_bytes())?;
            let _ = std::fs::remove_dir_all(&out);
            command.run().context("pip could not build wheels from the sdists (see its output above)")?;
            for (package, sdist) in &sdists {
                let wheel = std::fs::read_dir(&out)?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .find(|f| path_deps::parse_wheel_name(f).is_some_and(|(name, ..)| name == package.name))
                    .ok_or_else(|| format_err!("building {sdist} made no wheel of {}", package.name))?;
                let pure = wheel.ends_with("-none-any.whl");
                if !pure || !target.fits(&wheel, &platforms) {
                    bail!(
                        "{} {} publishes no wheel for {} on {} and its sdist builds {wheel}, which is not a \
                         pure-Python wheel for the image: pick a version of {} that publishes wheels for this \
                         target, or build the image for another Python (--python) or platform (--platform)",
                        package.name,
                        package.version,
                        format_args!("CPython {}", target.python),
                        target.platform,
                        package.name
                    );
                }
                std::fs::rename(out.join(&wheel), tmp.join(&wheel))
                    .with_context(|| format!("cannot move {wheel} into {}", paths::display(&tmp)))?;
                let hash = sha256_file(&tmp.join(&wheel))?;
                requirements_text = add_hash(&requirements_text, package, &hash)?;
                built.push((wheel, hash));
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }

    // Path dependencies: built on the host, their requirement lines pinned to the wheels' hashes.
    let (requirements_text, local) = if dry_run {
        (requirements_text, Vec::new())
    } else {
        path_deps::localize(sh, &python, &requirements_text, &tmp, &state.join("path-deps"), &primary_index)?
    };
    for wheel in &local {
        let name = wheel.file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        built.push((name, wheel.hash.trim_start_matches("sha256:").to_string()));
    }
    if dry_run {
        return Ok(Wheelhouse {
            dir,
            requirements: paths::image_requirements(&state),
            files: Vec::new(),
            refreshed: true,
        });
    }

    // Every file against the lock: a downloaded wheel must be one of its package's locked files, with the locked
    // hash; a built one must be the one just built.
    let mut stamped = Vec::new();
    let mut covered: Vec<&str> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&tmp)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let sha256 = sha256_file(&path)?;
        if let Some((_, hash)) = built.iter().find(|(f, _)| *f == name) {
            if *hash != sha256 {
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
        let meta = std::fs::metadata(&path)?;
        stamped.push(StampedFile { name, size: meta.len(), mtime_ns: mtime_ns(&meta), sha256 });
    }
    if let Some(missing) = wheels.iter().find(|p| !covered.contains(&p.name.as_str())) {
        bail!("pip did not download a wheel of {} {}", missing.name, missing.version);
    }
    let total: u64 = stamped.iter().map(|f| f.size).sum();
    println!(
        "wheels: {} wheels ({:.1} MB) checked against poetry.lock's sha256 hashes{}",
        stamped.len(),
        total as f64 / 1e6,
        if built.is_empty() { String::new() } else { format!(" ({} built here)", built.len()) }
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
    gen::write_atomic(&stamp_path, render_stamp(key, target, &stamped).as_bytes())?;
    let files = stamped.into_iter().map(|f| (f.name, f.sha256)).collect();
    Ok(Wheelhouse { dir, requirements, files, refreshed: true })
}

/// What every `pip download` of the wheelhouse shares.
struct Download<'a> {
    python: &'a Path,
    target: &'a Target,
    platforms: &'a [String],
    /// `--index-url ...` and the other index options of the exported requirements.
    index_args: &'a [String],
    cache: &'a Path,
}

/// Hard-links into `tmp` the wheels of `packages` that the previous wheelhouse (its stamp: `previous`) holds,
/// when it was made for the same target and the file is one of the package's locked files, unchanged since it
/// was checked. Returns the names of the packages covered.
fn keep_previous(
    state: &Path,
    previous: Option<&Stamp>,
    target: &Target,
    packages: &[&SelectedPackage],
    tmp: &Path,
) -> Result<Vec<String>> {
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
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.len() != file.size || (mtime_ns(&meta) != file.mtime_ns && sha256_file(&path)? != file.sha256) {
            continue;
        }
        let dest = tmp.join(&file.name);
        if std::fs::hard_link(&path, &dest).is_err() {
            std::fs::copy(&path, &dest).with_context(|| format!("cannot copy {}", paths::display(&path)))?;
        }
        kept.push(package.name.clone());
    }
    Ok(kept)
}

/// Downloads the wheel of each of `packages` into `tmp`. pip picks each one among the package's locked files
/// and checks its hash. The locked files' URLs are first looked up on the packages' indexes (their simple pages,
/// fetched in parallel) and given to pip as a page of links (`--no-index --find-links`), because pip's own walk
/// of an index page is slow for projects with thousands of files (pydantic-core: 15 000, 2 seconds); when that
/// lookup or that download fails, pip searches the indexes as usual.
fn download(
    sh: &Shell,
    request: &Download<'_>,
    state: &Path,
    packages: &[&SelectedPackage],
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
        command
            .args(sources)
            .arg("--cache-dir")
            .arg(request.cache)
            .arg("--dest")
            .arg(tmp)
            .arg("--requirement")
            .arg(&list)
    };
    let from_links = pip_download(&["--no-index".to_string(), "--find-links".to_string(), links.display().to_string()]);
    let from_index = pip_download(request.index_args);
    if dry_run {
        println!("wheels: would look up the URLs of the locked files on the index, write {}, and run", links.display());
        println!("$ {from_links}");
        println!("wheels: or, if that fails:");
        println!("$ {from_index}");
        return Ok(());
    }
    gen::write_atomic(&list, text.as_bytes())?;
    match find_links(sh, request.python, packages) {
        Ok(page) => {
            gen::write_atomic(&links, page.as_bytes())?;
            if from_links.run().is_ok() {
                return Ok(());
            }
            println!("wheels: note: pip could not download from the links found; it searches the index instead");
        }
        Err(why) => println!("wheels: note: {why:#}; pip searches the index instead"),
    }
    from_index.run().context("pip could not download the wheels for the image (see its output above)")
}

/// Looks up the URL of every locked wheel of `packages` on its index's simple page (PEP 691 JSON, or HTML),
/// fetching the pages in parallel with pip's own `requests`; returns a page of links pip can read
/// (`--find-links`), each with the locked hash and the file's Requires-Python.
fn find_links(sh: &Shell, python: &Path, packages: &[&SelectedPackage]) -> Result<String> {
    const SCRIPT: &str = r##"
import concurrent.futures, html, re, sys, urllib.parse
from pip._vendor import requests
session = requests.Session()
if len(sys.argv) > 1:
    session.verify = sys.argv[1]
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
def links(line):
    page, *files = line.split(" ")
    response = session.get(page, headers={"Accept": ACCEPT}, timeout=60)
    response.raise_for_status()
    found = {}
    if "json" in response.headers.get("Content-Type", ""):
        for f in response.json().get("files", []):
            found[f["filename"]] = (f["url"], f.get("requires-python") or "")
    else:
        for attributes in re.findall(r"<a\s([^>]*)>", response.text):
            href = re.search(r'href\s*=\s*"([^"]*)"', attributes)
            if href:
                url = html.unescape(href.group(1))
                requires = re.search(r'data-requires-python\s*=\s*"([^"]*)"', attributes)
                name = urllib.parse.unquote(url.split("#")[0].rsplit("/", 1)[-1])
                found[name] = (url, html.unescape(requires.group(1)) if requires else "")
    return [(f, urllib.parse.urljoin(response.url, found[f][0].split("#")[0]), found[f][1]) for f in files if f in found]
lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    for result in pool.map(links, lines):
        for found in result:
            print("\t".join(found))
"##;
    let mut input = String::new();
    for package in packages {
        let index = match package.source_kind.as_deref() {
            Some("legacy") => package.source_url.clone().unwrap_or_default(),
            _ => pip::PYPI_SIMPLE.to_string(),
        };
        if index.split("://").nth(1).and_then(|rest| rest.split('/').next()).is_some_and(|host| host.contains('@')) {
            bail!("the index of {} needs credentials", package.name);
        }
        let wheels: Vec<&str> = package.files.iter().map(|f| f.file.as_str()).filter(|f| f.ends_with(".whl")).collect();
        input.push_str(&format!("{}/{}/ {}\n", index.trim_end_matches('/'), package.name, wheels.join(" ")));
    }
    let output = sh
        .cmd(python)
        .arg("-c")
        .arg(SCRIPT)
        .args(pip::ca_bundle())
        .stdin(input)
        .quiet()
        .ignore_status()
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("it failed");
        bail!("cannot look up the wheels' URLs on the index ({})", last.trim());
    }
    let found = String::from_utf8_lossy(&output.stdout);
    let mut page = String::from("<!DOCTYPE html>\n<html><body>\n");
    let mut covered = std::collections::BTreeSet::new();
    for line in found.lines() {
        let mut fields = line.split('\t');
        let (Some(file), Some(url), requires) = (fields.next(), fields.next(), fields.next().unwrap_or_default())
        else {
            continue;
        };
        let Some(package) = packages.iter().find(|p| p.files.iter().any(|f| f.file == file)) else { continue };
        let hash = package.files.iter().find(|f| f.file == file).map(|f| f.hash.clone()).unwrap_or_default();
        let hash = if hash.contains(':') { hash.replacen(':', "=", 1) } else { format!("sha256={hash}") };
        let requires =
            if requires.is_empty() { String::new() } else { format!(" data-requires-python=\"{}\"", escape(requires)) };
        page.push_str(&format!("<a href=\"{}#{hash}\"{requires}>{}</a>\n", escape(url), escape(file)));
        covered.insert(package.name.as_str());
    }
    page.push_str("</body></html>\n");
    if let Some(package) = packages.iter().find(|p| !covered.contains(p.name.as_str())) {
        bail!("the index lists none of the locked wheels of {} {}", package.name, package.version);
    }
    Ok(page)
}

/// `&`, `<`, `>` and `"` as HTML entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
    fn platform_tags_go_down_from_the_base_images_glibc() {
        let tags = target((3, 11), (2, 36)).platform_tags();
        assert_eq!(tags.first().unwrap(), "manylinux_2_36_x86_64");
        assert!(tags.contains(&"manylinux2014_x86_64".to_string()));
        assert_eq!(tags.last().unwrap(), "manylinux1_x86_64");
        let mut arm = target((3, 11), (2, 28));
        arm.machine = "aarch64".into();
        let tags = arm.platform_tags();
        assert_eq!(tags, {
            let mut t: Vec<String> = (17..=28).rev().map(|m| format!("manylinux_2_{m}_aarch64")).collect();
            t.push("manylinux2014_aarch64".into());
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
        assert_eq!(plan(&sdist, &t, &p).unwrap(), Source::Sdist("docopt-0.6.2.tar.gz".into()));
        let foreign =
            package("c", &["c-1.0-cp311-cp311-win_amd64.whl", "c-1.0-cp310-cp310-manylinux_2_17_x86_64.whl"], None);
        let err = plan(&foreign, &t, &p).unwrap_err().to_string();
        assert!(err.starts_with("c 1.0 publishes no wheel for CPython 3.11 on linux/amd64 (glibc 2.36)"), "{err}");
        assert!(err.contains("c-1.0-cp311-cp311-win_amd64.whl"), "{err}");
        assert_eq!(plan(&package("d", &[], Some("directory")), &t, &p).unwrap(), Source::Local);
        let git = plan(&package("e", &[], Some("git")), &t, &p).unwrap_err().to_string();
        assert!(git.contains("is a git dependency"), "{git}");
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
        let files =
            vec![StampedFile { name: "a-1-py3-none-any.whl".into(), size: 3, mtime_ns: 7, sha256: "ab".into() }];
        let text = render_stamp("k", &t, &files);
        let stamp = Stamp { key: "k".to_string(), target: Some("cp311 3.11.2 x86_64 glibc 2.36".to_string()), files };
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
