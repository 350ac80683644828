//! `cargo xtask image`: the app's image, from poetry.lock to `<name>:<version>`: export → wheels → Dockerfile →
//! build context → build. Every step skips its work when its inputs did not change; the last one records a
//! fingerprint of everything the image is built from (context, Dockerfile, base image id, build arguments) as a
//! label, and when the tagged image already carries it, the engine is not asked to build at all.
//!
//! The build context is an allowlist assembled under `target/xtask/<name>/context/`: the image's requirements,
//! the wheelhouse and the files `tool.xtask.include` names (without hidden files and bytecode caches). Nothing
//! else of the app (`.env`, `.git`, `.venv`, tests) can reach the engine. Files are copied only when they
//! changed, keeping their times, so the engine's cache sees the same content.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, format_err, Context, Result};
use poetry_export::sha256::Sha256;
use xshell::Shell;

use crate::config::Config;
use crate::dockerfile;
use crate::engine::{self, BuildRequest, Engine, ImageInfo};
use crate::flags::{Args, Opt, Task, APP};
use crate::gen::{self, Mode, Outcome};
use crate::paths;
use crate::wheels::{self, Target, Wheelhouse, BASE_IMAGE_OPT, DRY_RUN_OPT, PLATFORM_OPT, PYTHON_OPT};

pub(crate) const TASK: Task = Task {
    name: "image",
    summary: "build the app's Docker image: export, wheels, Dockerfile, docker build",
    about: "\
Runs the pipeline, each step only when its inputs changed:
    export      the locked requirements (main, tool.xtask.groups and extras), hash-pinned
    base image  inspected (pulled if missing); its Python, machine and glibc asked once per image id
    wheels      the wheelhouse for the image's Python and platform (see `cargo xtask wheels --help`)
    dockerfile  docker/Dockerfile for the workspace's app (else target/xtask/<name>/Dockerfile)
    context     target/xtask/<name>/context: requirements.txt, wheels/, app/ (tool.xtask.include), nothing else
    build       <engine> build, tagged <name>:<version> and <name>:<short commit> (`-dirty` when the app or
                docker/ differ from the commit); skipped when the image already carries the fingerprint of
                this context, Dockerfile, base image and build arguments
Then prints the image's size, the base image's size, the difference (virtualenv, app, bytecode) and each
step's time. The build needs no network. Labels: OCI title, version, revision, created (the commit's time),
source, base.name, plus tool.xtask.labels.",
    positional: "",
    options: &[
        APP,
        NAME_OPT,
        PYTHON_OPT,
        PLATFORM_OPT,
        BASE_IMAGE_OPT,
        engine::ENGINE_OPT,
        engine::BUILDER_OPT,
        Opt::switch("no-cache", "build without the engine's layer cache (the wheelhouse is still reused)"),
        Opt::switch("always-build", "run the build even when the image is up to date (the engine's cache applies)"),
        Opt::switch("force", "overwrite docker/Dockerfile even if someone edited it"),
        DRY_RUN_OPT,
    ],
};

/// `--name`, for the tasks that make or run the image.
pub(crate) const NAME_OPT: Opt = Opt::value(
    "name",
    "NAME",
    "image name instead of tool.xtask.name (tags NAME:<version>, NAME:<commit>; names the container too)",
);

/// Label and build argument names the Dockerfile declares.
const BUILD_ARGS: [&str; 4] = ["BASE_IMAGE", "REVISION", "CREATED", "SOURCE"];

pub(crate) fn run(sh: &Shell, args: &Args) -> Result<()> {
    args.no_positional(&TASK)?;
    build(sh, args).map(|_| ())
}

/// The configuration with `--name` applied.
pub(crate) fn load_config(args: &Args) -> Result<Config> {
    let mut config = Config::load(args)?;
    if let Some(name) = args.value("name") {
        if !crate::config::is_image_name(name) {
            bail!("invalid value '{name}' for --name: lowercase letters and digits, separated by . _ - or /");
        }
        config.name = name.to_string();
    }
    Ok(config)
}

