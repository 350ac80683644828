//! `cargo xtask image`: the app's image, from poetry.lock to `<name>:<version>`: export → wheels → Dockerfile →
//! build context → build. Every step skips its work when its inputs did not change; the last one records a
//! fingerprint of everything the image is built from (context, Dockerfile, base image id, build arguments) as a
//! label, and when the tagged image already carries it, the engine is not asked to build at all.
//!
//! The build context is an allowlist assembled under `target/xtask/apps/<name>/context/`: the image's
//! requirements, the wheelhouse, the SBOM (`sbom.rs`) and the files `tool.xtask.include` names (without hidden
//! files and bytecode caches). Nothing else of the app (`.env`, `.git`, `.venv`, tests) can reach the engine.
//! Files are copied only when they changed, keeping their times, so the engine's cache sees the same content.
//!
//! Each platform has a state directory and an image of its own; a base image for another platform than its local
//! tag's is taken from the registry's index by digest. BuildKit builds carry their inline cache and take layers
//! from the repository's images (`--cache-from`); podman builds are dated by the commit (`--timestamp`,
//! `SOURCE_DATE_EPOCH`) so that their digests are reproducible.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, format_err, Context, Result};
use poetry_export::sha256::Sha256;
use xshell::Shell;

use crate::app_layer;
use crate::config::Config;
use crate::dockerfile;
use crate::engine::{self, BuildRequest, Engine, ImageInfo};
use crate::flags::{EngineFlags, Image, Overrides};
use crate::gen::{self, Mode, Outcome};
use crate::identity::{self, Identity};
use crate::project_wheel::{self, ProjectWheel};
use crate::registry::Repository;
use crate::settings;
use crate::site::{self, Site};
use crate::system_packages::SystemPackages;
use crate::wheels::{self, Target, Wheelhouse};
use crate::{inventory, paths, sbom, system_packages};

impl Image {
    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        // Several platforms: one image each, under tags of its own (`<tag>-<arch>`): the engine keeps one image
        // per tag.
        let platforms = if self.platforms.len() > 1 { self.platforms.clone() } else { vec![String::new()] };
        for platform in &platforms {
            let mut settings = self.settings.clone();
            if !platform.is_empty() {
                settings.platform = Some(platform.clone());
            }
            let request = BuildOptions {
                settings: &settings,
                engine: &self.engine,
                no_cache: self.no_cache,
                always_build: self.always_build,
                force: self.force,
                dry_run: self.dry_run,
                multi_platform: platforms.len() > 1,
                for_registry: false,
                repository: None,
            };
            build(sh, &request)?;
        }
        Ok(())
    }
}

/// What `build` is asked: `cargo xtask image`'s flags (`run` builds with the defaults).
pub(crate) struct BuildOptions<'a> {
    pub(crate) settings: &'a Overrides,
    pub(crate) engine: &'a EngineFlags,
    /// Build without the engine's layer cache.
    pub(crate) no_cache: bool,
    /// Ask the engine even when the image is up to date.
    pub(crate) always_build: bool,
    /// Overwrite a hand-edited docker/Dockerfile.
    pub(crate) force: bool,
    pub(crate) dry_run: bool,
    /// One of several platforms: the tags get the platform's suffix (`<name>:<version>-arm64`).
    pub(crate) multi_platform: bool,
    /// The image goes to a registry (`push`): its layers' inline cache must be the one a build elsewhere
    /// makes, so `--no-cache` does not start it from the base stage built beside the wheels.
    pub(crate) for_registry: bool,
    /// The repository whose images BuildKit may take cached layers from (`push --to`); else
    /// `tool.xtask.repository`.
    pub(crate) repository: Option<&'a Repository>,
}

