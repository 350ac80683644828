//! The app's settings: `[tool.xtask]` in its pyproject.toml, every key optional, with defaults derived from the
//! project (name, version, `requires-python`, packages). Bad values are errors at `pyproject.toml:line:col`.

use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use toml_edit::{Item, Table, Value};

use crate::flags::Args;
use crate::paths;
use crate::toml_file::TomlFile;

/// Environment variable that overrides the base image (like `--base-image`).
pub(crate) const BASE_IMAGE_ENV: &str = "XTASK_BASE_IMAGE";

/// How the app speaks to the server: decides the gunicorn worker and the reloading dev server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    Asgi,
    Wsgi,
}

/// A file or folder of the app that goes into the image: `source` (relative to the app directory) is copied to
/// `dest` (relative to the image's workdir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Include {
    pub(crate) source: String,
    pub(crate) dest: String,
}

/// Everything the tasks need to know about the app, after defaults.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The app's directory (absolute).
    pub(crate) app_dir: PathBuf,
    /// The project name as written in pyproject.toml.
    pub(crate) project_name: String,
    /// Image name (repository part of the tag).
    pub(crate) name: String,
    pub(crate) version: String,
    /// The image's Python version, `X.Y`.
    pub(crate) python: String,
    pub(crate) base_image: String,
    /// Whether `base_image` is the derived default (`python:X.Y-slim`) rather than set by the user.
    pub(crate) base_image_is_default: bool,
    /// Target platform of the image and its wheelhouse, e.g. `linux/amd64`.
    pub(crate) platform: String,
    /// The port the server listens on, in the container and for `cargo xtask server`.
    pub(crate) port: u16,
    pub(crate) health_path: String,
    /// The ASGI/WSGI callable, `module:attribute`.
    pub(crate) app: String,
    pub(crate) interface: Interface,
    /// gunicorn's config file, relative to the app directory, when the app has one.
    pub(crate) gunicorn_config: Option<String>,
    /// The container's command (exec form).
    pub(crate) command: Vec<String>,
    /// What goes into the image besides the virtualenv.
    pub(crate) include: Vec<Include>,
    /// Dependency groups installed besides `main`.
    pub(crate) groups: Vec<String>,
    pub(crate) extras: Vec<String>,
    /// Environment variables baked into the image.
    pub(crate) env: Vec<(String, String)>,
    /// Extra image labels (the OCI ones are always set).
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) user: String,
    pub(crate) uid: u32,
    /// The app's directory inside the image.
    pub(crate) workdir: String,
}

/// One `[tool.xtask]` key: name, type, default and meaning. The README's reference table lists the same.
pub(crate) const KEYS: &[(&str, &str, &str, &str)] = &[
    ("name", "string", "the project name", "image name (`<name>:<version>`, `<name>:<git sha>`)"),
    ("version", "string", "`[project].version` or `[tool.poetry].version`", "image version tag and OCI label"),
    ("python", "string `X.Y`", "lowest version `requires-python` allows", "Python of the image and its wheelhouse"),
    (
        "base-image",
        "string",
        "`python:<python>-slim`",
        "base image of both stages (`--base-image`, `XTASK_BASE_IMAGE`)",
    ),
    ("platform", "string", "`linux/amd64`", "platform of the image and its wheels"),
    ("port", "integer", "`8080`", "port the server listens on"),
    ("health-path", "string", "`/health`", "path the HEALTHCHECK and `cargo xtask run` probe"),
    ("app", "string", "`<first package>.main:app`", "the ASGI/WSGI callable"),
    ("interface", "`asgi` or `wsgi`", "`asgi`", "uvicorn workers (asgi) or gunicorn's sync workers (wsgi)"),
    ("gunicorn-config", "string", "`gunicorn_config.py` if present", "gunicorn config file, relative to the app"),
    (
        "command",
        "array of strings",
        "gunicorn with the config, or with bind and worker flags",
        "the container's command",
    ),
    (
        "include",
        "array of strings",
        "Poetry's packages + the gunicorn config",
        "files and folders copied into the image",
    ),
    ("groups", "array of strings", "`[]`", "dependency groups installed besides main"),
    ("extras", "array of strings", "`[]`", "extras installed"),
    ("env", "table of strings", "`{}`", "environment variables baked into the image"),
    ("labels", "table of strings", "`{}`", "extra image labels"),
    ("user", "string", "`app`", "the non-root user the container runs as"),
    ("uid", "integer", "`10001`", "that user's uid (and gid)"),
    ("workdir", "string", "`/app`", "the app's directory in the image"),
];