/// The image `build` made or found up to date.
pub(crate) struct Built {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    /// `<name>:<version>`
    pub(crate) tag: String,
    pub(crate) id: String,
}

/// Times of the pipeline's steps, printed at the end.
struct Steps {
    started: Instant,
    last: Instant,
    done: Vec<(&'static str, Duration, &'static str)>,
}

impl Steps {
    fn new() -> Steps {
        let now = Instant::now();
        Steps { started: now, last: now, done: Vec::new() }
    }
    fn done(&mut self, step: &'static str, note: &'static str) {
        let now = Instant::now();
        self.done.push((step, now - self.last, note));
        self.last = now;
    }
    fn summary(&self) -> String {
        let mut parts: Vec<String> =
            self.done.iter().map(|(step, took, note)| format!("{step} {:.2} s{note}", took.as_secs_f64())).collect();
        parts.push(format!("total {:.2} s", self.started.elapsed().as_secs_f64()));
        parts.join(", ")
    }
}

/// Runs the pipeline; returns the image.
pub(crate) fn build(sh: &Shell, args: &Args) -> Result<Built> {
    let mut steps = Steps::new();
    let config = load_config(args)?;
    let dry_run = args.has("dry-run");
    let engine = Engine::from_args(args)?;
    let _lock = if dry_run { None } else { Some(wheels::lock_state(&config)?) };
    let state = config.state_dir();

    let selection = wheels::select(&config)?;
    steps.done("export", "");

    // One engine call answers the no-op case: the base image, and both tags of the image.
    let git = git_info(sh, &config);
    let tags = tags(&config, git.as_ref());
    let (base, current, commit_tag) = inspect(sh, &engine, &config, &tags)?;
    steps.done("base image", "");

    let facts = match &base {
        Some(base) => Some(wheels::base_facts(sh, &engine, &config, base)?),
        None => wheels::cached_facts(&config),
    };
    let target = Target::new(&config, facts.as_ref())?;
    let wheelhouse = wheels::ensure(sh, &config, &selection, &target, dry_run)?;
    steps.done("wheels", if wheelhouse.refreshed { "" } else { " (up to date)" });

    let (dockerfile, contents) = dockerfile::target(&config)?;
    let shown = paths::display(&dockerfile);
    if dry_run {
        let current = std::fs::read_to_string(&dockerfile).ok();
        if current.as_deref() != Some(contents.as_str()) {
            println!("dockerfile: would write {shown} (`cargo xtask dockerfile --dry-run` prints it)");
        }
    } else {
        match gen::apply(&dockerfile, &contents, Mode::Write { force: args.has("force") }, dockerfile::COMMAND)? {
            Outcome::Written => println!("dockerfile: wrote {shown}"),
            _ => println!("dockerfile: {shown} is up to date"),
        }
    }
    steps.done("dockerfile", "");

    let context_dir = paths::build_context(&state);
    let context = if dry_run {
        println!("context: would assemble {} (requirements.txt, wheels/, app/)", paths::display(&context_dir));
        None
    } else {
        Some(assemble(&config, &wheelhouse, &context_dir)?)
    };
    steps.done("context", "");

    let build_args = build_args(&config, git.as_ref());
    let fingerprint = match (&context, &base) {
        (Some(context), Some(base)) => fingerprint(context, &contents, &base.id, &build_args, &config.platform),
        _ => String::new(),
    };
    let rebuild = args.has("always-build") || args.has("no-cache");
    let up_to_date = reusable(current.as_ref(), &fingerprint, rebuild);
    let (id, note) = match up_to_date {
        Some(image) => {
            println!("image: {} is up to date (built from this context, Dockerfile and base image)", tags[0]);
            (image.id.clone(), " (up to date)")
        }
        _ => {
            let (builder, why) = engine.builder(args)?;
            println!("image: building {} with {} ({why})", tags.join(" and "), builder.name());
            let labels = vec![(engine::FINGERPRINT_LABEL.to_string(), fingerprint.clone())];
            let iidfile = state.join("image.id");
            let request = BuildRequest {
                context: &context_dir,
                dockerfile: &dockerfile,
                tags: &tags,
                build_args: &build_args,
                labels: &labels,
                no_cache: args.has("no-cache"),
                iidfile: &iidfile,
            };
            (engine.build(builder, &request)?, "")
        }
    };
    // The commit tag follows the image: a new commit with the same content needs no build, only a tag.
    if let (Some(tag), Some(_)) = (tags.get(1), up_to_date) {
        if commit_tag.as_ref().map(|i| i.id.as_str()) != Some(id.as_str()) {
            engine.tag(sh, &tags[0], tag)?;
        }
    }
    steps.done("build", note);

    if dry_run {
        return Ok(Built { config, engine, tag: tags[0].clone(), id });
    }
    let image = match up_to_date {
        Some(image) => image.clone(),
        None => engine
            .images(sh, &[&id])?
            .pop()
            .flatten()
            .ok_or_else(|| format_err!("the engine does not know the image it just built ({id})"))?,
    };
    report(&config, &tags, &image, base.as_ref(), &steps);
    Ok(Built { config, engine, tag: tags[0].clone(), id })
}