/// The image `build` made or found up to date.
pub(crate) struct Built {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    /// `<name>:<version>` (with the platform's suffix for one of several platforms)
    pub(crate) tag: String,
    pub(crate) id: String,
    /// Bytes, as the engine counts them (base layers included).
    pub(crate) size: u64,
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
pub(crate) fn build(sh: &Shell, options: &BuildOptions<'_>) -> Result<Built> {
    let mut steps = Steps::new();
    // A signal ends the steps that hold children and files (pip with credentials, build containers) through
    // their clean-up, not in the middle of them.
    crate::signals::watch()?;
    let settings = settings::resolve(options.settings)?;
    let config = settings.config.clone();
    let dry_run = options.dry_run;
    let engine = settings::engine_choice(options.engine)?.engine(dry_run)?;
    let _lock = if dry_run { None } else { Some(wheels::lock_state(&config)?) };
    let state = config.state_dir();

    // The app's bytecode compiler, its interpreter starting beside the steps before the context
    // (`site::PendingCompile`).
    let app_compiler = (!dry_run).then(|| {
        let (python, root, prefix) =
            (config.python, paths::build_context(&state).join(dockerfile::CONTEXT_APP), config.workdir.clone());
        std::thread::spawn(move || site::PendingCompile::start(python, &root, &prefix))
    });
    let selection = wheels::select(&config)?;
    // uv, which makes the virtualenv: downloaded (once) beside the wheels.
    let uv = (!dry_run).then(crate::uv::Uv::start);
    steps.done("export", "");

    // The commit (the tags, the labels), asked beside the steps that do not need it: `git status` alone takes
    // 0.03-0.06 s, a fifth of a rebuild after an app change.
    let mut git = PendingGit::start(&config);
    let suffix = if options.multi_platform { format!("-{}", platform_suffix(&config.platform)) } else { String::new() };
    let base = inspect_base(sh, &engine, &config)?;
    // What the base image holds (its Python, machine and glibc: a container, once per image id), asked beside
    // the Dockerfile and the base stage's start (the client's probe: 0.1 s on a fresh machine).
    let facts = base.as_ref().map(|base| {
        let (engine, config, info) = (engine.clone(), config.clone(), base.info.clone());
        std::thread::spawn(move || -> Result<wheels::BaseFacts> {
            wheels::base_facts(&Shell::new()?, &engine, &config, &info)
        })
    });
    steps.done("base image", "");

    let (dockerfile, contents) = dockerfile::target(&settings)?;
    let shown = paths::display(&dockerfile);
    if dry_run {
        let current = std::fs::read_to_string(&dockerfile).ok();
        if current.as_deref() != Some(contents.as_str()) {
            println!("dockerfile: would write {shown} (`cargo xtask dockerfile --dry-run` prints it)");
        }
    } else {
        let mode = Mode::Write { force: options.force };
        match gen::apply(&dockerfile, &contents, mode, dockerfile::COMMAND, dockerfile::ELSEWHERE)? {
            Outcome::Written => println!("dockerfile: wrote {shown}"),
            _ => println!("dockerfile: {shown} is up to date"),
        }
    }
    steps.done("dockerfile", "");

    let base_reference = base.as_ref().map_or(config.base_image.clone(), |b| b.reference.clone());
    let mut build_args = vec![("BASE_IMAGE".to_string(), base_reference)];
    // For a registry, BuildKit writes the cache of each layer into the image's configuration (inline cache, a
    // few kilobytes), so that a machine that pulls it can reuse the layers. Only there: writing it costs every
    // build (0.14-0.21 s of a build with a new virtualenv, 2 builds each; 0.02 s after an app change, measured
    // side by side), and it is a build argument, so the fingerprint tells an image built for `push` from one
    // built for `image`.
    if options.for_registry && !dry_run && engine.builder()?.0 == engine::Builder::BuildKit {
        build_args.push(("BUILDKIT_INLINE_CACHE".to_string(), "1".to_string()));
    }
    // Reproducible digests where the builder can rewrite file times (buildah): the commit's time for every file
    // and for the bytecode and /etc/shadow the build writes. The other builders cannot, and would only lose
    // their layer cache to a value that changes with every commit.
    let epoch = if engine.kind == engine::Kind::Podman { source_date_epoch(git.get().as_ref()) } else { None };
    if let Some(epoch) = epoch {
        build_args.push((dockerfile::SOURCE_DATE_EPOCH.to_string(), epoch.to_string()));
    }
    // A state directory without a virtualenv (a fresh clone, CI): the Dockerfile's first stage, which needs
    // nothing of the app, is built while the wheels download and the virtualenv is made, and the build below
    // finds it in the engine's cache.
    let base_build = match &base {
        Some(base) if !dry_run && config.system_packages.is_empty() && !paths::venv_stamp_in(&state).exists() => {
            let configured = config.repository.as_deref().map(Repository::parse).transpose()?;
            let cache_from = match options.repository.or(configured.as_ref()) {
                Some(repository) => cache_sources(repository, &tag_names(&config, git.get().as_ref()), &suffix),
                None => Vec::new(),
            };
            // With a registry cache the build takes the stage from the registry instead: a layer built here
            // would differ from the registry's, and BuildKit would then match none of the layers after it.
            if cache_from.is_empty() {
                // With --no-cache, the stage built here is the one the build below starts from, by a tag of its
                // own: it is not built a second time.
                let stage_tag = (options.no_cache && !options.for_registry)
                    .then(|| format!("{}:xtask-base-stage{suffix}", config.name));
                engine.builder().ok().and_then(|(b, _)| {
                    start_base_build(&engine, b, &config, &dockerfile, (&build_args, epoch), &state, stage_tag)
                })
            } else {
                None
            }
        }
        _ => None,
    };
    let facts = match facts {
        Some(asked) => Some(asked.join().map_err(|_| format_err!("asking the base image for its Python failed"))??),
        None => wheels::cached_facts(&config),
    };
    let target = Target::new(&config, facts.as_ref())?;
    let host = match &base {
        Some(base) => Some(wheels::BuildHost { engine: &engine, image: base.info.id.clone() }),
        None if dry_run => Some(wheels::BuildHost { engine: &engine, image: config.base_image.clone() }),
        None => None,
    };
    let wheelhouse = wheels::ensure(sh, &config, &selection, &target, host.as_ref(), dry_run)?;
    // The project's own wheel, and what all of them hold: checked against the settings before any build.
    let project = if dry_run { None } else { project_wheel::write(&config, &paths::project_wheel_dir(&state))? };
    // What the wheels hold (their metadata, read by the host's Python): read beside the virtualenv's
    // installation below, checked against the settings before the context is assembled.
    let inventory = (!dry_run).then(|| {
        let mut all: Vec<(PathBuf, String)> =
            wheelhouse.files.iter().map(|(name, sha256)| (wheelhouse.dir.join(name), sha256.clone())).collect();
        all.extend(project.iter().map(|p| (p.path.clone(), p.sha256.clone())));
        let environment = target.marker_environment();
        let cache = paths::inventory_cache();
        std::thread::spawn(move || -> Result<inventory::Inventory> {
            let sh = Shell::new()?;
            inventory::read(&sh, &wheels::host_python()?, &all, &environment, &cache)
        })
    });
    let sbom_of = |inventory: &inventory::Inventory| -> Result<Option<PathBuf>> {
        // The SBOM: what the virtualenv will hold, from the lock and the wheelhouse.
        let Some(base) = &base else { return Ok(None) };
        let mut installed = wheelhouse.files.clone();
        installed.extend(project.iter().map(|p| (p.file_name.clone(), p.sha256.clone())));
        let inputs = sbom::Inputs {
            config: &config,
            packages: &selection.packages,
            wheels: &installed,
            project_wheel: project.as_ref().map(|p| p.file_name.as_str()),
            licenses: &inventory.licenses,
            base: &sbom::BaseImage { reference: base.reference.clone(), id: base.info.id.clone() },
            python: &format!("CPython {}", target.python_full),
        };
        let text = sbom::document(&inputs)?.to_pretty();
        let path = paths::sbom(&state);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            gen::write_atomic(&path, text.as_bytes())?;
        }
        Ok(Some(path))
    };
    steps.done("wheels", if wheelhouse.refreshed { "" } else { " (up to date)" });

