//! `cargo xtask bench export`: `xtask export` against `poetry export` on one lock file, side by side.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, format_err, Context, Result};
use xshell::Shell;

use xtask::paths;

use crate::{median, xtask_binary, Export};

/// `cargo xtask bench export`: `xtask export` against `poetry export -f requirements.txt` on one project, in
/// interleaved runs, after checking that both print the same bytes.
pub(crate) fn run(sh: &Shell, flags: Export) -> Result<()> {
    let runs = flags.runs;
    let project = match &flags.project {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => default_export_project()?,
    };
    for file in ["pyproject.toml", "poetry.lock"] {
        if !project.join(file).is_file() {
            bail!(
                "{} has no {file}: --project must name a Poetry project with a lock file",
                project.display()
            );
        }
    }
    let poetry = poetry_executable(flags.poetry.as_deref())?;
    let ours = xtask_binary(sh, flags.release)?;
    let profile = if flags.release {
        "release profile"
    } else {
        "the dev profile `cargo xtask` runs"
    };

    // Poetry reads only these two files; a copy keeps the project (and its directory) untouched.
    let name = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "project".into());
    let dir = paths::bench_dir("export").join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for file in ["pyproject.toml", "poetry.lock"] {
        std::fs::copy(project.join(file), dir.join(file))
            .with_context(|| format!("cannot copy {file}"))?;
    }

    let mut ours_cmd = Command::new(&ours);
    ours_cmd
        .args(["export", "--app"])
        .arg(&dir)
        .args(["-f", "requirements.txt"]);
    let mut poetry_cmd = Command::new(&poetry);
    poetry_cmd
        .args(["export", "-f", "requirements.txt"])
        .current_dir(&dir);

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
        let line = ours_out
            .lines()
            .zip(poetry_out.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0)
            + 1;
        bail!("the outputs differ (first at line {line}); fix that before timing anything");
    }
    println!("outputs: identical ({} lines)\n", ours_out.lines().count());

    let (mut ours_times, mut poetry_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let (_, ours_time) = timed(&mut ours_cmd)?;
        let (_, poetry_time) = timed(&mut poetry_cmd)?;
        let (ours_time, poetry_time) = (ours_time.as_secs_f64(), poetry_time.as_secs_f64());
        let ratio = poetry_time / ours_time;
        println!(
            "run {run:>2}/{runs}: ours {:>9}   poetry {:>9}   {ratio:>6.1}x",
            ms(ours_time),
            ms(poetry_time)
        );
        ours_times.push(ours_time);
        poetry_times.push(poetry_time);
        ratios.push(ratio);
    }
    // At least one run: `--runs` is 1 or more.
    let median_of = |values: &[f64]| median(values).unwrap_or(f64::NAN);
    let (ours_median, poetry_median, median_ratio) = (
        median_of(&ours_times),
        median_of(&poetry_times),
        median_of(&ratios),
    );
    println!();
    println!(
        "median: ours {}   poetry {}",
        ms(ours_median),
        ms(poetry_median)
    );
    println!(
        "median ratio: {median_ratio:.1}x faster (ratio of medians {:.1}x)",
        poetry_median / ours_median
    );
    Ok(())
}

fn timed(command: &mut Command) -> Result<(String, Duration)> {
    let start = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!(
            "{:?} failed ({}):\n{}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed,
    ))
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
fn poetry_executable(flag: Option<&std::path::Path>) -> Result<PathBuf> {
    let howto = "install poetry 2.5.1 with its export plugin (`python3 -m pip install poetry==2.5.1 poetry-plugin-export==1.10.1`), or point XTASK_TEST_POETRY at one";
    let poetry = match flag
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XTASK_TEST_POETRY").map(PathBuf::from))
    {
        Some(p) => p,
        None => {
            which::which("poetry").map_err(|_| format_err!("poetry not found on PATH: {howto}"))?
        }
    };
    let ok = Command::new(&poetry)
        .args(["export", "--help"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        bail!("`{} export` does not work: {howto}", poetry.display());
    }
    Ok(poetry)
}
