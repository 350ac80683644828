//! The Poetry project model: `pyproject.toml` (the root package, its dependency groups, extras and sources)
//! and `poetry.lock` (locked packages, their files and hashes, per-group markers), as poetry 2.5 reads them.
//! Also the lock's `content-hash` check. Pure apart from the two file reads (`Project::load`,
//! `read_lock_text`) and the existence checks Poetry itself makes for path dependencies.

use std::cell::OnceCell;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::toml_tree::{Document, Node, Table, Value};
use anyhow::{bail, format_err, Context, Result};

use crate::markers::{self, canonicalize_name, MResult, Marker, Recursion};
use crate::memo::{memo, FastMap, Memo};
use crate::pep440::{self, Constraint as VersionConstraint, Version};
use crate::sha256;

/// poetry-core's `MAIN_GROUP`.
pub(crate) const MAIN_GROUP: &str = "main";

fn recursion(_: Recursion) -> anyhow::Error {
    format_err!("marker too complex to simplify (poetry-core would fail the same way)")
}

// ---------------------------------------------------------------------------------------------------------
// Where a package comes from
// ---------------------------------------------------------------------------------------------------------

/// A package's or a dependency's origin (poetry-core's `PackageSpecification` source fields). `kind` is
/// `None` for an index (PyPI), `legacy` for a private index, or `git`/`url`/`file`/`directory`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceSpec {
    pub(crate) kind: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) resolved_reference: Option<String>,
    pub(crate) subdirectory: Option<String>,
}

impl SourceSpec {
    fn new(
        kind: Option<String>,
        url: Option<String>,
        reference: Option<String>,
        resolved_reference: Option<String>,
        subdirectory: Option<String>,
    ) -> SourceSpec {
        let url = match (&kind, url) {
            (Some(k), Some(u)) if k == "git" => Some(parse_git_url(&u).map(|p| p.url()).unwrap_or(u)),
            (_, u) => u,
        };
        SourceSpec { kind, url, reference, resolved_reference, subdirectory }
    }

    /// `git`, `url`, `file` or `directory`: not from an index.
    pub(crate) fn is_direct_origin(&self) -> bool {
        matches!(self.kind.as_deref(), Some("directory" | "file" | "url" | "git"))
    }

    /// poetry-core's `is_same_source_as`.
    pub(crate) fn is_same_source_as(&self, other: &SourceSpec) -> bool {
        if self.kind != other.kind {
            return false;
        }
        if self.kind.is_none() {
            return true;
        }
        if (self.url.is_some() || other.url.is_some()) && self.url != other.url {
            return false;
        }
        if (self.subdirectory.is_some() || other.subdirectory.is_some()) && self.subdirectory != other.subdirectory {
            return false;
        }
        if let (Some(a), Some(b)) = (&self.resolved_reference, &other.resolved_reference) {
            if !a.is_empty() && a == b {
                return true;
            }
        }
        let (a, b) = (self.reference.as_deref().unwrap_or(""), other.reference.as_deref().unwrap_or(""));
        if !a.is_empty() || !b.is_empty() {
            if a.is_empty() || b.is_empty() {
                return false;
            }
            if !(a == b || a.starts_with(b) || b.starts_with(a)) {
                return false;
            }
            if let (Some(x), Some(y)) = (&self.resolved_reference, &other.resolved_reference) {
                if !x.is_empty() && !y.is_empty() && x != y {
                    return false;
                }
            }
        }
        true
    }
}

/// poetry-core's `ParsedUrl` for git URLs (the forms Poetry accepts in practice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitUrl {
    protocol: String,
    user: Option<String>,
    resource: String,
    port: Option<String>,
    pathname: String,
    pub(crate) rev: Option<String>,
    pub(crate) subdirectory: Option<String>,
}

impl GitUrl {
    pub(crate) fn url(&self) -> String {
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        let port = self.port.as_ref().map(|p| format!(":{p}")).unwrap_or_default();
        let path = self.pathname.trim_start_matches([':', '/']);
        format!("{}://{user}{}{port}/{path}", self.protocol, self.resource)
    }
}

pub(crate) fn parse_git_url(url: &str) -> Option<GitUrl> {
    let rest = url.strip_prefix("git+").unwrap_or(url);
    let (protocol, rest, scp) = match rest.split_once("://") {
        Some((p, r)) if !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_') => {
            (p.to_string(), r, false)
        }
        _ => ("ssh".to_string(), rest, true),
    };
    // user@
    let (user, rest) = match rest.find('@') {
        Some(at)
            if !rest[..at].contains(['/', '?', '#', '<', '>', '[', ']', '|'])
                && (scp || !rest[..at].contains(':') || protocol.starts_with("http")) =>
        {
            (Some(rest[..at].to_string()), &rest[at + 1..])
        }
        _ => (None, rest),
    };
    let host_end =
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))).unwrap_or(rest.len());
    let resource = rest[..host_end].to_string();
    let mut rest = &rest[host_end..];
    let mut port = None;
    if let Some(r) = rest.strip_prefix(':') {
        let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if digits > 0 && !scp {
            port = Some(r[..digits].to_string());
            rest = &r[digits..];
        }
    }
    // poetry-core's patterns for these protocols make the host optional, and then print it as `None`.
    let resource = if resource.is_empty()
        && !scp
        && matches!(protocol.as_str(), "git" | "ssh" | "rsync" | "file" | "http" | "https")
    {
        "None".to_string()
    } else {
        resource
    };
    if resource.is_empty() || rest.is_empty() || !rest.starts_with([':', '/', '\\']) {
        return None;
    }
    let path_end = rest.find(['@', '#']).unwrap_or(rest.len());
    let pathname = rest[..path_end].to_string();
    let suffix = &rest[path_end..];
    let (mut rev, mut subdirectory) = (None, None);
    let subdir_of = |s: &str| -> Option<String> {
        let s = s.strip_prefix("egg=").map(|e| e.split_once('&').map(|(_, r)| r).unwrap_or("")).unwrap_or(s);
        s.strip_prefix("subdirectory=").map(str::to_string)
    };
    if let Some(frag) = suffix.strip_prefix('#') {
        if frag.starts_with("subdirectory=") || (frag.starts_with("egg=") && frag.contains("&subdirectory=")) {
            subdirectory = subdir_of(frag);
        } else if !frag.starts_with("egg") {
            let (r, tail) = frag.split_once(['&', '#']).map(|(a, b)| (a, Some(b))).unwrap_or((frag, None));
            rev = Some(r.to_string());
            subdirectory = tail.and_then(subdir_of);
        }
    } else if let Some(r) = suffix.strip_prefix('@') {
        let (r, tail) = r.split_once(['&', '#']).map(|(a, b)| (a, Some(b))).unwrap_or((r, None));
        rev = Some(r.to_string());
        subdirectory = tail.and_then(subdir_of);
    }
    Some(GitUrl { protocol, user, resource, port, pathname, rev, subdirectory })
}

