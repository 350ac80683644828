//! `poetry export` without Poetry: requirements.txt / constraints.txt from poetry.lock and pyproject.toml, byte
//! for byte what poetry 2.5 with poetry-plugin-export 1.10 writes.
//!
//! Lock 2.1 stores a marker per package and group, so export only combines them. Older locks are walked from
//! the project's requirements through the locked dependency graph, computing markers on the way, like the
//! plugin's walker does. The marker algebra lives in `markers.rs`, versions in `pep440.rs`, the file model in
//! `poetry.rs`; this module selects packages and prints lines.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::path::Path;

use anyhow::{bail, format_err, Result};

use crate::markers::{self, canonicalize_name, Marker, Recursion};
use crate::memo::FastMap;
use crate::pep440;
use crate::poetry::{self, Dependency, Lock, Package, PackageFile, Project, Source, MAIN_GROUP};

/// The output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    RequirementsTxt,
    ConstraintsTxt,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "requirements.txt" => Ok(Format::RequirementsTxt),
            "constraints.txt" => Ok(Format::ConstraintsTxt),
            "pylock.toml" => Err("pylock.toml is not supported by `cargo xtask export`".to_string()),
            other => Err(format!("Invalid export format: {other}")),
        }
    }
}

/// What to export: `poetry export`'s options.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub format: Format,
    pub with_hashes: bool,
    pub with_urls: bool,
    pub with_credentials: bool,
    /// Group names as given to `--with` (each entry may be a comma-separated list).
    pub with: Vec<String>,
    pub without: Vec<String>,
    pub only: Vec<String>,
    pub all_groups: bool,
    /// Extras as given to `-E` (each entry may be a space-separated list).
    pub extras: Vec<String>,
    pub all_extras: bool,
}

impl ExportRequest {
    /// requirements.txt with hashes and index URLs, for the main group plus `groups`, with `extras`: what an
    /// image installs.
    pub fn for_image(groups: &[String], extras: &[String]) -> ExportRequest {
        ExportRequest {
            format: Format::RequirementsTxt,
            with_hashes: true,
            with_urls: true,
            with_credentials: false,
            with: groups.to_vec(),
            without: Vec::new(),
            only: Vec::new(),
            all_groups: false,
            extras: extras.to_vec(),
            all_extras: false,
        }
    }
}

/// One package the export selected, with what the wheel stage needs to fetch and verify it.
#[derive(Debug, Clone)]
pub struct SelectedPackage {
    /// Normalized name.
    pub name: String,
    pub version: String,
    /// The environment marker of its requirement line, if any (`python_version >= "3.9"`).
    pub marker: Option<String>,
    /// `None` for an index package; `git`, `url`, `file` or `directory` for a direct reference; `legacy`
    /// for a private index.
    pub source_kind: Option<String>,
    /// The index URL (private index), the repository/archive URL, or the absolute path.
    pub source_url: Option<String>,
    /// Distribution files and their `algorithm:hex` hashes, as locked.
    pub files: Vec<PackageFile>,
    /// The line(s) this package contributes to the output.
    pub line: String,
}

/// The result of an export: the text and the selected packages.
#[derive(Debug, Clone)]
pub struct Selection {
    pub requirements: String,
    /// Empty unless asked for (`select`; `export` and the CLI need only the text and the warnings).
    pub packages: Vec<SelectedPackage>,
    /// Warnings Poetry prints on stderr (editable packages skipped in constraints.txt).
    pub warnings: Vec<String>,
}

/// Exports the app in `app_dir` as `poetry export` would: the file's text and Poetry's warnings (`packages` stays
/// empty). Messages name the app's files under `shown_dir` (`services/web/poetry.lock:3:1: ...`).
pub fn export(app_dir: &Path, shown_dir: &Path, request: &ExportRequest) -> Result<Selection> {
    load_and_select(app_dir, shown_dir, request, false)
}

/// Like `export`, with the selected packages (names, versions, files and hashes), for the wheel stage.
pub fn select(app_dir: &Path, shown_dir: &Path, request: &ExportRequest) -> Result<Selection> {
    load_and_select(app_dir, shown_dir, request, true)
}