/// The image under its version tag, when it carries `fingerprint` (it is built from the same inputs) and no
/// rebuild is asked for (`--always-build`, `--no-cache`): then the engine is not asked to build.
fn reusable<'a>(current: Option<&'a ImageInfo>, fingerprint: &str, rebuild: bool) -> Option<&'a ImageInfo> {
    current.filter(|image| !rebuild && !fingerprint.is_empty() && image.fingerprint == fingerprint)
}

/// `<name>:<version>`, then `<name>:<short commit>[-dirty]` when the app is in a git repository.
fn tags(config: &Config, git: Option<&Git>) -> Vec<String> {
    let mut tags = vec![config.image_tag()];
    if let Some(git) = git {
        let suffix = if git.dirty { "-dirty" } else { "" };
        tags.push(format!("{}:{}{suffix}", config.name, git.short));
    }
    tags
}

/// The base image (pulled when missing), the image under its version tag and under its commit tag, when they
/// exist. One engine call when all three do.
fn inspect(
    sh: &Shell,
    engine: &Engine,
    config: &Config,
    tags: &[String],
) -> Result<(Option<ImageInfo>, Option<ImageInfo>, Option<ImageInfo>)> {
    let base_ref = config.base_image.as_str();
    if engine.dry_run {
        println!("$ {} image inspect {base_ref} {}", engine.shown(), tags.join(" "));
        return Ok((None, None, None));
    }
    let mut refs = vec![base_ref];
    refs.extend(tags.iter().map(String::as_str));
    let mut found = engine.images(sh, &refs)?.into_iter();
    let base = found.next().flatten();
    let current = found.next().flatten();
    let commit = found.next().flatten();
    let base = match base {
        Some(base) => base,
        None => {
            println!("image: the base image {base_ref} is not here; pulling it");
            if let Err(why) = engine.pull(base_ref) {
                bail!(
                    "the base image {base_ref} is not available locally and cannot be pulled ({why}).\n\
                     Pull it where a registry is reachable (`{} pull {base_ref}`), or pass a local image with \
                     Python {}: `--base-image <image>` or `{}=<image>` (`{} images` lists the local ones){}",
                    engine.shown(),
                    config.python,
                    crate::config::BASE_IMAGE_ENV,
                    engine.shown(),
                    if engine.kind == engine::Kind::Podman {
                        format!("; an image docker has: `docker save {base_ref} | podman load`")
                    } else {
                        String::new()
                    }
                );
            }
            engine.images(sh, &[base_ref])?.pop().flatten().ok_or_else(|| {
                format_err!(
                    "{base_ref} was pulled but the engine does not know it; try `{} pull {base_ref}`",
                    engine.shown()
                )
            })?
        }
    };
    let (os, arch) = config.platform.split_once('/').unwrap_or(("linux", &config.platform));
    let arch = arch.split('/').next().unwrap_or(arch);
    if base.platform != format!("{os}/{arch}") {
        bail!(
            "the base image {base_ref} is for {}, but the image's platform is {}: pull the base image for that \
             platform (`{} pull --platform {} {base_ref}`) or pass --platform {}",
            base.platform,
            config.platform,
            engine.shown(),
            config.platform,
            base.platform
        );
    }
    Ok((Some(base), current, commit))
}

