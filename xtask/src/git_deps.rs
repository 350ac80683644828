//! Git dependencies (`mylib = { git = "https://...", rev = "..." }`) for the image: the locked commit (the
//! exported requirement names it: `mylib @ git+https://host/repo.git@<commit>`) is taken from a bare clone kept
//! under `target/xtask/cache/git/`, its tree (or the locked subdirectory) built to a wheel on the host like a
//! path dependency, and the requirement pinned to that wheel's hash. A repository that cannot be reached, or that
//! no longer has the commit, is an error naming the package.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use poetry_export::sha256::Sha256;
use xshell::Shell;

use crate::path_deps::{self, LocalWheel};
use crate::paths;

/// What the lock pins of a git dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitSource {
    /// The repository as git takes it (`https://...`, `ssh://...`, `file:///...`).
    pub(crate) url: String,
    pub(crate) commit: String,
    pub(crate) subdirectory: Option<String>,
}

/// The git source of an exported requirement: `name @ git+URL@COMMIT[#subdirectory=DIR] [; markers]`.
pub(crate) fn parse(requirement: &str) -> Option<GitSource> {
    let first = requirement.lines().next()?.split(" ; ").next()?.trim().trim_end_matches('\\').trim();
    let (_, url) = first.split_once(" @ ")?;
    let url = url.strip_prefix("git+")?;
    let (url, fragment) = match url.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (url, None),
    };
    // The commit follows the last `@` after the host (an `@` before it is a user: `ssh://git@host/repo`).
    let path_start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = url[path_start..].find('/').map(|i| path_start + i).unwrap_or(path_start);
    let at = url[path_start..].rfind('@').map(|i| path_start + i)?;
    let subdirectory = fragment
        .into_iter()
        .flat_map(|f| f.split('&'))
        .find_map(|part| part.strip_prefix("subdirectory="))
        .map(str::to_string);
    // Poetry 2.5 locks a local repository (`git = "file:///srv/repo"`) as `file://None/srv/repo`.
    let repository = match url[..at].strip_prefix("file://None/") {
        Some(path) => format!("file:///{path}"),
        None => url[..at].to_string(),
    };
    Some(GitSource { url: repository, commit: url[at + 1..].to_string(), subdirectory })
}

/// The wheel of `source`'s locked commit, built into `wheelhouse` (`scratch` holds the tree and the build).
pub(crate) fn build(
    sh: &Shell,
    python: &Path,
    source: &GitSource,
    wheelhouse: &Path,
    scratch: &Path,
    index_url: &str,
) -> Result<LocalWheel> {
    let mirror = mirror(sh, source)?;
    let tree = scratch.join(format!("{}-tree", &source.commit[..source.commit.len().min(12)]));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree).with_context(|| format!("cannot create {}", paths::display(&tree)))?;
    // The commit's files, without a checkout in the shared clone: `git archive | tar -x`.
    let archive = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&mirror)
        .args(["archive", "--format=tar", &source.commit])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run git")?;
    let output = archive.wait_with_output().context("cannot run git archive")?;
    if !output.status.success() {
        bail!("git archive {} failed: {}", source.commit, String::from_utf8_lossy(&output.stderr).trim());
    }
    sh.cmd("tar")
        .args(["--extract", "--file", "-", "--no-same-owner", "--directory"])
        .arg(&tree)
        .stdin(output.stdout)
        .quiet()
        .run()
        .context("cannot unpack the commit's tree")?;
    let project = match &source.subdirectory {
        Some(sub) => tree.join(sub),
        None => tree.clone(),
    };
    if !project.join("pyproject.toml").is_file() && !project.join("setup.py").is_file() {
        bail!(
            "the locked commit {} of {} has no pyproject.toml or setup.py{}",
            source.commit,
            source.url,
            source.subdirectory.as_deref().map(|s| format!(" in {s}")).unwrap_or_default()
        );
    }
    let wheel = path_deps::build_wheel(sh, python, &project, wheelhouse, &scratch.join("builds"), index_url);
    let _ = std::fs::remove_dir_all(&tree);
    wheel
}