fn load_and_select(
    app_dir: &Path,
    shown_dir: &Path,
    request: &ExportRequest,
    with_packages: bool,
) -> Result<Selection> {
    let pyproject_display = shown_dir.join("pyproject.toml").display().to_string();
    let lock_path = app_dir.join("poetry.lock");
    let lock_display = shown_dir.join("poetry.lock").display().to_string();
    let project = Project::load(app_dir, &pyproject_display)?;
    poetry::check_lock_exists(&lock_path, &lock_display)?;
    let lock_text = poetry::read_lock_text(&lock_path, &lock_display)?;
    let lock_doc = crate::toml_tree::Document::parse(&lock_text, &lock_display)?;
    let lock = Lock::from_file(&lock_path, &lock_doc)?;
    if !project.lock_is_fresh(&lock) {
        bail!(
            "pyproject.toml changed significantly since poetry.lock was last generated. Run `poetry lock` to fix the lock file."
        );
    }
    let env = std::env::vars().filter(|(k, _)| k.starts_with("POETRY_HTTP_BASIC_")).collect();
    let selection = select_from(&project, &lock, request, &env, with_packages);
    // Freeing the project, the lock and its tree value by value costs ~3% of an export's instructions
    // (callgrind, oi-20-big); `cargo xtask` exports once per command, which ends soon after, so the process's
    // end frees them.
    std::mem::forget(lock);
    std::mem::forget(lock_doc);
    std::mem::forget(lock_text);
    std::mem::forget(project);
    selection
}

