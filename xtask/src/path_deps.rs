//! Path dependencies (`mylib = { path = "../libs/mylib", develop = true }`) for the image. `poetry export`
//! writes them as absolute `file://` URLs (`-e file:///home/me/repo/libs/mylib ; markers`), which mean nothing
//! inside an image and cannot be hash-checked. Here each one is built to a wheel on the host (`pip wheel
//! --no-deps`; its own dependencies are in the lock and so in the requirements already), the wheel is put in
//! the wheelhouse, and its requirement becomes a pinned, hash-checked line like every other:
//! `mylib==0.1.0 ; markers --hash=sha256:...`. A path outside the repository is an error: the image must not
//! depend on what happens to be on one machine.

use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use poetry_export::{canonicalize_name, sha256};
use xshell::Shell;

use crate::{gen, paths, pip};

/// One requirement of the exported requirements that names a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathRequirement {
    /// Byte range of the whole requirement (with continuation lines and the final newline) in the text.
    span: std::ops::Range<usize>,
    /// The local directory or file it names.
    pub(crate) path: PathBuf,
    /// The environment markers after ` ; `, if any.
    markers: Option<String>,
    /// `-e` (Poetry's `develop = true`): installed editable in a local virtualenv.
    pub(crate) editable: bool,
    /// The requirement as exported, without hashes.
    unhashed: String,
}

/// A wheel built (or copied) for a path requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalWheel {
    /// Distribution name, normalized (`my-lib`).
    pub(crate) name: String,
    pub(crate) version: String,
    /// The wheel in the wheelhouse.
    pub(crate) file: PathBuf,
    /// `sha256:<hex>`.
    pub(crate) hash: String,
}

/// Builds every path dependency of `requirements` (exported requirements text) into `wheelhouse` and returns
/// the requirements with their lines replaced by pinned, hash-checked ones, plus the wheels it made. `scratch`
/// holds clean copies of the sources and the built wheels between runs (a dependency whose files did not
/// change is not rebuilt, so its wheel and hash stay the same). `python` runs pip; `index_url` serves the
/// build backends (poetry-core, setuptools, ...).
pub(crate) fn localize(
    sh: &Shell,
    python: &Path,
    requirements: &str,
    wheelhouse: &Path,
    scratch: &Path,
    index_url: &str,
) -> Result<(String, Vec<LocalWheel>)> {
    let found = find(requirements)?;
    let root = paths::workspace_root().canonicalize().context("cannot resolve the workspace root")?;
    let mut built = Vec::new();
    for requirement in &found {
        let path = requirement.path.canonicalize().map_err(|e| {
            format_err!(
                "the path dependency {} does not exist ({e}): run `poetry lock` again",
                requirement.path.display()
            )
        })?;
        if !path.starts_with(&root) {
            bail!(
                "the path dependency {} is outside the repository ({}): the image can only hold what the repository holds; \
                 move it into the repository or publish it to an index",
                path.display(),
                root.display()
            );
        }
        let wheel = build_wheel(sh, python, &path, wheelhouse, scratch, index_url)?;
        println!("wheels: {} {} built from {} (path dependency)", wheel.name, wheel.version, paths::display(&path));
        built.push(wheel);
    }
    Ok((rewrite(requirements, &found, &built), built))
}

/// The requirements that name a local path: `-e file:///...` (Poetry's `develop = true`), `name @ file:///...`,
/// or a bare `file:///...`.
pub(crate) fn find(requirements: &str) -> Result<Vec<PathRequirement>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < requirements.len() {
        // A logical line: physical lines joined while they end with a backslash.
        let mut end = start;
        loop {
            let line_end = requirements[end..].find('\n').map(|i| end + i + 1).unwrap_or(requirements.len());
            let line = requirements[end..line_end].trim_end_matches(['\n', '\r']);
            end = line_end;
            if !line.ends_with('\\') || end >= requirements.len() {
                break;
            }
        }
        let logical = requirements[start..end].replace("\\\n", " ");
        let first = logical.split(" --hash").next().unwrap_or("").trim();
        let (spec, markers) = match first.split_once(';') {
            Some((spec, markers)) => (spec.trim(), Some(markers.trim().to_string()).filter(|m| !m.is_empty())),
            None => (first, None),
        };
        let editable_spec = spec.strip_prefix("-e ").or_else(|| spec.strip_prefix("--editable "));
        let editable = editable_spec.is_some();
        let spec = editable_spec.unwrap_or(spec).trim();
        let url = match spec.split_once(" @ ") {
            Some((_, url)) => url.trim(),
            None => spec,
        };
        if let Some(path) = url.strip_prefix("file://") {
            let path = percent_decode(path.strip_prefix("localhost").unwrap_or(path))
                .ok_or_else(|| format_err!("requirements: cannot read the file URL in `{first}`"))?;
            let unhashed = first.to_string();
            out.push(PathRequirement { span: start..end, path: PathBuf::from(path), markers, editable, unhashed });
        }
        start = end;
    }
    Ok(out)
}

