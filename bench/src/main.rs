//! `cargo xtask bench`: this repository's benchmarks, not tests. Each one measures ours and theirs side by side
//! in one run and prints medians and ratios. They measure the example app against the recipes it replaces, so
//! they live here, outside the `xtask/` folder adopters copy; `cargo xtask bench <ARGS>` runs this binary.

mod export;
mod image;
mod wheels;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;
use xtask::flags::{parse_tasks, Matches, Opt, Parsed, Program, Task, ENGINE};

/// `cargo xtask bench export`.
#[derive(Debug)]
pub(crate) struct Export {
    pub(crate) runs: usize,
    pub(crate) project: Option<PathBuf>,
    pub(crate) release: bool,
    pub(crate) poetry: Option<PathBuf>,
}

/// `cargo xtask bench image`.
#[derive(Debug)]
pub(crate) struct Image {
    pub(crate) runs: usize,
    pub(crate) app: Option<PathBuf>,
    pub(crate) base_image: Option<String>,
    pub(crate) engine: Option<String>,
    pub(crate) builder: Option<xtask::engine::Builder>,
    pub(crate) deps_changed: Option<PathBuf>,
    pub(crate) without_recipes: bool,
}

/// `cargo xtask bench wheels`.
#[derive(Debug)]
pub(crate) struct Wheels {
    pub(crate) corpus: Option<PathBuf>,
    pub(crate) cases: Vec<String>,
    pub(crate) base_image: Option<String>,
    pub(crate) base_image_313: Option<String>,
    pub(crate) build_packages: Vec<String>,
    pub(crate) expect: Option<PathBuf>,
}

enum Benchmark {
    Export(Export),
    Image(Image),
    Wheels(Wheels),
}

const RUNS: Opt = Opt::value(
    "runs",
    "N",
    "repetitions per measurement (default: 5 for export, 3 for image)",
);
const PROJECT: Opt = Opt::value(
    "project",
    "DIR",
    "the Poetry project to export (default: oi-20-big of the poetry-export conformance corpus, found next to the workspace)",
);
const RELEASE: Opt = Opt::switch(
    "release",
    "build and measure the release binary instead of the dev one `cargo xtask` runs",
);
const POETRY: Opt = Opt::value(
    "poetry",
    "PATH",
    "the poetry to compare with (default: $XTASK_TEST_POETRY, else poetry on PATH)",
);
const APP: Opt = Opt::value(
    "app",
    "DIR",
    "the app to build (default: the workspace's, as for `cargo xtask image`)",
);
const BASE_IMAGE: Opt = Opt::value(
    "base-image",
    "IMAGE",
    "the base image of every build (default: $XTASK_BASE_IMAGE; required)",
);
const BUILDER: Opt = Opt::value(
    "builder",
    "BUILDER",
    "buildkit (default; the engine must offer it) or legacy, for every build (env XTASK_BUILDER)",
);
const DEPS_CHANGED: Opt = Opt::value(
    "deps-changed",
    "DIR",
    "the app's pyproject.toml and poetry.lock with a dependency added (default: bench/fixtures/deps-changed)",
);
const WITHOUT_RECIPES: Opt = Opt::switch(
    "without-recipes",
    "leave the recipe's two Dockerfiles out (ours against uv's only: a quicker run while working on a row)",
);

const CORPUS: Opt = Opt::value(
    "corpus",
    "DIR",
    "the poetry-export conformance corpus (default: shared/conformance/poetry-export above the workspace)",
);
const CASE: Opt = Opt::value(
    "case",
    "NAME",
    "only this case (repeatable; default: every case Poetry accepts)",
);
const BASE_IMAGE_311: Opt = Opt::value(
    "base-image",
    "IMAGE",
    "the base image of the Python 3.11 cases (default: python:3.11-slim)",
);
const BASE_IMAGE_313: Opt = Opt::value(
    "base-image-313",
    "IMAGE",
    "the base image of the cases that allow no 3.11 (default: python:3.13-slim)",
);
const BUILD_PACKAGES: Opt = Opt::value(
    "build-packages",
    "PACKAGES",
    "tool.xtask.build-packages given to every case, space-separated (default: none)",
);

const EXPECT: Opt = Opt::value(
    "expect",
    "FILE",
    "fail unless each case is as FILE says (lines `case<TAB>complete` or `case<TAB>blocked by a,b`, `|` between verdicts)",
);

const BENCH: Program = Program {
    name: "cargo xtask bench",
    summary: "benchmarks, each measuring ours and theirs side by side in one run",
    tasks: &[&EXPORT, &IMAGE, &WHEELS],
    footer: "Their fixtures (the recipe's Dockerfiles, the app with a dependency added) are in bench/fixtures/.",
};

const EXPORT: Task = Task {
    name: "export",
    summary: "time `cargo xtask export` against `poetry export` on the same lock file",
    about: "\
Checks that both print the same bytes, then runs them --runs times, interleaved, and prints each run, the
medians and the median ratio.",
    positional: "",
    options: &[RUNS, PROJECT, RELEASE, POETRY],
};

