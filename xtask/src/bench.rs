//! `cargo xtask bench`: benchmarks, not tests. Each one measures ours and theirs side by side in one run and
//! prints medians and ratios.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, format_err, Context, Result};
use xshell::{cmd, Shell};

use crate::flags::{Args, Opt, Task, APP};
use crate::{engine, paths};

pub(crate) const TASK: Task = Task {
    name: "bench",
    summary: "benchmarks: `bench export` (vs poetry export), `bench image` (vs the Makefile recipe)",
    about: "BENCHMARKS:\n    export    time `cargo xtask export` against `poetry export` on the same lock files\n    image     build the app with this tool and with the recipe's two Dockerfiles (xtask/bench/), on the same
              base image (--base-image) and builder, in --runs interleaved runs; report image sizes (ours
              against the floor), cold builds (ours with the wheelhouse and pip cache cold, then warm), no-op
              rebuilds, rebuilds after an app change and a dependency change (xtask/bench/deps-changed), and
              `docker run` to the first 200 on the health path: medians and ratios ours/theirs, then the goals.
              BuildKit unless --builder legacy: pass --engine with a client that offers it (/usr/bin/docker
              here). Images are named xtask-bench-*; everything the benchmark built is removed at the end.",
    positional: "<export|image>",
    options: &[
        APP,
        Opt::value("runs", "N", "repetitions per measurement (default: 5 for export, 3 for image)"),
        Opt::value(
            "project",
            "DIR",
            "export: the Poetry project to export (default: oi-20-big of the poetry-export conformance corpus, found next to the workspace)",
        ),
        Opt::switch("release", "export: build and measure the release binary instead of the one running"),
        Opt::value("poetry", "PATH", "export: the poetry to compare with (default: $XTASK_TEST_POETRY, else poetry on PATH)"),
        Opt::value("base-image", "IMAGE", "image: the base image of every build (default: $XTASK_BASE_IMAGE; required)"),
        engine::ENGINE_OPT,
        Opt::value(
            "builder",
            "BUILDER",
            "image: buildkit (default; the engine must offer it) or legacy, for all three builds (env XTASK_BUILDER)",
        ),
        Opt::value(
            "deps-changed",
            "DIR",
            "image: the app's pyproject.toml and poetry.lock with a dependency added (default: xtask/bench/deps-changed)",
        ),
    ],
};

pub(crate) fn run(sh: &Shell, args: &Args) -> Result<()> {
    match args.positional.first().map(String::as_str) {
        Some("export") => bench_export(sh, args),
        Some("image") => crate::bench_image::run(sh, args),
        Some(other) => bail!("unknown benchmark '{other}': expected `export` or `image`"),
        None => bail!("which benchmark? `cargo xtask bench export` or `cargo xtask bench image`"),
    }
}