/// The groups and extras a request selects, with Poetry's checks and messages.
fn resolve_selection(project: &Project, request: &ExportRequest) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut warnings = Vec::new();
    if !request.extras.is_empty() && request.all_extras {
        bail!("You cannot specify explicit `--extras` while exporting using `--all-extras`.");
    }
    let extras: Vec<String> = if request.all_extras {
        project.extras.clone()
    } else {
        let mut extras: Vec<String> = Vec::new();
        for e in request.extras.iter().flat_map(|e| e.split_whitespace()).map(canonicalize_name) {
            if !extras.contains(&e) {
                extras.push(e);
            }
        }
        let mut invalid: Vec<&String> = extras.iter().filter(|e| !project.extras.contains(e)).collect();
        invalid.sort();
        if !invalid.is_empty() {
            bail!("Extra [{}] is not specified.", invalid.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
        }
        extras
    };
    if (!request.with.is_empty() || !request.without.is_empty() || !request.only.is_empty()) && request.all_groups {
        bail!("You cannot specify explicit `--with`, `--without`, or `--only` while exporting using `--all-groups`.");
    }
    let groups = if request.all_groups {
        project.group_names()
    } else {
        let split = |values: &[String]| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for g in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
                if !out.iter().any(|o| o == g) {
                    out.push(g.to_string());
                }
            }
            out
        };
        let (with, without, only) = (split(&request.with), split(&request.without), split(&request.only));
        let mut invalid: Vec<(String, Vec<&str>)> = Vec::new();
        for (opt, names) in [("with", &with), ("without", &without), ("only", &only)] {
            for g in names {
                if !project.has_group(g) {
                    match invalid.iter_mut().find(|(n, _)| n == g) {
                        Some((_, opts)) => opts.push(opt),
                        None => invalid.push((g.clone(), vec![opt])),
                    }
                }
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            let parts: Vec<String> = invalid
                .iter_mut()
                .map(|(g, opts)| {
                    opts.sort();
                    format!("{g} (via {})", opts.iter().map(|o| format!("--{o}")).collect::<Vec<_>>().join(", "))
                })
                .collect();
            bail!("Group(s) not found: {}", parts.join(", "));
        }
        if !only.is_empty() && (!with.is_empty() || !without.is_empty()) {
            warnings.push(
                "The `--with` and `--without` options are ignored when used along with the `--only` option."
                    .to_string(),
            );
        }
        let norm = |v: &[String]| -> Vec<String> { v.iter().map(|g| canonicalize_name(g)).collect() };
        if !only.is_empty() {
            let mut out = Vec::new();
            for g in norm(&only) {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            out
        } else {
            let without = norm(&without);
            let mut out = vec![MAIN_GROUP.to_string()];
            for g in norm(&with) {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            out.retain(|g| !without.contains(g));
            out
        }
    };
    Ok((groups, extras, warnings))
}

fn recursion(_: Recursion) -> anyhow::Error {
    format_err!("marker too complex to simplify (poetry-core fails the same way)")
}

/// The pure core of the export: project + lock + request → text and selection (its packages listed only
/// `with_packages`).
pub(crate) fn select_from(
    project: &Project,
    lock: &Lock,
    request: &ExportRequest,
    credentials: &HashMap<String, String>,
    with_packages: bool,
) -> Result<Selection> {
    let (groups, extras, mut warnings) = resolve_selection(project, request)?;
    if lock.lock_version > pep440::Version::parse("2.1").unwrap() {
        warnings.insert(
            0,
            "The lock file might not be compatible with the current version of Poetry.\nUpgrade Poetry to ensure the lock file is read properly or, alternatively, regenerate the lock file with the `poetry lock` command.".to_string(),
        );
    }
    if project.has_dev_dependencies {
        warnings.insert(
            0,
            "The \"poetry.dev-dependencies\" section is deprecated and will be removed in a future version. Use \"poetry.group.dev.dependencies\" instead.".to_string(),
        );
    }
    let python_marker = markers::python_marker(&project.python_constraint).map_err(|e| format_err!("{e}"))?;
    let pairs: Vec<(Dependency, &Package<'_>, Vec<String>)> = if lock.has_groups_and_markers() {
        packages_from_groups_and_markers(lock, &groups, &extras, &python_marker)?
    } else {
        let requires = project.requires_for(&groups)?;
        walk_project(lock, &requires, &canonicalize_name(&project.name), &python_marker, &extras)?
    };

    let with_extras = request.format == Format::RequirementsTxt;
    let allow_editable = request.format == Format::RequirementsTxt;
    let mut lines: Vec<String> = Vec::new();
    let mut indexes: Vec<String> = Vec::new();
    let mut packages = Vec::new();
    for (dependency, package, mut features) in pairs {
        if !with_extras {
            features.clear();
        }
        let complete_name = if features.is_empty() {
            package.name.clone()
        } else {
            format!("{}[{}]", package.name, features.join(","))
        };
        if package.develop && !allow_editable {
            warnings.push(format!(
                "Warning: {} is locked in develop (editable) mode, which is incompatible with the constraints.txt format.",
                package.pretty_name
            ));
            continue;
        }
        let marker = dependency.pep_508_marker().map_err(recursion)?;
        let remote = dependency.is_vcs() || dependency.is_url();
        let local = dependency.is_file() || dependency.is_directory();
        let mut line = if remote {
            let mut line = dependency.base_pep_508_name_resolved();
            if let Some(m) = &marker {
                line.push_str(&format!(" ; {m}"));
            }
            line
        } else {
            let mut line = if local {
                let url = poetry::path_to_url(Path::new(dependency.source.url.as_deref().unwrap_or("")));
                if package.develop {
                    format!("-e {url}")
                } else {
                    format!("{complete_name} @ {url}")
                }
            } else {
                let mut line = complete_name.clone();
                line.push_str("==");
                line.push_str(package.version.text());
                line
            };
            if let Some(m) = marker.as_ref().filter(|m| !m.trim().is_empty()) {
                line.push_str(&format!(" ; {}", m.trim()));
            }
            line
        };
        if !remote && !local {
            if let Some(url) = package.source.url.as_deref().filter(|u| !u.is_empty()) {
                let url = url.trim_end_matches('/').to_string();
                if !indexes.contains(&url) {
                    indexes.push(url);
                }
            }
        }
        if request.with_hashes && !package.files()?.is_empty() {
            // `algorithm:hex`; a bare hex is a sha256.
            let mut hashes: Vec<Cow<str>> = Vec::new();
            for f in package.files()? {
                match f.hash.as_bytes().iter().position(|&b| b == b':') {
                    Some(colon) if !matches!(&f.hash[..colon], "sha256" | "sha384" | "sha512") => continue,
                    Some(_) => hashes.push(Cow::Borrowed(f.hash)),
                    None => hashes.push(Cow::Owned(format!("sha256:{}", f.hash))),
                }
            }
            hashes.sort();
            line.reserve(hashes.iter().map(|h| h.len() + 16).sum());
            for h in hashes {
                line.push_str(" \\\n    --hash=");
                line.push_str(&h);
            }
        }
        if with_packages {
            packages.push(SelectedPackage {
                name: package.name.clone(),
                version: package.version.to_string(),
                marker,
                source_kind: package.source.kind.clone(),
                source_url: package.source.url.clone(),
                files: package.files()?.iter().map(PackageFile::from).collect(),
                line: line.clone(),
            });
        }
        lines.push(line);
    }
    lines.sort();
    lines.dedup();
    let header = if !indexes.is_empty() && request.with_urls {
        index_header(&project.sources, &indexes, request.with_credentials, credentials) + "\n"
    } else {
        String::new()
    };
    let mut content = String::with_capacity(header.len() + lines.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
    content.push_str(&header);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            content.push('\n');
        }
        content.push_str(line);
    }
    content.push('\n');
    Ok(Selection { requirements: content, packages, warnings })
}