/// What git says about the app's commit.
#[derive(Debug, Clone)]
struct Git {
    short: String,
    full: String,
    /// The commit's time, RFC 3339.
    created: String,
    /// The app's files or docker/ differ from the commit (untracked files included).
    dirty: bool,
    /// `origin`'s URL without credentials, or empty.
    source: String,
}

/// The app's commit, or `None` when the app is not in a git repository (or git is missing).
fn git_info(sh: &Shell, config: &Config) -> Option<Git> {
    let git = || sh.cmd("git").arg("-C").arg(&config.app_dir).quiet().ignore_stderr();
    let log = git().args(["log", "-1", "--format=%h%n%H%n%cI"]).read().ok()?;
    let mut lines = log.lines();
    let (short, full, created) = (lines.next()?.to_string(), lines.next()?.to_string(), lines.next()?.to_string());
    let status = |paths: &[&Path]| git().args(["status", "--porcelain", "--"]).args(paths).read();
    let dirty = match status(&[&config.app_dir, &paths::docker_dir()]) {
        Ok(text) => !text.trim().is_empty(),
        // docker/ is outside the app's repository.
        Err(_) => status(&[&config.app_dir]).map(|t| !t.trim().is_empty()).unwrap_or(false),
    };
    let source =
        git().args(["remote", "get-url", "origin"]).read().map(|url| without_credentials(&url)).unwrap_or_default();
    Some(Git { short, full, created, dirty, source })
}

/// `https://user:token@host/repo` → `https://host/repo`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}{}", &rest[host_end..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// The build arguments the Dockerfile declares.
fn build_args(config: &Config, git: Option<&Git>) -> Vec<(String, String)> {
    let (revision, created, source) = match git {
        Some(git) => {
            let revision = if git.dirty { format!("{}-dirty", git.full) } else { git.full.clone() };
            (revision, git.created.clone(), git.source.clone())
        }
        None => Default::default(),
    };
    BUILD_ARGS.iter().map(|k| k.to_string()).zip([config.base_image.clone(), revision, created, source]).collect()
}

// ---------------------------------------------------------------------------------------------------------
// The build context
// ---------------------------------------------------------------------------------------------------------

/// The assembled build context.
pub(crate) struct BuildContext {
    /// Each file: path in the context, mode, sha256.
    manifest: Vec<(String, u32, String)>,
}

/// One file the context must hold.
struct Wanted {
    source: PathBuf,
    /// Known already (wheels: from the wheelhouse's stamp).
    sha256: Option<String>,
}