/// The bare clone of `source`'s repository that has its commit: made, or fetched into, when needed.
fn mirror(sh: &Shell, source: &GitSource) -> Result<PathBuf> {
    let mut hasher = Sha256::default();
    hasher.update(source.url.as_bytes());
    let dir = paths::git_cache().join(format!("{}.git", &hasher.hex()[..16]));
    let git = |args: &[&str]| sh.cmd("git").args(args).env("GIT_TERMINAL_PROMPT", "0").quiet().ignore_stdout();
    let commit = format!("{}^{{commit}}", source.commit);
    let has_commit = |dir: &Path| {
        git(&["--git-dir", &dir.display().to_string(), "cat-file", "-e", &commit]).ignore_stderr().run().is_ok()
    };
    if dir.is_dir() && has_commit(&dir) {
        return Ok(dir);
    }
    let failure = |e: xshell::Error| {
        let text = e.to_string();
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("git failed").trim().to_string();
        anyhow::format_err!("cannot reach the git repository {}: {last}", source.url)
    };
    if !dir.is_dir() {
        let staging = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(paths::git_cache())?;
        println!("wheels: cloning {}", source.url);
        let output = sh
            .cmd("git")
            .args(["clone", "--bare", "--quiet", &source.url])
            .arg(&staging)
            .env("GIT_TERMINAL_PROMPT", "0")
            .quiet()
            .ignore_status()
            .output()
            .context("cannot run git (install git: `apt-get install -y git`)")?;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&staging);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("git clone failed");
            bail!("cannot reach the git repository {}: {}", source.url, last.trim());
        }
        std::fs::rename(&staging, &dir).with_context(|| format!("cannot write {}", paths::display(&dir)))?;
    } else {
        println!("wheels: fetching {} (the locked commit {} is not in the clone)", source.url, source.commit);
        let dir_shown = dir.display().to_string();
        let refs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
        git(&["--git-dir", &dir_shown, "fetch", "--quiet", &source.url, refs[0], refs[1]]).run().map_err(failure)?;
        if !has_commit(&dir) {
            // Servers that allow it (GitHub, GitLab) give a commit no branch holds any more.
            let _ =
                git(&["--git-dir", &dir_shown, "fetch", "--quiet", &source.url, &source.commit]).ignore_stderr().run();
        }
    }
    if !has_commit(&dir) {
        bail!(
            "the git repository {} has no commit {} (the one the lock pins): it was rewritten; lock again \
             (`poetry update`) or restore the commit",
            source.url,
            source.commit
        );
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_commit_is_read_from_the_requirement() {
        let line = "poetry-core @ git+https://github.com/python-poetry/poetry-core.git@8e7ab14b35 ; python_version >= \"3.10\"";
        assert_eq!(
            parse(line),
            Some(GitSource {
                url: "https://github.com/python-poetry/poetry-core.git".into(),
                commit: "8e7ab14b35".into(),
                subdirectory: None
            })
        );
        let sub = parse("x @ git+ssh://git@example.org/o/r.git@abc123#subdirectory=libs/x").unwrap();
        assert_eq!(
            (sub.url.as_str(), sub.commit.as_str(), sub.subdirectory.as_deref()),
            ("ssh://git@example.org/o/r.git", "abc123", Some("libs/x"))
        );
        assert_eq!(parse("x @ git+file:///srv/repo@0a1b").unwrap().url, "file:///srv/repo");
        assert_eq!(
            parse("x @ git+file://None/srv/repo@0a1b ; python_version >= \"3.11\"").unwrap().url,
            "file:///srv/repo"
        );
        assert_eq!(parse("x @ https://example.org/x-1.0.tar.gz"), None);
        assert_eq!(parse("x==1.0"), None);
    }
}