impl Config {
    /// Loads the configuration of the app named by `--app`, or else by the workspace's Cargo.toml.
    pub(crate) fn load(args: &Args) -> Result<Config> {
        let app_dir = app_dir(args.value("app"))?;
        let mut config = Config::read(&app_dir)?;
        if let Some(python) = args.value("python") {
            config.set_python(python)?;
        }
        if let Some(platform) = args.value("platform") {
            config.platform = platform.to_string();
        }
        if let Some(base) = std::env::var(BASE_IMAGE_ENV).ok().filter(|v| !v.is_empty()) {
            config.base_image = base;
            config.base_image_is_default = false;
        }
        if let Some(base) = args.value("base-image") {
            config.base_image = base.to_string();
            config.base_image_is_default = false;
        }
        Ok(config)
    }

    /// Reads `<app_dir>/pyproject.toml`.
    pub(crate) fn read(app_dir: &Path) -> Result<Config> {
        let path = app_dir.join("pyproject.toml");
        let file = TomlFile::read(&path, &paths::display(&path))?;
        Config::from_pyproject(app_dir, &file)
    }

    /// Changes the Python version, and the base image with it when the base image is the default one.
    pub(crate) fn set_python(&mut self, python: &str) -> Result<()> {
        if !is_minor_version(python) {
            bail!("invalid Python version '{python}': expected X.Y, e.g. 3.12");
        }
        self.python = python.to_string();
        if self.base_image_is_default {
            self.base_image = default_base_image(python);
        }
        Ok(())
    }

