//! `cargo xtask bench wheels`: `cargo xtask wheels` over every case of the poetry-export conformance corpus that
//! Poetry itself accepts, each for Python 3.11 on linux/amd64 (3.13 when the project allows no 3.11), with a
//! wheelhouse of its own made from nothing (pip's download cache and the built-wheel cache stay warm): one line
//! per case with the locked packages, the wheels, how many were downloaded and built, the result (or the error
//! naming the packages that block it) and the time.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use xtask::config::PythonVersion;
use xtask::flags::Overrides;
use xtask::{paths, settings};

use crate::{xtask_binary, Wheels};

/// One case's row.
#[derive(Debug)]
struct Row {
    case: String,
    python: String,
    locked: usize,
    wheels: String,
    downloaded: String,
    built: String,
    result: String,
    seconds: f64,
}

pub(crate) fn run(sh: &Shell, flags: Wheels) -> Result<()> {
    let corpus = match &flags.corpus {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => default_corpus()?,
    };
    let cases_tsv = std::fs::read_to_string(corpus.join("CASES.tsv")).with_context(|| {
        format!(
            "{} has no CASES.tsv: --corpus must name the poetry-export corpus",
            corpus.display()
        )
    })?;
    // The cases Poetry refuses (stale lock, invalid project) are the ones whose only row expects an error.
    let refused: BTreeSet<&str> = cases_tsv
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, rest)| rest.starts_with("expected/expected-error.txt"))
        .map(|(case, _)| case)
        .collect();
    let mut cases: Vec<String> = std::fs::read_dir(&corpus)?
        .flatten()
        .filter(|e| e.path().join("poetry.lock").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|c| !refused.contains(c.as_str()))
        .filter(|c| flags.cases.is_empty() || flags.cases.contains(c))
        .collect();
    cases.sort();
    if cases.is_empty() {
        bail!("no case of {} to run", corpus.display());
    }
    let ours = xtask_binary(sh, false)?;
    let base_311 = flags
        .base_image
        .clone()
        .unwrap_or_else(|| "python:3.11-slim".to_string());
    let base_313 = flags
        .base_image_313
        .clone()
        .unwrap_or_else(|| "python:3.13-slim".to_string());
    println!(
        "corpus: {} ({} cases Poetry accepts; refused: {})",
        corpus.display(),
        cases.len(),
        refused.len()
    );
    if !flags.build_packages.is_empty() {
        println!("build-packages: {}", flags.build_packages.join(" "));
    }
    let mut rows = Vec::new();
    for case in &cases {
        let copy = paths::bench_dir("wheels").join(case);
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy)?;
        for file in ["pyproject.toml", "poetry.lock"] {
            std::fs::copy(corpus.join(case).join(file), copy.join(file))
                .with_context(|| format!("{case}: {file}"))?;
        }
        if !flags.build_packages.is_empty() {
            let pyproject = copy.join("pyproject.toml");
            let text = std::fs::read_to_string(&pyproject)?;
            if text.contains("[tool.xtask]") {
                bail!("{case} has a [tool.xtask] table already");
            }
            let quoted: Vec<String> = flags
                .build_packages
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect();
            std::fs::write(
                &pyproject,
                format!(
                    "{text}\n[tool.xtask]\nbuild-packages = [{}]\n",
                    quoted.join(", ")
                ),
            )?;
        }
        let overrides = Overrides {
            app: Some(copy.clone()),
            ..Overrides::default()
        };
        let lowest = settings::resolve(&overrides).map(|s| s.config.python).ok();
        let (python, base) = match lowest {
            Some(p)
                if p > (PythonVersion {
                    major: 3,
                    minor: 11,
                }) =>
            {
                ("3.13", &base_313)
            }
            _ => ("3.11", &base_311),
        };
        let name = format!("xtask-bench-wheels-{case}");
        let _ = std::fs::remove_dir_all(paths::state_dir(&name, paths::DEFAULT_PLATFORM));
        print!("{case}: ");
        let started = Instant::now();
        let output = Command::new(&ours)
            .args(["wheels", "--app"])
            .arg(&copy)
            .args(["--name", &name, "--python", python, "--base-image", base])
            .output()
            .with_context(|| format!("cannot run {}", ours.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(copy.with_extension("log"), &text)?;
        let row = row(case, python, &copy, &text, output.status.success(), seconds);
        println!(
            "{} ({seconds:.1} s)",
            row.result.lines().next().unwrap_or("")
        );
        rows.push(row);
    }
    println!("\n{}", table(&rows));
    println!(
        "logs: {}/<case>.log",
        paths::display(&paths::bench_dir("wheels"))
    );
    if let Some(expect) = &flags.expect {
        let text = std::fs::read_to_string(expect)
            .with_context(|| format!("cannot read {}", expect.display()))?;
        let unmet = unmet(&text, &rows);
        if !unmet.is_empty() {
            bail!(
                "{} of {} cases are not as {} expects:\n  {}",
                unmet.len(),
                rows.len(),
                expect.display(),
                unmet.join("\n  ")
            );
        }
        println!("every case is as {} expects", expect.display());
    }
    Ok(())
}