/// `Path(path).absolute().as_uri()`: a `file://` URL with the path percent-encoded like Python does.
pub(crate) fn path_to_url(path: &Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Path.resolve()` (non-strict): symlinks resolved as far as the path exists, `..` applied to the rest.
pub(crate) fn resolve_path(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    _ => out.push(part),
                }
            }
            return out;
        }
        match (existing.file_name().map(|f| f.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => {
                // A path with `..` at its end or no existing prefix: normalize lexically.
                let mut out = PathBuf::new();
                for c in path.components() {
                    match c {
                        Component::ParentDir => {
                            out.pop();
                        }
                        Component::CurDir => {}
                        other => out.push(other),
                    }
                }
                return out;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------------------------------------

/// How a dependency is fetched.
#[derive(Debug, Clone)]
pub(crate) enum DepKind {
    /// From an index, by name and version constraint.
    Index,
    Git {
        source: String,
        branch: Option<String>,
        tag: Option<String>,
        rev: Option<String>,
    },
    Url {
        url: String,
    },
    File {
        full_path: PathBuf,
    },
    Directory {
        full_path: PathBuf,
    },
}

/// poetry-core's `Dependency` (and its VCS/URL/file/directory subclasses), with the fields export uses.
#[derive(Debug, Clone)]
pub(crate) struct Dependency {
    pub(crate) name: String,
    pub(crate) pretty_name: String,
    pub(crate) constraint: VersionConstraint,
    pub(crate) optional: bool,
    pub(crate) features: Vec<String>,
    pub(crate) kind: DepKind,
    pub(crate) source: SourceSpec,
    pub(crate) marker: Marker,
    pub(crate) python_versions: Rc<str>,
    pub(crate) python_constraint: VersionConstraint,
    pub(crate) in_extras: Vec<String>,
    pub(crate) source_name: Option<String>,
    pub(crate) develop: bool,
    pub(crate) allows_prereleases: Option<bool>,
}

fn normalize_features<I: IntoIterator<Item = S>, S: AsRef<str>>(features: I) -> Vec<String> {
    let mut out: Vec<String> = features.into_iter().map(|f| canonicalize_name(f.as_ref())).collect();
    out.sort();
    out.dedup();
    out
}

impl Dependency {
    fn base(name: &str, constraint: VersionConstraint, kind: DepKind, source: SourceSpec) -> Dependency {
        let allows_prereleases = if matches!(kind, DepKind::Index) { None } else { Some(true) };
        Dependency {
            name: canonicalize_name(name),
            pretty_name: name.to_string(),
            constraint,
            optional: false,
            features: Vec::new(),
            kind,
            source,
            marker: Marker::Any,
            python_versions: ANY_PYTHON.with(|any| Rc::clone(any)),
            python_constraint: VersionConstraint::any(),
            in_extras: Vec::new(),
            source_name: None,
            develop: false,
            allows_prereleases,
        }
    }

    /// A dependency on `name` from an index.
    pub(crate) fn index(name: &str, constraint: VersionConstraint) -> Dependency {
        Dependency::base(name, constraint, DepKind::Index, SourceSpec::default())
    }

    pub(crate) fn git(
        name: &str,
        source: &str,
        branch: Option<String>,
        tag: Option<String>,
        rev: Option<String>,
        resolved: Option<String>,
        subdirectory: Option<String>,
    ) -> Dependency {
        let reference = branch.clone().or(tag.clone()).or(rev.clone()).unwrap_or_else(|| "HEAD".to_string());
        let spec =
            SourceSpec::new(Some("git".into()), Some(source.to_string()), Some(reference), resolved, subdirectory);
        let source = spec.url.clone().unwrap_or_else(|| source.to_string());
        Dependency::base(name, VersionConstraint::any(), DepKind::Git { source, branch, tag, rev }, spec)
    }

    pub(crate) fn url(name: &str, url: &str, subdirectory: Option<String>) -> Dependency {
        let spec = SourceSpec::new(Some("url".into()), Some(url.to_string()), None, None, subdirectory);
        Dependency::base(name, VersionConstraint::any(), DepKind::Url { url: url.to_string() }, spec)
    }

    /// A file or directory dependency; `base` is where a relative `path` starts.
    pub(crate) fn path(
        name: &str,
        path: &Path,
        base: &Path,
        directory: bool,
        subdirectory: Option<String>,
    ) -> Dependency {
        let full_path = if path.is_absolute() { path.to_path_buf() } else { resolve_path(&base.join(path)) };
        let kind_name = if directory { "directory" } else { "file" };
        let spec = SourceSpec::new(
            Some(kind_name.into()),
            Some(full_path.to_string_lossy().into_owned()),
            None,
            None,
            if directory { None } else { subdirectory },
        );
        let kind = if directory { DepKind::Directory { full_path } } else { DepKind::File { full_path } };
        Dependency::base(name, VersionConstraint::any(), kind, spec)
    }

    pub(crate) fn is_direct_origin(&self) -> bool {
        self.source.is_direct_origin()
    }
    pub(crate) fn is_vcs(&self) -> bool {
        matches!(self.kind, DepKind::Git { .. })
    }
    pub(crate) fn is_url(&self) -> bool {
        matches!(self.kind, DepKind::Url { .. })
    }
    pub(crate) fn is_file(&self) -> bool {
        matches!(self.kind, DepKind::File { .. })
    }
    pub(crate) fn is_directory(&self) -> bool {
        matches!(self.kind, DepKind::Directory { .. })
    }

    /// The name with its extras: `name[a,b]` (poetry-core's `complete_name`).
    pub(crate) fn complete_name(&self) -> String {
        complete(&self.name, &self.features)
    }
    fn complete_pretty_name(&self) -> String {
        complete(&self.pretty_name, &self.features)
    }

    /// The marker setter: sets the marker and recomputes the Python constraint and extras from it.
    pub(crate) fn set_marker(&mut self, marker: Marker) -> MResult<()> {
        let facts = marker_facts(&marker)?;
        self.marker = marker;
        if facts.has_extra {
            self.optional = true;
            for e in &facts.in_extras {
                if !self.in_extras.contains(e) {
                    self.in_extras.push(e.clone());
                }
            }
        }
        self.python_versions = facts.python_versions.clone();
        self.python_constraint = facts.python_constraint.clone();
        Ok(())
    }

    /// The `python_versions` setter: narrows the marker to those Python versions.
    pub(crate) fn set_python_versions(&mut self, value: &str) -> Result<()> {
        let python = python_versions(value)
            .ok_or_else(|| format_err!("invalid Python constraint '{value}' for {}", self.pretty_name))?
            .map_err(|e| format_err!("{e}"))?;
        self.python_versions = python.text.clone();
        self.python_constraint = python.constraint.clone();
        if let Some(marker) = &python.marker {
            self.marker = self.marker.intersect(marker).map_err(recursion)?;
        }
        Ok(())
    }

    /// PEP 508 `name[extras] @ url` or `name[extras] (constraint)` (poetry-core's `base_pep_508_name`,
    /// resolved: a git dependency names its locked commit).
    pub(crate) fn base_pep_508_name_resolved(&self) -> String {
        let requirement = self.complete_pretty_name();
        match &self.kind {
            DepKind::Git { source, branch, tag, rev } => {
                let mut r = format!("{requirement} @ git+{source}");
                if let Some(resolved) = self.source.resolved_reference.as_ref().filter(|r| !r.is_empty()) {
                    r.push_str(&format!("@{resolved}"));
                } else if let Some(reference) =
                    branch.as_ref().or(tag.as_ref()).or(rev.as_ref()).filter(|r| !r.is_empty())
                {
                    r.push_str(&format!("@{reference}"));
                }
                if let Some(dir) = &self.source.subdirectory {
                    r.push_str(&format!("#subdirectory={dir}"));
                }
                r
            }
            DepKind::Url { url } => {
                let mut r = format!("{requirement} @ {url}");
                if let Some(dir) = &self.source.subdirectory {
                    r.push_str(&format!("#subdirectory={dir}"));
                }
                r
            }
            DepKind::File { full_path } => {
                let mut r = format!("{requirement} @ {}", path_to_url(full_path));
                if let Some(dir) = &self.source.subdirectory {
                    r.push_str(&format!("#subdirectory={dir}"));
                }
                r
            }
            DepKind::Directory { full_path } => format!("{requirement} @ {}", path_to_url(full_path)),
            DepKind::Index => {
                let c = &self.constraint;
                if let VersionConstraint::Version(v) = c {
                    format!("{requirement} (=={v})")
                } else if c.is_any() {
                    requirement
                } else {
                    format!("{requirement} ({})", c.to_string().replace(' ', ""))
                }
            }
        }
    }

    /// The marker part of `to_pep_508(with_extras=False)`, if any.
    pub(crate) fn pep_508_marker(&self) -> MResult<Option<String>> {
        if !self.marker.is_any() {
            let marker = self.marker.without_extras()?;
            if marker.is_empty() || marker.is_any() {
                return Ok(None);
            }
            return Ok(Some(marker.to_string()));
        }
        if &*self.python_versions != "*" {
            return Ok(Some(markers::nested_version_marker("python_version", &self.python_constraint)));
        }
        Ok(None)
    }

    /// poetry-core's `Dependency.__eq__`: same name, extras and source, and the same constraint unless it
    /// is a direct origin.
    pub(crate) fn same_as(&self, other: &Dependency) -> bool {
        // The same `complete_name` (names and extras are normalized: no `[`, `,` or `]` in them).
        self.name == other.name
            && self.features == other.features
            && self.source.is_same_source_as(&other.source)
            && (self.constraint == other.constraint || self.is_direct_origin())
    }
}

/// What the `python_versions` setter derives from a constraint (memoized: a lock repeats a few of them).
struct PythonVersions {
    text: Rc<str>,
    constraint: VersionConstraint,
    /// The `python_version` marker of the constraint, unless it allows any version.
    marker: Option<Marker>,
}

thread_local! {
    static ANY_PYTHON: std::mem::ManuallyDrop<Rc<str>> = std::mem::ManuallyDrop::new(Rc::from("*"));
    static PYTHON_VERSIONS: Memo<FastMap<String, Rc<PythonVersions>>> = memo(Default::default());
}

/// `None` for an invalid constraint, an error for one that makes no marker.
fn python_versions(value: &str) -> Option<Result<Rc<PythonVersions>, String>> {
    if let Some(hit) = PYTHON_VERSIONS.with(|m| m.borrow().get(value).cloned()) {
        return Some(Ok(hit));
    }
    let constraint = pep440::parse_marker_constraint(value)?;
    let marker = if constraint.is_any() {
        None
    } else {
        match markers::python_marker(&constraint) {
            Ok(marker) => Some(marker),
            Err(e) => return Some(Err(e)),
        }
    };
    let facts = Rc::new(PythonVersions { text: Rc::from(value), constraint, marker });
    PYTHON_VERSIONS.with(|m| m.borrow_mut().insert(value.to_string(), facts.clone()));
    Some(Ok(facts))
}

/// What the marker setter derives from a marker (memoized: the walker sets the same markers many times).
struct MarkerFacts {
    has_extra: bool,
    in_extras: Vec<String>,
    python_versions: Rc<str>,
    python_constraint: VersionConstraint,
}

thread_local! {
    static MARKER_FACTS: Memo<FastMap<Marker, Rc<MarkerFacts>>> = memo(Default::default());
}

fn marker_facts(marker: &Marker) -> MResult<Rc<MarkerFacts>> {
    if let Some(hit) = MARKER_FACTS.with(|m| m.borrow().get(marker).cloned()) {
        return Ok(hit);
    }
    let converted = markers::convert_markers(marker)?;
    let mut in_extras = Vec::new();
    let extra_groups = converted.iter().find(|(n, _)| n == "extra");
    if let Some((_, groups)) = extra_groups {
        for group in groups {
            for (op, extra) in group {
                if op == "==" {
                    in_extras.push(canonicalize_name(extra));
                } else if op.is_empty() && (extra.contains("||") || extra.contains(',')) {
                    let sep = if extra.contains("||") { "||" } else { "," };
                    for e in extra.split(sep).map(str::trim) {
                        if !e.starts_with("!=") {
                            in_extras.push(canonicalize_name(e));
                        }
                    }
                }
            }
        }
    }
    let python_versions: String = if markers::contains_group_without_marker(&converted, "python_version") {
        "*".to_string()
    } else {
        let groups = &converted.iter().find(|(n, _)| n == "python_version").unwrap().1;
        markers::normalize_python_version_markers(groups)
    };
    let python_constraint = pep440::parse_marker_constraint(&python_versions).unwrap_or(VersionConstraint::Empty);
    let facts = Rc::new(MarkerFacts {
        has_extra: extra_groups.is_some(),
        in_extras,
        python_versions: python_versions.into(),
        python_constraint,
    });
    MARKER_FACTS.with(|m| m.borrow_mut().insert(marker.clone(), facts.clone()));
    Ok(facts)
}

fn complete(name: &str, features: &[String]) -> String {
    if features.is_empty() {
        name.to_string()
    } else {
        format!("{name}[{}]", features.join(","))
    }
}

/// A parsed PEP 508 requirement.
#[derive(Debug)]
pub(crate) struct Requirement {
    pub(crate) name: String,
    pub(crate) extras: Vec<String>,
    /// `>=1,<2` as written (specifiers joined with `,`), empty when none.
    pub(crate) constraint: String,
    pub(crate) url: Option<String>,
    pub(crate) marker: Option<String>,
}

/// Parses `name[extras] (>=1,<2) ; marker` or `name @ url ; marker`.
pub(crate) fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let invalid = |what: &str| format!("The requirement is invalid: {what}: {text}");
    let s = text.trim_start_matches([' ', '\t']);
    let name_end = s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(s.len());
    if name_end == 0 || !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("no name"));
    }
    let name = s[..name_end].to_string();
    let mut rest = s[name_end..].trim_start_matches([' ', '\t']);
    let mut extras = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let close = r.find(']').ok_or_else(|| invalid("unclosed ["))?;
        extras = r[..close].split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
        rest = r[close + 1..].trim_start_matches([' ', '\t']);
    }
    let mut constraint = String::new();
    let mut url = None;
    if let Some(r) = rest.strip_prefix('@') {
        let r = r.trim_start_matches([' ', '\t']);
        let end = r.find(' ').unwrap_or(r.len());
        url = Some(r[..end].to_string());
        rest = r[end..].trim_start_matches([' ', '\t']);
    } else {
        let (body, after, paren) = if let Some(r) = rest.strip_prefix('(') {
            let close = r.find(')').ok_or_else(|| invalid("unclosed ("))?;
            (&r[..close], &r[close + 1..], true)
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            (&rest[..end], &rest[end..], false)
        };
        let body = body.trim();
        if !body.is_empty() {
            let parts: Vec<String> = body.split(',').map(|p| p.trim().to_string()).collect();
            if parts.iter().any(|p| !p.starts_with(['~', '=', '!', '<', '>'])) {
                return Err(invalid("bad version specifier"));
            }
            constraint = parts.join(",");
        } else if paren {
            return Err(invalid("empty ()"));
        }
        rest = after.trim_start_matches([' ', '\t']);
    }
    let mut marker = None;
    if let Some(r) = rest.strip_prefix(';') {
        marker = Some(r.trim().to_string());
    } else if !rest.trim().is_empty() {
        return Err(invalid("unexpected text"));
    }
    Ok(Requirement { name, extras, constraint, url, marker })
}

/// poetry-core's `Dependency.create_from_pep_508`.
pub(crate) fn dependency_from_pep_508(text: &str, relative_to: &Path) -> Result<Dependency> {
    let mut text = text.to_string();
    if let Some((head, rest)) = text.split_once(" #") {
        let mut t = head.trim().to_string();
        if let Some((_, marker)) = rest.split_once(" ;") {
            t.push_str(" ;");
            t.push_str(marker);
        }
        text = t;
    }
    let req = parse_requirement(&text).map_err(|e| format_err!("{e}"))?;
    let mut dep = match &req.url {
        Some(url) => {
            let (without_fragment, fragment) = url.split_once('#').map(|(a, b)| (a, Some(b))).unwrap_or((url, None));
            let subdirectory =
                fragment.and_then(|f| f.split('&').find_map(|p| p.strip_prefix("subdirectory="))).map(str::to_string);
            let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
            let mut dep = if scheme.starts_with("git+") {
                let parsed = parse_git_url(url).ok_or_else(|| format_err!("invalid git URL \"{url}\""))?;
                Dependency::git(
                    &req.name,
                    &parsed.url(),
                    None,
                    None,
                    parsed.rev.clone(),
                    None,
                    parsed.subdirectory.clone(),
                )
            } else if scheme == "git" {
                Dependency::git(&req.name, without_fragment, None, None, None, None, None)
            } else if scheme == "http" || scheme == "https" {
                let mut dep = Dependency::url(&req.name, without_fragment, subdirectory);
                let filename = without_fragment.rsplit('/').next().unwrap_or("");
                if let Some(stem) = filename.strip_suffix(".whl") {
                    let mut parts = stem.split('-');
                    if let (Some(name), Some(version)) = (parts.next(), parts.next()) {
                        dep.pretty_name = name.to_string();
                        dep.name = canonicalize_name(name);
                        if let Some(c) = pep440::parse_constraint(version) {
                            dep.constraint = c;
                        }
                    }
                }
                dep
            } else if scheme == "file" {
                let path = url.trim_start_matches("file://");
                let path = Path::new(path);
                let full = if path.is_absolute() { path.to_path_buf() } else { relative_to.join(path) };
                let is_file = if full.exists() { full.is_file() } else { path.extension().is_some() };
                Dependency::path(&req.name, path, relative_to, !is_file, subdirectory)
            } else {
                let path = Path::new(url.as_str());
                let full = relative_to.join(path);
                let is_file = if full.exists() { full.is_file() } else { path.extension().is_some() };
                Dependency::path(&req.name, path, relative_to, !is_file, None)
            };
            dep.features = normalize_features(&req.extras);
            dep
        }
        None => {
            let constraint = if req.constraint.is_empty() {
                VersionConstraint::any()
            } else {
                pep440::parse_constraint(&req.constraint)
                    .ok_or_else(|| format_err!("invalid version constraint \"{}\" in \"{text}\"", req.constraint))?
            };
            let mut dep = Dependency::index(&req.name, constraint);
            dep.features = normalize_features(&req.extras);
            dep
        }
    };
    if let Some(marker) = &req.marker {
        let marker = markers::parse_marker(marker).map_err(|e| format_err!("{e}"))?;
        dep.set_marker(marker).map_err(recursion)?;
    }
    Ok(dep)
}

/// A dependency's constraints: one spec, or several (`[[...dependencies.name]]` or an inline list).
fn spec_items(spec: Node<'_>) -> Vec<Node<'_>> {
    match spec.as_array() {
        Some(items) => items.collect(),
        None => vec![spec],
    }
}

/// poetry-core's `Factory.create_dependency`: a dependency as `[tool.poetry.dependencies]` or a lock's
/// `[package.dependencies]` writes it (a version string or a table).
pub(crate) fn dependency_from_spec(name: &str, spec: Node<'_>, root_dir: &Path) -> Result<Dependency, String> {
    if let Some(s) = spec.as_str() {
        let c = pep440::parse_constraint(s).ok_or_else(|| format!("invalid version constraint \"{s}\""))?;
        return Ok(Dependency::index(name, c));
    }
    let Some(table) = spec.as_table() else {
        return Err("must be a version string or a table".to_string());
    };
    let string = |key: &str| -> Result<Option<String>, String> {
        match table.get(key) {
            None => Ok(None),
            Some(item) => item.as_str().map(|s| Some(s.to_string())).ok_or_else(|| format!("`{key}` must be a string")),
        }
    };
    let boolean = |key: &str| -> Result<bool, String> {
        match table.get(key) {
            None => Ok(false),
            Some(item) => item.as_bool().ok_or_else(|| format!("`{key}` must be true or false")),
        }
    };
    let extras: Vec<String> = match table.get("extras") {
        None => Vec::new(),
        Some(item) => item
            .as_array()
            .ok_or("`extras` must be a list of strings")?
            .map(|v| v.as_str().map(str::to_string).ok_or("`extras` must be a list of strings".to_string()))
            .collect::<Result<_, _>>()?,
    };
    let optional = boolean("optional")?;
    let subdirectory = string("subdirectory")?;
    let mut dep = if let Some(git) = string("git")? {
        let mut d = Dependency::git(name, &git, string("branch")?, string("tag")?, string("rev")?, None, subdirectory);
        d.develop = boolean("develop")?;
        d
    } else if let Some(file) = string("file")? {
        Dependency::path(name, Path::new(&file), root_dir, false, subdirectory)
    } else if let Some(path) = string("path")? {
        let path = PathBuf::from(path);
        if root_dir.join(&path).is_file() {
            Dependency::path(name, &path, root_dir, false, subdirectory)
        } else {
            let path = match &subdirectory {
                Some(s) => path.join(s),
                None => path,
            };
            let mut d = Dependency::path(name, &path, root_dir, true, None);
            d.develop = boolean("develop")?;
            d
        }
    } else if let Some(url) = string("url")? {
        Dependency::url(name, &url, subdirectory)
    } else {
        let version = string("version")?.unwrap_or_else(|| "*".to_string());
        let c =
            pep440::parse_constraint(&version).ok_or_else(|| format!("invalid version constraint \"{version}\""))?;
        let mut d = Dependency::index(name, c);
        d.allows_prereleases = match table.get("allow-prereleases") {
            Some(item) => Some(item.as_bool().ok_or("`allow-prereleases` must be true or false")?),
            None => None,
        };
        d.develop = boolean("develop")?;
        d
    };
    dep.optional = optional;
    dep.features = normalize_features(&extras);
    let mut marker = match string("markers")? {
        Some(m) if !m.is_empty() => markers::parse_marker(&m)?,
        _ => Marker::Any,
    };
    if let Some(python) = string("python")? {
        if !python.is_empty() {
            let c =
                pep440::parse_constraint(&python).ok_or_else(|| format!("invalid Python constraint \"{python}\""))?;
            let m = markers::parse_marker(&markers::nested_version_marker("python_version", &c))?;
            marker = marker.intersect(&m).map_err(|_| "marker too complex".to_string())?;
        }
    }
    if let Some(platform) = string("platform")? {
        if !platform.is_empty() {
            let m = markers::parse_marker(&markers::nested_generic_marker("sys_platform", &platform)?)?;
            marker = marker.intersect(&m).map_err(|_| "marker too complex".to_string())?;
        }
    }
    if !marker.is_any() {
        dep.set_marker(marker).map_err(|_| "marker too complex".to_string())?;
    }
    dep.source_name = string("source")?;
    Ok(dep)
}

// ---------------------------------------------------------------------------------------------------------
// JSON for the content hash
// ---------------------------------------------------------------------------------------------------------

/// A TOML value as Python's `json.dumps(..., sort_keys=True)` writes it.
#[derive(Debug, Clone)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn from_node(node: Node<'_>) -> Json {
        match node.value() {
            Value::String(s) => Json::Str(s.to_string()),
            Value::Integer(i) => Json::Int(i),
            Value::Float(f) => Json::Float(f),
            Value::Boolean(b) => Json::Bool(b),
            Value::Datetime(d) => Json::Str(d.to_string()),
            Value::Array(items) => Json::Array(items.map(Json::from_node).collect()),
            Value::Table(t) => Json::from_table(t),
        }
    }
    fn from_table(t: Table<'_>) -> Json {
        Json::Object(t.iter().map(|(k, v)| (k.to_string(), Json::from_node(v))).collect())
    }

    pub(crate) fn dumps(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => out.push_str(&i.to_string()),
            Json::Float(f) => out.push_str(&python_float_repr(*f)),
            Json::Str(s) => write_json_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                let mut sorted: Vec<&(String, Json)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (k, v)) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_string(k, out);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        return format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------------------
// pyproject.toml
// ---------------------------------------------------------------------------------------------------------

/// A package source from `[[tool.poetry.source]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) name: String,
    /// As written; Poetry strips a trailing `/` for legacy sources.
    pub(crate) url: String,
    /// `primary`, `supplemental` or `explicit`.
    pub(crate) priority: String,
}