    // The system packages (fetched beforehand, so the build is offline), and the libraries built wheels need.
    let system = match (&base, dry_run) {
        (Some(base), false) => system_packages::ensure(&engine, &config, &base.info)?,
        _ => None,
    };
    if !dry_run {
        system_packages::check(&config, &wheelhouse.needs, system.as_ref())?;
    }
    if !config.system_packages.is_empty() {
        steps.done("system packages", "");
    }

    let context_dir = paths::build_context(&state);
    let context = if dry_run {
        println!(
            "context: would assemble {} (venv.tar and venv-added/: the virtualenv uv {} installs from the \
             wheelhouse, app/, sbom.cdx.json)",
            paths::display(&context_dir),
            crate::uv::VERSION
        );
        None
    } else {
        let requirements = image_requirements(&wheelhouse, project.as_ref(), &context_dir)?;
        let mut find_links = vec![wheelhouse.dir.as_path()];
        if let Some(project) = &project {
            find_links.push(project.path.parent().unwrap());
        }
        let bytecode = site::Bytecode { python: config.python, host: host.as_ref(), platform: &config.platform };
        let uv = uv.expect("started unless a dry run");
        let layers = if options.for_registry { site::Layers::Whole } else { site::Layers::Added };
        let venv = site::ensure(
            sh,
            &config,
            &target,
            (&requirements, &find_links, &wheelhouse),
            &bytecode,
            uv,
            (&context_dir, layers),
        )?;
        steps.done("venv", if venv.refreshed { "" } else { " (up to date)" });
        let inventory = inventory
            .expect("read unless a dry run")
            .join()
            .map_err(|_| format_err!("reading the wheels' metadata failed"))??;
        inventory::check(&config, &inventory)?;
        let sbom_file = sbom_of(&inventory)?;
        let compiler = app_compiler.and_then(|started| started.join().ok().flatten());
        let bytecode = (&bytecode, compiler);
        Some(assemble(sh, &config, &venv, bytecode, system.as_ref(), sbom_file.as_deref(), &context_dir)?)
    };
    steps.done("context", "");