    pub(crate) fn from_pyproject(app_dir: &Path, file: &TomlFile) -> Result<Config> {
        let doc = file.doc.as_table();
        let project = table_at(file, doc, "project")?;
        let poetry = match table_at(file, doc, "tool")? {
            Some(tool) => table_at(file, tool, "poetry")?,
            None => None,
        };
        let empty = Table::new();
        let xtask = match table_at(file, doc, "tool")? {
            Some(tool) => table_at(file, tool, "xtask")?,
            None => None,
        };
        let xtask = xtask.unwrap_or(&empty);
        for (key, item) in xtask.iter() {
            if !KEYS.iter().any(|(k, ..)| *k == key) {
                let known: Vec<&str> = KEYS.iter().map(|(k, ..)| *k).collect();
                let _ = item;
                return Err(file.error_at_key(
                    xtask,
                    key,
                    format!("unknown key tool.xtask.{key}; known keys: {}", known.join(", ")),
                ));
            }
        }
        let x = Reader { file, table: xtask };

        let project_name = project
            .and_then(|p| p.get("name"))
            .or_else(|| poetry.and_then(|p| p.get("name")))
            .map(|item| string(file, item, "project.name"))
            .transpose()?
            .ok_or_else(|| format_err!("{}: the project has no name: set [project].name", file.display))?;
        let name = match x.string("name")? {
            Some(name) => {
                if !is_image_name(&name) {
                    return Err(x.error(
                        "name",
                        "tool.xtask.name must be a valid image name: lowercase letters, digits, and . _ - / separators",
                    ));
                }
                name
            }
            None => image_name_from(&project_name),
        };
        let version = match x.string("version")? {
            Some(v) => v,
            None => project
                .and_then(|p| p.get("version"))
                .or_else(|| poetry.and_then(|p| p.get("version")))
                .map(|item| string(file, item, "project.version"))
                .transpose()?
                .unwrap_or_else(|| "0.0.0".to_string()),
        };
        let python = match x.string("python")? {
            Some(p) if is_minor_version(&p) => p,
            Some(_) => return Err(x.error("python", "tool.xtask.python must be a Python version X.Y, e.g. \"3.12\"")),
            None => {
                let requires = project
                    .and_then(|p| p.get("requires-python"))
                    .map(|i| (i, "project.requires-python"))
                    .or_else(|| {
                        poetry
                            .and_then(|p| p.get("dependencies"))
                            .and_then(|d| d.get("python"))
                            .map(|i| (i, "tool.poetry.dependencies.python"))
                    });
                match requires {
                    None => "3.12".to_string(),
                    Some((item, what)) => {
                        let spec = string(file, item, what)?;
                        lowest_python(&spec).ok_or_else(|| {
                            file.error_at(
                                item,
                                format!("cannot derive a Python version from {what} = \"{spec}\": set tool.xtask.python = \"X.Y\""),
                            )
                        })?
                    }
                }
            }
        };
        let (base_image, base_image_is_default) = match x.string("base-image")? {
            Some(b) => (b, false),
            None => (default_base_image(&python), true),
        };
        let platform = x.string("platform")?.unwrap_or_else(|| "linux/amd64".to_string());
        if !platform.starts_with("linux/") {
            return Err(x.error(
                "platform",
                "tool.xtask.platform must be a Linux platform such as \"linux/amd64\" or \"linux/arm64\"",
            ));
        }
        let port = match x.integer("port")? {
            None => 8080,
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(_) => return Err(x.error("port", "tool.xtask.port must be an integer between 1 and 65535")),
        };
        let health_path = x.string("health-path")?.unwrap_or_else(|| "/health".to_string());
        if !health_path.starts_with('/') {
            return Err(x.error("health-path", "tool.xtask.health-path must start with '/'"));
        }

        let packages = poetry_packages(file, poetry, &project_name, app_dir)?;
        let app = match x.string("app")? {
            Some(app) => {
                if !app.contains(':') {
                    return Err(x.error("app", "tool.xtask.app must be `module:attribute`, e.g. \"app.main:app\""));
                }
                app
            }
            None => match packages.first() {
                Some(p) => format!("{}.main:app", p.dest.replace('/', ".")),
                None => "main:app".to_string(),
            },
        };
        let interface = match x.string("interface")?.as_deref() {
            None | Some("asgi") => Interface::Asgi,
            Some("wsgi") => Interface::Wsgi,
            Some(_) => return Err(x.error("interface", "tool.xtask.interface must be \"asgi\" or \"wsgi\"")),
        };
        let gunicorn_config = match x.string("gunicorn-config")? {
            Some(c) => {
                if !app_dir.join(&c).is_file() {
                    return Err(x.error(
                        "gunicorn-config",
                        format!("tool.xtask.gunicorn-config: no file {c} in the app directory"),
                    ));
                }
                Some(c)
            }
            None => app_dir.join("gunicorn_config.py").is_file().then(|| "gunicorn_config.py".to_string()),
        };
        let command = match x.strings("command")? {
            Some(c) if c.is_empty() => return Err(x.error("command", "tool.xtask.command must not be empty")),
            Some(c) => c,
            None => default_command(&app, interface, gunicorn_config.as_deref(), port),
        };
        let include = match x.strings("include")? {
            Some(list) => {
                let mut include = Vec::new();
                for source in list {
                    let clean = source.trim_end_matches('/').to_string();
                    if clean.is_empty() || clean.starts_with('/') || clean.split('/').any(|c| c == "..") {
                        return Err(x.error(
                            "include",
                            format!("tool.xtask.include: '{source}' must be a relative path inside the app"),
                        ));
                    }
                    if !app_dir.join(&clean).exists() {
                        return Err(x.error(
                            "include",
                            format!("tool.xtask.include: '{source}' does not exist in the app directory"),
                        ));
                    }
                    include.push(Include { dest: clean.clone(), source: clean });
                }
                include
            }
            None => {
                let mut include = packages.clone();
                if let Some(c) = &gunicorn_config {
                    include.push(Include { source: c.clone(), dest: c.clone() });
                }
                include
            }
        };
        let groups = x.strings("groups")?.unwrap_or_default();
        let extras = x.strings("extras")?.unwrap_or_default();
        let env = x.string_table("env")?.unwrap_or_default();
        let labels = x.string_table("labels")?.unwrap_or_default();
        let user = x.string("user")?.unwrap_or_else(|| "app".to_string());
        if user.is_empty()
            || user == "root"
            || !user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(
                x.error("user", "tool.xtask.user must be a non-root user name (lowercase letters, digits, - and _)")
            );
        }
        let uid = match x.integer("uid")? {
            None => 10001,
            Some(u) if (1..=2_147_483_647).contains(&u) => u as u32,
            Some(_) => return Err(x.error("uid", "tool.xtask.uid must be a positive integer (0 is root)")),
        };
        let workdir = x.string("workdir")?.unwrap_or_else(|| "/app".to_string());
        if !workdir.starts_with('/') {
            return Err(x.error("workdir", "tool.xtask.workdir must be an absolute path"));
        }