/// A dependency group (`main`, `[tool.poetry.group.<name>]`, `[dependency-groups]`, legacy `dev`).
#[derive(Debug, Clone)]
pub(crate) struct DependencyGroup {
    pub(crate) name: String,
    mixed_dynamic: bool,
    dependencies: Vec<Dependency>,
    poetry_dependencies: Vec<Dependency>,
    included: Vec<String>,
}

impl DependencyGroup {
    fn new(name: &str) -> DependencyGroup {
        DependencyGroup {
            name: canonicalize_name(name),
            mixed_dynamic: false,
            dependencies: Vec::new(),
            poetry_dependencies: Vec::new(),
            included: Vec::new(),
        }
    }

    fn add_dependency(&mut self, dep: Dependency) {
        if self.dependencies.is_empty() && !self.poetry_dependencies.is_empty() {
            self.poetry_dependencies.push(dep);
        } else {
            self.dependencies.push(dep);
        }
    }
}

/// The root package as Poetry sees it: name, Python constraint, groups, extras, sources, and what the
/// lock's content-hash covers.
#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) name: String,
    pub(crate) python_constraint: VersionConstraint,
    pub(crate) groups: Vec<DependencyGroup>,
    /// Extra names (normalized), in declaration order.
    pub(crate) extras: Vec<String>,
    pub(crate) sources: Vec<Source>,
    /// Uses the deprecated `[tool.poetry.dev-dependencies]`.
    pub(crate) has_dev_dependencies: bool,
    content_hash: String,
    content_hash_without_groups: String,
}