    // The image under its tags: the one built last from this context, Dockerfile and base image is not built again.
    let git = git.get().clone();
    let tags: Vec<String> =
        tag_names(&config, git.as_ref()).iter().map(|t| format!("{}:{t}{suffix}", config.name)).collect();
    let (current, commit_tag) = inspect_tags(sh, &engine, &tags)?;
    let commit = commit_labels(git.as_ref());
    let digest_of = |what| match (&context, &base) {
        (Some(context), Some(base)) => digest(what, context, &contents, &base.info.id, &build_args, &config.platform),
        _ => String::new(),
    };
    let fingerprint = digest_of(Digest::Fingerprint(&commit));
    let rebuild = options.always_build || options.no_cache;
    let up_to_date = reusable(current.as_ref(), &fingerprint, rebuild);
    // A new image's labels (given to the build, or written into the configuration of a replaced app layer): the
    // commit's, the fingerprint and the stem; a no-op needs neither.
    let stem = if up_to_date.is_none() { digest_of(Digest::Stem) } else { String::new() };
    let mut labels = commit;
    labels.push((engine::FINGERPRINT_LABEL.to_string(), fingerprint.clone()));
    labels.push((engine::STEM_LABEL.to_string(), stem.clone()));
    // Only the app's files changed since the image under the version tag was made: its top layer is replaced
    // (`app_layer`), not built. Never for a registry (its layers must be the ones BuildKit's cache knows).
    let parent = current.as_ref().filter(|current| {
        up_to_date.is_none()
            && !stem.is_empty()
            && current.stem == stem
            && !rebuild
            && !options.for_registry
            && base_build.is_none()
            && matches!(engine.builder(), Ok((engine::Builder::BuildKit, _)))
    });
    let replaced = parent.and_then(|parent| Some((parent, engine.api()?))).and_then(|(parent, api)| {
        let app = context_dir.join(dockerfile::CONTEXT_APP);
        let mut keys = COMMIT_LABELS.to_vec();
        keys.extend([engine::FINGERPRINT_LABEL, engine::STEM_LABEL]);
        let short = &parent.id.trim_start_matches("sha256:")[..12.min(parent.id.len())];
        match app_layer::replace(&api, &parent.id, (&app, &config.workdir), &tags, (&keys, &labels)) {
            Ok(id) => {
                println!(
                    "image: only the app's files changed: their new layer replaces the top one of {short} (loaded \
                     through the engine's socket, no build)"
                );
                Some(id)
            }
            Err(err) => {
                println!("image: the app's layer of {short} cannot be replaced ({err:#}): building");
                None
            }
        }
    });
    let (id, note) = match (up_to_date, replaced) {
        (Some(image), _) => {
            println!("image: {} is up to date (built from this context, Dockerfile and base image)", tags[0]);
            (image.id.clone(), " (up to date)")
        }
        (None, Some(id)) => (id, " (app layer)"),
        (None, None) => {
            let mut stage_tag = None;
            if let Some((base_build, tag)) = base_build {
                let (ok, took) = base_build.wait();
                let how = if ok { "built" } else { "failed (the build below says why)" };
                println!("image: the base stage {how} beside the wheels in {:.1} s", took.as_secs_f64());
                stage_tag = tag.filter(|_| ok);
            }
            // With --no-cache, the Dockerfile as it is but for its last stage, which starts from the base stage
            // just built (the tag): BuildKit then skips the base stage, unused.
            let from_stage = format!("\nFROM {}\n", dockerfile::BASE_STAGE);
            let mut build_file = dockerfile.clone();
            if let Some(tag) = stage_tag.as_ref().filter(|_| contents.matches(&from_stage).count() == 1) {
                build_file = state.join("Dockerfile.from-base-stage");
                gen::write_atomic(
                    &build_file,
                    contents.replacen(&from_stage, &format!("\nFROM {tag}\n"), 1).as_bytes(),
                )?;
            }
            let (builder, why) = engine.builder()?;
            println!("image: building {} with {} ({why})", tags.join(" and "), builder.name());
            // BuildKit takes the inline cache of the repository's images of this commit and version.
            let mut cache_from = Vec::new();
            if builder == engine::Builder::BuildKit {
                let configured = config.repository.as_deref().map(Repository::parse).transpose()?;
                if let Some(repository) = options.repository.or(configured.as_ref()) {
                    cache_from = cache_sources(repository, &tag_names(&config, git.as_ref()), &suffix);
                    println!(
                        "image: BuildKit takes cached layers from {} (one that does not exist yet is only a note \
                         in its log)",
                        cache_from.join(" and ")
                    );
                }
            }
            let iidfile = state.join("image.id");
            let request = BuildRequest {
                context: &context_dir,
                dockerfile: &build_file,
                tags: &tags,
                build_args: &build_args,
                labels: &labels,
                no_cache: options.no_cache,
                iidfile: &iidfile,
                platform: Some(&config.platform),
                cache_from: &cache_from,
                timestamp: epoch,
                target: None,
            };
            let built = engine.build(builder, &request);
            if let Some(tag) = &stage_tag {
                engine.untag(sh, tag);
            }
            (built?, "")
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
        return Ok(Built { config, engine, tag: tags[0].clone(), id, size: 0 });
    }
    let image = match up_to_date {
        Some(image) => image.clone(),
        None => engine
            .images(sh, &[&id])?
            .pop()
            .flatten()
            .ok_or_else(|| format_err!("the engine does not know the image it just built ({id})"))?,
    };
    report(&config, &tags, &image, base.as_ref().map(|b| &b.info), &steps);
    Ok(Built { config, engine, tag: tags[0].clone(), id, size: image.size })
}

/// Starts the build of the Dockerfile's base stage (`dockerfile::BASE_STAGE`) in the background, from an empty
/// context (the stage copies nothing), with the build arguments of the image's build, so that its layer is the
/// one the image's build takes from the cache; with `tag` (`--no-cache`, BuildKit), built without the cache and
/// tagged, for the image's build to start from (a copy of the Dockerfile whose last stage starts from that tag).
fn start_base_build(
    engine: &Engine,
    builder: engine::Builder,
    config: &Config,
    dockerfile: &Path,
    (build_args, timestamp): (&[(String, String)], Option<u64>),
    state: &Path,
    tag: Option<String>,
) -> Option<(engine::BackgroundBuild, Option<String>)> {
    // The legacy builder builds every stage of the Dockerfile, used or not: it would build the stage again.
    let tag = tag.filter(|_| builder == engine::Builder::BuildKit);
    let empty = state.join("base-context");
    std::fs::create_dir_all(&empty).ok()?;
    let tags: Vec<String> = tag.iter().cloned().collect();
    let request = BuildRequest {
        context: &empty,
        dockerfile,
        tags: &tags,
        build_args,
        labels: &[],
        no_cache: tag.is_some(),
        iidfile: &state.join("base-stage.id"),
        platform: Some(&config.platform),
        cache_from: &[],
        timestamp,
        target: Some(dockerfile::BASE_STAGE),
    };
    println!("image: the base stage (nothing of the app) goes to the engine now, beside the wheels");
    let build = engine.build_in_background(builder, &request, &state.join("base-stage.log")).ok()?;
    Some((build, tag))
}

/// The images of `repository` whose inline cache a build may use: those of this commit and this version
/// (`suffix`: the platform's, for one of several platforms, whose images `push` gives tags of their own).
fn cache_sources(repository: &Repository, tag_names: &[String], suffix: &str) -> Vec<String> {
    if suffix.is_empty() {
        tag_names.iter().rev().map(|t| repository.tag(t)).collect()
    } else {
        vec![repository.tag(&format!("{}{suffix}", tag_names[0]))]
    }
}

/// The seconds since the epoch a reproducible build dates everything by: `SOURCE_DATE_EPOCH` when the
/// environment sets it (the convention of reproducible builds), else the commit's time.
pub(crate) fn source_date_epoch(git: Option<&Git>) -> Option<u64> {
    let from_env = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok());
    from_env.or(git.map(|g| g.time))
}

/// `linux/arm64` → `arm64`, `linux/arm/v7` → `arm-v7`: what tells the platforms' images apart in tags.
pub(crate) fn platform_suffix(platform: &str) -> String {
    platform.strip_prefix("linux/").unwrap_or(platform).replace('/', "-")
}

/// The image under its version tag, when it carries `fingerprint` (it is built from the same inputs) and no
/// rebuild is asked for (`--always-build`, `--no-cache`): then the engine is not asked to build.
fn reusable<'a>(current: Option<&'a ImageInfo>, fingerprint: &str, rebuild: bool) -> Option<&'a ImageInfo> {
    current.filter(|image| !rebuild && !fingerprint.is_empty() && image.fingerprint == fingerprint)
}

/// The tags of the image, without its name: `<version>`, then `<short commit>[-dirty]` when the app is in a git
/// repository.
pub(crate) fn tag_names(config: &Config, git: Option<&Git>) -> Vec<String> {
    let mut tags = vec![config.version.clone()];
    if let Some(git) = git {
        let suffix = if git.dirty { "-dirty" } else { "" };
        tags.push(format!("{}{suffix}", git.short));
    }
    tags
}

/// The base image of the build: the engine's image, and the reference the Dockerfile is given to build `FROM`.
pub(crate) struct Base {
    pub(crate) info: ImageInfo,
    /// `base-image` as configured, or `<name>@<digest>` of the platform's image in the registry's index.
    pub(crate) reference: String,
}