const IMAGE: Task = Task {
    name: "image",
    summary: "build the app with this tool, the recipe's two Dockerfiles and uv's, side by side",
    about: "\
Builds on the same base image (--base-image) and builder, in --runs interleaved runs; reports image sizes
(ours against the floor), cold builds (ours with the wheelhouse and pip cache cold, then warm; uv with its
cache mounts empty, then warm), no-op rebuilds, rebuilds after an app change and after a dependency is added
(bench/fixtures/deps-changed), and `docker run` to the first 200 on the health path: medians and ratios
ours/theirs, then the goals. uv's Dockerfile (bench/fixtures/uv.Dockerfile) builds from the app plus
requirements.txt from `xtask export`. BuildKit unless --builder legacy, which leaves uv out (its cache mounts
need BuildKit): pass --engine with a client that offers it (/usr/bin/docker here). Images are named
xtask-bench-*; everything the benchmark built is removed at the end, cache mounts included.",
    positional: "",
    options: &[RUNS, APP, BASE_IMAGE, ENGINE, BUILDER, DEPS_CHANGED, WITHOUT_RECIPES],
};

const WHEELS: Task = Task {
    name: "wheels",
    summary: "`cargo xtask wheels` over every case of the poetry-export conformance corpus Poetry accepts",
    about: "\
Each case (its pyproject.toml and poetry.lock, copied) for Python 3.11 on linux/amd64, or 3.13 when it allows
no 3.11, with a wheelhouse made from nothing; prints a table: locked packages, wheels, downloaded, built,
the result (complete, or the error naming each package that blocks it) and the time. Logs in
target/xtask/bench/wheels/.",
    positional: "",
    options: &[CORPUS, CASE, BASE_IMAGE_311, BASE_IMAGE_313, BUILD_PACKAGES, EXPECT],
};

fn benchmark(task: &'static Task, m: &mut Matches) -> Result<Benchmark> {
    let runs = |m: &mut Matches, default: usize| -> Result<usize> {
        Ok(m.parse(&RUNS)?.unwrap_or(default).max(1))
    };
    Ok(match task.name {
        "export" => Benchmark::Export(Export {
            runs: runs(m, 5)?,
            project: m.path(&PROJECT),
            release: m.switch(&RELEASE),
            poetry: m.path(&POETRY),
        }),
        "image" => Benchmark::Image(Image {
            runs: runs(m, 3)?,
            app: m.path(&APP),
            base_image: m.value(&BASE_IMAGE),
            engine: m.value(&ENGINE),
            builder: m.parse(&BUILDER)?,
            deps_changed: m.path(&DEPS_CHANGED),
            without_recipes: m.switch(&WITHOUT_RECIPES),
        }),
        "wheels" => Benchmark::Wheels(Wheels {
            corpus: m.path(&CORPUS),
            cases: m.values(&CASE),
            base_image: m.value(&BASE_IMAGE_311),
            base_image_313: m.value(&BASE_IMAGE_313),
            build_packages: m
                .value(&BUILD_PACKAGES)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            expect: m.path(&EXPECT),
        }),
        other => unreachable!("no flags for the benchmark {other}"),
    })
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benchmark = match parse_tasks(&BENCH, &args, benchmark)? {
        Parsed::Help(help) => {
            print!("{help}");
            return Ok(());
        }
        Parsed::Run(benchmark) => benchmark,
    };
    let sh = Shell::new()?;
    sh.change_dir(xtask::paths::workspace_root());
    match benchmark {
        Benchmark::Export(flags) => export::run(&sh, flags),
        Benchmark::Image(flags) => image::run(&sh, flags),
        Benchmark::Wheels(flags) => wheels::run(&sh, flags),
    }
}

/// The benchmarks' committed fixtures.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The dev build of `xtask` that `cargo xtask` runs (built by it before it ran this), or the release build.
fn xtask_binary(sh: &Shell, release: bool) -> Result<PathBuf> {
    let profile = if release { "release" } else { "debug" };
    if release {
        eprintln!("building the release binary...");
        xshell::cmd!(sh, "cargo build --release --quiet --package xtask").run()?;
    } else {
        xshell::cmd!(sh, "cargo build --quiet --package xtask").run()?;
    }
    Ok(xtask::paths::cargo_target_dir()
        .join(profile)
        .join(format!("xtask{}", std::env::consts::EXE_SUFFIX)))
}

/// The median; the mean of the two middle values for an even count; `None` without samples.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some((sorted[n / 2] + sorted[(n - 1) / 2]) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn every_benchmark_reads_exactly_its_options() {
        for task in BENCH.tasks {
            let parsed = parse_tasks(&BENCH, &[task.name.to_string()], benchmark);
            assert!(matches!(parsed, Ok(Parsed::Run(_))), "{}", task.name);
        }
    }
}