fn item_str<'d>(file: &Document<'_>, item: Node<'d>, what: &str) -> Result<&'d str> {
    item.as_str().ok_or_else(|| file.error_at(item, format!("{what} must be a string")))
}

fn table_like<'d>(file: &Document<'_>, item: Node<'d>, what: &str) -> Result<Table<'d>> {
    item.as_table().ok_or_else(|| file.error_at(item, format!("{what} must be a table")))
}

fn string_list(file: &Document<'_>, item: Node<'_>, what: &str) -> Result<Vec<String>> {
    let array = item.as_array().ok_or_else(|| file.error_at(item, format!("{what} must be a list of strings")))?;
    array
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| file.error_at(item, format!("{what} must be a list of strings")))
        })
        .collect()
}

impl Project {
    /// Reads `<dir>/pyproject.toml` like `poetry export` does: validation errors are Poetry's.
    pub(crate) fn load(dir: &Path, display: &str) -> Result<Project> {
        let path = dir.join("pyproject.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {display}"))?;
        let file = Document::parse(&text, display)?;
        Project::from_file(dir, &file)
    }

    /// The project as `poetry export` reads it from `file`, section by section; `dir` is where relative path
    /// dependencies start.
    pub(crate) fn from_file(dir: &Path, file: &Document<'_>) -> Result<Project> {
        let pyproject = Pyproject::tables(dir, file)?;
        pyproject.validate()?;
        let requires_python = pyproject.requires_python()?;
        let mut declared =
            Declared { groups: Vec::new(), extras: Vec::new(), python_versions: requires_python.clone() };
        let last_dependencies_nonempty = pyproject.read_project_dependencies(&mut declared)?;
        if let Some(deps) = pyproject.poetry("dependencies") {
            let i = declared.group_index(MAIN_GROUP);
            pyproject.read_poetry_dependencies(&mut declared, i, deps, "tool.poetry.dependencies")?;
        }
        pyproject.read_groups(&mut declared)?;
        if let Some(deps) = pyproject.poetry("dev-dependencies") {
            let i = declared.group_index("dev");
            pyproject.read_poetry_dependencies(&mut declared, i, deps, "tool.poetry.dev-dependencies")?;
        }
        if !last_dependencies_nonempty {
            pyproject.read_poetry_extras(&mut declared)?;
        }
        let python_constraint = python_constraint(file, &declared.python_versions, &requires_python)?;
        let sources = pyproject.read_sources()?;
        let (content_hash, content_hash_without_groups) =
            content_hashes(pyproject.project, pyproject.tool_poetry, pyproject.dependency_groups);
        Ok(Project {
            name: pyproject.name(),
            python_constraint,
            groups: declared.groups,
            extras: declared.extras.into_iter().map(|(e, _)| e).collect(),
            sources,
            has_dev_dependencies: pyproject.poetry("dev-dependencies").is_some(),
            content_hash,
            content_hash_without_groups,
        })
    }

    pub(crate) fn has_group(&self, name: &str) -> bool {
        let canonical = canonicalize_name(name);
        self.groups.iter().any(|g| g.name == canonical)
    }

    /// `dependency_group_names(include_optional=True)`.
    pub(crate) fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// The dependencies of the given groups as Poetry locks them (`with_dependency_groups(groups,
    /// only=True).all_requires`), in group declaration order.
    pub(crate) fn requires_for(&self, groups: &[String]) -> Result<Vec<Dependency>> {
        let mut out = Vec::new();
        for g in self.groups.iter().filter(|g| groups.contains(&g.name)) {
            out.extend(self.dependencies_for_locking(g, &mut Vec::new())?);
        }
        Ok(out)
    }

    fn group(&self, name: &str) -> &DependencyGroup {
        self.groups.iter().find(|g| g.name == name).expect("group exists")
    }

    fn included_dependencies(
        &self,
        group: &DependencyGroup,
        locking: bool,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Dependency>> {
        let mut out = Vec::new();
        if stack.contains(&group.name) {
            bail!("Cyclic dependency group include in {}", group.name);
        }
        stack.push(group.name.clone());
        for inc in &group.included {
            let included = self.group(inc);
            let deps = if locking {
                self.dependencies_for_locking(included, stack)?
            } else {
                self.group_dependencies(included, stack)?
            };
            out.extend(deps);
        }
        stack.pop();
        Ok(out)
    }

    /// `DependencyGroup.dependencies`.
    fn group_dependencies(&self, group: &DependencyGroup, stack: &mut Vec<String>) -> Result<Vec<Dependency>> {
        let included = self.included_dependencies(group, false, stack)?;
        let mut deps = group.dependencies.clone();
        if deps.is_empty() {
            deps = group.poetry_dependencies.clone();
        } else if group.mixed_dynamic && !group.poetry_dependencies.is_empty() {
            if group.dependencies.iter().all(|d| d.optional) {
                deps.extend(group.poetry_dependencies.iter().filter(|d| !d.optional).cloned());
            } else if group.dependencies.iter().all(|d| !d.optional) {
                deps.extend(group.poetry_dependencies.iter().filter(|d| d.optional).cloned());
            }
        }
        deps.extend(included);
        Ok(deps)
    }

    /// `DependencyGroup.dependencies_for_locking`: [project] dependencies enriched by [tool.poetry] ones.
    fn dependencies_for_locking(&self, group: &DependencyGroup, stack: &mut Vec<String>) -> Result<Vec<Dependency>> {
        let included = self.included_dependencies(group, true, stack)?;
        let mut deps = if group.poetry_dependencies.is_empty() {
            group.dependencies.clone()
        } else if group.dependencies.is_empty() {
            group.poetry_dependencies.clone()
        } else {
            let mut out = Vec::new();
            for dep in self.group_dependencies(group, stack)? {
                let poetry_deps: Vec<&Dependency> =
                    group.poetry_dependencies.iter().filter(|p| p.name == dep.name).collect();
                if poetry_deps.is_empty() {
                    out.push(dep);
                    continue;
                }
                let mut enriched = false;
                let mut dep_marker = dep.marker.clone();
                if !dep.in_extras.is_empty() {
                    let extras =
                        dep.in_extras.iter().map(|e| format!("extra == '{e}'")).collect::<Vec<_>>().join(" or ");
                    let m = markers::parse_marker(&extras).map_err(|e| format_err!("{e}"))?;
                    dep_marker = dep.marker.intersect(&m).map_err(recursion)?;
                }
                for poetry_dep in poetry_deps {
                    let mut marker = dep_marker.intersect(&poetry_dep.marker).map_err(recursion)?;
                    if !marker.is_empty() {
                        if marker == dep_marker {
                            marker = dep.marker.clone();
                        }
                        enriched = true;
                        out.push(enrich_dependency(&dep, poetry_dep, marker)?);
                    }
                }
                if !enriched {
                    out.push(dep);
                }
            }
            out
        };
        deps.extend(included);
        Ok(deps)
    }

    /// Whether the lock's `content-hash` matches this pyproject (Poetry's `Locker.is_fresh`).
    pub(crate) fn lock_is_fresh(&self, lock: &Lock) -> bool {
        let Some(hash) = &lock.content_hash else { return false };
        if *hash == self.content_hash {
            return true;
        }
        if let Some(version) = lock.generated_by.as_deref().and_then(Version::parse) {
            if version < Version::parse("2.3.0").unwrap() {
                return *hash == self.content_hash_without_groups;
            }
        }
        false
    }
}

