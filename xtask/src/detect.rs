//! What an app's code says about how it runs, for the defaults of `config` (which `init` writes out): the
//! ASGI/WSGI callable and the framework that makes it, what a gunicorn config names (`wsgi_app`, `bind`), the
//! files the app reads beside its package (alembic.ini and its scripts, template and static folders, Django's
//! manage.py), the directories of SQLite files under absolute paths (data that needs a volume), and the
//! migration command. Each finding says where it was found. Pure functions over the files' text, plus one
//! bounded walk of the app directory (`Sources::read`).

use std::path::Path;

/// A Python source file of the app: its path relative to the app directory (`/`-separated) and its text.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: String,
    pub(crate) text: String,
}

/// The app's Python files, read once.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub(crate) files: Vec<Source>,
}

/// Folders never searched: hidden ones, virtualenvs, caches, tests, docs, build output, migration scripts.
const SKIPPED_DIRS: &[&str] = &[
    "__pycache__",
    "node_modules",
    "venv",
    "env",
    "site-packages",
    "tests",
    "test",
    "docs",
    "build",
    "dist",
    "target",
    "migrations",
    "versions",
];
/// Bounds of the walk: an app is a few hundred files; a repository with a vendored tree stays fast.
const MAX_DEPTH: usize = 6;
const MAX_FILES: usize = 3000;
const MAX_FILE_BYTES: u64 = 512 * 1024;

impl Sources {
    /// The `*.py` files under `app_dir`, within the bounds above, sorted by path.
    pub(crate) fn read(app_dir: &Path) -> Sources {
        fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<Source>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                if out.len() >= MAX_FILES {
                    return;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Ok(kind) = entry.file_type() else { continue };
                let path = entry.path();
                if kind.is_dir() {
                    if depth > 0 && !name.starts_with('.') && !SKIPPED_DIRS.contains(&name) {
                        walk(root, &path, depth - 1, out);
                    }
                } else if kind.is_file() && name.ends_with(".py") {
                    if entry.metadata().map(|m| m.len() > MAX_FILE_BYTES).unwrap_or(true) {
                        continue;
                    }
                    let Ok(text) = std::fs::read_to_string(&path) else { continue };
                    let Ok(relative) = path.strip_prefix(root) else { continue };
                    let relative = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                    out.push(Source { path: relative, text });
                }
            }
        }
        let mut files = Vec::new();
        walk(app_dir, app_dir, MAX_DEPTH, &mut files);
        Sources { files }
    }
}

/// The module a source file is imported as: `pkg/app.py` → `pkg.app`, `pkg/__init__.py` → `pkg`,
/// `src/pkg/wsgi.py` → `pkg.wsgi` (src layout).
pub(crate) fn module_of(path: &str) -> Option<String> {
    let path = path.strip_prefix("src/").unwrap_or(path);
    let stem = path.strip_suffix(".py")?;
    let stem = stem.strip_suffix("/__init__").unwrap_or(stem);
    let identifier = |s: &str| {
        s.starts_with(|c: char| c.is_alphabetic() || c == '_') && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    stem.split('/').all(identifier).then(|| stem.replace('/', "."))
}

/// How an app speaks to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Asgi,
    Wsgi,
}

/// The frameworks whose constructor makes the callable, and what they speak.
const FRAMEWORKS: &[(&str, &str, Kind)] = &[
    ("FastAPI", "FastAPI", Kind::Asgi),
    ("Starlette", "Starlette", Kind::Asgi),
    ("Litestar", "Litestar", Kind::Asgi),
    ("Quart", "Quart", Kind::Asgi),
    ("Flask", "Flask", Kind::Wsgi),
];

/// A place the callable may be: `module:attribute` (or `module:factory()`, which gunicorn and uvicorn's
/// `--factory` call), what makes it, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Callable {
    pub(crate) app: String,
    pub(crate) kind: Kind,
    /// `FastAPI(...)`, `create_app()` (which makes a Flask app), Django's `get_wsgi_application()`.
    pub(crate) how: String,
    /// `orders/app.py:14`
    pub(crate) at: String,
    /// Lower is likelier (see `rank`).
    rank: (u8, u8, usize),
}