/// Makes `dir` hold exactly the image's requirements, the wheelhouse and the included app files; copies only
/// what changed.
pub(crate) fn assemble(config: &Config, wheelhouse: &Wheelhouse, dir: &Path) -> Result<BuildContext> {
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    wanted.insert(
        dockerfile::CONTEXT_REQUIREMENTS.to_string(),
        Wanted { source: wheelhouse.requirements.clone(), sha256: None },
    );
    for (name, sha256) in &wheelhouse.files {
        wanted.insert(
            format!("{}/{name}", dockerfile::CONTEXT_WHEELS),
            Wanted { source: wheelhouse.dir.join(name), sha256: Some(sha256.clone()) },
        );
    }
    let app_root =
        config.app_dir.canonicalize().with_context(|| format!("cannot resolve {}", config.app_dir.display()))?;
    for include in &config.include {
        let source = config.app_dir.join(&include.source);
        let dest = format!("{}/{}", dockerfile::CONTEXT_APP, include.dest.trim_end_matches('/'));
        let meta = std::fs::metadata(&source).map_err(|_| {
            format_err!("tool.xtask.include: {} does not exist in {}", include.source, paths::display(&config.app_dir))
        })?;
        if meta.is_dir() {
            collect(&source, &dest, &app_root, &mut wanted)?;
        } else {
            check_inside(&source, &app_root)?;
            if wanted.insert(dest.clone(), Wanted { source, sha256: None }).is_some() {
                bail!("tool.xtask.include: two entries put a file at {}", &dest[dockerfile::CONTEXT_APP.len() + 1..]);
            }
        }
    }

    // The hashes of unchanged sources are remembered between runs (by size and time).
    let cache_path = dir.with_extension("stamp");
    let cache = read_hash_cache(&cache_path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", paths::display(dir)))?;
    let removed = prune(dir, dir, &wanted)?;
    let mut copied = 0;
    let mut bytes = 0;
    let mut manifest = Vec::new();
    let mut new_cache = String::new();
    for (rel, file) in &wanted {
        let meta = std::fs::metadata(&file.source).with_context(|| format!("cannot read {}", file.source.display()))?;
        let mode =
            if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0 { 0o755 } else { 0o644 };
        let mtime = meta.modified().with_context(|| format!("cannot read {}", file.source.display()))?;
        let mtime_ns = mtime.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dest = dir.join(rel);
        let same = std::fs::metadata(&dest).is_ok_and(|d| {
            d.is_file()
                && d.len() == meta.len()
                && d.modified().ok() == Some(mtime)
                && std::os::unix::fs::PermissionsExt::mode(&d.permissions()) & 0o777 == mode
        });
        if !same {
            copy_file(&file.source, &dest, mode, mtime)?;
            copied += 1;
        }
        let cache_key = format!("{} {} {mtime_ns}", file.source.display(), meta.len());
        let sha256 = match (&file.sha256, cache.get(&cache_key)) {
            (Some(known), _) => known.clone(),
            (None, Some(cached)) => cached.clone(),
            (None, None) => wheels::sha256_file(&file.source)?,
        };
        new_cache.push_str(&format!("{sha256} {cache_key}\n"));
        bytes += meta.len();
        manifest.push((rel.clone(), mode, sha256));
    }
    gen::write_atomic(&cache_path, new_cache.as_bytes())?;
    println!(
        "context: {} holds {} files ({}): requirements.txt, {} wheels, {} app files ({copied} copied, {removed} removed)",
        paths::display(dir),
        manifest.len(),
        megabytes(bytes),
        wheelhouse.files.len(),
        manifest.len() - 1 - wheelhouse.files.len(),
    );
    Ok(BuildContext { manifest })
}

/// Names never copied from an included folder: hidden files and folders (`.env`, `.git`, `.venv`, ...) and
/// bytecode caches.
fn excluded(name: &str) -> bool {
    name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") || name.ends_with(".pyo")
}

fn collect(dir: &Path, dest: &str, app_root: &Path, wanted: &mut BTreeMap<String, Wanted>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", paths::display(dir)))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: file names must be UTF-8", paths::display(&entry.path()));
        };
        if excluded(name) {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).with_context(|| format!("cannot read {}", paths::display(&path)))?;
        let rel = format!("{dest}/{name}");
        if meta.is_dir() {
            check_inside(&path, app_root)?;
            collect(&path, &rel, app_root, wanted)?;
        } else if meta.is_file() {
            check_inside(&path, app_root)?;
            if wanted.insert(rel.clone(), Wanted { source: path, sha256: None }).is_some() {
                bail!("tool.xtask.include: two entries put a file at {}", &rel[dockerfile::CONTEXT_APP.len() + 1..]);
            }
        }
    }
    Ok(())
}

/// A symbolic link that leads out of the app would copy a file of the machine into the image.
fn check_inside(path: &Path, app_root: &Path) -> Result<()> {
    let real = path.canonicalize().with_context(|| format!("cannot resolve {}", paths::display(path)))?;
    if !real.starts_with(app_root) {
        bail!(
            "{} leads outside the app (to {}): the image takes only the app's own files; copy it into the app or \
             leave it out of tool.xtask.include",
            paths::display(path),
            real.display()
        );
    }
    Ok(())
}