        Ok(Config {
            app_dir: app_dir.to_path_buf(),
            project_name,
            name,
            version,
            python,
            base_image,
            base_image_is_default,
            platform,
            port,
            health_path,
            app,
            interface,
            gunicorn_config,
            command,
            include,
            groups,
            extras,
            env,
            labels,
            user,
            uid,
            workdir,
        })
    }

    /// Where the tool keeps this app's scratch files.
    pub(crate) fn state_dir(&self) -> PathBuf {
        paths::state_dir(&self.name)
    }

    /// The image's main tag, `<name>:<version>`.
    pub(crate) fn image_tag(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }
}

/// The app directory: `--app`, else `[workspace.metadata.xtask] app` of the workspace's Cargo.toml, else the
/// workspace root when it has a pyproject.toml.
pub(crate) fn app_dir(flag: Option<&str>) -> Result<PathBuf> {
    let root = paths::workspace_root();
    let dir = match flag {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir()?.join(dir)
            }
        }
        None => {
            let manifest = paths::workspace_manifest();
            let file = TomlFile::read(&manifest, "Cargo.toml")?;
            let item = file
                .doc
                .get("workspace")
                .and_then(|w| w.get("metadata"))
                .and_then(|m| m.get("xtask"))
                .and_then(|x| x.get("app"));
            match item {
                Some(item) => {
                    let app = item
                        .as_str()
                        .ok_or_else(|| file.error_at(item, "workspace.metadata.xtask.app must be a string (the app's directory)"))?;
                    root.join(app)
                }
                None if root.join("pyproject.toml").is_file() => root.clone(),
                None => bail!(
                    "no app configured: pass --app DIR, or add to Cargo.toml:\n\n[workspace.metadata.xtask]\napp = \"path/to/app\"\n\n(`cargo xtask init` does this)"
                ),
            }
        }
    };
    if !dir.join("pyproject.toml").is_file() {
        bail!(
            "{} has no pyproject.toml: --app and [workspace.metadata.xtask] app must name a Poetry project's directory",
            paths::display(&dir)
        );
    }
    dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Reads typed values out of `[tool.xtask]` with errors at the value's position.
struct Reader<'a> {
    file: &'a TomlFile,
    table: &'a Table,
}