/// Every place in `sources` that makes a callable, likeliest first: an instance made at module level by a
/// framework's constructor (`app = FastAPI()`), by a factory of the app (`app = create_app()`, where
/// `create_app` makes a Flask app), Django's `application` in `wsgi.py`/`asgi.py`; then factories nothing calls
/// at module level (`module:create_app()`). Among those, `main.py`, then `app.py`/`wsgi.py`/`asgi.py`/..., then
/// the shallower path.
pub(crate) fn callables(sources: &Sources) -> Vec<Callable> {
    // Functions that build an app: `def create_app(...)` whose body calls a framework's constructor.
    let mut factories: Vec<(String, Kind, String, String)> = Vec::new(); // (name, kind, framework, at)
    for source in &sources.files {
        let mut current: Option<(String, usize)> = None;
        for (n, line) in source.text.lines().enumerate() {
            if !line.starts_with([' ', '\t']) && !line.trim().is_empty() {
                current = def_name(line).map(|name| (name, n + 1));
                continue;
            }
            let Some((function, _)) = &current else { continue };
            if let Some((framework, kind)) = constructor_in(line) {
                if !factories.iter().any(|(f, ..)| f == function) {
                    factories.push((
                        function.clone(),
                        kind,
                        framework.to_string(),
                        format!("{}:{}", source.path, n + 1),
                    ));
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut called = Vec::new();
    for source in &sources.files {
        let Some(module) = module_of(&source.path) else { continue };
        let file_rank = file_rank(&source.path);
        let depth = source.path.matches('/').count();
        let django_file = matches!(source.path.rsplit('/').next(), Some("wsgi.py" | "asgi.py"))
            || source.path.ends_with("/asgi/__init__.py")
            || source.path.ends_with("/wsgi/__init__.py");
        for (n, line) in source.text.lines().enumerate() {
            let Some((target, value)) = assignment(line) else { continue };
            let at = format!("{}:{}", source.path, n + 1);
            let callee = call_name(value);
            let framework = callee.and_then(|c| FRAMEWORKS.iter().find(|(name, ..)| last_segment(c) == *name));
            if let Some((_, shown, kind)) = framework {
                let how = format!("{shown}(...)");
                found.push(Callable {
                    app: format!("{module}:{target}"),
                    kind: *kind,
                    how,
                    at,
                    rank: (0, file_rank, depth),
                });
                continue;
            }
            if let Some((name, kind, framework, _)) =
                callee.and_then(|c| factories.iter().find(|(f, ..)| last_segment(c) == f))
            {
                let how = format!("{name}(), which makes a {framework} app");
                found.push(Callable {
                    app: format!("{module}:{target}"),
                    kind: *kind,
                    how,
                    at,
                    rank: (1, file_rank, depth),
                });
                called.push(name.clone());
                continue;
            }
            if django_file && target == "application" {
                let kind = if source.path.contains("asgi") { Kind::Asgi } else { Kind::Wsgi };
                let how = callee.map(|c| format!("{}()", last_segment(c))).unwrap_or_else(|| "Django".to_string());
                found.push(Callable {
                    app: format!("{module}:application"),
                    kind,
                    how,
                    at,
                    rank: (0, file_rank, depth),
                });
            }
        }
    }
    for (name, kind, framework, at) in &factories {
        if called.contains(name) {
            continue;
        }
        let path = at.split(':').next().unwrap_or_default();
        let Some(module) = module_of(path) else { continue };
        let how = format!("the factory {name}(), which makes a {framework} app");
        let rank = (3, file_rank(path), path.matches('/').count());
        found.push(Callable { app: format!("{module}:{name}()"), kind: *kind, how, at: at.clone(), rank });
    }
    found.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.app.cmp(&b.app)));
    found.dedup_by(|a, b| a.app == b.app);
    found
}

fn file_rank(path: &str) -> u8 {
    match path.rsplit('/').next().unwrap_or(path) {
        "main.py" => 0,
        "app.py" | "application.py" | "asgi.py" | "wsgi.py" | "server.py" | "api.py" | "web.py" => 1,
        "__init__.py" => 2,
        _ => 3,
    }
}

/// `def name(` or `async def name(` at the start of a line.
fn def_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix("async ").unwrap_or(line).strip_prefix("def ")?;
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// A framework constructor called on this line (`app = Flask(__name__)`, `return FastAPI(...)`).
fn constructor_in(line: &str) -> Option<(&'static str, Kind)> {
    FRAMEWORKS.iter().find_map(|(name, shown, kind)| {
        let i = line.find(&format!("{name}("))?;
        let before = line[..i].chars().last();
        before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')).then_some((*shown, *kind))
    })
}

/// A module-level assignment `target = value` (with an optional annotation), not a comparison.
fn assignment(line: &str) -> Option<(&str, &str)> {
    if line.starts_with([' ', '\t']) {
        return None;
    }
    let end = line.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    let target = &line[..end];
    if target.is_empty() || target.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = line[end..].trim_start();
    if let Some(annotated) = rest.strip_prefix(':') {
        rest = &annotated[annotated.find('=')?..];
    }
    let value = rest.strip_prefix('=')?;
    if value.starts_with('=') {
        return None;
    }
    Some((target, value.trim()))
}

/// The dotted name called by `value`, when it is a call: `fastapi.FastAPI(` → `fastapi.FastAPI`.
fn call_name(value: &str) -> Option<&str> {
    let end = value.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))?;
    (end > 0 && value[end..].starts_with('(')).then(|| &value[..end])
}