/// The tables of pyproject.toml that Poetry reads, with the file (for messages) and the project's directory.
#[derive(Clone, Copy)]
struct Pyproject<'f> {
    file: &'f Document<'f>,
    dir: &'f Path,
    project: Option<Table<'f>>,
    tool_poetry: Option<Table<'f>>,
    dependency_groups: Option<Table<'f>>,
}

/// The dependency groups and extras read so far, and the Python constraint as declared.
struct Declared {
    groups: Vec<DependencyGroup>,
    /// Extra names (normalized) and the names of the dependencies each one adds.
    extras: Vec<(String, Vec<String>)>,
    /// `[tool.poetry.dependencies] python`, else `requires-python`.
    python_versions: String,
}

impl Declared {
    /// The group named `name`, added when missing.
    fn group_index(&mut self, name: &str) -> usize {
        let canonical = canonicalize_name(name);
        match self.groups.iter().position(|g| g.name == canonical) {
            Some(i) => i,
            None => {
                self.groups.push(DependencyGroup::new(name));
                self.groups.len() - 1
            }
        }
    }
}

impl<'f> Pyproject<'f> {
    fn tables(dir: &'f Path, file: &'f Document<'f>) -> Result<Pyproject<'f>> {
        let root = file.root();
        let table = |item: Option<Node<'f>>, what: &str| item.map(|item| table_like(file, item, what)).transpose();
        Ok(Pyproject {
            file,
            dir,
            project: table(root.get("project"), "[project]")?,
            tool_poetry: table(root.get("tool").and_then(|t| t.get("poetry")), "[tool.poetry]")?,
            dependency_groups: table(root.get("dependency-groups"), "[dependency-groups]")?,
        })
    }

    /// `[tool.poetry] key`.
    fn poetry(&self, key: &str) -> Option<Node<'f>> {
        self.tool_poetry.and_then(|t| t.get(key))
    }

    /// `[project] key`.
    fn project(&self, key: &str) -> Option<Node<'f>> {
        self.project.and_then(|t| t.get(key))
    }

    /// Validation, as `Factory.validate` reports it.
    fn validate(&self) -> Result<()> {
        let file = self.file;
        let mut errors: Vec<String> = Vec::new();
        if let Some(project) = self.project {
            if project.get("name").is_none() {
                errors.push("project must contain ['name'] properties".to_string());
            }
            for key in ["name", "version", "requires-python"] {
                if let Some(item) = project.get(key) {
                    if !item.is_str() {
                        errors.push(format!("project.{key} must be string"));
                    }
                }
            }
        }
        let package_mode = match self.poetry("package-mode") {
            Some(item) => {
                item.as_bool().ok_or_else(|| file.error_at(item, "tool.poetry.package-mode must be true or false"))?
            }
            None => true,
        };
        if package_mode {
            for key in ["name", "version"] {
                let value =
                    self.project(key).and_then(Node::as_str).or_else(|| self.poetry(key).and_then(Node::as_str));
                if value.is_none_or(str::is_empty) {
                    errors.push(format!("Either [project.{key}] or [tool.poetry.{key}] is required in package mode."));
                }
            }
        }
        if !errors.is_empty() {
            let mut message = String::from("The Poetry configuration is invalid:\n");
            for e in &errors {
                message.push_str(&format!("  - {e}\n"));
            }
            bail!("{}", message.trim_end());
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.project("name")
            .and_then(Node::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| self.poetry("name").and_then(Node::as_str))
            .unwrap_or("non-package-mode")
            .to_string()
    }

    fn requires_python(&self) -> Result<String> {
        Ok(match self.project("requires-python") {
            Some(item) => item_str(self.file, item, "project.requires-python")?.to_string(),
            None => "*".to_string(),
        })
    }

    /// `[project] dependencies` and `optional-dependencies`, into the main group. Returns whether the last
    /// list read was not empty (poetry-core's scoping: `dependencies` ends as the last extra's list).
    fn read_project_dependencies(&self, declared: &mut Declared) -> Result<bool> {
        let (file, dir) = (self.file, self.dir);
        let dependencies = self.project("dependencies");
        let optional_dependencies = self.project("optional-dependencies");
        let has_optional = optional_dependencies.and_then(Node::as_table).is_some_and(|t| !t.is_empty());
        let mut last_dependencies_nonempty = false;
        if dependencies.is_none() && !has_optional {
            return Ok(last_dependencies_nonempty);
        }
        let dynamic = match self.project("dynamic") {
            Some(item) => string_list(file, item, "project.dynamic")?,
            None => Vec::new(),
        };
        let i = declared.group_index(MAIN_GROUP);
        let groups = &mut declared.groups;
        groups[i].mixed_dynamic = dynamic.iter().any(|d| d == "dependencies" || d == "optional-dependencies");
        if let Some(item) = dependencies {
            let deps = string_list(file, item, "project.dependencies")?;
            last_dependencies_nonempty = !deps.is_empty();
            for d in deps {
                let dep = dependency_from_pep_508(&d, dir).map_err(|e| file.error_at(item, e))?;
                groups[i].add_dependency(dep);
            }
        }
        if let Some(item) = optional_dependencies {
            for (extra, reqs) in table_like(file, item, "project.optional-dependencies")?.iter() {
                let extra = canonicalize_name(extra);
                let reqs = string_list(file, reqs, "project.optional-dependencies")?;
                last_dependencies_nonempty = !reqs.is_empty();
                let mut names = Vec::new();
                for r in reqs {
                    let mut dep = dependency_from_pep_508(&r, dir).map_err(|e| file.error_at(item, e))?;
                    dep.optional = true;
                    dep.in_extras = vec![extra.clone()];
                    names.push(dep.name.clone());
                    groups[i].add_dependency(dep);
                }
                declared.extras.push((extra, names));
            }
        }
        Ok(last_dependencies_nonempty)
    }

    /// A `[tool.poetry.dependencies]`-style table (`what` names it in messages) into group number `group`; its
    /// `python` entry sets the Python constraint when the group is main.
    fn read_poetry_dependencies(
        &self,
        declared: &mut Declared,
        group: usize,
        deps: Node<'_>,
        what: &str,
    ) -> Result<()> {
        let file = self.file;
        let table = table_like(file, deps, what)?;
        for (dep_name, spec) in table.iter() {
            let specs = spec_items(spec);
            for s in specs {
                if dep_name.eq_ignore_ascii_case("python") {
                    if declared.groups[group].name == MAIN_GROUP {
                        if let Some(v) = s.as_str() {
                            declared.python_versions = v.to_string();
                        }
                    }
                    continue;
                }
                let dep = dependency_from_spec(dep_name, s, self.dir)
                    .map_err(|e| file.error_at(spec, format!("{what}.{dep_name}: {e}")))?;
                declared.groups[group].poetry_dependencies.push(dep);
            }
        }
        Ok(())
    }

    /// `[dependency-groups]` (PEP 735), then `[tool.poetry.group.*]`, then the groups they include.
    fn read_groups(&self, declared: &mut Declared) -> Result<()> {
        let file = self.file;
        let poetry_groups = match self.poetry("group") {
            Some(item) => Some(table_like(file, item, "tool.poetry.group")?),
            None => None,
        };
        let group_optional = |name: &str| -> Result<bool> {
            let Some(pg) = poetry_groups else { return Ok(false) };
            for (n, config) in pg.iter() {
                if canonicalize_name(n) == canonicalize_name(name) {
                    if let Some(item) = config.get("optional") {
                        return item.as_bool().ok_or_else(|| file.error_at(item, "optional must be true or false"));
                    }
                }
            }
            Ok(false)
        };
        let mut includes: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(dg) = self.dependency_groups {
            for (group_name, entries) in dg.iter() {
                // `optional` only decides what `poetry install` installs; export checks its type.
                group_optional(group_name)?;
                declared.groups.push(DependencyGroup::new(group_name));
                let group = declared.groups.last_mut().unwrap();
                let array = entries
                    .as_array()
                    .ok_or_else(|| file.error_at(entries, format!("dependency-groups.{group_name} must be a list")))?;
                let mut included = Vec::new();
                for v in array {
                    if let Some(s) = v.as_str() {
                        let mut dep = dependency_from_pep_508(s, self.dir).map_err(|e| file.error_at(entries, e))?;
                        dep.optional = false;
                        group.add_dependency(dep);
                    } else if let Some(include) =
                        v.as_table().and_then(|t| t.get("include-group")).and_then(|v| v.as_str())
                    {
                        included.push(include.to_string());
                    }
                }
                includes.push((group_name.to_string(), included));
            }
        }
        if let Some(pg) = poetry_groups {
            for (group_name, config) in pg.iter() {
                let config = table_like(file, config, &format!("tool.poetry.group.{group_name}"))?;
                let i = match declared.groups.iter().position(|g| g.name == canonicalize_name(group_name)) {
                    Some(i) => i,
                    None => {
                        if let Some(item) = config.get("optional") {
                            item.as_bool().ok_or_else(|| file.error_at(item, "optional must be true or false"))?;
                        }
                        declared.groups.push(DependencyGroup::new(group_name));
                        declared.groups.len() - 1
                    }
                };
                let included = match config.get("include-groups") {
                    Some(item) => string_list(file, item, "include-groups")?,
                    None => Vec::new(),
                };
                includes.push((group_name.to_string(), included));
                if let Some(deps) = config.get("dependencies") {
                    let what = format!("tool.poetry.group.{group_name}.dependencies");
                    self.read_poetry_dependencies(declared, i, deps, &what)?;
                }
            }
        }
        include_groups(&mut declared.groups, includes)
    }

    /// Extras from `[tool.poetry.extras]`, which count when `[project]` declares no dependencies.
    fn read_poetry_extras(&self, declared: &mut Declared) -> Result<()> {
        declared.extras.clear();
        let Some(item) = self.poetry("extras") else { return Ok(()) };
        let main = declared.groups.iter().position(|g| g.name == MAIN_GROUP);
        for (extra_name, reqs) in table_like(self.file, item, "tool.poetry.extras")?.iter() {
            let extra = canonicalize_name(extra_name);
            let mut names = Vec::new();
            for req in string_list(self.file, reqs, "tool.poetry.extras")? {
                let req_name = canonicalize_name(&req);
                if let Some(main) = main {
                    let group = &mut declared.groups[main];
                    let in_main_dependencies = !group.dependencies.is_empty();
                    let deps =
                        if in_main_dependencies { &mut group.dependencies } else { &mut group.poetry_dependencies };
                    for dep in deps.iter_mut().filter(|d| d.name == req_name) {
                        dep.in_extras.push(extra.clone());
                        names.push(dep.name.clone());
                    }
                }
            }
            declared.extras.push((extra, names));
        }
        Ok(())
    }

    /// `[[tool.poetry.source]]`, checked as Poetry checks them.
    fn read_sources(&self) -> Result<Vec<Source>> {
        let file = self.file;
        let mut sources = Vec::new();
        let Some(item) = self.poetry("source") else { return Ok(sources) };
        let array: Vec<Table<'_>> = item
            .as_array()
            .map(|a| a.filter_map(Node::as_table).collect())
            .ok_or_else(|| file.error_at(item, "tool.poetry.source must be a list of tables"))?;
        for t in array {
            let name =
                t.get("name").and_then(Node::as_str).ok_or_else(|| file.error_at(item, "a source needs a name"))?;
            let url = t.get("url").and_then(Node::as_str).unwrap_or("");
            let priority = t.get("priority").and_then(Node::as_str).unwrap_or("primary").to_ascii_lowercase();
            if !matches!(priority.as_str(), "primary" | "supplemental" | "explicit") {
                bail!(
                    "The Poetry configuration is invalid:\n  - tool.poetry.source[{}].priority must be one of ['primary', 'supplemental', 'explicit']",
                    sources.len()
                );
            }
            if name.eq_ignore_ascii_case("pypi") && !url.is_empty() {
                bail!("The PyPI repository cannot be configured with a custom url.");
            }
            if !name.eq_ignore_ascii_case("pypi") && url.is_empty() {
                bail!("Missing [url] in source {name:?}.");
            }
            sources.push(Source { name: name.to_string(), url: url.to_string(), priority });
        }
        Ok(sources)
    }
}