impl Reader<'_> {
    fn error(&self, key: &str, message: impl std::fmt::Display) -> anyhow::Error {
        match self.table.get(key) {
            Some(item) => self.file.error_at(item, message),
            None => self.file.error_at_key(self.table, key, message),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(item) => match item.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => {
                    Err(self.file.error_at(item, format!("tool.xtask.{key} must be a string, not {}", type_name(item))))
                }
            },
        }
    }

    fn integer(&self, key: &str) -> Result<Option<i64>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(item) => match item.as_integer() {
                Some(i) => Ok(Some(i)),
                None => Err(self
                    .file
                    .error_at(item, format!("tool.xtask.{key} must be an integer, not {}", type_name(item)))),
            },
        }
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(item) = self.table.get(key) else { return Ok(None) };
        let Some(array) = item.as_array() else {
            return Err(self
                .file
                .error_at(item, format!("tool.xtask.{key} must be an array of strings, not {}", type_name(item))));
        };
        let mut out = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(s) => out.push(s.to_string()),
                None => {
                    let at =
                        value.span().map(|s| self.file.location(s.start)).unwrap_or_else(|| self.file.display.clone());
                    bail!("{at}: tool.xtask.{key} must be an array of strings, found {}", value_type_name(value));
                }
            }
        }
        Ok(Some(out))
    }

    fn string_table(&self, key: &str) -> Result<Option<Vec<(String, String)>>> {
        let Some(item) = self.table.get(key) else { return Ok(None) };
        let Some(table) = item.as_table_like() else {
            return Err(self
                .file
                .error_at(item, format!("tool.xtask.{key} must be a table of strings, not {}", type_name(item))));
        };
        let mut out = Vec::new();
        for (k, v) in table.iter() {
            match v.as_str() {
                Some(s) => out.push((k.to_string(), s.to_string())),
                None => {
                    return Err(self
                        .file
                        .error_at(v, format!("tool.xtask.{key}.{k} must be a string, not {}", type_name(v))))
                }
            }
        }
        Ok(Some(out))
    }
}

fn table_at<'a>(file: &TomlFile, parent: &'a Table, key: &str) -> Result<Option<&'a Table>> {
    match parent.get(key) {
        None => Ok(None),
        Some(Item::Table(t)) => Ok(Some(t)),
        Some(item) => Err(file.error_at(item, format!("{key} must be a table"))),
    }
}