fn last_segment(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// A string literal assigned at module level: `name = "value"` (single or double quotes), with its line.
pub(crate) fn string_setting(text: &str, name: &str) -> Option<(String, usize)> {
    text.lines().enumerate().find_map(|(n, line)| {
        let (target, value) = assignment(line)?;
        (target == name).then(|| first_string(value)).flatten().map(|s| (s, n + 1))
    })
}

/// Whether a module-level assignment to `name` exists.
pub(crate) fn has_setting(text: &str, name: &str) -> bool {
    text.lines().any(|line| assignment(line).is_some_and(|(target, _)| target == name))
}

/// The first string literal in `text` (`"x"` or `'x'`, no escapes), e.g. of `["0.0.0.0:8000"]`.
fn first_string(text: &str) -> Option<String> {
    let start = text.find(['"', '\''])?;
    let quote = text[start..].chars().next()?;
    let rest = &text[start + 1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_string())
}

/// The port of a bind address: `0.0.0.0:8000`, `[::]:8000`, `:8000`.
pub(crate) fn bind_port(bind: &str) -> Option<u16> {
    bind.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).filter(|p| *p > 0)
}

/// Every string literal in `text`, with its line number.
fn string_literals(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or(line);
        let mut rest = line;
        while let Some(start) = rest.find(['"', '\'']) {
            let quote = rest[start..].chars().next().unwrap();
            let after = &rest[start + 1..];
            let Some(end) = after.find(quote) else { break };
            out.push((after[..end].to_string(), n + 1));
            rest = &after[end + 1..];
        }
    }
    out
}

/// A finding: a value and where it was seen (`alembic.ini:3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) value: String,
    pub(crate) at: String,
}

