//! `cargo xtask bench image`: the app's image built four ways on the same base image with the same builder (by
//! this tool, by the recipe's single- and multi-stage Dockerfiles, and by the Dockerfile uv's Docker guide
//! teaches, adapted to a Poetry lock; theirs are kept in `bench/fixtures/`), measured side by side in interleaved
//! runs: sizes (ours against the floor), cold builds, no-op rebuilds, rebuilds after an app change and after a
//! dependency is added, and `docker run` to the first 200 on the health path. Prints medians and the ratios
//! ours/theirs, then the goals.
//!
//! The uv Dockerfile builds from the app's files plus requirements.txt, which the benchmark writes with `xtask
//! export` (as a team commits it or generates it in CI) whenever the lock changes, before the timed build. Its
//! cache mounts (`/root/.cache/uv`, `/root/.cache/pip`) are what it has instead of a wheelhouse: its cold build
//! starts with them empty (`--no-cache`, and the mounts the benchmark's builds made are pruned before each run),
//! its warm build keeps them and misses every layer (it builds on a second base image of the run), and its build
//! after a dependency is added finds in them what the run's cold build put there. The legacy builder cannot
//! build it (`RUN --mount` needs BuildKit): with `--builder legacy` its column is left out, with a note.
//!
//! Isolation. The recipes build from a clean copy of the app's tracked files (`git ls-files`) plus the recipe's
//! `.dockerignore`, as from a checkout; ours builds the same copy with `cargo xtask image --name
//! xtask-bench-ours`, as the built binary a user runs, with a `CARGO_TARGET_DIR` of its own so that its
//! wheelhouse and pip cache are the benchmark's. Every run builds on a base of its own
//! (`xtask-bench-base:<pid>-<run>`): the given base plus a file of a few bytes, since BuildKit's cache goes by
//! layers and a new image id alone would not keep one run from taking a layer another run cached; and plus the
//! label `xtask.bench.image`, which every image the benchmark makes inherits: by it the benchmark finds and
//! removes its images (never the base image or any image it did not build), leftovers of an interrupted
//! benchmark included. One benchmark at a time per engine: the lock in `target/xtask/bench/image/` keeps a
//! second one out of this workspace only, and a benchmark from another workspace on the same engine would
//! remove this one's images. With BuildKit, the cache records above those bases (the records BuildKit makes
//! for them and everything built on them) are pruned at the end, one by one by id, and so are the cache mounts
//! on uv's and pip's cache directories made during the benchmark. The legacy builder keeps its cache in the
//! images themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, format_err, Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use xshell::Shell;

use xtask::config::Config;
use xtask::dockerfile::VENV;
use xtask::engine::{BuildRequest, Builder, Engine};
use xtask::flags::{EngineFlags, Overrides};
use xtask::settings::{self, BASE_IMAGE_ENV};
use xtask::{gen, paths};

use crate::{fixtures, median, xtask_binary, Image};

/// The label every image of the benchmark carries (inherited from its per-run base image).
const LABEL: &str = "xtask.bench.image";
/// The name of the per-run base images.
const BASE_NAME: &str = "xtask-bench-base";
/// The file each run's base image adds: `/etc/xtask-bench-run`.
const RUN_FILE_NAME: &str = "xtask-bench-run";
/// How long an image gets to answer its health path.
const FIRST_200_TIMEOUT: Duration = Duration::from_secs(60);

/// The cache directories the uv Dockerfile mounts; the benchmark prunes the cache mounts on them it made.
/// How many times each run changes the app (`Metric::AppChange`), every tool building after each change.
const APP_CHANGES: usize = 3;

const CACHE_MOUNTS: [&str; 2] = ["/root/.cache/uv", "/root/.cache/pip"];

/// How many ways to build the image.
const TOOLS: usize = 4;

/// The ways to build the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ours,
    Single,
    Multi,
    Uv,
}

impl Tool {
    const ALL: [Tool; TOOLS] = [Tool::Ours, Tool::Single, Tool::Multi, Tool::Uv];

    fn index(self) -> usize {
        self as usize
    }

    fn title(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Single => "single-stage",
            Tool::Multi => "multi-stage",
            Tool::Uv => "uv",
        }
    }

    /// The image name (repository) the benchmark builds it under.
    fn image(self) -> &'static str {
        match self {
            Tool::Ours => "xtask-bench-ours",
            Tool::Single => "xtask-bench-recipe-single",
            Tool::Multi => "xtask-bench-recipe-multi",
            Tool::Uv => "xtask-bench-uv",
        }
    }

    /// Their Dockerfile, a fixture.
    fn dockerfile(self) -> Option<PathBuf> {
        let name = match self {
            Tool::Ours => return None,
            Tool::Single => "recipe-single.Dockerfile",
            Tool::Multi => "recipe-multi.Dockerfile",
            Tool::Uv => "uv.Dockerfile",
        };
        Some(fixtures().join(name))
    }
}

/// What is measured; one row of the table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    Size,
    /// No layer cache; ours also without its wheelhouse and pip cache, uv without its cache mounts.
    Cold,
    /// No layer cache; ours with its wheelhouse, uv with its cache mounts (the recipes have neither: their cold
    /// build again).
    ColdWarm,
    Noop,
    AppChange,
    DepsChange,
    First200,
}

/// The measurements so far: for each metric, each tool's samples (seconds or bytes).
#[derive(Debug, Default)]
struct Samples(BTreeMap<Metric, [Vec<f64>; TOOLS]>);

impl Samples {
    fn push(&mut self, metric: Metric, tool: Tool, value: f64) {
        self.0.entry(metric).or_default()[tool.index()].push(value);
    }
    fn get(&self, metric: Metric) -> [Vec<f64>; TOOLS] {
        self.0.get(&metric).cloned().unwrap_or_default()
    }
    fn median(&self, metric: Metric, tool: Tool) -> Option<f64> {
        self.0.get(&metric).and_then(|s| median(&s[tool.index()]))
    }
}

/// What the floor is made of, measured in our image: apparent sizes of regular files, as the engine counts
/// them for a layer's size.
#[derive(Debug, Clone, Copy, Default)]
struct Floor {
    base: u64,
    venv: u64,
    app: u64,
    stdlib_bytecode: u64,
}

impl Floor {
    fn total(&self) -> u64 {
        self.base + self.venv + self.app + self.stdlib_bytecode
    }
}