fn string(file: &TomlFile, item: &Item, what: &str) -> Result<String> {
    item.as_str()
        .map(str::to_string)
        .ok_or_else(|| file.error_at(item, format!("{what} must be a string, not {}", type_name(item))))
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type_name(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// The packages Poetry puts in the project's wheel, as image includes: `[tool.poetry] packages`
/// (`{ include = "pkg", from = "src" }` copies `src/pkg` to `pkg`), or else the module named like the project
/// (`my-app` → `my_app`, at the top or under `src/`). `package-mode = false` projects have none by default.
fn poetry_packages(
    file: &TomlFile,
    poetry: Option<&Table>,
    project_name: &str,
    app_dir: &Path,
) -> Result<Vec<Include>> {
    let mut out = Vec::new();
    if let Some(item) = poetry.and_then(|p| p.get("packages")) {
        let Some(array) = item.as_array() else {
            return Err(file.error_at(item, "tool.poetry.packages must be an array of tables"));
        };
        for value in array.iter() {
            let Some(table) = value.as_inline_table() else {
                let at = value.span().map(|s| file.location(s.start)).unwrap_or_else(|| file.display.clone());
                bail!("{at}: tool.poetry.packages entries must be tables like {{ include = \"pkg\" }}");
            };
            let Some(include) = table.get("include").and_then(|v| v.as_str()) else { continue };
            let from = table.get("from").and_then(|v| v.as_str()).map(|f| f.trim_end_matches('/'));
            // A glob or a single module file: keep it simple and copy the first path component.
            let include = include.trim_end_matches('/');
            let source = match from {
                Some(from) if !from.is_empty() && from != "." => format!("{from}/{include}"),
                _ => include.to_string(),
            };
            if include.contains('*') {
                bail!("{}: tool.poetry.packages include '{include}' is a glob: set tool.xtask.include to the paths the image needs", file.display);
            }
            out.push(Include { source, dest: include.to_string() });
        }
        return Ok(out);
    }
    if poetry.and_then(|p| p.get("package-mode")).and_then(|i| i.as_bool()) == Some(false) {
        return Ok(out);
    }
    let module = project_name.to_lowercase().replace(['-', '.'], "_");
    for (source, dest) in [
        (module.clone(), module.clone()),
        (format!("src/{module}"), module.clone()),
        (format!("{module}.py"), format!("{module}.py")),
    ] {
        if app_dir.join(&source).exists() {
            out.push(Include { source, dest });
            break;
        }
    }
    Ok(out)
}

fn default_command(app: &str, interface: Interface, gunicorn_config: Option<&str>, port: u16) -> Vec<String> {
    let mut command = vec!["gunicorn".to_string()];
    match gunicorn_config {
        Some(config) => command.extend(["--config".to_string(), config.to_string()]),
        None => {
            command.extend(["--bind".to_string(), format!("0.0.0.0:{port}")]);
            if interface == Interface::Asgi {
                command.extend(["--worker-class".to_string(), "uvicorn.workers.UvicornWorker".to_string()]);
            }
        }
    }
    command.push(app.to_string());
    command
}

pub(crate) fn default_base_image(python: &str) -> String {
    format!("python:{python}-slim")
}

fn is_minor_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let ok = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// `My_App` → `my-app`: a valid image repository name from a project name.
fn image_name_from(project: &str) -> String {
    let mut out = String::new();
    for c in project.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// The lowest `3.Y` that a `requires-python` (PEP 440) or Poetry python constraint allows.
pub(crate) fn lowest_python(spec: &str) -> Option<String> {
    let alternatives: Vec<&str> = spec.split("||").flat_map(|s| s.split(" or ")).collect();
    (6..=30).find_map(|minor| {
        let allowed = alternatives.iter().any(|alt| {
            [0u64, 99].iter().any(|&patch| {
                let version = [3, minor, patch];
                alt.split([',', ' ']).filter(|c| !c.trim().is_empty()).all(|clause| allows(clause.trim(), version))
            })
        });
        allowed.then(|| format!("3.{minor}"))
    })
}

fn allows(clause: &str, v: [u64; 3]) -> bool {
    let ops = ["~=", "==", "!=", ">=", "<=", ">", "<", "^", "~", "="];
    let (op, rest) =
        ops.iter().find_map(|op| clause.strip_prefix(op).map(|rest| (*op, rest.trim()))).unwrap_or(("==", clause));
    if rest == "*" {
        return true;
    }
    let wildcard = rest.ends_with(".*");
    let parts: Vec<u64> = rest.trim_end_matches(".*").split('.').map_while(|p| p.parse().ok()).collect();
    if parts.is_empty() {
        return false;
    }
    let mut bound = [0u64; 3];
    for (i, p) in parts.iter().take(3).enumerate() {
        bound[i] = *p;
    }
    let n = parts.len().min(3);
    let prefix_eq = v[..n] == bound[..n];
    match op {
        "==" | "=" if wildcard || n < 3 => prefix_eq,
        "==" | "=" => v == bound,
        "!=" if wildcard => !prefix_eq,
        "!=" => v != bound,
        ">=" => v >= bound,
        ">" => v > bound && !(wildcard && prefix_eq),
        "<=" => v <= bound || prefix_eq,
        "<" => v < bound,
        "^" => {
            // ^3.11 → >=3.11,<4; ^0.2 → >=0.2,<0.3
            let first_nonzero = parts.iter().position(|&p| p != 0).unwrap_or(n - 1);
            let mut upper = bound;
            upper[first_nonzero] += 1;
            for u in upper.iter_mut().skip(first_nonzero + 1) {
                *u = 0;
            }
            v >= bound && v < upper
        }
        "~" | "~=" => {
            // ~3.11 → >=3.11,<3.12; ~=3.11 → >=3.11,<4; ~=3.11.2 → >=3.11.2,<3.12
            let keep = if op == "~" {
                if n == 1 {
                    1
                } else {
                    2
                }
            } else {
                n.saturating_sub(1).max(1)
            };
            let mut upper = [0u64; 3];
            upper[..keep].copy_from_slice(&bound[..keep]);
            upper[keep - 1] += 1;
            v >= bound && v < upper
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    fn load(pyproject: &str) -> Result<Config> {
        let dir = std::env::temp_dir().join(format!("xtask-config-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("app")).unwrap();
        let file = TomlFile::parse(&dir.join("pyproject.toml"), "app/pyproject.toml", pyproject.to_string())?;
        Config::from_pyproject(&dir, &file)
    }

    fn check_error(pyproject: &str, expect: Expect) {
        let err = load(pyproject).err().expect("an error");
        expect.assert_eq(&err.to_string());
    }

    const HEAD: &str = "[project]\nname = \"My_App\"\nversion = \"1.2.3\"\nrequires-python = \">=3.11,<3.14\"\n[tool.poetry]\npackages = [{ include = \"app\" }]\n[tool.xtask]\n";

    #[test]
    fn defaults() {
        let c = load(HEAD).unwrap();
        expect![[r#"my-app 1.2.3 3.11 python:3.11-slim linux/amd64 8080 /health app.main:app ["gunicorn", "--bind", "0.0.0.0:8080", "--worker-class", "uvicorn.workers.UvicornWorker", "app.main:app"] [Include { source: "app", dest: "app" }]"#]]
        .assert_eq(&format!(
            "{} {} {} {} {} {} {} {} {:?} {:?}",
            c.name, c.version, c.python, c.base_image, c.platform, c.port, c.health_path, c.app, c.command, c.include
        ));
    }

    #[test]
    fn errors_point_at_the_value() {
        check_error(
            &format!("{HEAD}port = \"80\"\n"),
            expect!["app/pyproject.toml:8:8: tool.xtask.port must be an integer, not a string"],
        );
        check_error(
            &format!("{HEAD}port = 70000\n"),
            expect!["app/pyproject.toml:8:8: tool.xtask.port must be an integer between 1 and 65535"],
        );
        check_error(&format!("{HEAD}prot = 80\n"), expect!["app/pyproject.toml:8:1: unknown key tool.xtask.prot; known keys: name, version, python, base-image, platform, port, health-path, app, interface, gunicorn-config, command, include, groups, extras, env, labels, user, uid, workdir"]);
        check_error(
            &format!("{HEAD}groups = [\"dev\", 1]\n"),
            expect!["app/pyproject.toml:8:18: tool.xtask.groups must be an array of strings, found an integer"],
        );
        check_error(
            &format!("{HEAD}python = \"3\"\n"),
            expect![[r#"app/pyproject.toml:8:10: tool.xtask.python must be a Python version X.Y, e.g. "3.12""#]],
        );
        check_error(
            &format!("{HEAD}env = {{ A = 1 }}\n"),
            expect!["app/pyproject.toml:8:13: tool.xtask.env.A must be a string, not an integer"],
        );
        check_error(
            &format!("{HEAD}uid = 0\n"),
            expect!["app/pyproject.toml:8:7: tool.xtask.uid must be a positive integer (0 is root)"],
        );
        check_error(
            &format!("{HEAD}include = [\"../secrets\"]\n"),
            expect!["app/pyproject.toml:8:11: tool.xtask.include: '../secrets' must be a relative path inside the app"],
        );
        check_error(
            "[project]\nversion = \"1\"\n",
            expect!["app/pyproject.toml: the project has no name: set [project].name"],
        );
    }

    #[test]
    fn python_from_requires_python() {
        let cases = [
            (">=3.11", "3.11"),
            (">=3.11,<3.14", "3.11"),
            ("^3.10", "3.10"),
            ("~3.12", "3.12"),
            (">3.9", "3.9"),
            ("==3.13.*", "3.13"),
            ("~=3.8", "3.8"),
            (">=3.8, !=3.9.*, <4", "3.8"),
            ("~2.7 || ^3.7", "3.7"),
        ];
        let actual: Vec<String> =
            cases.iter().map(|(s, _)| format!("{s} -> {}", lowest_python(s).unwrap_or_default())).collect();
        let expected: Vec<String> = cases.iter().map(|(s, p)| format!("{s} -> {p}")).collect();
        assert_eq!(actual, expected);
    }
}