/// The directories that hold SQLite databases at absolute paths: `sqlite:////data/app.db` in code or in
/// alembic.ini, or a literal path ending in `.db`, `.sqlite` or `.sqlite3` (`"/data/db.sqlite3"`). `/tmp` is
/// left out: it is a scratch file system already.
pub(crate) fn data_dirs(sources: &Sources, alembic_ini: Option<&str>) -> Vec<Found> {
    let mut texts: Vec<(&str, &str)> = sources.files.iter().map(|s| (s.path.as_str(), s.text.as_str())).collect();
    if let Some(ini) = alembic_ini {
        texts.push(("alembic.ini", ini));
    }
    let mut out: Vec<Found> = Vec::new();
    for (path, text) in texts {
        let mut candidates: Vec<(String, usize)> = string_literals(text);
        if path.ends_with(".ini") {
            candidates.extend(
                text.lines()
                    .enumerate()
                    .filter_map(|(n, l)| l.split_once('=').map(|(_, v)| (v.trim().to_string(), n + 1))),
            );
        }
        for (literal, line) in candidates {
            let file = match literal.strip_prefix("sqlite:///") {
                Some(rest) if rest.starts_with('/') => rest.split('?').next().unwrap_or(rest).to_string(),
                Some(_) => continue,
                None if literal.starts_with('/')
                    && [".db", ".sqlite", ".sqlite3"].iter().any(|ext| literal.ends_with(ext))
                    && !literal.contains(char::is_whitespace) =>
                {
                    literal
                }
                None => continue,
            };
            let Some((dir, _)) = file.rsplit_once('/') else { continue };
            if dir.is_empty() || dir == "/tmp" || dir.starts_with("/tmp/") || dir.starts_with("/dev") {
                continue;
            }
            if !out.iter().any(|f| f.value == dir) {
                out.push(Found { value: dir.to_string(), at: format!("{path}:{line}") });
            }
        }
    }
    out
}

/// Folders that code opens relative to the working directory: `directory="templates"` (Starlette's
/// `Jinja2Templates`, `StaticFiles`), `template_folder=`/`static_folder=` (Flask, relative to the package:
/// found when it climbs out of it, `"../templates"`). Only folders that exist at the top of the app count.
pub(crate) fn read_folders(sources: &Sources, app_dir: &Path) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for source in &sources.files {
        for (n, line) in source.text.lines().enumerate() {
            for keyword in ["directory=", "template_folder=", "static_folder="] {
                let Some(i) = line.find(keyword) else { continue };
                let Some(value) = first_string(&line[i + keyword.len()..]) else { continue };
                let folder = if keyword == "directory=" {
                    value.trim_start_matches("./").trim_end_matches('/').to_string()
                } else {
                    match value.strip_prefix("../") {
                        Some(up) if !source.path.contains('/') || source.path.matches('/').count() == 1 => {
                            up.trim_end_matches('/').to_string()
                        }
                        _ => continue,
                    }
                };
                let valid = !folder.is_empty() && !folder.starts_with('/') && !folder.split('/').any(|c| c == "..");
                if valid && app_dir.join(&folder).is_dir() && !out.iter().any(|f| f.value == folder) {
                    out.push(Found { value: folder, at: format!("{}:{}", source.path, n + 1) });
                }
            }
        }
    }
    out
}

/// `script_location` of an alembic.ini (`%(here)s/` dropped), relative to the app.
pub(crate) fn alembic_scripts(ini: &str) -> Option<(String, usize)> {
    let mut in_alembic = false;
    for (n, line) in ini.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            in_alembic = line == "[alembic]";
            continue;
        }
        if !in_alembic {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim() == "script_location" {
                let value = value.trim().trim_start_matches("%(here)s/").trim_start_matches("./");
                return Some((value.trim_end_matches('/').to_string(), n + 1));
            }
        }
    }
    None
}