/// `cargo xtask bench export`: `xtask export` against `poetry export -f requirements.txt` on one project, in
/// interleaved runs, after checking that both print the same bytes.
fn bench_export(sh: &Shell, args: &Args) -> Result<()> {
    let runs = args.parse::<usize>("runs")?.unwrap_or(5).max(1);
    let project = match args.value("project") {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => default_export_project()?,
    };
    for file in ["pyproject.toml", "poetry.lock"] {
        if !project.join(file).is_file() {
            bail!("{} has no {file}: --project must name a Poetry project with a lock file", project.display());
        }
    }
    let poetry = poetry_executable(args.value("poetry"))?;
    let ours = if args.has("release") {
        eprintln!("building the release binary...");
        cmd!(sh, "cargo build --release --quiet --package xtask").run()?;
        paths::release_binary()
    } else {
        std::env::current_exe().context("cannot locate the running binary")?
    };
    let profile = if args.has("release") { "release profile" } else { "the binary running this benchmark" };

    // Poetry reads only these two files; a copy keeps the project (and its directory) untouched.
    let name = project.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "project".into());
    let dir = paths::bench_dir("export").join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for file in ["pyproject.toml", "poetry.lock"] {
        std::fs::copy(project.join(file), dir.join(file)).with_context(|| format!("cannot copy {file}"))?;
    }

    let mut ours_cmd = Command::new(&ours);
    ours_cmd.args(["export", "--app"]).arg(&dir).args(["-f", "requirements.txt"]);
    let mut poetry_cmd = Command::new(&poetry);
    poetry_cmd.args(["export", "-f", "requirements.txt"]).current_dir(&dir);

    println!(
        "project: {} ({} bytes of poetry.lock)",
        project.display(),
        std::fs::metadata(dir.join("poetry.lock"))?.len()
    );
    println!("ours:    {} export  ({profile})", ours.display());
    println!("theirs:  {} export", poetry.display());
    let (ours_out, _) = timed(&mut ours_cmd)?;
    let (poetry_out, _) = timed(&mut poetry_cmd)?;
    if ours_out != poetry_out {
        let line = ours_out.lines().zip(poetry_out.lines()).position(|(a, b)| a != b).unwrap_or(0) + 1;
        bail!("the outputs differ (first at line {line}); fix that before timing anything");
    }
    println!("outputs: identical ({} lines)\n", ours_out.lines().count());

    let (mut ours_times, mut poetry_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let (_, ours_time) = timed(&mut ours_cmd)?;
        let (_, poetry_time) = timed(&mut poetry_cmd)?;
        let (ours_time, poetry_time) = (ours_time.as_secs_f64(), poetry_time.as_secs_f64());
        let ratio = poetry_time / ours_time;
        println!("run {run:>2}/{runs}: ours {:>9}   poetry {:>9}   {ratio:>6.1}x", ms(ours_time), ms(poetry_time));
        ours_times.push(ours_time);
        poetry_times.push(poetry_time);
        ratios.push(ratio);
    }
    // At least one run: `--runs` is 1 or more.
    let median_of = |values: &[f64]| median(values).unwrap_or(f64::NAN);
    let (ours_median, poetry_median, median_ratio) =
        (median_of(&ours_times), median_of(&poetry_times), median_of(&ratios));
    println!();
    println!("median: ours {}   poetry {}", ms(ours_median), ms(poetry_median));
    println!("median ratio: {median_ratio:.1}x faster (ratio of medians {:.1}x)", poetry_median / ours_median);
    Ok(())
}

fn timed(command: &mut Command) -> Result<(String, Duration)> {
    let start = Instant::now();
    let output = command.output().with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!(
            "{:?} failed ({}):\n{}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok((String::from_utf8_lossy(&output.stdout).into_owned(), elapsed))
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

/// Seconds as milliseconds, one decimal.
fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}

/// The largest lock of the poetry-export conformance corpus, `shared/conformance/poetry-export/oi-20-big`
/// in a directory above the workspace.
fn default_export_project() -> Result<PathBuf> {
    let root = paths::workspace_root();
    for dir in root.ancestors() {
        let candidate = dir.join("shared/conformance/poetry-export/oi-20-big");
        if candidate.join("poetry.lock").is_file() {
            return Ok(candidate);
        }
    }
    bail!("no default project to export: pass --project DIR (a Poetry project with a poetry.lock)")
}

/// The `poetry` to compare with: `--poetry`, `$XTASK_TEST_POETRY`, or `poetry` on PATH, with the export
/// plugin.
fn poetry_executable(flag: Option<&str>) -> Result<PathBuf> {
    let howto = "install poetry 2.5.1 with its export plugin (`python3 -m pip install poetry==2.5.1 poetry-plugin-export==1.10.1`), or point XTASK_TEST_POETRY at one";
    let poetry = match flag.map(PathBuf::from).or_else(|| std::env::var_os("XTASK_TEST_POETRY").map(PathBuf::from)) {
        Some(p) => p,
        None => which::which("poetry").map_err(|_| format_err!("poetry not found on PATH: {howto}"))?,
    };
    let ok = Command::new(&poetry).args(["export", "--help"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        bail!("`{} export` does not work: {howto}", poetry.display());
    }
    Ok(poetry)
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
}