/// The base image for the image's platform (pulled when missing).
fn inspect_base(sh: &Shell, engine: &Engine, config: &Config) -> Result<Option<Base>> {
    let base_ref = config.base_image.as_str();
    if engine.dry_run {
        println!("$ {} image inspect {base_ref}", engine.shown());
        return Ok(None);
    }
    let local = engine.images(sh, &[base_ref])?.pop().flatten();
    Ok(Some(base_for_platform(sh, engine, config, local)?))
}

/// The image under its version tag and under its commit tag, when they exist.
fn inspect_tags(sh: &Shell, engine: &Engine, tags: &[String]) -> Result<(Option<ImageInfo>, Option<ImageInfo>)> {
    if engine.dry_run {
        println!("$ {} image inspect {}", engine.shown(), tags.join(" "));
        return Ok((None, None));
    }
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let mut found = engine.images(sh, &refs)?.into_iter();
    Ok((found.next().flatten(), found.next().flatten()))
}

/// The app's commit (`git_info`), asked by a thread of its own while the steps that do not need it go on.
struct PendingGit {
    thread: Option<std::thread::JoinHandle<Option<Git>>>,
    value: Option<Option<Git>>,
}

impl PendingGit {
    fn start(config: &Config) -> Self {
        let config = config.clone();
        PendingGit { thread: Some(std::thread::spawn(move || git_info(&config))), value: None }
    }

    fn get(&mut self) -> &Option<Git> {
        if let Some(thread) = self.thread.take() {
            // A panic in the thread is git's answer missing: the image is then tagged by version alone.
            self.value = Some(thread.join().unwrap_or(None));
        }
        self.value.get_or_insert(None)
    }
}

/// Whether an image's `os/arch[/variant]` is `platform`'s (a variant only counts when `platform` names one).
fn same_platform(image: &str, platform: &str) -> bool {
    let parts = |p: &str| p.split('/').map(str::to_string).collect::<Vec<_>>();
    let (image, wanted) = (parts(image), parts(platform));
    image.len() >= 2
        && wanted.len() >= 2
        && image[..2] == wanted[..2]
        && (wanted.len() == 2 || image.get(2) == wanted.get(2))
}

/// The base image for the image's platform: the engine's image of `base-image` when it is for that platform;
/// else, when the registry holds an index under that name, its image for the platform, pulled by digest (the
/// engine keeps one image per tag, so another platform's image must not take the tag: both are built from);
/// else the image pulled for the platform.
fn base_for_platform(sh: &Shell, engine: &Engine, config: &Config, local: Option<ImageInfo>) -> Result<Base> {
    let base_ref = config.base_image.as_str();
    let platform = config.platform.as_str();
    if let Some(info) = local.as_ref().filter(|info| same_platform(&info.platform, platform)) {
        return Ok(Base { info: info.clone(), reference: base_ref.to_string() });
    }
    let unavailable = |why: &str| {
        format_err!(
            "the base image {base_ref} for {platform} is not available locally and cannot be pulled ({why}).\n\
             Pull it where a registry is reachable (`{} pull --platform {platform} {base_ref}`), or pass a local image \
             with Python {} for {platform}: `--base-image <image>` or `{}=<image>` (`{} images` lists the local \
             ones){}",
            engine.shown(),
            config.python,
            settings::BASE_IMAGE_ENV,
            engine.shown(),
            if engine.kind == engine::Kind::Podman {
                format!("; an image docker has: `docker save {base_ref} | podman load`")
            } else {
                String::new()
            }
        )
    };
    // Another platform's image under the tag, or none: the registry's index, if it has one.
    let index = engine.index_platforms(sh, base_ref);
    match (&index, &local) {
        (Ok(Some(images)), _) => {
            let Some((_, digest)) = images.iter().find(|(p, _)| same_platform(p, platform)) else {
                let listed: Vec<&str> = images.iter().map(|(p, _)| p.as_str()).collect();
                bail!(
                    "the base image {base_ref} has no image for {platform} (its index lists {}): pick a base image \
                     that is built for {platform}, or leave {platform} out of --platform / tool.xtask.platforms",
                    listed.join(", ")
                );
            };
            let pinned = format!("{}@{digest}", crate::registry::without_tag(base_ref));
            if engine.images(sh, &[&pinned])?.pop().flatten().is_none() {
                println!("image: pulling the {platform} image of the base image {base_ref}");
                engine.pull(&pinned, None).map_err(|why| unavailable(&why))?;
            }
            let info = engine
                .images(sh, &[&pinned])?
                .pop()
                .flatten()
                .ok_or_else(|| format_err!("{pinned} was pulled but the engine does not know it"))?;
            return check_platform(engine, config, Base { info, reference: pinned });
        }
        (_, Some(info)) => {
            // A local image of another platform, and no index to take the platform's from.
            let why = match &index {
                Err(e) => format!(" ({e:#})"),
                _ => String::new(),
            };
            bail!(
                "the base image {base_ref} is for {}, but the image's platform is {platform}, and no registry has an \
                 index of it for {platform}{why}: pass a base image for that platform (--base-image), pull one \
                 (`{} pull --platform {platform} {base_ref}`), or pass --platform {}",
                info.platform,
                engine.shown(),
                info.platform
            );
        }
        _ => {}
    }
    println!("image: the base image {base_ref} is not here; pulling it");
    engine.pull(base_ref, Some(platform)).map_err(|why| unavailable(&why))?;
    let info = engine.images(sh, &[base_ref])?.pop().flatten().ok_or_else(|| {
        format_err!("{base_ref} was pulled but the engine does not know it; try `{} pull {base_ref}`", engine.shown())
    })?;
    check_platform(engine, config, Base { info, reference: base_ref.to_string() })
}