pub(crate) fn run(sh: &Shell, flags: Image) -> Result<()> {
    let runs = flags.runs;
    let overrides = Overrides {
        app: flags.app,
        base_image: flags.base_image,
        ..Overrides::default()
    };
    let config = settings::resolve(&overrides)?.config;
    if config.base_image_is_default {
        bail!(
            "which base image? pass --base-image IMAGE (or set {BASE_IMAGE_ENV}): every build of the benchmark \
             starts from it (e.g. --base-image xtask-local/python:{} on a machine without a registry)",
            config.python
        );
    }
    let choice = settings::engine_choice(&EngineFlags {
        engine: flags.engine,
        builder: flags.builder,
    })?;
    let engine = choice.engine(false)?;
    let (builder, why) = engine.builder()?;
    if builder == Builder::Legacy && choice.builder.is_none() {
        bail!(
            "the benchmark builds with BuildKit unless told otherwise, and {} offers none ({why}): pass --engine \
             with a docker client that has it (a client before 23.0 sets DOCKER_BUILDKIT=1, e.g. /usr/bin/docker \
             from Debian's docker.io; a newer one needs the buildx plugin), or --builder legacy",
            engine.shown()
        );
    }
    let deps_changed = match &flags.deps_changed {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => fixtures().join("deps-changed"),
    };
    check_deps_changed(&config.app_dir, &deps_changed)?;

    let dir = paths::bench_dir("image");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", paths::display(&dir)))?;
    let lock = File::create(dir.join("bench.lock"))?;
    if lock.try_lock().is_err() {
        bail!(
            "another `cargo xtask bench image` is running in this workspace; wait for it to finish"
        );
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("cannot install signal handlers")?;
    }
    let mut bench = Bench {
        sh,
        exe: xtask_binary(sh, false)?,
        app: dir.join("app"),
        logs: dir.join("logs"),
        ours_target: dir.join("target"),
        dir,
        deps_changed,
        without_recipes: flags.without_recipes,
        engine,
        builder,
        builder_why: why,
        config,
        interrupted,
        containers: Vec::new(),
        roots: BTreeSet::new(),
        records_before: None,
        run_base: String::new(),
        warm_base: String::new(),
        samples: Samples::default(),
        floor: None,
        base_size: 0,
        ours_steps: BTreeMap::new(),
    };
    let result = bench.measure(runs);
    let result = if bench.interrupted() {
        Err(format_err!("interrupted"))
    } else {
        result
    };
    let cleaned = bench.cleanup();
    match (&result, cleaned) {
        (Ok(()), Err(e)) => return Err(e),
        (Err(_), Err(e)) => println!("bench: cleaning up failed too: {e:#}"),
        _ => {}
    }
    result?;
    bench.report(runs);
    Ok(())
}

struct Bench<'a> {
    sh: &'a Shell,
    /// This binary: ours runs as `<exe> image ...`, like `cargo xtask image` once compiled.
    exe: PathBuf,
    config: Config,
    engine: Engine,
    builder: Builder,
    builder_why: String,
    /// `target/xtask/bench/image`
    dir: PathBuf,
    /// The copy of the app every build starts from.
    app: PathBuf,
    logs: PathBuf,
    /// `CARGO_TARGET_DIR` of ours: its state (wheelhouse) and pip cache.
    ours_target: PathBuf,
    /// The app's pyproject.toml and poetry.lock with a dependency added.
    deps_changed: PathBuf,
    /// `--without-recipes`: ours and uv's only.
    without_recipes: bool,
    interrupted: Arc<AtomicBool>,
    /// Containers started and not yet removed.
    containers: Vec<String>,
    /// BuildKit's cache records of the runs' base images' own layers: every record the benchmark's builds make
    /// descends from one of them.
    roots: BTreeSet<String>,
    /// BuildKit's cache records when the benchmark started (with BuildKit only).
    records_before: Option<BTreeSet<String>>,
    /// This run's base image.
    run_base: String,
    /// This run's second base image, for uv's warm build.
    warm_base: String,
    samples: Samples,
    floor: Option<Floor>,
    /// The given base image's size.
    base_size: u64,
    /// The step times ours printed, by measurement, from the last run.
    ours_steps: BTreeMap<Metric, String>,
}