/// The packages an error names as blocking (`  - name version: ...`, or the one after `cannot be made: `).
fn blocking(result: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = result
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        if let Some((_, rest)) = result.split_once("cannot be made: ") {
            names.extend(rest.split_whitespace().next().map(str::to_string));
        }
    }
    names
}

/// The cases whose row is not what `expected` says (pure). Each line of it is `case<TAB>verdict|verdict...`, a
/// verdict being `complete` or `blocked by name,name` (the packages the error names, no more, no fewer).
fn unmet(expected: &str, rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (case, verdicts) = line.split_once('\t').unwrap_or((line, ""));
        let Some(row) = rows.iter().find(|r| r.case == case) else {
            continue;
        };
        let got = if row.result == "complete" {
            "complete".to_string()
        } else {
            let names: Vec<String> = blocking(&row.result).into_iter().collect();
            format!("blocked by {}", names.join(","))
        };
        if !verdicts.split('|').any(|v| v.trim() == got) {
            out.push(format!("{case}: {got}, expected {verdicts}"));
        }
    }
    out
}

/// The row of one case from `xtask wheels`'s output (pure but for counting the lock's packages).
fn row(case: &str, python: &str, copy: &Path, text: &str, ok: bool, seconds: f64) -> Row {
    let lock = std::fs::read_to_string(copy.join("poetry.lock")).unwrap_or_default();
    let locked =
        lock.matches("\n[[package]]\n").count() + usize::from(lock.starts_with("[[package]]\n"));
    let checked = text
        .lines()
        .find(|l| l.starts_with("wheels: ") && l.contains(" checked against poetry.lock"));
    let wheels = checked
        .and_then(|l| l["wheels: ".len()..].split_whitespace().next())
        .unwrap_or("-")
        .to_string();
    // `... hashes (5 built here)` or `(1 built here, 1 fetched by URL)`.
    let built = checked
        .and_then(|l| l.rsplit_once(" built here"))
        .and_then(|(head, _)| head.rsplit(['(', ' ']).next())
        .filter(|n| n.parse::<usize>().is_ok())
        .map(str::to_string)
        // A blocked case built (or took from the cache) what it could: say how many.
        .unwrap_or_else(|| {
            let built =
                |l: &&str| l.starts_with("wheels: built ") || l.contains(" built before from ");
            text.lines().filter(built).count().to_string()
        });
    let downloaded = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("wheels: downloading ")
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap_or("0")
        .to_string();
    let result = if ok {
        "complete".to_string()
    } else {
        let error = text
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .collect::<Vec<_>>()
            .join("\n");
        error.trim_start_matches("error: ").to_string()
    };
    Row {
        case: case.to_string(),
        python: python.to_string(),
        locked,
        wheels: if ok { wheels } else { "-".to_string() },
        downloaded,
        built,
        result,
        seconds,
    }
}

/// The rows as a Markdown table; a blocked case's error follows it, one line per blocker.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| case | Python | locked packages | wheels | downloaded | built | result | time |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let result = r.result.replace('\n', "<br>").replace('|', "\\|");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            r.case, r.python, r.locked, r.wheels, r.downloaded, r.built, result, r.seconds
        ));
    }
    out
}

/// `shared/conformance/poetry-export` next to the workspace, or above it.
fn default_corpus() -> Result<PathBuf> {
    for dir in paths::workspace_root().ancestors() {
        let candidate = dir.join("shared/conformance/poetry-export");
        if candidate.join("CASES.tsv").is_file() {
            return Ok(candidate);
        }
    }
    bail!("cannot find shared/conformance/poetry-export above the workspace: pass --corpus DIR")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: &str, result: &str) -> Row {
        Row {
            case: case.into(),
            python: "3.11".into(),
            locked: 1,
            wheels: "-".into(),
            downloaded: "0".into(),
            built: "0".into(),
            result: result.into(),
            seconds: 1.0,
        }
    }

    #[test]
    fn verdicts_name_the_blocking_packages() {
        let many = "the wheelhouse for CPython 3.11 cannot be made; 2 packages block it:\n  - litellm 1.40.8: deleted\n  - evdev 1.7.1: no compiler";
        let one = "the wheelhouse for CPython 3.11 cannot be made: torch 2.0.1+cu118: cannot reach the index";
        assert_eq!(
            blocking(many),
            ["evdev".to_string(), "litellm".to_string()]
                .into_iter()
                .collect()
        );
        assert_eq!(blocking(one), ["torch".to_string()].into_iter().collect());
        let rows = [
            row("a", "complete"),
            row("b", many),
            row("c", one),
            row("d", "complete"),
        ];
        let expected = "# case\tverdicts\na\tcomplete\nb\tblocked by evdev,litellm\nc\tcomplete|blocked by torch\nd\tblocked by x\n";
        assert_eq!(
            unmet(expected, &rows),
            ["d: complete, expected blocked by x"]
        );
    }
}