fn check_platform(engine: &Engine, config: &Config, base: Base) -> Result<Base> {
    if !same_platform(&base.info.platform, &config.platform) {
        bail!(
            "the base image {} is for {}, but the image's platform is {}: pull the base image for that platform \
             (`{} pull --platform {} {}`) or pass --platform {}",
            base.reference,
            base.info.platform,
            config.platform,
            engine.shown(),
            config.platform,
            config.base_image,
            base.info.platform
        );
    }
    Ok(base)
}

/// What git says about the app's commit.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    pub(crate) short: String,
    full: String,
    /// The commit's time, RFC 3339.
    created: String,
    /// The commit's time, seconds since the epoch.
    pub(crate) time: u64,
    /// The app's files or docker/ differ from the commit (untracked files included).
    pub(crate) dirty: bool,
    /// `origin`'s URL without credentials, or empty.
    source: String,
}

/// The app's commit, or `None` when the app is not in a git repository (or git is missing).
pub(crate) fn git_info(config: &Config) -> Option<Git> {
    // Three short git calls, side by side.
    let git = |args: &[&str], paths: &[&Path]| {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(&config.app_dir)
            .args(args)
            .args(paths)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let docker_dir = paths::docker_dir();
    let (log, status, source) = std::thread::scope(|scope| {
        let status = scope.spawn(|| {
            // docker/ is outside the app's repository: then the app's folder alone.
            git(&["status", "--porcelain", "--"], &[&config.app_dir, &docker_dir])
                .or_else(|| git(&["status", "--porcelain", "--"], &[&config.app_dir]))
        });
        let source = scope.spawn(|| git(&["remote", "get-url", "origin"], &[]));
        let log = git(&["log", "-1", "--format=%h%n%H%n%cI%n%ct"], &[]);
        (log, status.join().ok().flatten(), source.join().ok().flatten())
    });
    let log = log?;
    let mut lines = log.lines();
    let (short, full, created) = (lines.next()?.to_string(), lines.next()?.to_string(), lines.next()?.to_string());
    let time = lines.next()?.trim().parse().ok()?;
    let dirty = status.is_some_and(|text| !text.trim().is_empty());
    let source = source.map(|url| without_credentials(url.trim())).unwrap_or_default();
    Some(Git { short, full, created, time, dirty, source })
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

/// The OCI labels of the commit, given to the build (`--label`): they change the image's configuration, no
/// layer. Only what is known: no revision or time outside git, and the source only when the remote is a URL
/// others can reach (not a path on this machine).
fn commit_labels(git: Option<&Git>) -> Vec<(String, String)> {
    let Some(git) = git else { return Vec::new() };
    let [revision_key, created_key, source_key] = COMMIT_LABELS.map(str::to_string);
    let revision = if git.dirty { format!("{}-dirty", git.full) } else { git.full.clone() };
    let mut labels = vec![(revision_key, revision), (created_key, git.created.clone())];
    if is_remote_url(&git.source) {
        labels.push((source_key, git.source.clone()));
    }
    labels
}

/// The labels of the commit (`commit_labels`), given to the build with `--label`.
const COMMIT_LABELS: [&str; 3] =
    ["org.opencontainers.image.revision", "org.opencontainers.image.created", "org.opencontainers.image.source"];

/// `https://host/repo`, `ssh://...`, `git@host:org/repo`: a repository on another machine.
fn is_remote_url(url: &str) -> bool {
    match url.split_once("://") {
        Some((scheme, rest)) => scheme != "file" && !rest.is_empty() && !rest.starts_with('/'),
        None => url.split_once(':').is_some_and(|(host, _)| host.contains('@') && !host.contains('/')),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The build context
// ---------------------------------------------------------------------------------------------------------

/// The assembled build context.
pub(crate) struct BuildContext {
    /// Each file: path in the context, mode, sha256.
    manifest: Vec<(String, u32, String)>,
    /// The stamps of the virtualenv and of the app's bytecode: what they were made from.
    venv: String,
    app_bytecode: String,
}

/// One file the context must hold.
struct Wanted {
    source: PathBuf,
    /// Known already (wheels: from the wheelhouse's stamp).
    sha256: Option<String>,
}

/// The requirements the image's virtualenv is installed from: the wheelhouse's, and the project's own wheel after
/// them (beside the context, which holds the virtualenv, not the wheels).
fn image_requirements(wheelhouse: &Wheelhouse, project: Option<&ProjectWheel>, dir: &Path) -> Result<PathBuf> {
    let Some(project) = project else { return Ok(wheelhouse.requirements.clone()) };
    let path = dir.with_extension("requirements.txt");
    let mut text = std::fs::read_to_string(&wheelhouse.requirements)
        .with_context(|| format!("cannot read {}", paths::display(&wheelhouse.requirements)))?;
    text.push_str(&project.requirement);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        gen::write_atomic(&path, text.as_bytes())?;
    }
    Ok(path)
}

/// Makes `dir` hold exactly the virtualenv (`site.rs`, which made `venv/`), the SBOM, the system packages and the
/// included app files with their bytecode; copies only what changed.
pub(crate) fn assemble(
    sh: &Shell,
    config: &Config,
    venv: &Site,
    (bytecode, compiler): (&site::Bytecode<'_>, Option<site::PendingCompile>),
    system: Option<&SystemPackages>,
    sbom: Option<&Path>,
    dir: &Path,
) -> Result<BuildContext> {
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    if let Some(sbom) = sbom {
        wanted.insert(dockerfile::CONTEXT_SBOM.to_string(), Wanted { source: sbom.to_path_buf(), sha256: None });
    }
    if let Some(system) = system {
        // The list of what was asked and fetched: the folder exists even when the base image has every package.
        let list = format!("{}/{}", dockerfile::CONTEXT_SYSTEM, system_packages::LIST);
        wanted.insert(list, Wanted { source: system.dir.join(system_packages::LIST), sha256: None });
        for (name, sha256) in &system.debs {
            let source = system.dir.join(name);
            wanted.insert(
                format!("{}/{name}", dockerfile::CONTEXT_SYSTEM),
                Wanted { source, sha256: Some(sha256.clone()) },
            );
        }
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

    // The hashes of sources and of what the context holds are remembered between runs, with the files'
    // identities (size, times, inode): a file whose identity changed is hashed again, so the context follows
    // the bytes, whatever the times say.
    let cache_path = dir.with_extension("stamp");
    let cache = ContextStamp::read(&cache_path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", paths::display(dir)))?;
    let removed = prune(dir, dir, &wanted, &bytecode_tag(config))?;
    let mut copied = 0;
    let mut bytes = 0;
    let mut manifest = Vec::new();
    let mut new_cache = ContextStamp::default();
    for (rel, file) in &wanted {
        let meta = std::fs::metadata(&file.source).with_context(|| format!("cannot read {}", file.source.display()))?;
        let mode =
            if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0 { 0o755 } else { 0o644 };
        let identity = Identity::of(&meta);
        let source_key = file.source.display().to_string();
        let sha256 = match (&file.sha256, cache.sources.get(&source_key)) {
            (Some(known), _) => known.clone(),
            (None, Some((sha, recorded))) if identity.vouches(recorded, cache.written_ns) => sha.clone(),
            (None, _) => gen::sha256_file(&file.source)?,
        };
        let dest = dir.join(rel);
        let held = std::fs::metadata(&dest)
            .ok()
            .filter(|d| d.is_file() && std::os::unix::fs::PermissionsExt::mode(&d.permissions()) & 0o777 == mode);
        // The context is ours: what it holds is what was written there, as long as the file is the same one.
        let same = match (held, cache.context.get(rel)) {
            (Some(d), Some((sha, recorded))) => *sha == sha256 && Identity::of(&d) == *recorded,
            _ => false,
        };
        if !same {
            let mtime = meta.modified().with_context(|| format!("cannot read {}", file.source.display()))?;
            copy_file(&file.source, &dest, mode, mtime)?;
            // What the context holds is what was hashed (a source changed between the two is hashed again).
            if file.sha256.is_none() && gen::sha256_file(&dest)? != sha256 {
                bail!("{} changed while it was copied into the context; run the command again", file.source.display());
            }
            copied += 1;
        }
        let held = Identity::read(&dest).with_context(|| format!("cannot read {}", paths::display(&dest)))?;
        new_cache.sources.insert(source_key, (sha256.clone(), identity));
        new_cache.context.insert(rel.clone(), (sha256.clone(), held));
        bytes += meta.len();
        manifest.push((rel.clone(), mode, sha256));
    }
    new_cache.write(&cache_path)?;

    // The app's bytecode, compiled here, so that no step of the image build follows the app's files: again when
    // a source or the Python changed, or a `.pyc` is missing.
    let tag = bytecode_tag(config);
    let sources: Vec<&(String, u32, String)> =
        manifest.iter().filter(|(rel, _, _)| rel.starts_with(APP_PREFIX) && rel.ends_with(".py")).collect();
    let mut hasher = Sha256::default();
    hasher.update(format!("xtask app bytecode 1\n{tag}\nworkdir {}\n", config.workdir).as_bytes());
    for (rel, _, sha256) in &sources {
        hasher.update(format!("{sha256} {rel}\n").as_bytes());
    }
    let app_bytecode = format!("sha256:{}", hasher.hex());
    let stamp_path = dir.with_extension("bytecode");
    let fresh = std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(app_bytecode.as_str())
        && sources.iter().all(|(rel, _, _)| dir.join(pyc_of(rel, &tag)).is_file());
    if !fresh && !sources.is_empty() {
        let _ = std::fs::remove_file(&stamp_path);
        let app = dir.join(dockerfile::CONTEXT_APP);
        match compiler.map(site::PendingCompile::finish).transpose()? {
            Some(true) => {}
            // The host's Python is another version: no second try of it.
            Some(false) => bytecode.in_container(&app, &config.workdir, true)?,
            None => bytecode.compile(sh, &app, &config.workdir, true)?,
        }
        gen::write_atomic(&stamp_path, app_bytecode.as_bytes())?;
    }
    let debs = system.map(|s| s.debs.len() + 1).unwrap_or(0);
    println!(
        "context: {} holds the virtualenv ({} packages) and {} files ({}): {}{}{} app files ({copied} copied, \
         {removed} removed), their bytecode{}",
        paths::display(dir),
        venv.packages,
        manifest.len(),
        megabytes(bytes),
        if sbom.is_some() { "the SBOM, " } else { "" },
        if debs == 0 { String::new() } else { format!("{} system packages, ", debs - 1) },
        manifest.len() - usize::from(sbom.is_some()) - debs,
        if fresh { " (up to date)" } else { "" },
    );
    Ok(BuildContext { manifest, venv: format!("{} (added: {})", venv.stamp, venv.layers), app_bytecode })
}

/// `app/` in the context.
const APP_PREFIX: &str = "app/";

/// `cpython-311`: the part of a `.pyc` name that says which Python compiled it.
fn bytecode_tag(config: &Config) -> String {
    format!("cpython-{}{}", config.python.major, config.python.minor)
}

/// `app/pkg/mod.py` → `app/pkg/__pycache__/mod.cpython-311.pyc`.
fn pyc_of(source: &str, tag: &str) -> String {
    let (dir, file) = source.rsplit_once('/').unwrap_or(("", source));
    format!("{dir}/__pycache__/{}.{tag}.pyc", file.trim_end_matches(".py"))
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

/// Removes from the context what is not wanted; returns how many files went. The virtualenv is `site.rs`'s; the
/// bytecode of a wanted app source (`tag`: of the image's Python) stays.
fn prune(root: &Path, dir: &Path, wanted: &BTreeMap<String, Wanted>, tag: &str) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", paths::display(dir)))? {
        let entry = entry?;
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let kind = entry.file_type()?;
        if (rel == dockerfile::CONTEXT_VENV_TAR && kind.is_file())
            || (rel == dockerfile::CONTEXT_VENV_ADDED && kind.is_dir())
        {
            continue;
        }
        if kind.is_file() && rel.starts_with(APP_PREFIX) && is_bytecode_of_wanted(&rel, wanted, tag) {
            continue;
        }
        if kind.is_dir() {
            let prefix = format!("{rel}/");
            if wanted.keys().any(|k| k.starts_with(&prefix)) || rel.ends_with("/__pycache__") {
                removed += prune(root, &path, wanted, tag)?;
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

/// `app/pkg/__pycache__/mod.cpython-311.pyc` when `app/pkg/mod.py` is wanted.
fn is_bytecode_of_wanted(rel: &str, wanted: &BTreeMap<String, Wanted>, tag: &str) -> bool {
    let Some((dir, file)) = rel.rsplit_once("/__pycache__/") else { return false };
    let Some(module) = file.strip_suffix(&format!(".{tag}.pyc")) else { return false };
    !module.contains('.') && wanted.contains_key(&format!("{dir}/{module}.py"))
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

/// What the context's stamp records: the sha256 and identity of each source file and of each file the
/// context holds, and when that was recorded (for the racy rule of `Identity::vouches`).
#[derive(Debug, Default)]
struct ContextStamp {
    written_ns: i128,
    sources: BTreeMap<String, (String, Identity)>,
    context: BTreeMap<String, (String, Identity)>,
}

impl ContextStamp {
    fn read(path: &Path) -> ContextStamp {
        let mut stamp = ContextStamp::default();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let mut words = line.splitn(4, ' ');
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("written"), Some(ns), None, None) => stamp.written_ns = ns.parse().unwrap_or(0),
                (Some(kind @ ("source" | "context")), Some(sha), Some(identity), Some(path)) => {
                    let Some(identity) = Identity::parse(identity) else { continue };
                    let map = if kind == "source" { &mut stamp.sources } else { &mut stamp.context };
                    map.insert(path.to_string(), (sha.to_string(), identity));
                }
                _ => {}
            }
        }
        stamp
    }

    fn write(&self, path: &Path) -> Result<()> {
        let mut text = format!("written {}\n", identity::now_ns());
        for (kind, map) in [("source", &self.sources), ("context", &self.context)] {
            for (path, (sha, identity)) in map {
                text.push_str(&format!("{kind} {sha} {} {path}\n", identity.to_text()));
            }
        }
        gen::write_atomic(path, text.as_bytes())
    }
}

/// What `digest` sums up.
#[derive(Clone, Copy)]
enum Digest<'a> {
    /// Everything the image is built from, the commit's labels included (the `xtask.fingerprint` label): the
    /// context's files (paths, modes, contents), the virtualenv and the app's bytecode, the Dockerfile, the base
    /// image's id, the build arguments and the platform.
    Fingerprint(&'a [(String, String)]),
    /// The same but for `app/` (its files and their bytecode) and the labels (the `xtask.stem` label): two images
    /// of the same stem differ in their top layer alone, the Dockerfile's last step that adds files (`COPY app/
    /// ./`), and in their labels.
    Stem,
}

/// The checksum `what` names.
fn digest(
    what: Digest<'_>,
    context: &BuildContext,
    dockerfile: &str,
    base_id: &str,
    build_args: &[(String, String)],
    platform: &str,
) -> String {
    let mut hasher = Sha256::default();
    let app = format!("{}/", dockerfile::CONTEXT_APP);
    let labels = match what {
        Digest::Fingerprint(labels) => {
            hasher.update(b"xtask image 4\n");
            labels
        }
        Digest::Stem => {
            hasher.update(b"xtask image stem 1\n");
            &[]
        }
    };
    let stem = matches!(what, Digest::Stem);
    for (path, mode, sha256) in context.manifest.iter().filter(|(path, _, _)| !(stem && path.starts_with(&app))) {
        hasher.update(format!("file {path} {mode:o} {sha256}\n").as_bytes());
    }
    hasher.update(format!("venv {}\n", context.venv).as_bytes());
    if !stem {
        hasher.update(format!("bytecode {}\n", context.app_bytecode).as_bytes());
    }
    hasher.update(format!("dockerfile {}\n", dockerfile.len()).as_bytes());
    hasher.update(dockerfile.as_bytes());
    hasher.update(format!("base {base_id}\nplatform {platform}\n").as_bytes());
    for (key, value) in build_args {
        hasher.update(format!("arg {key}={value}\n").as_bytes());
    }
    for (key, value) in labels {
        hasher.update(format!("label {key}={value}\n").as_bytes());
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
            stem: String::new(),
        };
        assert_eq!(reusable(Some(&image), "sha256:f", false), Some(&image));
        // --always-build and --no-cache build a new image: what is reported and tagged is that one.
        assert_eq!(reusable(Some(&image), "sha256:f", true), None);
        assert_eq!(reusable(Some(&image), "sha256:g", false), None);
        assert_eq!(reusable(Some(&image), "", false), None);
        assert_eq!(reusable(None, "sha256:f", false), None);
    }

    #[test]
    fn only_a_remote_is_a_source() {
        assert!(is_remote_url("https://github.com/o/r.git"));
        assert!(is_remote_url("git@github.com:o/r.git"));
        assert!(is_remote_url("ssh://git@host/o/r"));
        assert!(!is_remote_url("/srv/git/app.git"));
        assert!(!is_remote_url("../app.git"));
        assert!(!is_remote_url("file:///srv/git/app.git"));
        assert!(!is_remote_url(""));
    }

    #[test]
    fn credentials_are_dropped_from_the_source_url() {
        assert_eq!(without_credentials("https://me:tok@github.com/o/r.git"), "https://github.com/o/r.git");
        assert_eq!(without_credentials("git@github.com:o/r.git"), "git@github.com:o/r.git");
        assert_eq!(without_credentials("https://github.com/o/r"), "https://github.com/o/r");
    }
}