impl Bench<'_> {
    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.interrupted() {
            bail!("interrupted");
        }
        Ok(())
    }

    fn measure(&mut self, runs: usize) -> Result<()> {
        let engine = &self.engine;
        let builder = match self.builder {
            Builder::BuildKit => format!("BuildKit ({})", self.builder_why),
            other => other.name().to_string(),
        };
        let tools = self.tools();
        println!(
            "bench image: {} built {} ways, {runs} interleaved runs",
            paths::display(&self.config.app_dir),
            tools.len()
        );
        println!(
            "  base image: {} (each run builds on a copy with a file and a label of its own)",
            self.config.base_image
        );
        let path = if engine.path == engine.program {
            String::new()
        } else {
            format!(" ({})", engine.path.display())
        };
        println!(
            "  engine: {}{path}, builder: {builder}, the same for all",
            engine.shown()
        );
        println!(
            "  ours: {} image --name {} (wheelhouse and pip cache under {})",
            self.exe.display(),
            Tool::Ours.image(),
            paths::display(&self.ours_target)
        );
        for &tool in &tools[1..] {
            println!(
                "  {}: {} build --file {}",
                tool.title(),
                engine.shown(),
                paths::display(&tool.dockerfile().unwrap())
            );
        }
        if let Some(note) = self.uv_left_out() {
            println!("  uv: left out: {note}");
        }
        println!(
            "  the app's tracked files are copied to {}; logs in {}",
            paths::display(&self.app),
            paths::display(&self.logs)
        );
        std::fs::create_dir_all(&self.logs)?;

        // BuildKit is docker's (podman builds with buildah).
        if self.builder == Builder::BuildKit {
            self.records_before = Some(self.build_records()?.into_iter().map(|r| r.id).collect());
        }

        for run in 1..=runs {
            self.check()?;
            let mut order = tools.clone();
            order.rotate_left((run - 1) % tools.len());
            let titles: Vec<&str> = order.iter().map(|t| t.title()).collect();
            println!("\nrun {run}/{runs} (order: {})", titles.join(", "));
            self.remove_bench_images()?;
            self.prune_cache_mounts()?;
            self.run_base = self.new_base(run, "")?;
            if tools.contains(&Tool::Uv) {
                self.warm_base = self.new_base(run, "-warm")?;
            }
            self.copy_app()?;
            self.write_requirements()?;

            for &tool in &order {
                if tool == Tool::Ours {
                    let state = self.ours_target.join("xtask");
                    if state.exists() {
                        std::fs::remove_dir_all(&state)
                            .with_context(|| format!("cannot remove {}", paths::display(&state)))?;
                    }
                    self.build(
                        run,
                        Metric::Cold,
                        tool,
                        "cold build, wheelhouse and pip cache cold",
                    )?;
                    self.build(run, Metric::ColdWarm, tool, "cold build, wheelhouse warm")?;
                } else if tool == Tool::Uv {
                    self.build(run, Metric::Cold, tool, "cold build, cache mounts empty")?;
                    self.build(
                        run,
                        Metric::ColdWarm,
                        tool,
                        "cold build, cache mounts warm (on the run's second base)",
                    )?;
                } else {
                    self.build(run, Metric::Cold, tool, "cold build")?;
                }
            }
            self.sizes()?;
            for &tool in &order {
                self.build(run, Metric::Noop, tool, "no-op rebuild")?;
            }
            for &tool in &order {
                self.first_200(run, tool)?;
            }
            // A single build of a third of a second is within the machine's noise (0.3-0.7 s for the same
            // build in one run): the app is changed APP_CHANGES times in each run, each tool building after
            // each change, in turn.
            for edit in 1..=APP_CHANGES {
                let changed = self.change_app(run, edit)?;
                let mut turn = order.clone();
                turn.rotate_left((edit - 1) % order.len());
                for &tool in &turn {
                    self.build(
                        run,
                        Metric::AppChange,
                        tool,
                        &format!("rebuild after a change of {changed} ({edit}/{APP_CHANGES})"),
                    )?;
                }
            }
            self.change_deps()?;
            self.write_requirements()?;
            for &tool in &order {
                self.build(
                    run,
                    Metric::DepsChange,
                    tool,
                    "rebuild after a dependency is added",
                )?;
            }
        }
        Ok(())
    }

    /// The ways to build that this builder can run: uv's Dockerfile needs BuildKit's cache mounts (buildah has
    /// them too).
    fn tools(&self) -> Vec<Tool> {
        Tool::ALL
            .into_iter()
            .filter(|&t| t != Tool::Uv || self.uv_left_out().is_none())
            .filter(|&t| !(self.without_recipes && matches!(t, Tool::Single | Tool::Multi)))
            .collect()
    }

    /// Why the uv column is left out, if it is.
    fn uv_left_out(&self) -> Option<&'static str> {
        (self.builder == Builder::Legacy).then_some(
            "the legacy builder rejects its Dockerfile at the first `RUN --mount=type=cache` (\"the --mount option \
             requires BuildKit\"); without its cache mounts it is another Dockerfile",
        )
    }

    /// Writes requirements.txt into the copy of the app, as `cargo xtask export` does (main group, with hashes):
    /// what a team using the uv Dockerfile commits beside the lock or generates in CI. Not timed.
    fn write_requirements(&self) -> Result<()> {
        if !self.tools().contains(&Tool::Uv) {
            return Ok(());
        }
        let output = self.app.join("requirements.txt");
        let (exe, app) = (&self.exe, &self.app);
        xshell::cmd!(self.sh, "{exe} export --app {app} --output {output}")
            .quiet()
            .env("CARGO_TARGET_DIR", &self.ours_target)
            .run()
            .with_context(|| format!("cannot write {}", paths::display(&output)))?;
        Ok(())
    }

    /// Prints `label ...` now and the time when done; stores the sample. The cold metrics build with
    /// `--no-cache`, except uv's warm build: `--no-cache` starts cache mounts empty too (BuildKit of Docker
    /// 20.10), so it builds on the run's second base image instead, which no layer in the cache matches.
    fn build(&mut self, run: usize, metric: Metric, tool: Tool, what: &str) -> Result<()> {
        self.check()?;
        let uv_warm = tool == Tool::Uv && metric == Metric::ColdWarm;
        let no_cache = matches!(metric, Metric::Cold | Metric::ColdWarm) && !uv_warm;
        print!("  {:<13} {what} ... ", tool.title());
        let _ = std::io::stdout().flush();
        let log = self
            .logs
            .join(format!("run{run}-{metric:?}-{}.log", tool.image()).to_lowercase());
        let took = match tool {
            Tool::Ours => {
                let mut args: Vec<String> = ["image", "--app"].map(String::from).to_vec();
                args.push(self.app.display().to_string());
                args.extend(
                    ["--name", Tool::Ours.image(), "--base-image", &self.run_base]
                        .map(String::from),
                );
                args.extend([
                    "--engine".to_string(),
                    self.engine.program.display().to_string(),
                ]);
                match self.builder {
                    Builder::BuildKit => args.extend(["--builder", "buildkit"].map(String::from)),
                    Builder::Legacy => args.extend(["--builder", "legacy"].map(String::from)),
                    Builder::Buildah => {}
                }
                if no_cache {
                    args.push("--no-cache".to_string());
                }
                let expression =
                    duct::cmd(&self.exe, &args).env("CARGO_TARGET_DIR", &self.ours_target);
                self.exec(expression, &log)?
            }
            _ => {
                let dockerfile = tool.dockerfile().unwrap();
                let (tag, base) = if uv_warm {
                    ("warm", &self.warm_base)
                } else {
                    ("latest", &self.run_base)
                };
                let tags = [format!("{}:{tag}", tool.image())];
                let build_args = [("BASE_IMAGE".to_string(), base.clone())];
                let iidfile = self.dir.join("image.id");
                let request = BuildRequest {
                    context: &self.app,
                    dockerfile: &dockerfile,
                    tags: &tags,
                    build_args: &build_args,
                    labels: &[],
                    no_cache,
                    iidfile: &iidfile,
                    platform: None,
                    cache_from: &[],
                    timestamp: None,
                    target: None,
                };
                self.engine_build(&request, &log)?
            }
        };
        let mut note = String::new();
        if tool == Tool::Ours {
            // `image: steps: export 0.00 s, ..., total 1.23 s`: where ours spent its time.
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(steps) = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("image: steps: "))
            {
                let busy: Vec<&str> = steps.split(", ").filter(|s| busy_step(s)).collect();
                if !busy.is_empty() {
                    note = format!("   ({})", busy.join(", "));
                }
                self.ours_steps.insert(metric, steps.to_string());
            }
        }
        println!("{}{note}", seconds(took.as_secs_f64()));
        self.samples.push(metric, tool, took.as_secs_f64());
        Ok(())
    }

    /// Builds with the engine's own build command line (the one `cargo xtask image` runs) and the benchmark's
    /// builder, through `exec`. Returns how long it took.
    fn engine_build(&self, request: &BuildRequest<'_>, log: &Path) -> Result<Duration> {
        let (mut args, env) = self.engine.build_command(self.builder, request);
        // The recipes and uv's Dockerfile download in their RUN steps (apt, pip, uv): they get the network
        // that `build_command` denies our own, offline builds.
        if let Some(at) = args
            .windows(2)
            .position(|w| w[0] == "--network" && w[1] == "none")
        {
            args.drain(at..at + 2);
        }
        let expression = env
            .iter()
            .fold(duct::cmd(&self.engine.path, &args), |e, (key, value)| {
                e.env(key, value)
            });
        self.exec(expression, log)
    }

    /// Runs a long command in a process group of its own with its output in `log`; on a signal, passes SIGINT to
    /// the group (SIGKILL after 10 seconds) and fails. Returns how long it took.
    fn exec(&self, expression: duct::Expression, log: &Path) -> Result<Duration> {
        let file =
            File::create(log).with_context(|| format!("cannot create {}", paths::display(log)))?;
        let started = Instant::now();
        let handle = expression
            .stdin_null()
            // The outer redirection applies first: stdout to the log, then stderr to that stdout.
            .stderr_to_stdout()
            .stdout_file(file)
            .unchecked()
            .before_spawn(|command| {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
                Ok(())
            })
            .start()
            .context("cannot start the command")?;
        loop {
            if let Some(output) = handle.try_wait()? {
                let took = started.elapsed();
                if !output.status.success() {
                    self.check()?;
                    bail!(
                        "failed ({}); the end of {}:\n{}",
                        output.status,
                        paths::display(log),
                        tail(&std::fs::read_to_string(log).unwrap_or_default(), 25)
                    );
                }
                return Ok(took);
            }
            if self.interrupted() {
                // The child leads its own process group (never 0, which would be ours).
                let group = handle.pids().first().copied().filter(|&pid| pid > 0);
                if let Some(group) = group {
                    xtask::signals::kill_group(group, "INT");
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while handle.try_wait()?.is_none() {
                    if Instant::now() > deadline {
                        match group {
                            Some(group) => {
                                xtask::signals::kill_group(group, "KILL");
                            }
                            None => handle.kill()?,
                        };
                        let _ = handle.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                bail!("interrupted");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A base image of this run (`suffix` tells it from the run's other one): the given one plus a file naming
    /// it (a few bytes, so that no layer any other build cached can match: BuildKit's cache goes by layers, not
    /// image ids) and the label, under a name of its own; returns its tag. With BuildKit, the cache record of
    /// that layer is noted: everything built on it descends from it.
    fn new_base(&mut self, run: usize, suffix: &str) -> Result<String> {
        let dir = self.dir.join("base");
        std::fs::create_dir_all(&dir)?;
        let tag = format!("{BASE_NAME}:{}-{run}{suffix}", std::process::id());
        let nonce = format!(
            "{tag} {:?}\n",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?
        );
        gen::write_atomic(&dir.join(RUN_FILE_NAME), nonce.as_bytes())?;
        let dockerfile = dir.join("Dockerfile");
        let text = format!(
            "FROM {}\nCOPY {RUN_FILE_NAME} /etc/{RUN_FILE_NAME}\n",
            self.config.base_image
        );
        gen::write_atomic(&dockerfile, text.as_bytes())?;
        let request = BuildRequest {
            context: &dir,
            dockerfile: &dockerfile,
            tags: std::slice::from_ref(&tag),
            build_args: &[],
            labels: &[(LABEL.to_string(), tag.clone())],
            no_cache: false,
            iidfile: &dir.join("image.id"),
            platform: None,
            cache_from: &[],
            timestamp: None,
            target: None,
        };
        let buildkit = self.records_before.is_some();
        let before: BTreeSet<String> = if buildkit {
            self.build_records()?.into_iter().map(|r| r.id).collect()
        } else {
            BTreeSet::new()
        };
        self.engine_build(
            &request,
            &self.logs.join(format!("run{run}-base{suffix}.log")),
        )
        .with_context(|| {
            format!(
                "cannot make this run's base image {tag} from {}",
                self.config.base_image
            )
        })?;
        if buildkit {
            // The new layer's record: made during that build, a layer (not a build context), on a record that
            // was there before (the base image's).
            let roots: Vec<String> = self
                .build_records()?
                .into_iter()
                .filter(|r| {
                    !before.contains(&r.id) && r.kind == "regular" && before.contains(&r.parent)
                })
                .map(|r| r.id)
                .collect();
            self.roots.extend(roots);
        }
        Ok(tag)
    }

    /// A clean copy of the app's tracked files, as a checkout has them, plus the recipe's .dockerignore.
    fn copy_app(&self) -> Result<()> {
        let source = &self.config.app_dir;
        let listed = self
            .sh
            .cmd("git")
            .arg("-C")
            .arg(source)
            .args(["ls-files", "-z", "--", "."])
            .quiet()
            .read()
            .with_context(|| {
                format!(
                    "{} must be in a git repository: the recipes build a checkout",
                    paths::display(source)
                )
            })?;
        let files: Vec<&str> = listed.split('\0').filter(|f| !f.is_empty()).collect();
        if files.is_empty() {
            bail!("git tracks no files in {}", paths::display(source));
        }
        if self.app.exists() {
            std::fs::remove_dir_all(&self.app)?;
        }
        for file in files {
            let from = source.join(file);
            let to = self.app.join(file);
            std::fs::create_dir_all(to.parent().unwrap())?;
            std::fs::copy(&from, &to).with_context(|| {
                format!(
                    "cannot copy {} (tracked by git, but missing? commit or restore it)",
                    paths::display(&from)
                )
            })?;
        }
        std::fs::copy(
            fixtures().join("recipe.dockerignore"),
            self.app.join(".dockerignore"),
        )?;
        Ok(())
    }

    /// Appends a line to the module of `tool.xtask.app` in the copy; returns its path in the app.
    fn change_app(&self, run: usize, edit: usize) -> Result<String> {
        let module = self
            .config
            .app
            .as_deref()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .replace('.', "/");
        let candidates = [format!("{module}.py"), format!("{module}/__init__.py")];
        let found = ["", "src/"]
            .iter()
            .flat_map(|prefix| candidates.iter().map(move |c| format!("{prefix}{c}")))
            .find(|rel| self.app.join(rel).is_file())
            .ok_or_else(|| {
                format_err!(
                    "cannot find the module of tool.xtask.app ({}) in the app to change it",
                    self.config.app.as_deref().unwrap_or("not found")
                )
            })?;
        let path = self.app.join(&found);
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!(
            "\n# An app change by `cargo xtask bench image` (run {run}, change {edit}).\n"
        ));
        std::fs::write(&path, text)?;
        Ok(found)
    }

    /// Switches the copy to the pyproject.toml and poetry.lock with a dependency added.
    fn change_deps(&self) -> Result<()> {
        for file in ["pyproject.toml", "poetry.lock"] {
            std::fs::copy(self.deps_changed.join(file), self.app.join(file)).with_context(
                || {
                    format!(
                        "cannot copy {}",
                        paths::display(&self.deps_changed.join(file))
                    )
                },
            )?;
        }
        Ok(())
    }

    /// The sizes of the three images and the base, and the floor (measured in ours).
    fn sizes(&mut self) -> Result<()> {
        self.check()?;
        // This run's base is the given one plus a file of a few bytes: the floor counts it, the report shows
        // the given one.
        let tools = self.tools();
        let tags: Vec<String> = tools
            .iter()
            .map(|t| self.tag(*t))
            .chain([self.run_base.clone(), self.config.base_image.clone()])
            .collect();
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let found = self.engine.images(self.sh, &refs)?;
        let mut sizes = Vec::new();
        for (tag, info) in tags.iter().zip(found) {
            sizes.push(
                info.ok_or_else(|| format_err!("the image {tag} is missing"))?
                    .size,
            );
        }
        let (base, given) = (sizes[tools.len()], sizes[tools.len() + 1]);
        for (&tool, &size) in tools.iter().zip(&sizes) {
            self.samples.push(Metric::Size, tool, size as f64);
        }
        let script = format!(
            "import os, sysconfig\n\
             def size(root, keep=lambda p: True):\n\
             \x20   seen, total = set(), 0\n\
             \x20   for d, _, files in os.walk(root):\n\
             \x20       for f in files:\n\
             \x20           p = os.path.join(d, f); s = os.lstat(p)\n\
             \x20           if s.st_ino not in seen and keep(p):\n\
             \x20               seen.add(s.st_ino); total += s.st_size\n\
             \x20   return total\n\
             print(size({VENV:?}), size({:?}), size(sysconfig.get_path('stdlib'), lambda p: p.endswith('.pyc')))\n",
            self.config.workdir
        );
        let answer = self
            .engine
            .python_in(self.sh, &self.tag(Tool::Ours), &script)?;
        let numbers: Vec<u64> = answer
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [venv, app, stdlib_bytecode] = numbers[..] else {
            bail!(
                "unexpected answer measuring the floor in {}: {answer:?}",
                self.tag(Tool::Ours)
            );
        };
        self.floor = Some(Floor {
            base,
            venv,
            app,
            stdlib_bytecode,
        });
        self.base_size = given;
        let shown: Vec<String> = tools
            .iter()
            .zip(&sizes)
            .map(|(t, &size)| format!("{} {}", t.title(), megabytes(size as f64)))
            .collect();
        println!(
            "  sizes: {}; base {}",
            shown.join(", "),
            megabytes(given as f64)
        );
        Ok(())
    }

    /// `<image>:<tag>` of a tool's image.
    fn tag(&self, tool: Tool) -> String {
        match tool {
            Tool::Ours => format!("{}:{}", tool.image(), self.config.version),
            _ => format!("{}:latest", tool.image()),
        }
    }

    /// `docker run` of the image to the first 200 on the health path, polled every 10 ms; then the container
    /// is removed.
    fn first_200(&mut self, run: usize, tool: Tool) -> Result<()> {
        self.check()?;
        print!(
            "  {:<13} docker run to the first 200 on {} ... ",
            tool.title(),
            self.config.health_path
        );
        let _ = std::io::stdout().flush();
        let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        let name = format!("{}-{}-{run}", tool.image(), std::process::id());
        self.containers.push(name.clone());
        let mut command = self
            .sh
            .cmd(&self.engine.program)
            .args([
                "run",
                "--detach",
                "--name",
                &name,
                "--label",
                &format!("{LABEL}={}", self.run_base),
            ])
            .arg("--publish")
            .arg(format!("127.0.0.1:{port}:{}", self.config.port))
            .arg(self.tag(tool))
            .quiet()
            .ignore_stdout();
        if tool != Tool::Ours {
            // The recipes' `make server` (no Makefile here): the app's own server command, as `make server` ran it;
            // for uv the same as its CMD for the example app, and right for any other app.
            command = command.args(&self.config.command);
        }
        let started = Instant::now();
        command
            .run()
            .with_context(|| format!("cannot start a container of {}", self.tag(tool)))?;
        let mut last_check = Instant::now();
        let took = loop {
            self.check()?;
            if xtask::run::http_status(port, &self.config.health_path) == Some(200) {
                break started.elapsed();
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                let info = self.engine.container(self.sh, &name)?;
                let running = info
                    .as_ref()
                    .is_some_and(|c| c.status == "running" || c.status == "created");
                if !running || started.elapsed() > FIRST_200_TIMEOUT {
                    let logs = self.engine.logs(self.sh, &name);
                    bail!(
                        "{} did not answer 200 on {} ({}); its logs:\n{}",
                        self.tag(tool),
                        self.config.health_path,
                        if running {
                            "timed out"
                        } else {
                            "the container stopped"
                        },
                        tail(&logs, 25)
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.engine.remove(self.sh, &name)?;
        self.containers.retain(|c| *c != name);
        println!("{}", seconds(took.as_secs_f64()));
        self.samples
            .push(Metric::First200, tool, took.as_secs_f64());
        Ok(())
    }

    /// Removes every image carrying the benchmark's label: tags first, then what is left by id (intermediate
    /// images of the legacy builder, replaced images), children before parents.
    fn remove_bench_images(&self) -> Result<()> {
        let filter = format!("label={LABEL}");
        let list = || -> Result<Vec<(String, String)>> {
            let text = self
                .sh
                .cmd(&self.engine.program)
                .args(["images", "--all", "--no-trunc", "--filter", &filter])
                .args(["--format", "{{.ID}}\t{{.Repository}}:{{.Tag}}"])
                .quiet()
                .read()?;
            Ok(text
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(id, tag)| (id.to_string(), tag.to_string()))
                .collect())
        };
        let mut previous = Vec::new();
        loop {
            let images = list()?;
            if images.is_empty() {
                return Ok(());
            }
            if images == previous {
                let shown: Vec<String> = images
                    .iter()
                    .map(|(id, tag)| format!("{tag} ({id})"))
                    .collect();
                bail!("cannot remove the benchmark's images: {}", shown.join(", "));
            }
            let tags: Vec<&str> = images
                .iter()
                .map(|(_, tag)| tag.as_str())
                .filter(|t| !t.contains("<none>"))
                .collect();
            let mut refs: Vec<&str> = if tags.is_empty() {
                images.iter().map(|(id, _)| id.as_str()).collect()
            } else {
                tags
            };
            refs.sort();
            refs.dedup();
            let _ = self
                .sh
                .cmd(&self.engine.program)
                .arg("rmi")
                .args(&refs)
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
            previous = images;
        }
    }

    /// BuildKit's cache records: `docker system df -v`.
    fn build_records(&self) -> Result<Vec<Record>> {
        let text = self
            .sh
            .cmd(&self.engine.program)
            .args(["system", "df", "--verbose", "--format"])
            .arg("{{range .BuildCache}}{{.ID}}\t{{.Parent}}\t{{.CacheType}}\t{{.Description}}\n{{end}}")
            .quiet()
            .read()
            .context("cannot list the build cache")?;
        Ok(parse_records(&text))
    }

    /// Prunes BuildKit's cache records of the runs' base images and everything above them, one by one by id,
    /// children first: what the benchmark's builds made.
    fn prune_records(&self) -> Result<()> {
        let Some(before) = &self.records_before else {
            return Ok(());
        };
        let records = self.build_records()?;
        let roots = self
            .roots
            .iter()
            .cloned()
            .chain(run_base_records(&records, before))
            .collect();
        let doomed = records_to_prune(&records, &roots);
        let mut pruned = 0;
        for id in &doomed {
            let ok = self
                .sh
                .cmd(&self.engine.program)
                .args(["builder", "prune", "--force", "--filter"])
                .arg(format!("id={id}"))
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()
                .is_ok();
            pruned += ok as usize;
        }
        println!(
            "bench: pruned {pruned} of the {} build cache records the benchmark's builds made",
            doomed.len()
        );
        Ok(())
    }

    /// Prunes the cache mounts on uv's and pip's cache directories that the benchmark's builds made (BuildKit
    /// only), so that the next cold build of uv starts with them empty, as on a fresh CI machine.
    fn prune_cache_mounts(&self) -> Result<()> {
        let Some(before) = &self.records_before else {
            return Ok(());
        };
        for id in cache_mounts_to_prune(&self.build_records()?, before) {
            self.sh
                .cmd(&self.engine.program)
                .args(["builder", "prune", "--force", "--filter"])
                .arg(format!("id={id}"))
                .quiet()
                .ignore_stdout()
                .run()
                .with_context(|| format!("cannot prune the cache mount {id}"))?;
        }
        Ok(())
    }

    /// Removes the containers still running, the benchmark's images and its build cache records.
    fn cleanup(&mut self) -> Result<()> {
        for name in std::mem::take(&mut self.containers) {
            println!("bench: removing the container {name}");
            let _ = self.engine.remove(self.sh, &name);
        }
        println!("\nbench: removing the benchmark's images (label {LABEL})");
        self.remove_bench_images()?;
        self.prune_records()?;
        self.prune_cache_mounts()
    }

    fn report(&self, runs: usize) {
        let mut rows = Vec::new();
        let mut add = |label: String, unit: Unit, samples: [Vec<f64>; TOOLS]| {
            rows.push(Row {
                label,
                unit,
                samples,
            })
        };
        add(
            "image size".into(),
            Unit::Megabytes,
            self.samples.get(Metric::Size),
        );
        add(
            "cold build, wheelhouse cold".into(),
            Unit::Seconds,
            self.samples.get(Metric::Cold),
        );
        let mut warm = self.samples.get(Metric::Cold);
        for tool in [Tool::Ours, Tool::Uv] {
            warm[tool.index()] = self.samples.get(Metric::ColdWarm)[tool.index()].clone();
        }
        add(
            "cold build, wheelhouse / cache warm *".into(),
            Unit::Seconds,
            warm,
        );
        add(
            "no-op rebuild".into(),
            Unit::Seconds,
            self.samples.get(Metric::Noop),
        );
        add(
            "rebuild after an app change".into(),
            Unit::Seconds,
            self.samples.get(Metric::AppChange),
        );
        add(
            "rebuild after a dependency is added".into(),
            Unit::Seconds,
            self.samples.get(Metric::DepsChange),
        );
        add(
            format!("docker run to first 200 on {}", self.config.health_path),
            Unit::Seconds,
            self.samples.get(Metric::First200),
        );

        println!(
            "\nmedians of {runs} runs; {} via {}; base {} ({})",
            self.builder.name(),
            self.engine.shown(),
            self.config.base_image,
            megabytes(self.base_size as f64)
        );
        print!("{}", table(&rows));
        println!(
            "* ours keeps its wheelhouse, uv its cache mounts (and misses every layer); the recipes have neither: \
             both cold rows compare with their one cold build"
        );
        if let Some(note) = self.uv_left_out() {
            println!("uv: left out: {note}");
        }
        if let Some(floor) = self.floor {
            let ours = self.samples.median(Metric::Size, Tool::Ours).unwrap_or(0.0);
            let without = floor.total() - floor.stdlib_bytecode;
            println!(
                "\nfloor: base {} + virtualenv {} + app files {} + the standard library's bytecode {} = {} \
                 ({} without that bytecode; sizes of the files, as the engine counts a layer)",
                bytes(floor.base as f64),
                bytes(floor.venv as f64),
                bytes(floor.app as f64),
                bytes(floor.stdlib_bytecode as f64),
                bytes(floor.total() as f64),
                bytes(without as f64),
            );
            println!(
                "ours: {} = base + {} payload; {} above the floor",
                bytes(ours),
                bytes(ours - floor.base as f64),
                bytes(ours - floor.total() as f64)
            );
            if let Some(uv) = self.samples.median(Metric::Size, Tool::Uv) {
                println!(
                    "uv: {} = base + {} payload; {} above the floor without the standard library's bytecode",
                    bytes(uv),
                    bytes(uv - floor.base as f64),
                    bytes(uv - without as f64)
                );
            }
        }
        println!("\ngoals:");
        for line in self.goals() {
            println!("  {line}");
        }
        if let Some(steps) = self.ours_steps.get(&Metric::Cold) {
            println!("\nours, last cold build: {steps}");
        }
        if let Some(steps) = self.ours_steps.get(&Metric::Noop) {
            println!("ours, last no-op: {steps}");
        }
    }

    fn goals(&self) -> Vec<String> {
        let m = |metric, tool| self.samples.median(metric, tool).unwrap_or(f64::NAN);
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let mut lines = Vec::new();
        let ours_size = m(Metric::Size, Tool::Ours);
        if let Some(floor) = self.floor {
            let over = ours_size - floor.total() as f64;
            lines.push(format!(
                "image at most 1 MB above the floor: {} above: {}",
                bytes(over),
                verdict(over <= 1e6)
            ));
        }
        if self.without_recipes {
            lines.push("(the recipe's goals: left out with --without-recipes)".to_string());
        }
        let ratio = ours_size / m(Metric::Size, Tool::Multi);
        if !self.without_recipes {
            lines.push(format!(
                "at most 0.35x the multi-stage image: {ratio:.2}x: {}",
                verdict(ratio <= 0.35)
            ));
            let cold = m(Metric::Cold, Tool::Ours);
            let (single, multi) = (
                cold / m(Metric::Cold, Tool::Single),
                cold / m(Metric::Cold, Tool::Multi),
            );
            lines.push(format!(
            "cold build at most 0.3x the recipe's (wheelhouse cold): {single:.2}x single-stage, {multi:.2}x \
             multi-stage: {}",
            verdict(single <= 0.3 && multi <= 0.3)
        ));
        }
        let noop = m(Metric::Noop, Tool::Ours);
        lines.push(format!(
            "no-op `cargo xtask image` under 0.1 s: {}: {}",
            seconds(noop),
            verdict(noop < 0.1)
        ));
        if !self.without_recipes {
            let first = m(Metric::First200, Tool::Ours);
            let theirs = m(Metric::First200, Tool::Single).min(m(Metric::First200, Tool::Multi));
            lines.push(format!(
                "first 200 no slower than the recipes' images: {} vs {} (the faster of theirs): {}",
                seconds(first),
                seconds(theirs),
                verdict(first <= theirs)
            ));
        }
        if self.samples.median(Metric::Cold, Tool::Uv).is_some() {
            for (metric, what, most) in [
                (Metric::Cold, "cold build (nothing cached)", 0.7),
                (
                    Metric::DepsChange,
                    "rebuild after a dependency is added",
                    0.5,
                ),
                (Metric::AppChange, "rebuild after an app change", 1.0),
                (Metric::First200, "first 200", 0.7),
            ] {
                let ratio = m(metric, Tool::Ours) / m(metric, Tool::Uv);
                lines.push(format!(
                    "{what} at most {most:.1}x uv's: {} vs {}, {ratio:.2}x: {}",
                    seconds(m(metric, Tool::Ours)),
                    seconds(m(metric, Tool::Uv)),
                    verdict(ratio <= most)
                ));
            }
        }
        lines
    }
}

/// The fixture with a dependency added must be the app's pyproject.toml plus lines (the same project otherwise),
/// with a poetry.lock.
fn check_deps_changed(app: &Path, variant: &Path) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let original = read(&app.join("pyproject.toml"))?;
    let changed = read(&variant.join("pyproject.toml"))?;
    if !variant.join("poetry.lock").is_file() {
        bail!("{} has no poetry.lock", variant.display());
    }
    if changed == original || !is_subsequence(original.lines(), changed.lines()) {
        bail!(
            "{} must be the app's pyproject.toml with dependencies added (and its poetry.lock made by Poetry): \
             it differs otherwise; remake it as its header says, or pass --deps-changed DIR",
            paths::display(&variant.join("pyproject.toml"))
        );
    }
    Ok(())
}

/// Whether every item of `small` appears in `big`, in order.
fn is_subsequence<'a>(
    small: impl Iterator<Item = &'a str>,
    big: impl Iterator<Item = &'a str>,
) -> bool {
    let mut big = big;
    small.into_iter().all(|line| big.any(|other| other == line))
}

/// One record of BuildKit's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    id: String,
    parent: String,
    /// `regular`, `source.local`, ...
    kind: String,
    description: String,
}

fn parse_records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, '\t');
            let id = fields.next()?.trim().to_string();
            let parent = fields.next()?.trim().to_string();
            let kind = fields.next()?.trim().to_string();
            let description = fields.next().unwrap_or_default().to_string();
            (!id.is_empty()).then_some(Record {
                id,
                parent,
                kind,
                description,
            })
        })
        .collect()
}

/// The records BuildKit made for the runs' base images when a build started from them: `from local` records
/// made during the benchmark on the `from local` record of an image that was there before (the given base
/// image, one record with no parent, whose description may name where the image came from: `from local
/// 127.0.0.1:5000/python:3.11-slim@sha256:...`). Builds from the given base image itself start on its old record;
/// only an image made on top of a base and then built from makes such a record.
fn run_base_records(records: &[Record], before: &BTreeSet<String>) -> Vec<String> {
    let from_local = |r: &Record| {
        let description = r.description.trim();
        description == "from local" || description.starts_with("from local ")
    };
    let bases: BTreeSet<&str> = records
        .iter()
        .filter(|r| before.contains(&r.id) && from_local(r) && r.parent.is_empty())
        .map(|r| r.id.as_str())
        .collect();
    records
        .iter()
        .filter(|r| !before.contains(&r.id) && from_local(r) && bases.contains(r.parent.as_str()))
        .map(|r| r.id.clone())
        .collect()
}

/// The cache mounts on uv's and pip's cache directories made during the benchmark (`cached mount <dir> from exec
/// ...`), which only the uv Dockerfile's builds make; one of the same directory that was there before is someone
/// else's, and kept.
fn cache_mounts_to_prune(records: &[Record], before: &BTreeSet<String>) -> Vec<String> {
    records
        .iter()
        .filter(|r| !before.contains(&r.id) && r.kind == "exec.cachemount")
        .filter(|r| {
            CACHE_MOUNTS.iter().any(|dir| {
                r.description
                    .starts_with(&format!("cached mount {dir} from exec "))
            })
        })
        .map(|r| r.id.clone())
        .collect()
}

/// The records to prune: `roots` and the records that descend from one of them, children before parents.
fn records_to_prune(records: &[Record], roots: &BTreeSet<String>) -> Vec<String> {
    let by_id: BTreeMap<&str, &Record> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    let descends = |id: &str| {
        let mut id = id;
        for _ in 0..=by_id.len() {
            if roots.contains(id) {
                return true;
            }
            match by_id.get(id) {
                Some(r) => id = r.parent.as_str(),
                None => return false,
            }
        }
        false
    };
    let mut ordered: Vec<(usize, &str)> = records
        .iter()
        .filter(|r| descends(&r.id))
        .map(|r| (depth(&by_id, &r.id), r.id.as_str()))
        .collect();
    ordered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ordered.into_iter().map(|(_, id)| id.to_string()).collect()
}

/// How many of `id`'s ancestors (itself included) are in `records`.
fn depth(records: &BTreeMap<&str, &Record>, id: &str) -> usize {
    let mut depth = 0;
    let mut id = id;
    while let Some(r) = records.get(id) {
        depth += 1;
        id = r.parent.as_str();
        if depth > records.len() {
            break;
        }
    }
    depth
}

/// Whether a step of ours' `image: steps:` line (`wheels 5.12 s`, `build 0.20 s (up to date)`) took a tenth of a
/// second or more; the total is not a step.
fn busy_step(step: &str) -> bool {
    let mut words = step.split_whitespace();
    let name = words.next().unwrap_or_default();
    let took = words
        .next()
        .and_then(|w| w.parse::<f64>().ok())
        .unwrap_or(0.0);
    name != "total" && took >= 0.1
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------------------
// The table (pure)
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Megabytes,
    Seconds,
}

/// One row: the samples of ours and of theirs, in the order of `Tool::ALL`.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    unit: Unit,
    samples: [Vec<f64>; TOOLS],
}

fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// `153.5 MB`, or `20.0 kB` under a megabyte; exact to the byte under 10 kB.
fn bytes(n: f64) -> String {
    if n.abs() >= 1e6 {
        megabytes(n)
    } else if n.abs() >= 1e4 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n:.0} bytes")
    }
}

/// Two decimals under 10 s, one above.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The medians of each row side by side, with the ratios ours/theirs; `-` for what was not measured.
fn table(rows: &[Row]) -> String {
    let header = [
        "",
        "ours",
        "single-stage",
        "multi-stage",
        "uv",
        "ours/single",
        "ours/multi",
        "ours/uv",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let medians = row.samples.clone().map(|s| median(&s));
        let value = |m: Option<f64>| match (m, row.unit) {
            (None, _) => "-".to_string(),
            (Some(v), Unit::Megabytes) => megabytes(v),
            (Some(v), Unit::Seconds) => seconds(v),
        };
        let ratio = |theirs: Option<f64>| match (medians[0], theirs) {
            (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}x", ours / theirs),
            _ => "-".to_string(),
        };
        cells.push(vec![
            row.label.clone(),
            value(medians[0]),
            value(medians[1]),
            value(medians[2]),
            value(medians[3]),
            ratio(medians[1]),
            ratio(medians[2]),
            ratio(medians[3]),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let mut line = format!("{:<width$}", row[0], width = widths[0]);
        for (cell, width) in row.iter().zip(&widths).skip(1) {
            line.push_str(&format!("  {cell:>width$}"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn renders_the_table() {
        let rows = [
            Row {
                label: "image size".into(),
                unit: Unit::Megabytes,
                samples: [vec![153.5e6], vec![684e6], vec![587.3e6], vec![141e6]],
            },
            Row {
                label: "no-op rebuild".into(),
                unit: Unit::Seconds,
                samples: [
                    vec![0.2, 0.25, 0.3],
                    vec![1.0, 1.2, 30.0],
                    vec![],
                    vec![0.3],
                ],
            },
        ];
        expect![[r#"
                               ours  single-stage  multi-stage        uv  ours/single  ours/multi  ours/uv
            image size     153.5 MB      684.0 MB     587.3 MB  141.0 MB        0.22x       0.26x    1.09x
            no-op rebuild    0.25 s        1.20 s            -    0.30 s        0.21x           -    0.83x
        "#]]
        .assert_eq(&table(&rows));
    }

    #[test]
    fn prunes_what_descends_from_the_runs_layers_children_first() {
        let record = |id: &str, parent: &str| Record {
            id: id.into(),
            parent: parent.into(),
            kind: "regular".into(),
            description: String::new(),
        };
        let records = [
            record("base", ""),
            record("run-layer", "base"),
            record("copy", "run-layer"),
            record("run", "copy"),
            record("child", "run"),
            record("other", "base"),
            record("others-child", "other"),
        ];
        let roots: BTreeSet<String> = ["run-layer".to_string()].into();
        assert_eq!(
            records_to_prune(&records, &roots),
            ["child", "run", "copy", "run-layer"]
        );

        let mut records = records.to_vec();
        records[0].description = "from local 127.0.0.1:5000/python:3.11-slim@sha256:0e2c".into();
        records[1].description = "from local ".into();
        let before: BTreeSet<String> = ["base".to_string(), "other".to_string()].into();
        assert_eq!(run_base_records(&records, &before), ["run-layer"]);
    }

    #[test]
    fn prunes_only_the_cache_mounts_of_uv_and_pip_made_during_the_benchmark() {
        let records = parse_records(
            "old\t\texec.cachemount\tcached mount /root/.cache/uv from exec /bin/sh -c uv pip install\n\
             new\t\texec.cachemount\tcached mount /root/.cache/uv from exec /bin/sh -c uv pip install\n\
             pip\t\texec.cachemount\tcached mount /root/.cache/pip from exec /bin/sh -c pip install uv\n\
             apt\t\texec.cachemount\tcached mount /var/cache/apt from exec /bin/sh -c apt-get update\n\
             layer\tnew\tregular\tcached mount /root/.cache/uv from exec /bin/sh -c uv pip install\n",
        );
        let before: BTreeSet<String> = ["old".to_string()].into();
        assert_eq!(cache_mounts_to_prune(&records, &before), ["new", "pip"]);
    }

    #[test]
    fn subsequences() {
        assert!(is_subsequence("a\nc".lines(), "a\nb\nc".lines()));
        assert!(!is_subsequence("a\nc".lines(), "c\na".lines()));
        let records = parse_records(
            "id1\t\tsource.local\tlocal source\nid2\tid1\tregular\tmount / from exec a\tb\n",
        );
        assert_eq!(
            (records[1].kind.as_str(), records[1].description.as_str()),
            ("regular", "mount / from exec a\tb")
        );
    }
}