/// The settings module a Django project's manage.py names (`mysite.settings`).
pub(crate) fn django_settings(manage_py: &str) -> Option<String> {
    let i = manage_py.find("DJANGO_SETTINGS_MODULE")?;
    let rest = &manage_py[i + "DJANGO_SETTINGS_MODULE".len()..];
    let rest = rest.trim_start_matches(['"', '\'']);
    first_string(rest.trim_start_matches([',', ' ', ')', ':', '=']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    fn sources(files: &[(&str, &str)]) -> Sources {
        Sources { files: files.iter().map(|(p, t)| Source { path: p.to_string(), text: t.to_string() }).collect() }
    }

    fn check(files: &[(&str, &str)], expect: Expect) {
        let found: Vec<String> = callables(&sources(files))
            .iter()
            .map(|c| format!("{} ({:?}, {}, at {})", c.app, c.kind, c.how, c.at))
            .collect();
        expect.assert_eq(&found.join("\n"));
    }

    #[test]
    fn finds_the_callable() {
        check(
            &[
                ("orders/app.py", "from fastapi import FastAPI\n\napp = FastAPI(title=\"x\")\n"),
                ("orders/cli.py", "def main(): pass\n"),
            ],
            expect!["orders.app:app (Asgi, FastAPI(...), at orders/app.py:3)"],
        );
        check(
            &[
                ("shop/__init__.py", "from flask import Flask\n\ndef create_app() -> Flask:\n    app = Flask(__name__)\n    return app\n"),
                ("shop/wsgi.py", "from shop import create_app\n\napp = create_app()\n"),
            ],
            expect!["shop.wsgi:app (Wsgi, create_app(), which makes a Flask app, at shop/wsgi.py:3)"],
        );
        check(
            &[("src/svc/factory.py", "import fastapi\n\ndef get_application():\n    return fastapi.FastAPI()\n")],
            expect!["svc.factory:get_application() (Asgi, the factory get_application(), which makes a FastAPI app, at src/svc/factory.py:4)"],
        );
        check(
            &[
                (
                    "mysite/wsgi.py",
                    "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
                ),
                (
                    "mysite/asgi.py",
                    "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n",
                ),
            ],
            expect![[r#"
                mysite.asgi:application (Asgi, get_asgi_application(), at mysite/asgi.py:2)
                mysite.wsgi:application (Wsgi, get_wsgi_application(), at mysite/wsgi.py:2)"#]],
        );
        // main.py before the others; a comparison or an indented line is no assignment.
        check(
            &[
                ("api/routes.py", "router = FastAPI()\n"),
                ("api/main.py", "if app == FastAPI():\n    pass\n    app = FastAPI()\napp: FastAPI = FastAPI()\n"),
            ],
            expect![[r#"
                api.main:app (Asgi, FastAPI(...), at api/main.py:4)
                api.routes:router (Asgi, FastAPI(...), at api/routes.py:1)"#]],
        );
        check(&[("web.py", "app = MyFastAPI()\n")], expect![""]);
    }

    #[test]
    fn settings_and_folders() {
        let conf = "wsgi_app = \"shop.wsgi:app\"\nbind = ['0.0.0.0:8000']\nworkers = 2\n";
        assert_eq!(string_setting(conf, "wsgi_app"), Some(("shop.wsgi:app".to_string(), 1)));
        assert_eq!(string_setting(conf, "bind").and_then(|(b, _)| bind_port(&b)), Some(8000));
        assert!(!has_setting(conf, "worker_class"));
        assert_eq!(bind_port("[::]:5000"), Some(5000));
        assert_eq!(alembic_scripts("[alembic]\nscript_location = %(here)s/alembic\n"), Some(("alembic".into(), 2)));
        assert_eq!(alembic_scripts("[other]\nscript_location = x\n"), None);
        assert_eq!(
            django_settings("os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mysite.settings\")"),
            Some("mysite.settings".to_string())
        );
        let data = data_dirs(
            &sources(&[
                (
                    "notes/db.py",
                    "URL = \"sqlite:////data/notes.db\"\nTMP = 'sqlite:////tmp/x.db'\nREL = 'sqlite:///rel.db'\n",
                ),
                ("mysite/settings.py", "NAME = os.environ.get(\"DB\", \"/var/lib/site/db.sqlite3\")\n"),
            ]),
            Some("[alembic]\nsqlalchemy.url = sqlite:////data/notes.db\n"),
        );
        expect![[r#"[Found { value: "/data", at: "notes/db.py:1" }, Found { value: "/var/lib/site", at: "mysite/settings.py:1" }]"#]]
            .assert_eq(&format!("{data:?}"));
        assert_eq!(module_of("src/pkg/__init__.py").as_deref(), Some("pkg"));
        assert_eq!(module_of("my-scripts/x.py"), None);
    }
}