/// Removes from the context what is not wanted; returns how many files went.
fn prune(root: &Path, dir: &Path, wanted: &BTreeMap<String, Wanted>) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", paths::display(dir)))? {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let prefix = format!("{rel}/");
            if wanted.keys().any(|k| k.starts_with(&prefix)) {
                removed += prune(root, &path, wanted)?;
            } else {
                removed += count_files(&path);
                std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", paths::display(&path)))?;
            }
        } else if !kind.is_file() || !wanted.contains_key(&rel) {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", paths::display(&path)))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()).map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum()
        })
        .unwrap_or(0)
}

/// Copies `source` to `dest` through a temporary file, with `mode` and the source's time.
fn copy_file(source: &Path, dest: &Path, mode: u32, mtime: std::time::SystemTime) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dest.parent().unwrap();
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", paths::display(parent)))?;
    if dest.is_dir() {
        std::fs::remove_dir_all(dest)?;
    }
    let tmp = parent.join(format!(".{}.tmp", dest.file_name().unwrap().to_string_lossy()));
    std::fs::copy(source, &tmp).with_context(|| format!("cannot copy {} into the context", source.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    File::options().write(true).open(&tmp)?.set_modified(mtime)?;
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", paths::display(dest)))?;
    Ok(())
}

fn read_hash_cache(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(' ')).map(|(sha, key)| (key.to_string(), sha.to_string())).collect()
}

/// A checksum of everything the image is built from: the context's files (paths, modes, contents), the
/// Dockerfile, the base image's id, the build arguments and the platform.
fn fingerprint(
    context: &BuildContext,
    dockerfile: &str,
    base_id: &str,
    build_args: &[(String, String)],
    platform: &str,
) -> String {
    let mut hasher = Sha256::default();
    hasher.update(b"xtask image 2\n");
    for (path, mode, sha256) in &context.manifest {
        hasher.update(format!("file {path} {mode:o} {sha256}\n").as_bytes());
    }
    hasher.update(format!("dockerfile {}\n", dockerfile.len()).as_bytes());
    hasher.update(dockerfile.as_bytes());
    hasher.update(format!("base {base_id}\nplatform {platform}\n").as_bytes());
    for (key, value) in build_args {
        hasher.update(format!("arg {key}={value}\n").as_bytes());
    }
    format!("sha256:{}", hasher.hex())
}

/// `12.3 MB`
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn report(config: &Config, tags: &[String], image: &ImageInfo, base: Option<&ImageInfo>, steps: &Steps) {
    let id = image.id.trim_start_matches("sha256:");
    println!("image: {} ({})", tags.join(", "), &id[..id.len().min(12)]);
    if let Some(base) = base {
        let payload = image.size.saturating_sub(base.size);
        println!(
            "image: size {} = base {} ({}) + {} (virtualenv, app, bytecode)",
            megabytes(image.size),
            megabytes(base.size),
            config.base_image,
            megabytes(payload)
        );
    }
    println!("image: steps: {}", steps.summary());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_reused_only_with_its_fingerprint_and_no_rebuild_asked() {
        let image = ImageInfo {
            id: "sha256:1".to_string(),
            size: 1,
            platform: "linux/amd64".to_string(),
            fingerprint: "sha256:f".to_string(),
        };
        assert_eq!(reusable(Some(&image), "sha256:f", false), Some(&image));
        // --always-build and --no-cache build a new image: what is reported and tagged is that one.
        assert_eq!(reusable(Some(&image), "sha256:f", true), None);
        assert_eq!(reusable(Some(&image), "sha256:g", false), None);
        assert_eq!(reusable(Some(&image), "", false), None);
        assert_eq!(reusable(None, "sha256:f", false), None);
    }

    #[test]
    fn credentials_are_dropped_from_the_source_url() {
        assert_eq!(without_credentials("https://me:tok@github.com/o/r.git"), "https://github.com/o/r.git");
        assert_eq!(without_credentials("git@github.com:o/r.git"), "git@github.com:o/r.git");
        assert_eq!(without_credentials("https://github.com/o/r"), "https://github.com/o/r");
    }
}