/// Each group's `include-groups` / `include-group` entries (`includes`: group name → included names), checked.
fn include_groups(groups: &mut [DependencyGroup], includes: Vec<(String, Vec<String>)>) -> Result<()> {
    for (group_name, included) in includes {
        let i = groups.iter().position(|g| g.name == canonicalize_name(&group_name)).unwrap();
        for inc in included {
            let canonical = canonicalize_name(&inc);
            if !groups.iter().any(|g| g.name == canonical) {
                bail!("Group '{group_name}' includes group '{inc}' which is not defined.");
            }
            if canonical == groups[i].name {
                bail!("Cannot include the dependency group to itself.");
            }
            if !groups[i].included.contains(&canonical) {
                groups[i].included.push(canonical);
            }
        }
    }
    Ok(())
}

/// The project's Python constraint (`ProjectPackage.python_versions`), checked against `requires-python`.
fn python_constraint(file: &Document<'_>, python_versions: &str, requires_python: &str) -> Result<VersionConstraint> {
    let constraint_text = if python_versions == "*" { "~2.7 || >=3.4" } else { python_versions };
    let python_constraint = pep440::parse_marker_constraint(constraint_text)
        .ok_or_else(|| format_err!("{}: invalid Python constraint \"{python_versions}\"", file.display))?;
    if requires_python != "*" {
        let allowed = pep440::parse_marker_constraint(requires_python)
            .ok_or_else(|| format_err!("{}: invalid requires-python \"{requires_python}\"", file.display))?;
        if !allowed.allows_all(&python_constraint) {
            bail!(
                "The Python constraint in [tool.poetry.dependencies] \"{python_versions}\" is not a subset of \"requires-python\" in [project] \"{requires_python}\""
            );
        }
    }
    Ok(python_constraint)
}

fn enrich_dependency(project_dep: &Dependency, poetry_dep: &Dependency, marker: Marker) -> Result<Dependency> {
    let project_kind = project_dep.source.kind.is_some();
    if project_kind && poetry_dep.source.kind.is_some() && !poetry_dep.source.is_same_source_as(&project_dep.source) {
        bail!("Cannot enrich dependency with different sources: {} and {}", project_dep.name, poetry_dep.name);
    }
    let constraint = project_dep.constraint.intersect(&poetry_dep.constraint);
    if constraint.is_empty() {
        bail!("Cannot enrich dependency with incompatible constraints: {} and {}", project_dep.name, poetry_dep.name);
    }
    let mut dep = if project_kind {
        let mut d = project_dep.clone();
        if d.is_directory() || d.is_vcs() {
            d.develop = poetry_dep.develop;
        }
        d
    } else {
        let mut d = poetry_dep.clone();
        d.features = project_dep.features.clone();
        d.optional = project_dep.optional;
        d.in_extras = project_dep.in_extras.clone();
        d
    };
    dep.constraint = constraint;
    dep.set_marker(marker).map_err(recursion)?;
    Ok(dep)
}

/// Poetry's `Locker._get_content_hash`, with and without `[dependency-groups]`.
fn content_hashes(
    project: Option<Table<'_>>,
    tool_poetry: Option<Table<'_>>,
    dependency_groups: Option<Table<'_>>,
) -> (String, String) {
    let compute = |with_groups: bool| -> String {
        let mut relevant_project: Vec<(String, Json)> = Vec::new();
        for key in ["requires-python", "dependencies", "optional-dependencies"] {
            if let Some(item) = project.and_then(|p| p.get(key)) {
                relevant_project.push((key.to_string(), Json::from_node(item)));
            }
        }
        let group_content: Option<Json> =
            if with_groups { dependency_groups.filter(|g| !g.is_empty()).map(Json::from_table) } else { None };
        let mut relevant_poetry: Vec<(String, Json)> = Vec::new();
        for key in ["dependencies", "source", "extras", "dev-dependencies", "group"] {
            let legacy = key != "group";
            match tool_poetry.and_then(|t| t.get(key)) {
                Some(item) => relevant_poetry.push((key.to_string(), Json::from_node(item))),
                None => {
                    if !legacy || !relevant_project.is_empty() || group_content.is_some() {
                        continue;
                    }
                    relevant_poetry.push((key.to_string(), Json::Null));
                }
            }
        }
        let mut relevant: Vec<(String, Json)> = Vec::new();
        if !relevant_project.is_empty() {
            relevant.push(("project".into(), Json::Object(relevant_project)));
        }
        if let Some(g) = group_content {
            relevant.push(("dependency-groups".into(), g));
        }
        let json = if relevant.is_empty() {
            Json::Object(relevant_poetry)
        } else {
            relevant.push(("tool".into(), Json::Object(vec![("poetry".into(), Json::Object(relevant_poetry))])));
            Json::Object(relevant)
        };
        sha256::hex_digest(json.dumps().as_bytes())
    };
    let with_groups = compute(true);
    if dependency_groups.is_none_or(|g| g.is_empty()) {
        return (with_groups.clone(), with_groups); // the same content
    }
    (with_groups, compute(false))
}