/// `--index-url` / `--extra-index-url` / `--trusted-host` lines for the private indexes the packages use,
/// in the pool's priority order.
fn index_header(
    sources: &[Source],
    indexes: &[String],
    with_credentials: bool,
    credentials: &HashMap<String, String>,
) -> String {
    // The pool: declared sources by priority (stable), plus PyPI when no primary source is declared.
    let rank = |p: &str| match p {
        "primary" => 0,
        "supplemental" => 1,
        _ => 2,
    };
    let mut pool: Vec<&Source> = sources.iter().collect();
    pool.sort_by_key(|s| rank(&s.priority));
    let explicit_pypi = sources.iter().any(|s| s.name.eq_ignore_ascii_case("pypi"));
    let has_primary = sources.iter().any(|s| s.priority == "primary");
    let has_pypi = explicit_pypi || !has_primary;
    let first_searched = if !explicit_pypi && !has_primary {
        None // PyPI itself is first
    } else {
        pool.iter().find(|s| s.priority != "explicit").map(|s| s.name.as_str())
    };
    let mut header = String::new();
    for source in pool {
        if source.name.eq_ignore_ascii_case("pypi") {
            continue;
        }
        let url = source.url.trim_end_matches('/').to_string();
        if !indexes.contains(&url) {
            continue;
        }
        let url = if with_credentials { authenticated_url(&url, &source.name, credentials) } else { url };
        let (scheme, rest) = url.split_once("://").unwrap_or(("", &url));
        if scheme == "http" {
            let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
            header.push_str(&format!("--trusted-host {netloc}\n"));
        }
        if !has_pypi && first_searched == Some(source.name.as_str()) {
            header.push_str(&format!("--index-url {url}\n"));
        } else {
            header.push_str(&format!("--extra-index-url {url}\n"));
        }
    }
    header
}

/// Poetry's `authenticated_url`: `scheme://user:password@netloc/path` when both are configured
/// (`POETRY_HTTP_BASIC_<NAME>_USERNAME` / `_PASSWORD`) or embedded in the URL.
fn authenticated_url(url: &str, source_name: &str, env: &HashMap<String, String>) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(p) => p,
        None => return url.to_string(),
    };
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let netloc = &rest[..netloc_end];
    let path = rest[netloc_end..].split(['?', '#']).next().unwrap_or("");
    let (user, password) = if let Some((auth, _)) = netloc.rsplit_once('@') {
        let (u, p) = auth.split_once(':').unwrap_or((auth, ""));
        (Some(percent_decode(u)), Some(percent_decode(p)))
    } else {
        let key = source_name.to_uppercase().replace('-', "_");
        (
            env.get(&format!("POETRY_HTTP_BASIC_{key}_USERNAME")).cloned(),
            env.get(&format!("POETRY_HTTP_BASIC_{key}_PASSWORD")).cloned(),
        )
    };
    match (user, password) {
        (Some(u), Some(p)) => format!("{scheme}://{}:{}@{netloc}{path}", quote(&u), quote(&p)),
        _ => url.to_string(),
    }
}