/// `requirements` with each of `found` replaced by the pinned line of the wheel built for it.
pub(crate) fn rewrite(requirements: &str, found: &[PathRequirement], built: &[LocalWheel]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (requirement, wheel) in found.iter().zip(built) {
        out.push_str(&requirements[at..requirement.span.start]);
        out.push_str(&format!("{}=={}", wheel.name, wheel.version));
        if let Some(markers) = &requirement.markers {
            out.push_str(&format!(" ; {markers}"));
        }
        out.push_str(&format!(" \\\n    --hash={}\n", wheel.hash));
        at = requirement.span.end;
    }
    out.push_str(&requirements[at..]);
    out
}

/// For a local virtualenv (`cargo xtask server`): `requirements` split in two requirements texts, the
/// hash-pinned ones (to install with `--require-hashes`) and the path requirements as exported (to install
/// after them with `--no-deps`; `-e` lines stay editable, so edits to the library show at once). The path
/// requirements lose their hashes: one hash would put pip in hash-checking mode, where `-e` is refused.
pub(crate) fn split_off(requirements: &str) -> Result<(String, String)> {
    let mut rest = String::new();
    let mut local = String::new();
    let mut at = 0;
    for requirement in find(requirements)? {
        rest.push_str(&requirements[at..requirement.span.start]);
        local.push_str(&requirement.unhashed);
        local.push('\n');
        at = requirement.span.end;
    }
    rest.push_str(&requirements[at..]);
    Ok((rest, local))
}

/// Why the path requirements of `requirements` cannot be built, one line each: a folder that is not there, or one
/// outside the repository (pure but for looking at the file system).
pub(crate) fn problems(requirements: &str) -> Result<Vec<String>> {
    let root = paths::workspace_root().canonicalize().context("cannot resolve the workspace root")?;
    let mut out = Vec::new();
    for requirement in find(requirements)? {
        match requirement.path.canonicalize() {
            Err(_) => out.push(format!(
                "the path dependency {} does not exist: put its folder back, or remove the dependency and `poetry lock`",
                requirement.path.display()
            )),
            Ok(path) if !path.starts_with(&root) => out.push(format!(
                "the path dependency {} is outside the repository ({}): the image can only hold what the repository \
                 holds; move it into the repository or publish it to an index",
                path.display(),
                root.display()
            )),
            Ok(_) => {}
        }
    }
    Ok(out)
}