// ---------------------------------------------------------------------------------------------------------
// poetry.lock
// ---------------------------------------------------------------------------------------------------------

/// One distribution file of a locked package: its name and `algorithm:hex` hash (or a bare hash in very
/// old locks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    pub file: String,
    pub hash: String,
}

/// A `PackageFile` as the lock's text has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockedFile<'a> {
    pub(crate) file: &'a str,
    pub(crate) hash: &'a str,
}

impl From<&LockedFile<'_>> for PackageFile {
    fn from(f: &LockedFile<'_>) -> PackageFile {
        PackageFile { file: f.file.to_string(), hash: f.hash.to_string() }
    }
}

/// A locked package (poetry-core's `Package` as the `Locker` builds it). Its files, dependencies and extras
/// are read from the lock's tree on first use: an export needs them only for the packages it visits.
pub(crate) struct Package<'a> {
    pub(crate) name: String,
    pub(crate) pretty_name: String,
    pub(crate) version: Version,
    pub(crate) source: SourceSpec,
    pub(crate) optional: bool,
    pub(crate) python_versions: String,
    pub(crate) python_constraint: VersionConstraint,
    pub(crate) develop: bool,
    /// Lock 2.1: the groups that need this package and the marker per group.
    pub(crate) groups: Vec<String>,
    pub(crate) group_markers: Vec<(String, Marker)>,
    raw: RawPackage<'a>,
    files: OnceCell<Vec<LockedFile<'a>>>,
    requires: OnceCell<Vec<Dependency>>,
    extras: OnceCell<Vec<(String, Vec<String>)>>,
}

/// Where a package's lazily read parts are.
#[derive(Clone, Copy)]
struct RawPackage<'a> {
    doc: &'a Document<'a>,
    table: Table<'a>,
    lock_dir: &'a Path,
    metadata_files: Option<Table<'a>>,
    metadata_hashes: Option<Table<'a>>,
}

impl<'a> Package<'a> {
    pub(crate) fn is_direct_origin(&self) -> bool {
        self.source.is_direct_origin()
    }

    /// Distribution files and their hashes (`files`, or `[metadata.files]`/`[metadata.hashes]` in old locks).
    pub(crate) fn files(&self) -> Result<&[LockedFile<'a>]> {
        if let Some(files) = self.files.get() {
            return Ok(files);
        }
        let files = read_files(&self.raw, &self.pretty_name, self.source.kind.as_deref(), self.source.url.as_deref())?;
        Ok(self.files.get_or_init(|| files))
    }

    /// `[package.dependencies]`.
    pub(crate) fn requires(&self) -> Result<&[Dependency]> {
        if let Some(requires) = self.requires.get() {
            return Ok(requires);
        }
        let requires = read_requires(&self.raw, &self.name, &self.source)?;
        Ok(self.requires.get_or_init(|| requires))
    }

    /// `[package.extras]`: extra name (normalized) → requirements as written (parse them with
    /// `extra_dependency`).
    pub(crate) fn extras(&self) -> Result<&[(String, Vec<String>)]> {
        if let Some(extras) = self.extras.get() {
            return Ok(extras);
        }
        let (file, mut extras) = (self.raw.doc, Vec::new());
        if let Some(item) = self.raw.table.get("extras") {
            for (extra, deps) in table_like(file, item, "package.extras")?.iter() {
                extras.push((canonicalize_name(extra), string_list(file, deps, "package.extras")?));
            }
        }
        Ok(self.extras.get_or_init(|| extras))
    }

    /// poetry-core's `Package.to_dependency`, for this package with `features` and `marker` (as export sets them
    /// on a copy of the package).
    pub(crate) fn to_dependency_with(&self, features: &[String], marker: &Marker) -> Result<Dependency> {
        let url = self.source.url.clone().unwrap_or_default();
        let mut dep = match self.source.kind.as_deref() {
            Some("directory") => {
                let mut d = Dependency::path(&self.name, Path::new(&url), Path::new("/"), true, None);
                d.develop = self.develop;
                d
            }
            Some("file") => {
                Dependency::path(&self.name, Path::new(&url), Path::new("/"), false, self.source.subdirectory.clone())
            }
            Some("url") => Dependency::url(&self.name, &url, self.source.subdirectory.clone()),
            Some("git") => {
                let mut d = Dependency::git(
                    &self.name,
                    &url,
                    None,
                    None,
                    self.source.reference.clone(),
                    self.source.resolved_reference.clone(),
                    self.source.subdirectory.clone(),
                );
                d.develop = self.develop;
                d
            }
            _ => Dependency::index(&self.name, VersionConstraint::Version(self.version.clone())),
        };
        dep.optional = self.optional;
        dep.features = features.to_vec();
        if !marker.is_any() {
            dep.set_marker(marker.clone()).map_err(recursion)?;
        }
        if !self.python_constraint.is_any() {
            dep.set_python_versions(&self.python_versions)?;
        }
        if self.is_direct_origin() {
            dep.constraint = VersionConstraint::Version(self.version.clone());
        }
        Ok(dep)
    }
}

/// `poetry.lock`, read from its tree (which it borrows).
pub(crate) struct Lock<'a> {
    pub(crate) lock_version: Version,
    pub(crate) content_hash: Option<String>,
    /// `Poetry X.Y.Z` from the `@generated` comment.
    pub(crate) generated_by: Option<String>,
    pub(crate) packages: Vec<Package<'a>>,
    /// `[extras]`: extra (normalized) → package names (normalized).
    pub(crate) extras: Vec<(String, Vec<String>)>,
}

/// Reads a lock file's text (parse it with `Document::parse`, then `Lock::from_file`).
pub(crate) fn read_lock_text(path: &Path, display: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {display}"))
}

impl<'a> Lock<'a> {
    /// Lock 2.1 and later store groups and markers per package.
    pub(crate) fn has_groups_and_markers(&self) -> bool {
        self.lock_version >= Version::parse("2.1").unwrap()
    }

    pub(crate) fn from_file(path: &'a Path, file: &'a Document<'a>) -> Result<Lock<'a>> {
        let lock_dir = path.parent().unwrap_or(Path::new("."));
        let root = file.root();
        let first_line = file.text.lines().next().unwrap_or("");
        let generated_by = first_line
            .find("Poetry ")
            .map(|i| first_line[i + 7..].split(' ').next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty());
        let Some(metadata) = root.get("metadata") else {
            bail!("{}: the lock file does not have a metadata entry; regenerate it with `poetry lock`", file.display);
        };
        let metadata = table_like(file, metadata, "[metadata]")?;
        let Some(lock_version_item) = metadata.get("lock-version") else {
            bail!(
                "{}: the lock file is not compatible with the current version of Poetry; regenerate it with `poetry lock`",
                file.display
            );
        };
        let lock_version_text = item_str(file, lock_version_item, "metadata.lock-version")?;
        let lock_version = Version::parse(lock_version_text)
            .ok_or_else(|| file.error_at(lock_version_item, "metadata.lock-version is not a version"))?;
        if !(lock_version >= Version::parse("1").unwrap() && lock_version < Version::parse("3").unwrap()) {
            bail!(
                "{}: lock-version {lock_version_text}: the lock file is not compatible with the current version of Poetry.\nUpgrade Poetry to be able to read the lock file or, alternatively, regenerate the lock file with the `poetry lock` command.",
                file.display
            );
        }
        let content_hash = metadata.get("content-hash").and_then(Node::as_str).map(str::to_string);
        let metadata_files = metadata.get("files").and_then(Node::as_table);
        let metadata_hashes = metadata.get("hashes").and_then(Node::as_table);

        let mut packages = Vec::new();
        if let Some(item) = root.get("package") {
            let tables: Vec<Table<'a>> = item
                .as_array()
                .map(|a| a.filter_map(Node::as_table).collect())
                .ok_or_else(|| file.error_at(item, "package must be an array of tables"))?;
            packages.reserve_exact(tables.len());
            for t in tables {
                let raw = RawPackage { doc: file, table: t, lock_dir, metadata_files, metadata_hashes };
                packages.push(read_package(raw)?);
            }
        }
        let mut extras = Vec::new();
        if let Some(item) = root.get("extras") {
            for (extra, names) in table_like(file, item, "[extras]")?.iter() {
                let names = string_list(file, names, "extras")?;
                extras.push((canonicalize_name(extra), names.iter().map(|n| canonicalize_name(n)).collect()));
            }
        }
        Ok(Lock { lock_version, content_hash, generated_by, packages, extras })
    }
}

fn read_package(raw: RawPackage<'_>) -> Result<Package<'_>> {
    let (file, t, lock_dir) = (raw.doc, raw.table, raw.lock_dir);
    let at = |key: &str| -> Result<Node<'_>> {
        t.get(key).ok_or_else(|| format_err!("{}: a [[package]] has no `{key}`", file.display))
    };
    let str_at = |key: &str| -> Result<String> { Ok(item_str(file, at(key)?, key)?.to_string()) };
    let opt_str = |table: Table<'_>, key: &str| -> Result<Option<String>> {
        match table.get(key) {
            None => Ok(None),
            Some(item) => Ok(Some(item_str(file, item, key)?.to_string())),
        }
    };
    let name = str_at("name")?;
    let version_item = at("version")?;
    let version_text = item_str(file, version_item, "version")?;
    let version = Version::parse(version_text)
        .ok_or_else(|| file.error_at(version_item, format!("invalid version '{version_text}' on package {name}")))?;
    let (kind, mut url, reference, resolved, subdirectory) = match t.get("source") {
        Some(item) => {
            let s = table_like(file, item, "package.source")?;
            (
                opt_str(s, "type")?,
                opt_str(s, "url")?,
                opt_str(s, "reference")?,
                opt_str(s, "resolved_reference")?,
                opt_str(s, "subdirectory")?,
            )
        }
        None => (None, None, None, None, None),
    };
    if matches!(kind.as_deref(), Some("directory" | "file")) {
        if let Some(u) = &url {
            url = Some(resolve_path(&lock_dir.join(u)).to_string_lossy().into_owned());
        }
    }
    let source = SourceSpec::new(kind, url, reference, resolved, subdirectory);
    let optional = match t.get("optional") {
        Some(item) => item.as_bool().ok_or_else(|| file.error_at(item, "optional must be true or false"))?,
        None => bail!("{}: package {name} has no `optional`", file.display),
    };
    let python_versions = str_at("python-versions")?;
    let python_constraint =
        pep440::parse_marker_constraint(&python_versions).filter(|c| !c.is_empty()).ok_or_else(|| {
            file.error_at(
                at("python-versions").unwrap(),
                format!("invalid python versions '{python_versions}' on {name}"),
            )
        })?;
    let develop = t.get("develop").and_then(Node::as_bool).unwrap_or(false);