fn quote(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lock 2.1: each package's markers for the selected groups, with extras applied and the project's Python
/// constraint (`get_project_dependency_packages2`).
fn packages_from_groups_and_markers<'r, 'l>(
    lock: &'r Lock<'l>,
    groups: &[String],
    extras: &[String],
    python_marker: &Marker,
) -> Result<Vec<(Dependency, &'r Package<'l>, Vec<String>)>> {
    let mut sorted_groups: Vec<&String> = groups.iter().collect();
    sorted_groups.sort_by_key(|g| (g.as_str() != MAIN_GROUP, g.as_str()));
    let mut out = Vec::new();
    for package in &lock.packages {
        if !package.groups.iter().any(|g| groups.contains(g)) {
            continue;
        }
        let mut marker = Marker::Empty;
        for g in &sorted_groups {
            if let Some((_, m)) = package.group_markers.iter().find(|(name, _)| name == *g) {
                marker = marker.union(m).map_err(recursion)?;
            }
        }
        let marker = marker.apply_extras(extras).map_err(recursion)?;
        if marker.is_empty() {
            continue;
        }
        let marker = python_marker.intersect(&marker).map_err(recursion)?;
        let dependency = package.to_dependency_with(&[], &marker)?;
        out.push((dependency, package, Vec::new()));
    }
    Ok(out)
}

/// Locks before 2.1: the plugin's walker (`get_project_dependency_packages`).
fn walk_project<'r, 'l>(
    lock: &'r Lock<'l>,
    project_requires: &[Dependency],
    root_name: &str,
    python_marker: &Marker,
    extras: &[String],
) -> Result<Vec<(Dependency, &'r Package<'l>, Vec<String>)>> {
    let mut requires = Vec::new();
    for require in project_requires {
        let mut r = require.clone();
        let marker = r.marker.intersect(python_marker).map_err(recursion)?;
        r.set_marker(marker).map_err(recursion)?;
        requires.push(r);
    }
    let extra_packages = extra_package_names(lock, extras)?;
    let mut selected = Vec::new();
    for dependency in requires {
        let Some(package) = find_first_package(lock, &dependency) else { continue };
        if package.optional && !extra_packages.contains(&package.name) {
            continue;
        }
        selected.push(dependency);
    }
    walk_dependencies(selected, &lock.packages, root_name)
}

/// `Repository.find_packages(dependency)[0]`: the first locked package with that name and an allowed
/// version, preferring releases over pre-releases.
fn find_first_package<'r, 'l>(lock: &'r Lock<'l>, dependency: &Dependency) -> Option<&'r Package<'l>> {
    let mut prerelease = None;
    for p in lock.packages.iter().filter(|p| p.name == dependency.name && dependency.constraint.allows(&p.version)) {
        if p.version.is_unstable() && dependency.allows_prereleases != Some(true) && !p.is_direct_origin() {
            prerelease = prerelease.or(Some(p));
            continue;
        }
        return Some(p);
    }
    if dependency.allows_prereleases == Some(false) {
        return None;
    }
    prerelease
}

/// `get_extra_package_names`: the packages the selected extras pull in, through locked dependencies.
fn extra_package_names(lock: &Lock<'_>, extras: &[String]) -> Result<Vec<String>> {
    if extras.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_name: FastMap<&str, &Package> = FastMap::default();
    for p in &lock.packages {
        by_name.insert(&p.name, p);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for extra in extras {
        if let Some((_, names)) = lock.extras.iter().find(|(e, _)| e == extra) {
            stack.extend(names.iter().cloned());
        }
    }
    while let Some(name) = stack.pop() {
        let Some(package) = by_name.get(name.as_str()) else { continue };
        if seen.contains(&package.name) {
            continue;
        }
        seen.push(package.name.clone());
        stack.extend(package.requires()?.iter().map(|d| d.name.clone()));
    }
    Ok(seen)
}

/// The Python version regions the candidates' `python-versions` cut out, as markers.
fn python_version_region_markers(packages: &[&Package]) -> Result<Vec<Marker>> {
    let constraints: Vec<pep440::Constraint> = packages.iter().map(|p| p.python_constraint.clone()).collect();
    let mut out = Vec::new();
    for region in pep440::constraint_regions(&constraints) {
        let mut marker = Marker::Any;
        if let Some(min) = &region.min {
            let op = if region.include_min { ">=" } else { ">" };
            let name = if min.precision() > 2 { "python_full_version" } else { "python_version" };
            let lo = markers::single(name, &format!("{op} {min}")).map_err(|e| format_err!("{e}"))?;
            marker = marker.intersect(&lo).map_err(recursion)?;
        }
        if let Some(max) = &region.max {
            let op = if region.include_max { "<=" } else { "<" };
            let name = if max.precision() > 2 { "python_full_version" } else { "python_version" };
            let hi = markers::single(name, &format!("{op} {max}")).map_err(|e| format_err!("{e}"))?;
            marker = marker.intersect(&hi).map_err(recursion)?;
        }
        out.push(marker);
    }
    Ok(out)
}

fn walk_dependencies<'r, 'l>(
    dependencies: Vec<Dependency>,
    locked_packages: &'r [Package<'l>],
    root_name: &str,
) -> Result<Vec<(Dependency, &'r Package<'l>, Vec<String>)>> {
    // Candidates per name (indices into the lock), highest version first (stable).
    let mut by_name: FastMap<&str, Vec<usize>> = FastMap::default();
    for (i, p) in locked_packages.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
    }
    for list in by_name.values_mut() {
        list.sort_by(|&a, &b| locked_packages[b].version.cmp(&locked_packages[a].version));
    }
    // The Python regions of the candidates' `python-versions` (many names share the same ones).
    let mut region_cache: FastMap<Vec<&str>, Vec<Marker>> = FastMap::default();
    let mut extra_cache: FastMap<String, Option<Dependency>> = FastMap::default();

    // The decisions: (lock index, extras) → requirement, in the order they were made.
    let mut nested: Vec<((usize, Vec<String>), Dependency)> = Vec::new();
    let mut nested_index: FastMap<(usize, Vec<String>), usize> = FastMap::default();
    let mut visited: FastMap<String, Vec<Dependency>> = FastMap::default();
    let mut queue: VecDeque<Dependency> = dependencies.into();
    while let Some(requirement) = queue.pop_front() {
        let seen = visited.entry(requirement.complete_name()).or_default();
        if seen.iter().any(|d| d.same_as(&requirement) && d.marker == requirement.marker) {
            continue;
        }
        if requirement.name == root_name {
            continue;
        }
        seen.push(requirement);
        let requirement = seen.last().unwrap();

        let candidates: &[usize] = by_name.get(requirement.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let Some(index) = locked_package(requirement, locked_packages, candidates, &nested, &nested_index)? else {
            bail!("Dependency walk failed at {}", requirement_display(requirement));
        };
        let locked = &locked_packages[index];
        let features = requirement.features.clone();

        let constraint = requirement.constraint.clone();
        let mut dependency = locked.to_dependency_with(&features, &Marker::Any)?;
        let combined = dependency.marker.intersect(&requirement.marker).map_err(recursion)?;
        dependency.set_marker(combined).map_err(recursion)?;
        dependency.constraint = constraint;

        for require in locked.requires()? {
            if require.optional {
                let mut wanted = false;
                for feature in &features {
                    let Some((_, reqs)) = locked.extras()?.iter().find(|(name, _)| name == feature) else { continue };
                    for text in reqs {
                        let dep = extra_cache.entry(text.clone()).or_insert_with(|| poetry::extra_dependency(text));
                        if dep.as_ref().is_some_and(|d| d.same_as(require)) {
                            wanted = true;
                        }
                    }
                }
                if !wanted {
                    continue;
                }
            }
            let base_marker =
                require.marker.intersect(&dependency.marker).map_err(recursion)?.without_extras().map_err(recursion)?;
            if base_marker.is_empty() {
                continue;
            }
            let candidates: &[usize] = by_name.get(require.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let pythons: Vec<&str> = candidates.iter().map(|&i| locked_packages[i].python_versions.as_str()).collect();
            let regions = match region_cache.entry(pythons) {
                Entry::Occupied(regions) => regions.into_mut(),
                Entry::Vacant(slot) => {
                    let candidates: Vec<&Package> = candidates.iter().map(|&i| &locked_packages[i]).collect();
                    slot.insert(python_version_region_markers(&candidates)?)
                }
            };
            for region in regions.iter() {
                let marker = region.intersect(&base_marker).map_err(recursion)?;
                if !marker.is_empty() {
                    let mut require2 = require.clone();
                    require2.set_marker(marker).map_err(recursion)?;
                    queue.push_back(require2);
                }
            }
        }

        let key = (index, features);
        match nested_index.get(&key) {
            None => {
                nested_index.insert(key.clone(), nested.len());
                nested.push((key, dependency));
            }
            Some(&i) => {
                let existing = &mut nested[i].1;
                let union = existing.marker.union(&dependency.marker).map_err(recursion)?;
                existing.set_marker(union).map_err(recursion)?;
            }
        }
    }
    Ok(nested
        .into_iter()
        .map(|((index, features), dependency)| (dependency, &locked_packages[index], features))
        .collect())
}

/// A requirement as Poetry names it in messages (`name (>=1.0)`, `name (*) @ git+url@ref`).
fn requirement_display(dependency: &Dependency) -> String {
    let base = dependency.base_pep_508_name_resolved();
    if dependency.is_direct_origin() {
        if let Some((name, url)) = base.split_once(" @ ") {
            let url = match (&dependency.kind, &dependency.source.resolved_reference) {
                (poetry::DepKind::Git { .. }, Some(resolved)) => url.replace(
                    &format!("@{resolved}"),
                    &format!("@{}", dependency.source.reference.as_deref().unwrap_or("")),
                ),
                _ => url.to_string(),
            };
            return format!("{name} (*) @ {url}");
        }
    }
    base
}

/// `get_locked_package`: the locked package for a requirement, sticking to an earlier decision whose
/// marker overlaps.
fn locked_package(
    dependency: &Dependency,
    packages: &[Package],
    candidates: &[usize],
    decided: &[((usize, Vec<String>), Dependency)],
    decided_index: &FastMap<(usize, Vec<String>), usize>,
) -> Result<Option<usize>> {
    let mut overlapping: Vec<usize> = Vec::new();
    for &candidate in candidates {
        if let Some(&i) = decided_index.get(&(candidate, Vec::new())) {
            if !decided[i].1.marker.intersect(&dependency.marker).map_err(recursion)?.is_empty() {
                overlapping.push(candidate);
            }
        }
    }
    if overlapping.len() > 1 {
        return Ok(None);
    }
    let mut compatible: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| {
            let p = &packages[i];
            p.python_constraint.allows_all(&dependency.python_constraint)
                && dependency.constraint.allows(&p.version)
                && (dependency.source.kind.is_none() || dependency.source.is_same_source_as(&p.source))
        })
        .collect();
    if let Some(&chosen) = overlapping.first() {
        let filtered: Vec<usize> = compatible.iter().copied().filter(|&i| i == chosen).collect();
        if filtered.is_empty() {
            let show = |i: usize| format!("{} ({})", packages[i].name, packages[i].version);
            bail!(
                "The `{}` package has the following compatible candidates `{}`;  but, the exporter dependency walker previously elected `{}` which is not compatible with the dependency `{}`. Please relock with Poetry 2.0 or later to solve this issue.",
                dependency.name,
                compatible.iter().map(|&i| show(i)).collect::<Vec<_>>().join(", "),
                show(chosen),
                dependency.base_pep_508_name_resolved()
            );
        }
        compatible = filtered;
    }
    Ok(compatible.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_tree::Document;
    use expect_test::{expect, Expect};

    /// A project using every kind of line; its expected output was checked against `poetry export`.
    const PYPROJECT: &str = r#"[tool.poetry]
name = "fmt"
version = "1.0.0"
package-mode = false

[tool.poetry.dependencies]
python = ">=3.9,<3.13"
alpha = { version = "1.0", extras = ["fast"] }
torch = { version = "2.0.1", source = "private" }
gitdep = { git = "https://example.com/org/gitdep.git", branch = "main", subdirectory = "py" }
urldep = { url = "https://example.com/urldep-1.0.tar.gz" }
local = { path = "libs/local", develop = true }

[[tool.poetry.source]]
name = "private"
url = "http://example.com:8080/simple/"
priority = "supplemental"
"#;
    const LOCK: &str = r#"# This file is automatically @generated by Poetry 2.5.1 and should not be changed by hand.

[[package]]
name = "alpha"
version = "1.0"
description = ""
optional = false
python-versions = ">=3.8"
groups = ["main"]
files = [
    {file = "alpha-1.0.tar.gz", hash = "md5:0123"},
    {file = "alpha-1.0-py3-none-any.whl", hash = "sha256:ffff"},
    {file = "alpha-1.0-cp39-none-any.whl", hash = "aaaa"},
    {file = "alpha-1.0-cp310-none-any.whl", hash = "sha512:bbbb"},
]

[package.extras]
fast = ["beta (>=2)"]

[[package]]
name = "beta"
version = "2.1"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "sys_platform == \"linux\""
files = []

[[package]]
name = "gitdep"
version = "0.1"
description = ""
optional = false
python-versions = ">=3.9"
groups = ["main"]
files = []
develop = false

[package.source]
type = "git"
url = "https://example.com/org/gitdep.git"
reference = "main"
resolved_reference = "0123456789abcdef0123456789abcdef01234567"
subdirectory = "py"

[[package]]
name = "local"
version = "0.1"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = []
develop = true

[package.source]
type = "directory"
url = "libs/local"

[[package]]
name = "torch"
version = "2.0.1"
description = ""
optional = false
python-versions = ">=3.8"
groups = ["main"]
markers = "python_version < \"3.12\""
files = [
    {file = "torch-2.0.1-cp39-none-any.whl", hash = "sha256:1111"},
]

[package.source]
type = "legacy"
url = "http://example.com:8080/simple"
reference = "private"

[[package]]
name = "urldep"
version = "1.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = [
    {file = "urldep-1.0.tar.gz", hash = "sha256:2222"},
]

[package.source]
type = "url"
url = "https://example.com/urldep-1.0.tar.gz"

[metadata]
lock-version = "2.1"
python-versions = ">=3.9,<3.13"
content-hash = "202b3cafe3ba9a89f64f31d7694fddfa28e66a7a465d4d4ae232c62290abcca7"
"#;

    fn check(options: &[&str], expect: Expect) {
        let dir = Path::new("/app");
        let (pyproject, lock) =
            (Document::parse(PYPROJECT, "pyproject.toml").unwrap(), Document::parse(LOCK, "poetry.lock").unwrap());
        let project = Project::from_file(dir, &pyproject).unwrap();
        let lock_path = dir.join("poetry.lock");
        let lock = Lock::from_file(&lock_path, &lock).unwrap();
        let mut request = ExportRequest::for_image(&[], &[]);
        for option in options {
            match *option {
                "--without-hashes" => request.with_hashes = false,
                "--without-urls" => request.with_urls = false,
                "constraints.txt" => request.format = Format::ConstraintsTxt,
                other => panic!("{other}"),
            }
        }
        let selection = select_from(&project, &lock, &request, &HashMap::new(), true).unwrap();
        let mut out = selection.requirements;
        for w in selection.warnings {
            out.push_str(&format!("(stderr) {w}\n"));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn lines() {
        check(
            &[],
            expect![[r#"
            --trusted-host example.com:8080
            --extra-index-url http://example.com:8080/simple

            -e file:///app/libs/local ; python_version >= "3.9" and python_version < "3.13"
            alpha==1.0 ; python_version >= "3.9" and python_version < "3.13" \
                --hash=sha256:aaaa \
                --hash=sha256:ffff \
                --hash=sha512:bbbb
            beta==2.1 ; python_version >= "3.9" and python_version < "3.13" and sys_platform == "linux"
            gitdep @ git+https://example.com/org/gitdep.git@0123456789abcdef0123456789abcdef01234567#subdirectory=py ; python_version >= "3.9" and python_version < "3.13"
            torch==2.0.1 ; python_version >= "3.9" and python_version < "3.12" \
                --hash=sha256:1111
            urldep @ https://example.com/urldep-1.0.tar.gz ; python_version >= "3.9" and python_version < "3.13" \
                --hash=sha256:2222
        "#]],
        );
        check(
            &["constraints.txt", "--without-hashes", "--without-urls"],
            expect![[r#"
            alpha==1.0 ; python_version >= "3.9" and python_version < "3.13"
            beta==2.1 ; python_version >= "3.9" and python_version < "3.13" and sys_platform == "linux"
            gitdep @ git+https://example.com/org/gitdep.git@0123456789abcdef0123456789abcdef01234567#subdirectory=py ; python_version >= "3.9" and python_version < "3.13"
            torch==2.0.1 ; python_version >= "3.9" and python_version < "3.12"
            urldep @ https://example.com/urldep-1.0.tar.gz ; python_version >= "3.9" and python_version < "3.13"
            (stderr) Warning: local is locked in develop (editable) mode, which is incompatible with the constraints.txt format.
        "#]],
        );
    }

    #[test]
    fn selection_for_the_wheel_stage() {
        let dir = Path::new("/app");
        let project = Project::from_file(dir, &Document::parse(PYPROJECT, "pyproject.toml").unwrap()).unwrap();
        let (lock_path, lock_doc) = (dir.join("poetry.lock"), Document::parse(LOCK, "poetry.lock").unwrap());
        let lock = Lock::from_file(&lock_path, &lock_doc).unwrap();
        let selection =
            select_from(&project, &lock, &ExportRequest::for_image(&[], &[]), &HashMap::new(), true).unwrap();
        let mut lines: Vec<String> = selection
            .packages
            .iter()
            .map(|p| {
                let files: Vec<String> = p.files.iter().map(|f| format!("{} {}", f.file, f.hash)).collect();
                format!("{} {} {:?} {:?} [{}]", p.name, p.version, p.source_kind, p.source_url, files.join(", "))
            })
            .collect();
        lines.sort();
        expect![[r#"
            alpha 1.0 None None [alpha-1.0.tar.gz md5:0123, alpha-1.0-py3-none-any.whl sha256:ffff, alpha-1.0-cp39-none-any.whl aaaa, alpha-1.0-cp310-none-any.whl sha512:bbbb]
            beta 2.1 None None []
            gitdep 0.1 Some("git") Some("https://example.com/org/gitdep.git") []
            local 0.1 Some("directory") Some("/app/libs/local") []
            torch 2.0.1 Some("legacy") Some("http://example.com:8080/simple") [torch-2.0.1-cp39-none-any.whl sha256:1111]
            urldep 1.0 Some("url") Some("https://example.com/urldep-1.0.tar.gz") [urldep-1.0.tar.gz sha256:2222]
        "#]].assert_eq(&format!("{}\n", lines.join("\n")));
    }
}