/// A wheel of the project at `source` (a directory, an sdist or a wheel) in `wheelhouse`. Only pure-Python
/// wheels are accepted: a wheel built on the host for a compiled project would not fit the image.
pub(crate) fn build_wheel(
    sh: &Shell,
    python: &Path,
    source: &Path,
    wheelhouse: &Path,
    scratch: &Path,
    index_url: &str,
) -> Result<LocalWheel> {
    let shown = paths::display(source);
    let key = fingerprint(source)?;
    let stem = source.file_name().and_then(|n| n.to_str()).unwrap_or("dependency");
    let out_dir = scratch.join(format!("{stem}-{key:016x}"));
    let existing = wheels_in(&out_dir)?;
    let wheel = match existing.as_slice() {
        [one] => one.clone(),
        _ => {
            // Build from a clean copy, so that build leftovers (build/, *.egg-info) never land in the repository.
            let _ = std::fs::remove_dir_all(&out_dir);
            let staging = out_dir.with_extension("tmp");
            let _ = std::fs::remove_dir_all(&staging);
            let copy = staging.join("source");
            let built = staging.join("wheel");
            if source.is_dir() {
                copy_tree(source, &copy)?;
            } else {
                std::fs::create_dir_all(&copy)?;
                std::fs::copy(source, copy.join(source.file_name().unwrap()))
                    .with_context(|| format!("cannot copy {shown}"))?;
            }
            if source.extension().is_some_and(|e| e == "whl") {
                std::fs::create_dir_all(&built)?;
                std::fs::copy(source, built.join(source.file_name().unwrap()))?;
            } else {
                let target = if source.is_dir() { copy.clone() } else { copy.join(source.file_name().unwrap()) };
                let cache = paths::pip_cache();
                pip::pip(sh, python, "wheel")
                    .args(["--no-deps", "--quiet", "--index-url", index_url, "--cache-dir"])
                    .arg(&cache)
                    .arg("--wheel-dir")
                    .arg(&built)
                    .arg(&target)
                    .run()
                    .with_context(|| format!("cannot build a wheel of the path dependency {shown}"))?;
            }
            std::fs::rename(&built, &out_dir).with_context(|| format!("cannot write {}", out_dir.display()))?;
            let _ = std::fs::remove_dir_all(&staging);
            match wheels_in(&out_dir)?.as_slice() {
                [one] => one.clone(),
                other => bail!("building {shown} made {} wheels, expected one", other.len()),
            }
        }
    };
    let file_name = wheel.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let (name, version, tags) = parse_wheel_name(&file_name)
        .ok_or_else(|| format_err!("{shown}: the build made a wheel with an unexpected name: {file_name}"))?;
    if !tags.ends_with("-none-any") {
        bail!(
            "the path dependency {shown} builds a platform wheel ({file_name}); only pure-Python path dependencies \
             are supported: publish it as wheels for the image's platform instead"
        );
    }
    std::fs::create_dir_all(wheelhouse)?;
    let dest = wheelhouse.join(&file_name);
    let bytes = std::fs::read(&wheel).with_context(|| format!("cannot read {}", wheel.display()))?;
    gen::write_atomic(&dest, &bytes)?;
    let hash = format!("sha256:{}", sha256::hex_digest(&bytes));
    Ok(LocalWheel { name, version, file: dest, hash })
}

/// `name-version-py-abi-platform.whl` → (normalized name, version, `py-abi-platform`).
pub(crate) fn parse_wheel_name(file_name: &str) -> Option<(String, String, String)> {
    let stem = file_name.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return None;
    }
    let name = canonicalize_name(parts[0]);
    let tags = parts[parts.len() - 3..].join("-");
    Some((name, parts[1].to_string(), tags))
}

fn wheels_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut wheels: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    Ok(wheels)
}

/// Directories that are never part of a project's source: VCS data, virtualenvs, caches, build output.
fn skipped(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".egg-info")
        || ["__pycache__", "build", "dist", "target", "node_modules"].contains(&name)
}

/// A checksum of the source files under `source` (paths and contents), to rebuild only when they change.
pub(crate) fn fingerprint(source: &Path) -> Result<u64> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<u8>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if !skipped(name) {
                    walk(&path, base, out)?;
                }
            } else if !name.ends_with(".pyc") {
                out.extend_from_slice(path.strip_prefix(base).unwrap_or(&path).to_string_lossy().as_bytes());
                out.push(0);
                out.extend_from_slice(&gen::fnv1a(&std::fs::read(&path)?).to_le_bytes());
            }
        }
        Ok(())
    }
    let mut summary = Vec::new();
    if source.is_dir() {
        walk(source, source, &mut summary)?;
    } else {
        summary = std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
    }
    Ok(gen::fnv1a(&summary))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let (source, dest) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            if !skipped(&name.to_string_lossy()) {
                copy_tree(&source, &dest)?;
            }
        } else {
            std::fs::copy(&source, &dest).with_context(|| format!("cannot copy {}", source.display()))?;
        }
    }
    Ok(())
}

/// `%20` → ` ` in a file URL's path.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    const EXPORTED: &str = "\
-e file:///repo/libs/shout ; python_version >= \"3.11\" and python_version < \"4.0\"
blinker==1.9.0 ; python_version >= \"3.11\" and python_version < \"4.0\" \\
    --hash=sha256:ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc
my-lib @ file:///repo/libs/my%20lib ; sys_platform == \"linux\"
local @ file:///repo/dist/local-1.0-py3-none-any.whl \\
    --hash=sha256:00