    let groups = match t.get("groups") {
        Some(item) => string_list(file, item, "groups")?,
        None => Vec::new(),
    };
    let mut group_markers = Vec::new();
    if !groups.is_empty() {
        let parse = |text: &str, item: Node<'_>| -> Result<Marker> {
            markers::parse_marker(text).map_err(|e| file.error_at(item, e))
        };
        match t.get("markers") {
            None => {
                for g in &groups {
                    group_markers.push((canonicalize_name(g), Marker::Any));
                }
            }
            Some(item) if item.is_str() => {
                let m = parse(item.as_str().unwrap(), item)?;
                for g in &groups {
                    group_markers.push((canonicalize_name(g), m.clone()));
                }
            }
            Some(item) => {
                let table = table_like(file, item, "markers")?;
                for g in &groups {
                    let m = match table.get(g) {
                        Some(v) => parse(item_str(file, v, "markers")?, v)?,
                        None => Marker::Any,
                    };
                    group_markers.push((canonicalize_name(g), m));
                }
            }
        }
    }
    Ok(Package {
        name: canonicalize_name(&name),
        pretty_name: name,
        version,
        source,
        optional,
        python_versions,
        python_constraint,
        develop,
        groups: groups.iter().map(|g| canonicalize_name(g)).collect(),
        group_markers,
        raw,
        files: OnceCell::new(),
        requires: OnceCell::new(),
        extras: OnceCell::new(),
    })
}

/// `pretty_name`: the name as the lock writes it (the key of `[metadata.files]`/`[metadata.hashes]`).
fn read_files<'a>(
    raw: &RawPackage<'a>,
    pretty_name: &str,
    kind: Option<&str>,
    url: Option<&str>,
) -> Result<Vec<LockedFile<'a>>> {
    let file = raw.doc;
    let read = |item: Node<'a>| -> Result<Vec<LockedFile<'a>>> {
        let array = item.as_array().ok_or_else(|| file.error_at(item, "files must be a list"))?;
        array
            .map(|v| {
                let t = v.as_table().ok_or_else(|| file.error_at(item, "files must be a list of tables"))?;
                let f = t.get("file").and_then(|v| v.as_str()).unwrap_or_default();
                let h = t.get("hash").and_then(|v| v.as_str()).unwrap_or_default();
                Ok(LockedFile { file: f, hash: h })
            })
            .collect()
    };
    if let Some(item) = raw.table.get("files") {
        return read(item);
    }
    if let Some(hashes) = raw.metadata_hashes {
        return match hashes.get(pretty_name).and_then(Node::as_array) {
            Some(a) => Ok(a.filter_map(|v| v.as_str()).map(|h| LockedFile { file: h, hash: h }).collect()),
            None => bail!("{}: metadata.hashes has no entry for {pretty_name}", file.display),
        };
    }
    if matches!(kind, Some("git" | "directory" | "url")) {
        return Ok(Vec::new());
    }
    let entry = raw
        .metadata_files
        .and_then(|m| m.get(pretty_name))
        .ok_or_else(|| format_err!("{}: metadata.files has no entry for {pretty_name}", file.display))?;
    let all = read(entry)?;
    if kind == Some("file") {
        let filename = Path::new(url.unwrap_or("")).file_name().map(|f| f.to_string_lossy().into_owned());
        return Ok(all.into_iter().filter(|f| Some(f.file) == filename.as_deref()).collect());
    }
    Ok(all)
}

fn read_requires(raw: &RawPackage<'_>, name: &str, source: &SourceSpec) -> Result<Vec<Dependency>> {
    let file = raw.doc;
    let mut requires = Vec::new();
    if let Some(item) = raw.table.get("dependencies") {
        let root_dir = if source.kind.as_deref() == Some("directory") {
            PathBuf::from(source.url.clone().unwrap_or_default())
        } else {
            raw.lock_dir.to_path_buf()
        };
        for (dep_name, spec) in table_like(file, item, "package.dependencies")?.iter() {
            for s in spec_items(spec) {
                let dep = dependency_from_spec(dep_name, s, &root_dir)
                    .map_err(|e| file.error_at(spec, format!("{name}: dependency {dep_name}: {e}")))?;
                requires.push(dep);
            }
        }
    }
    Ok(requires)
}

/// A requirement from a lock's `[package.extras]` (poetry's `Locker` accepts old non-PEP 508 ones too).
pub(crate) fn extra_dependency(text: &str) -> Option<Dependency> {
    dependency_from_pep_508(text, Path::new("/")).ok().or_else(|| legacy_extra_dependency(text))
}

/// Lock files with extras that are not valid PEP 508 (`name[extra] (constraint)` from old Poetry).
fn legacy_extra_dependency(text: &str) -> Option<Dependency> {
    let (head, constraint) = match text.split_once(" (") {
        Some((h, c)) => (h, c.strip_suffix(')')?),
        None => (text, "*"),
    };
    let (name, extras) = match head.split_once('[') {
        Some((n, e)) => (n, e.strip_suffix(']')?.split(',').map(str::to_string).collect::<Vec<_>>()),
        None => (head, Vec::new()),
    };
    let mut dep = Dependency::index(name, pep440::parse_constraint(constraint)?);
    dep.features = normalize_features(extras.iter().filter(|e| !e.is_empty()));
    Some(dep)
}

/// Why a lock cannot be used as is.
pub(crate) fn check_lock_exists(lock_path: &Path, display: &str) -> Result<()> {
    if !lock_path.is_file() {
        bail!("{display} does not exist: run `poetry lock` to create it (export never locks)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn json_like_python() {
        let j = Json::Object(vec![
            ("b".into(), Json::Array(vec![Json::Str("é\"\n".into()), Json::Int(1), Json::Float(1.0), Json::Null])),
            ("a".into(), Json::Object(vec![])),
        ]);
        expect![[r#"{"a": {}, "b": ["\u00e9\"\n", 1, 1.0, null]}"#]].assert_eq(&j.dumps());
    }

    #[test]
    fn requirements() {
        let show = |s: &str| match parse_requirement(s) {
            Ok(r) => format!("{} {:?} {:?} {:?} {:?}", r.name, r.extras, r.constraint, r.url, r.marker),
            Err(e) => e,
        };
        expect![[r#"pytest-cov [] ">=2.4" None None"#]].assert_eq(&show("pytest-cov (>=2.4)"));
        expect![[r#"foo ["a", "b"] ">=1,<2" None Some("python_version < \"3.8\"")"#]]
            .assert_eq(&show("foo[a, b] (>=1,<2) ; python_version < \"3.8\""));
        expect![[r#"poetry-core [] "" Some("git+https://github.com/python-poetry/poetry-core.git") None"#]]
            .assert_eq(&show("poetry-core @ git+https://github.com/python-poetry/poetry-core.git"));
        expect![[r#"xattr [] ">=1.0.0,<2.0.0" None Some("sys_platform == 'darwin'")"#]]
            .assert_eq(&show("xattr (>=1.0.0,<2.0.0) ; sys_platform == 'darwin'"));
    }

    #[test]
    fn git_urls() {
        let show = |s: &str| match parse_git_url(s) {
            Some(u) => format!("{} rev={:?} sub={:?}", u.url(), u.rev, u.subdirectory),
            None => "invalid".into(),
        };
        expect!["https://github.com/a/b.git rev=None sub=None"].assert_eq(&show("https://github.com/a/b.git"));
        expect![[r#"https://github.com/a/b.git rev=Some("v1") sub=Some("pkg")"#]]
            .assert_eq(&show("git+https://github.com/a/b.git@v1#subdirectory=pkg"));
        expect!["ssh://git@github.com/a/b.git rev=None sub=None"].assert_eq(&show("git@github.com:a/b.git"));
        expect!["file://None/srv/repo rev=None sub=None"].assert_eq(&show("file:///srv/repo"));
    }

    #[test]
    fn file_urls() {
        expect!["file:///tmp/a%20b/c%2Bd"].assert_eq(&path_to_url(Path::new("/tmp/a b/c+d")));
    }
}