";

    #[test]
    fn finds_and_rewrites_path_requirements() {
        let found = find(EXPORTED).unwrap();
        let paths: Vec<_> = found.iter().map(|f| (f.path.display().to_string(), f.markers.clone())).collect();
        expect![[r#"
            [
                (
                    "/repo/libs/shout",
                    Some(
                        "python_version >= \"3.11\" and python_version < \"4.0\"",
                    ),
                ),
                (
                    "/repo/libs/my lib",
                    Some(
                        "sys_platform == \"linux\"",
                    ),
                ),
                (
                    "/repo/dist/local-1.0-py3-none-any.whl",
                    None,
                ),
            ]
        "#]]
        .assert_debug_eq(&paths);
        let wheel = |name: &str, version: &str, hash: &str| LocalWheel {
            name: name.into(),
            version: version.into(),
            file: PathBuf::new(),
            hash: format!("sha256:{hash}"),
        };
        let built = [wheel("shout", "0.1.0", "aa"), wheel("my-lib", "2.0", "bb"), wheel("local", "1.0", "cc")];
        expect![[r#"
            shout==0.1.0 ; python_version >= "3.11" and python_version < "4.0" \
                --hash=sha256:aa
            blinker==1.9.0 ; python_version >= "3.11" and python_version < "4.0" \
                --hash=sha256:ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc
            my-lib==2.0 ; sys_platform == "linux" \
                --hash=sha256:bb
            local==1.0 \
                --hash=sha256:cc
        "#]]
        .assert_eq(&rewrite(EXPORTED, &found, &built));
        assert_eq!(find("flask==3.1.3 ; python_version >= \"3.11\"\n").unwrap(), vec![]);
        assert_eq!(found.iter().map(|l| l.editable).collect::<Vec<_>>(), [true, false, false]);
        let (rest, local) = split_off(EXPORTED).unwrap();
        expect![[r#"
            -e file:///repo/libs/shout ; python_version >= "3.11" and python_version < "4.0"
            my-lib @ file:///repo/libs/my%20lib ; sys_platform == "linux"
            local @ file:///repo/dist/local-1.0-py3-none-any.whl
        "#]]
        .assert_eq(&local);
        expect![[r#"
            blinker==1.9.0 ; python_version >= "3.11" and python_version < "4.0" \
                --hash=sha256:ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc
        "#]]
        .assert_eq(&rest);
    }

    #[test]
    fn wheel_names() {
        assert_eq!(
            parse_wheel_name("My_Lib-0.1.0-py3-none-any.whl"),
            Some(("my-lib".into(), "0.1.0".into(), "py3-none-any".into()))
        );
        assert_eq!(
            parse_wheel_name("x-1-2-cp311-cp311-manylinux_2_17_x86_64.whl").unwrap().2,
            "cp311-cp311-manylinux_2_17_x86_64"
        );
        assert_eq!(parse_wheel_name("nope.whl"), None);
    }

    #[test]
    fn builds_a_local_library_into_the_wheelhouse() {
        let sh = Shell::new().unwrap();
        let lib = paths::workspace_root().join("xtask/tests/fixtures/second-app/libs/shout");
        let scratch = std::env::temp_dir().join(format!("xtask-path-deps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let requirements = format!(
            "-e file://{} ; python_version >= \"3.9\"\nflask==3.1.3 ; python_version >= \"3.9\"\n",
            lib.display()
        );
        let wheelhouse = scratch.join("wheelhouse");
        let python = Path::new("python3");
        let (text, built) =
            localize(&sh, python, &requirements, &wheelhouse, &scratch.join("build"), pip::PYPI_SIMPLE).unwrap();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].file, wheelhouse.join("shout-0.1.0-py3-none-any.whl"));
        let hash = &built[0].hash;
        assert_eq!(
            text,
            format!("shout==0.1.0 ; python_version >= \"3.9\" \\\n    --hash={hash}\nflask==3.1.3 ; python_version >= \"3.9\"\n")
        );
        // Nothing left behind in the library's directory.
        let leftovers: Vec<_> = std::fs::read_dir(&lib).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
        // Unchanged sources: the same wheel, not rebuilt.
        let (_, again) =
            localize(&sh, python, &requirements, &wheelhouse, &scratch.join("build"), pip::PYPI_SIMPLE).unwrap();
        assert_eq!(&again[0].hash, hash);
        let _ = std::fs::remove_dir_all(&scratch);
    }

    #[test]
    fn refuses_a_path_outside_the_repository() {
        let sh = Shell::new().unwrap();
        let outside = std::env::temp_dir();
        let requirements = format!("-e file://{}\n", outside.display());
        let err = localize(&sh, Path::new("python3"), &requirements, &outside, &outside, pip::PYPI_SIMPLE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is outside the repository"), "{err}");
    }
}
