//! The app's settings: `[tool.xtask]` in its pyproject.toml, every key optional, with defaults derived from the
//! project (name, version, `requires-python`, packages, dependencies). Poetry 1 projects (`[tool.poetry]`
//! metadata) and Poetry 2 / PEP 621 projects (`[project]`) are read alike. Unknown keys and bad values are
//! errors at `pyproject.toml:line:col`. `KEYS` is the reference the README's table is rendered from.

use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use toml_edit::{Array, InlineTable, Item, TableLike, Value};

use crate::toml_file::TomlFile;
use crate::{detect, paths};

/// A CPython version `X.Y`: the image's Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    pub major: u32,
    pub minor: u32,
}

impl PythonVersion {
    /// `cp312`: the interpreter and ABI tag of the version's wheels.
    pub fn cp(self) -> String {
        format!("cp{}{}", self.major, self.minor)
    }
}

impl std::fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for PythonVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<PythonVersion, String> {
        let number = |p: &str| p.parse::<u32>().ok().filter(|_| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        match s.split_once('.') {
            Some((major, minor)) => match (number(major), number(minor)) {
                (Some(major), Some(minor)) => Ok(PythonVersion { major, minor }),
                _ => Err("expected X.Y, e.g. 3.12".to_string()),
            },
            None => Err("expected X.Y, e.g. 3.12".to_string()),
        }
    }
}

/// How the app speaks to the server: decides the gunicorn worker and the reloading dev server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Asgi,
    Wsgi,
}

impl Interface {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Interface::Asgi => "asgi",
            Interface::Wsgi => "wsgi",
        }
    }
}

/// A file or folder of the app that goes into the image: `source` (relative to the app directory) is copied to
/// `dest` (relative to the image's workdir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub source: String,
    pub dest: String,
}

/// Everything the tasks need to know about the app, after defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The app's directory (absolute).
    pub app_dir: PathBuf,
    /// The project name as written in pyproject.toml.
    pub project_name: String,
    /// Its version as written there (PEP 440), else `0.0.0`.
    pub project_version: String,
    /// Its one-line description.
    pub project_summary: Option<String>,
    /// Whether Poetry builds and installs the project itself (`package-mode`, true unless set false).
    pub package_mode: bool,
    /// The project's entry points: `(group, name, object reference)`, console scripts first.
    pub entry_points: Vec<(String, String, String)>,
    /// Image name (repository part of the tag).
    pub name: String,
    pub version: String,
    /// The image's Python version.
    pub python: PythonVersion,
    pub base_image: String,
    /// Whether `base_image` is the derived default (`python:X.Y-slim`) rather than set by the user.
    pub base_image_is_default: bool,
    /// Target platform of the image and its wheelhouse, e.g. `linux/amd64`.
    pub platform: String,
    /// The platforms `push` ships (one image each, one index): `tool.xtask.platforms`, else `[platform]`.
    pub platforms: Vec<String>,
    /// Where `push` pushes, a repository without a tag (`tool.xtask.repository`).
    pub repository: Option<String>,
    /// The port the server listens on, in the container and for `cargo xtask server`.
    pub port: u16,
    pub health_path: String,
    /// Seconds the server gets to finish its requests when stopped (`tool.xtask.stop-timeout`).
    pub stop_timeout: u32,
    /// The ASGI/WSGI callable, `module:attribute`: set, or found in the code (`detect`); `None` when neither.
    pub app: Option<String>,
    pub interface: Interface,
    /// gunicorn's config file, relative to the app directory, when the app has one.
    pub gunicorn_config: Option<String>,
    /// The container's command (exec form); empty when none can be derived (see `command_problem`).
    pub command: Vec<String>,
    /// Why no command could be derived from the project (no callable found, no server among the
    /// dependencies): the error `image` and `run` give.
    pub command_problem: Option<String>,
    /// The release step: a command run in a container of the image before the server starts (migrations).
    pub release: Vec<String>,
    /// What goes into the image besides the virtualenv.
    pub include: Vec<Include>,
    /// Absolute paths in the image where the app writes data: owned by the app's user, volumes in `run`.
    pub volumes: Vec<String>,
    /// The env file `cargo xtask run` passes to the container (relative to the app), never put in the image.
    pub env_file: Option<String>,
    /// Where the generated Dockerfile goes instead of the workspace's docker/Dockerfile (relative to the app).
    pub dockerfile: Option<String>,
    /// What the defaults were derived from (`app`: `orders.app:app, made by FastAPI(...) at orders/app.py:14`),
    /// for `init` to say.
    pub found: Vec<(&'static str, String)>,
    /// Settings `init` proposes, commented out, that are off by default: key, TOML value, why.
    pub suggestions: Vec<(&'static str, String, String)>,
    /// Dependency groups installed besides `main`.
    pub groups: Vec<String>,
    pub extras: Vec<String>,
    /// Packages of the base image's package manager installed where sdists are built for the target (never in
    /// the image): compilers and `-dev` packages.
    pub build_packages: Vec<String>,
    /// Packages installed in the image's base stage (from `.deb` files fetched beforehand): the shared
    /// libraries built wheels link, or what a pure-Python package needs at run time.
    pub system_packages: Vec<String>,
    /// Environment variables baked into the image.
    pub env: Vec<(String, String)>,
    /// Extra image labels (the OCI ones are always set).
    pub labels: Vec<(String, String)>,
    pub user: String,
    pub uid: u32,
    /// The app's directory inside the image.
    pub workdir: String,
}

/// Every `[tool.xtask]` key: name, type, default and meaning. The README's "Configuration reference" table is
/// rendered from this (a test keeps them equal), and `cargo xtask init` writes one commented line per key.
pub(crate) const KEYS: &[(&str, &str, &str, &str)] = &[
    ("name", "string", "the project name, lowercased, `-` for other characters", "image name: tags `<name>:<version>` and `<name>:<git sha>`"),
    ("version", "string", "`[project].version` or `[tool.poetry].version` (`+` → `-`), else `0.0.0`", "image version tag and OCI label"),
    ("python", "string `X.Y`", "the lowest version `requires-python` (or Poetry's `python` dependency) allows, else `3.12`", "Python of the image and its wheelhouse (`--python`)"),
    ("base-image", "string", "`python:<python>-slim`", "base image of the image and of the containers that build its sdists (`--base-image`, env `XTASK_BASE_IMAGE`)"),
    ("platform", "string", "`linux/amd64`", "platform of the image and its wheels (`--platform`)"),
    ("platforms", "array of strings", "`[<platform>]`", "the platforms `cargo xtask push` ships as one multi-platform index (`--platform linux/amd64,linux/arm64`): a wheelhouse and an image per platform"),
    ("repository", "string", "none", "where `cargo xtask push` pushes (`--to`), e.g. `ghcr.io/org/app`; the registry cache BuildKit builds from"),
    ("port", "integer", "the port of `bind` in the gunicorn config, else `8080`", "port the server listens on, in the container and on the host"),
    ("health-path", "string", "`/health`", "path the HEALTHCHECK and `cargo xtask run` probe"),
    ("stop-timeout", "integer", "`30` (gunicorn's graceful timeout)", "seconds the server gets to finish the requests in flight when stopped: the default command's graceful timeout; the engine waits 5 more before it kills (`docker run --stop-timeout`, label `xtask.stop-timeout`: set Kubernetes' `terminationGracePeriodSeconds` to it)"),
    ("app", "string", "found in the code: `[tool.fastapi] entrypoint`, the gunicorn config's `wsgi_app`, else the module-level `app = FastAPI()` (Starlette, Litestar, Quart, Flask), `app = create_app()` of a factory that makes one, or Django's `application` in `wsgi.py`/`asgi.py`", "the ASGI/WSGI callable, `module:attribute`"),
    ("interface", "`\"asgi\"` or `\"wsgi\"`", "what the framework that makes `app` speaks; else `wsgi` if the project depends on Flask, Django, Bottle, Pyramid or Falcon and not on FastAPI, Starlette, Quart or Litestar; else `asgi`", "how the server speaks to the app"),
    ("gunicorn-config", "string", "`gunicorn.conf.py` or `gunicorn_config.py`, if the app has one", "gunicorn's config file, relative to the app"),
    ("command", "array of strings", "from the servers the project depends on: `gunicorn [--config <gunicorn-config>] --bind 0.0.0.0:<port> [--worker-class <uvicorn worker>] <app>` (the worker for asgi, unless the config sets one: `uvicorn_worker.UvicornWorker` with uvicorn-worker, else `uvicorn.workers.UvicornWorker`); without gunicorn `uvicorn <app> --host 0.0.0.0 --port <port>`, hypercorn, granian, daphne or waitress", "the container's command (exec form); its executable must be in the image"),
    ("release", "array of strings", "`[]` (`init` proposes `alembic upgrade head` with an alembic.ini, `python manage.py migrate` for Django)", "the release step: run by `cargo xtask run` in a container of the image before the server, e.g. migrations"),
    ("include", "array of paths or `{ include, from }` tables", "Poetry's packages (`from = \"src\"` copies `src/<pkg>` to `<pkg>`); with `package-mode = false`, the module of `app`; plus what the app reads beside them: the gunicorn config, alembic.ini and its `script_location`, folders opened as `directory=\"templates\"`, Django's manage.py and settings package", "files and folders of the app copied into the image's workdir"),
    ("volumes", "array of absolute paths", "the folders of SQLite databases the code names at absolute paths (`sqlite:////data/app.db`)", "where the app writes data: owned by its user in the image; `cargo xtask run` mounts a named volume on each"),
    ("groups", "array of strings", "`[]`", "Poetry dependency groups installed besides main (each must exist)"),
    ("extras", "array of strings", "`[]`", "extras of the project installed (each must exist)"),
    ("build-packages", "array of strings", "`[]`", "packages (as the base image's apt names them) installed in the container of the base image where sdists without a wheel for the target are built, e.g. `[\"gcc\", \"libc6-dev\", \"python3-dev\", \"libldap-dev\"]`; never in the image"),
    ("system-packages", "array of strings", "`[]`", "packages installed in the image's base stage from `.deb` files fetched beforehand in a container of the base image (the build stays offline): the libraries built wheels link (`libldap-2.5-0`), or what a package needs at run time (`libmagic1`)"),
    ("env", "table of strings", "`{}`", "environment variables baked into the image"),
    ("env-file", "string", "none (`init` proposes `.env` when there is one)", "a file of `KEY=VALUE` lines `cargo xtask run` passes to the container (`--env-file`); never in the image"),
    ("labels", "table of strings", "`{}`", "image labels besides the OCI ones"),
    ("user", "string", "`app`", "the non-root user the container runs as"),
    ("uid", "integer", "`10001`", "that user's uid and gid"),
    ("workdir", "string", "`/app`", "the app's directory in the image"),
    ("dockerfile", "string", "`docker/Dockerfile` of the workspace", "where the generated Dockerfile goes, relative to the app (for an app that has a Dockerfile of its own there)"),
];

/// Dependencies that tell the app's interface when `interface` is not set.
const ASGI_FRAMEWORKS: &[&str] = &["fastapi", "starlette", "quart", "litestar"];
const WSGI_FRAMEWORKS: &[&str] = &["flask", "django", "bottle", "pyramid", "falcon"];

/// gunicorn config files the app may have, in the order they are looked for.
const GUNICORN_CONFIGS: &[&str] = &["gunicorn.conf.py", "gunicorn_config.py"];

/// gunicorn's worker class for an ASGI app: the uvicorn-worker package's, else uvicorn's own (deprecated in
/// favour of that package).
pub(crate) const UVICORN_WORKER: &str = "uvicorn_worker.UvicornWorker";
pub(crate) const UVICORN_BUILTIN_WORKER: &str = "uvicorn.workers.UvicornWorker";

impl Config {
    /// Reads `<app_dir>/pyproject.toml`.
    pub(crate) fn read(app_dir: &Path) -> Result<Config> {
        let path = app_dir.join("pyproject.toml");
        let file = TomlFile::read(&path, &paths::display(&path))?;
        Config::from_pyproject(app_dir, &file)
    }

    pub(crate) fn from_pyproject(app_dir: &Path, file: &TomlFile) -> Result<Config> {
        let doc = file.doc.as_table();
        let project = table_at(file, doc, "project", "project")?;
        let tool = table_at(file, doc, "tool", "tool")?;
        let tool_table = |name: &str| match tool {
            Some(tool) => table_at(file, tool, name, &format!("tool.{name}")),
            None => Ok(None),
        };
        let poetry = tool_table("poetry")?;
        let xtask = tool_table("xtask")?;
        let fastapi = tool_table("fastapi")?;
        let empty = toml_edit::Table::new();
        let x = Reader { file, table: xtask.unwrap_or(&empty) };
        x.check_keys()?;
        let meta = Metadata { file, project, poetry };
        let project_name = meta.string("name")?.ok_or_else(|| {
            format_err!("{}: the project has no name: set [project].name (or [tool.poetry].name)", file.display)
        })?;
        let image = ImageSettings::read(file, &x, &meta, &project_name)?;
        let package_mode = match poetry.and_then(|p| p.get("package-mode")) {
            None => true,
            Some(item) => item.as_bool().ok_or_else(|| {
                file.error_at(item, format!("tool.poetry.package-mode must be a boolean, not {}", type_name(item)))
            })?,
        };
        let packages = if package_mode { poetry_packages(file, poetry, &project_name, app_dir)? } else { Vec::new() };
        let code = Code::read(app_dir);
        let mut found = Vec::new();
        let mut suggestions = Vec::new();
        let server = ServerSettings::read(app_dir, &x, &meta, &code, fastapi, &mut found)?;
        let release = release(&x, &code, &mut suggestions)?;
        let files =
            FileSettings::read(app_dir, &x, &code, &server, package_mode, packages, &mut found, &mut suggestions)?;
        let deps = DependencySettings::read(&x, &meta)?;
        let runtime = RuntimeSettings::read(&x)?;
        let ImageSettings { name, version, python, base_image, base_image_is_default, platform, platforms, repository } =
            image;
        let ServerSettings {
            gunicorn_config,
            port,
            health_path,
            stop_timeout,
            app,
            interface,
            command,
            command_problem,
        } = server;
        let FileSettings { include, volumes, env_file, dockerfile } = files;
        let DependencySettings { groups, extras, build_packages, system_packages } = deps;
        let RuntimeSettings { env, labels, user, uid, workdir } = runtime;

        Ok(Config {
            app_dir: app_dir.to_path_buf(),
            project_name,
            project_version: meta.string("version")?.unwrap_or_else(|| "0.0.0".to_string()),
            project_summary: meta.string("description")?,
            package_mode,
            entry_points: if package_mode { entry_points(file, project, poetry)? } else { Vec::new() },
            name,
            version,
            python,
            base_image,
            base_image_is_default,
            platform,
            platforms,
            repository,
            port,
            health_path,
            stop_timeout,
            app,
            interface,
            gunicorn_config,
            command,
            command_problem,
            release,
            include,
            volumes,
            env_file,
            dockerfile,
            found,
            suggestions,
            groups,
            extras,
            build_packages,
            system_packages,
            env,
            labels,
            user,
            uid,
            workdir,
        })
    }

    /// Where the tool keeps this app's scratch files.
    pub(crate) fn state_dir(&self) -> PathBuf {
        paths::state_dir(&self.name, &self.platform)
    }

    /// The value of the setting `key` (one of `KEYS`) as TOML, e.g. `8080` or `["dev"]`: what `cargo xtask init`
    /// writes, commented out, for the settings the app leaves to their defaults.
    pub(crate) fn setting_toml(&self, key: &str) -> String {
        let strings = |items: &[String]| Value::Array(items.iter().map(String::as_str).collect::<Array>());
        let table = |pairs: &[(String, String)]| {
            let mut table = InlineTable::new();
            for (k, v) in pairs {
                table.insert(k, v.as_str().into());
            }
            Value::InlineTable(table)
        };
        let value: Value = match key {
            "name" => self.name.as_str().into(),
            "version" => self.version.as_str().into(),
            "python" => self.python.to_string().into(),
            "base-image" => self.base_image.as_str().into(),
            "platform" => self.platform.as_str().into(),
            "platforms" => strings(&self.platforms),
            "repository" => match &self.repository {
                Some(r) => r.as_str().into(),
                None => return String::new(),
            },
            "port" => i64::from(self.port).into(),
            "health-path" => self.health_path.as_str().into(),
            "stop-timeout" => i64::from(self.stop_timeout).into(),
            "app" => match &self.app {
                Some(app) => app.as_str().into(),
                None => return String::new(),
            },
            "interface" => self.interface.as_str().into(),
            "gunicorn-config" => match &self.gunicorn_config {
                Some(c) => c.as_str().into(),
                None => return String::new(),
            },
            "command" if self.command.is_empty() => return String::new(),
            "command" => strings(&self.command),
            "release" if self.release.is_empty() => return String::new(),
            "release" => strings(&self.release),
            "volumes" => strings(&self.volumes),
            "env-file" => match &self.env_file {
                Some(f) => f.as_str().into(),
                None => return String::new(),
            },
            "dockerfile" => match &self.dockerfile {
                Some(d) => d.as_str().into(),
                None => return String::new(),
            },
            "include" => {
                let mut array = Array::new();
                for include in &self.include {
                    match include.source.strip_suffix(&include.dest).and_then(|from| from.strip_suffix('/')) {
                        Some(from) if include.source != include.dest => {
                            let mut t = InlineTable::new();
                            t.insert("include", include.dest.as_str().into());
                            t.insert("from", from.into());
                            array.push(t);
                        }
                        _ => array.push(include.source.as_str()),
                    }
                }
                Value::Array(array)
            }
            "groups" => strings(&self.groups),
            "extras" => strings(&self.extras),
            "build-packages" => strings(&self.build_packages),
            "system-packages" => strings(&self.system_packages),
            "env" => table(&self.env),
            "labels" => table(&self.labels),
            "user" => self.user.as_str().into(),
            "uid" => i64::from(self.uid).into(),
            "workdir" => self.workdir.as_str().into(),
            other => panic!("setting_toml: unknown key {other}"),
        };
        let mut value = value;
        value.decor_mut().clear();
        let mut text = value.to_string();
        if let Value::Array(_) | Value::InlineTable(_) = value {
            // `Array`/`InlineTable` render their elements with the default spacing; normalise the ends.
            text = text.trim().to_string();
        }
        text
    }
}

/// The app directory: `--app`, else `[workspace.metadata.xtask] app` of the workspace's Cargo.toml, else the
/// workspace root when it has a pyproject.toml.
pub(crate) fn app_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let root = paths::workspace_root();
    let dir = match flag {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => match workspace_app(&paths::workspace_manifest())? {
            Some(app) => root.join(app),
            None if root.join("pyproject.toml").is_file() => root.clone(),
            None => bail!(
                "no app configured: pass --app DIR, or add to Cargo.toml:\n\n[workspace.metadata.xtask]\napp = \"path/to/app\"\n\n(`cargo xtask init` does this)"
            ),
        },
    };
    if !dir.join("pyproject.toml").is_file() {
        bail!(
            "{} has no pyproject.toml: --app and [workspace.metadata.xtask] app must name a Poetry project's directory",
            paths::display(&dir)
        );
    }
    dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))
}

/// `[workspace.metadata.xtask] app` of the workspace manifest `manifest`, checked: a string, and the only key.
pub(crate) fn workspace_app(manifest: &Path) -> Result<Option<String>> {
    let file = TomlFile::read(manifest, &paths::display(manifest))?;
    let doc = file.doc.as_table();
    let Some(workspace) = table_at(&file, doc, "workspace", "workspace")? else { return Ok(None) };
    let Some(metadata) = table_at(&file, workspace, "metadata", "workspace.metadata")? else { return Ok(None) };
    let Some(xtask) = table_at(&file, metadata, "xtask", "workspace.metadata.xtask")? else { return Ok(None) };
    for (key, _) in xtask.iter() {
        if key != "app" {
            return Err(format_err!(
                "{}: unknown key workspace.metadata.xtask.{key}; the only key is app (the app's directory); the app's settings go in [tool.xtask] of its pyproject.toml",
                key_location(&file, xtask, key)
            ));
        }
    }
    match xtask.get("app") {
        None => Ok(None),
        Some(item) => match item.as_str() {
            Some(app) if !app.is_empty() => Ok(Some(app.to_string())),
            _ => Err(file.error_at(
                item,
                format!("workspace.metadata.xtask.app must be a string (the app's directory), not {}", type_name(item)),
            )),
        },
    }
}
/// The image's name, version, Python, base image, platforms and repository.
struct ImageSettings {
    name: String,
    version: String,
    python: PythonVersion,
    base_image: String,
    base_image_is_default: bool,
    platform: String,
    platforms: Vec<String>,
    repository: Option<String>,
}

impl ImageSettings {
    fn read(file: &TomlFile, x: &Reader<'_>, meta: &Metadata<'_>, project_name: &str) -> Result<ImageSettings> {
        let name =
            match x.string("name")? {
                Some(name) if is_image_name(&name) => name,
                Some(_) => return Err(x.error(
                    "name",
                    "tool.xtask.name must be a valid image name: lowercase letters and digits, separated by . _ - or /",
                )),
                None => {
                    let name = image_name_from(project_name);
                    if name.is_empty() {
                        bail!(
                            "{}: cannot make an image name of the project name '{project_name}': set tool.xtask.name",
                            file.display
                        );
                    }
                    name
                }
            };
        let version = match x.string("version")? {
            Some(v) if is_image_tag(&v) => v,
            Some(_) => return Err(x.error(
                "version",
                "tool.xtask.version must be a valid image tag: letters, digits, _ . and -, not starting with . or -",
            )),
            None => meta.string("version")?.map(|v| image_tag_from(&v)).unwrap_or_else(|| "0.0.0".to_string()),
        };
        let python = match x.string("python")?.map(|p| p.parse::<PythonVersion>()) {
            Some(Ok(p)) => {
                if let Some((what, spec)) = meta.requires_python()? {
                    if !python_allowed(&spec, p) {
                        return Err(x.error(
                            "python",
                            format!("tool.xtask.python = \"{p}\" is not allowed by {what} = \"{spec}\": pick a Python the project supports"),
                        ));
                    }
                }
                p
            }
            Some(Err(_)) => {
                return Err(x.error("python", "tool.xtask.python must be a Python version X.Y, e.g. \"3.12\""))
            }
            None => meta.python()?,
        };
        let (base_image, base_image_is_default) = match x.string("base-image")? {
            Some(b) if !b.is_empty() && !b.contains(char::is_whitespace) => (b, false),
            Some(_) => {
                return Err(x.error(
                    "base-image",
                    "tool.xtask.base-image must be an image reference such as \"python:3.12-slim\"",
                ))
            }
            None => (default_base_image(python), true),
        };
        let platform = x.string("platform")?.unwrap_or_else(|| paths::DEFAULT_PLATFORM.to_string());
        if !is_linux_platform(&platform) {
            return Err(x.error(
                "platform",
                "tool.xtask.platform must be a Linux platform such as \"linux/amd64\" or \"linux/arm64\"",
            ));
        }
        let platforms = match x.strings("platforms")? {
            None => vec![platform.clone()],
            Some(list) if list.is_empty() => {
                return Err(x.error("platforms", "tool.xtask.platforms must list at least one platform"))
            }
            Some(list) => {
                for (i, p) in list.iter().enumerate() {
                    if !is_linux_platform(p) {
                        return Err(x.element_error(
                            "platforms",
                            i,
                            format!("tool.xtask.platforms: '{p}' is not a Linux platform such as \"linux/amd64\" or \"linux/arm64\""),
                        ));
                    }
                    if list[..i].contains(p) {
                        return Err(x.element_error("platforms", i, format!("tool.xtask.platforms lists {p} twice")));
                    }
                }
                list
            }
        };
        let repository = match x.string("repository")? {
            None => None,
            Some(r) => match crate::registry::Repository::parse(&r) {
                Ok(_) => Some(r),
                Err(e) => return Err(x.error("repository", format!("tool.xtask.repository: {e}"))),
            },
        };
        Ok(ImageSettings { name, version, python, base_image, base_image_is_default, platform, platforms, repository })
    }
}

/// The server: its config, port, health path, stop timeout, the app's callable and the command that serves it.
struct ServerSettings {
    gunicorn_config: Option<String>,
    port: u16,
    health_path: String,
    stop_timeout: u32,
    app: Option<String>,
    interface: Interface,
    command: Vec<String>,
    command_problem: Option<String>,
}

impl ServerSettings {
    fn read(
        app_dir: &Path,
        x: &Reader<'_>,
        meta: &Metadata<'_>,
        code: &Code,
        fastapi: Option<&dyn toml_edit::TableLike>,
        found: &mut Vec<(&'static str, String)>,
    ) -> Result<ServerSettings> {
        let gunicorn_config = match x.string("gunicorn-config")? {
            Some(c) => {
                if !is_relative_inside(&c) || !app_dir.join(&c).is_file() {
                    return Err(x.error(
                        "gunicorn-config",
                        format!("tool.xtask.gunicorn-config: no file '{c}' in the app directory"),
                    ));
                }
                Some(c)
            }
            None => GUNICORN_CONFIGS.iter().find(|c| app_dir.join(c).is_file()).map(|c| c.to_string()),
        };
        let gunicorn_text = gunicorn_config.as_ref().and_then(|c| std::fs::read_to_string(app_dir.join(c)).ok());
        let port = match x.integer("port")? {
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(_) => return Err(x.error("port", "tool.xtask.port must be an integer between 1 and 65535")),
            None => {
                let bind = gunicorn_text.as_deref().and_then(|t| detect::string_setting(t, "bind"));
                match bind.and_then(|(b, line)| detect::bind_port(&b).map(|p| (p, line))) {
                    Some((p, line)) => {
                        let at = format!("{}:{line}", gunicorn_config.as_deref().unwrap_or_default());
                        found.push(("port", format!("{p}, the port gunicorn's bind names ({at})")));
                        p
                    }
                    None => DEFAULT_PORT,
                }
            }
        };
        let health_path = x.string("health-path")?.unwrap_or_else(|| DEFAULT_HEALTH_PATH.to_string());
        if health_path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(x.error(
                "health-path",
                "tool.xtask.health-path must not contain spaces or control characters (percent-encode them)",
            ));
        }
        if !health_path.starts_with('/') {
            return Err(x.error(
                "health-path",
                format!("tool.xtask.health-path must be a URL path starting with '/', not {health_path:?}"),
            ));
        }

        let stop_timeout = match x.integer("stop-timeout")? {
            None => DEFAULT_STOP_TIMEOUT,
            Some(t) if (1..=3600).contains(&t) => t as u32,
            Some(_) => {
                return Err(
                    x.error("stop-timeout", "tool.xtask.stop-timeout must be a number of seconds between 1 and 3600")
                )
            }
        };
        let deps = meta.dependencies()?;
        let depends_on = |names: &[&str]| names.iter().any(|n| deps.iter().any(|(d, _)| d == n));
        let callables = detect::callables(&code.sources);
        let framework_interface =
            if !depends_on(ASGI_FRAMEWORKS) && depends_on(WSGI_FRAMEWORKS) { Interface::Wsgi } else { Interface::Asgi };
        let declared_interface = match x.string("interface")?.as_deref() {
            Some("asgi") => Some(Interface::Asgi),
            Some("wsgi") => Some(Interface::Wsgi),
            Some(_) => return Err(x.error("interface", "tool.xtask.interface must be \"asgi\" or \"wsgi\"")),
            None => None,
        };
        let servers = Servers::of(&deps);
        let (app, detected_kind) = match x.string("app")? {
            Some(app) if is_app_path(&app) => (Some(app), None),
            Some(_) => {
                return Err(x.error(
                    "app",
                    "tool.xtask.app must be `module:attribute` with a dotted module path, e.g. \"app.main:app\"",
                ))
            }
            None => {
                let entrypoint =
                    fastapi.and_then(|t| t.get("entrypoint")).and_then(Item::as_str).filter(|a| is_app_path(a));
                let wsgi_app = gunicorn_text.as_deref().and_then(|t| detect::string_setting(t, "wsgi_app"));
                if let Some(entrypoint) = entrypoint {
                    found.push(("app", format!("{entrypoint}, from [tool.fastapi] entrypoint")));
                    (Some(entrypoint.to_string()), Some(Interface::Asgi))
                } else if let Some((app, line)) = wsgi_app.filter(|(a, _)| is_app_path(a)) {
                    let at = format!("{}:{line}", gunicorn_config.as_deref().unwrap_or_default());
                    found.push(("app", format!("{app}, the wsgi_app of gunicorn's config ({at})")));
                    (Some(app), None)
                } else {
                    // Django's wsgi.py and asgi.py both make one: the server decides.
                    let wants_asgi = declared_interface == Some(Interface::Asgi)
                        || (declared_interface.is_none() && !servers.gunicorn && servers.asgi_server());
                    let django = |c: &&detect::Callable| c.app.ends_with(":application");
                    let pick = callables
                        .iter()
                        .find(|c| !django(c) || (c.kind == detect::Kind::Asgi) == wants_asgi)
                        .or(callables.first());
                    match pick {
                        Some(c) => {
                            let mut why = format!("{}, made by {} at {}", c.app, c.how, c.at);
                            let others: Vec<&str> =
                                callables.iter().filter(|o| o.app != c.app).map(|o| o.app.as_str()).take(3).collect();
                            if !others.is_empty() {
                                why.push_str(&format!(" (also found: {})", others.join(", ")));
                            }
                            found.push(("app", why));
                            let kind = match c.kind {
                                detect::Kind::Asgi => Interface::Asgi,
                                detect::Kind::Wsgi => Interface::Wsgi,
                            };
                            (Some(c.app.clone()), Some(kind))
                        }
                        None => (None, None),
                    }
                }
            }
        };
        let interface = declared_interface.or(detected_kind).unwrap_or(framework_interface);
        let gunicorn_sets_worker = gunicorn_text.as_deref().is_some_and(|t| detect::has_setting(t, "worker_class"));
        let (command, command_problem) = match x.strings("command")? {
            Some(c) if c.is_empty() || c[0].is_empty() => {
                return Err(x.error("command", "tool.xtask.command must not be empty"))
            }
            Some(c) => (c, None),
            None => match &app {
                None => (Vec::new(), Some(NO_APP.to_string())),
                Some(app) => {
                    let gunicorn = gunicorn_config.as_deref().map(|c| (c, gunicorn_sets_worker));
                    match servers.command(app, interface, gunicorn, port, stop_timeout) {
                        Ok(command) => (command, None),
                        Err(why) => (Vec::new(), Some(why)),
                    }
                }
            },
        };
        Ok(ServerSettings {
            gunicorn_config,
            port,
            health_path,
            stop_timeout,
            app,
            interface,
            command,
            command_problem,
        })
    }
}

/// The release step; without one, what `init` proposes for the migrations it finds.
fn release(x: &Reader<'_>, code: &Code, suggestions: &mut Vec<(&'static str, String, String)>) -> Result<Vec<String>> {
    let release = match x.strings("release")? {
        Some(r) if r.first().is_some_and(|w| w.is_empty()) => {
            return Err(x.error("release", "tool.xtask.release must not start with an empty word"))
        }
        Some(r) => r,
        None => Vec::new(),
    };
    if release.is_empty() {
        if let Some(ini) = &code.alembic_ini {
            let _ = ini;
            suggestions.push((
                "release",
                "[\"alembic\", \"upgrade\", \"head\"]".to_string(),
                "alembic.ini is here: migrations to run before the server".to_string(),
            ));
        } else if code.manage_py.is_some() {
            suggestions.push((
                "release",
                "[\"python\", \"manage.py\", \"migrate\", \"--noinput\"]".to_string(),
                "manage.py is here: Django's migrations to run before the server".to_string(),
            ));
        }
    }
    Ok(release)
}

/// The files: what is copied into the image, the data folders, the env file, where the Dockerfile goes.
struct FileSettings {
    include: Vec<Include>,
    volumes: Vec<String>,
    env_file: Option<String>,
    dockerfile: Option<String>,
}

impl FileSettings {
    #[allow(clippy::too_many_arguments)]
    fn read(
        app_dir: &Path,
        x: &Reader<'_>,
        code: &Code,
        server: &ServerSettings,
        package_mode: bool,
        packages: Vec<Include>,
        found: &mut Vec<(&'static str, String)>,
        suggestions: &mut Vec<(&'static str, String, String)>,
    ) -> Result<FileSettings> {
        let (app, gunicorn_config) = (&server.app, &server.gunicorn_config);
        let include = match x.includes(app_dir)? {
            Some(include) => include,
            None => {
                let mut include = if package_mode {
                    packages.clone()
                } else {
                    app.as_deref().map(|app| app_module(app_dir, app)).unwrap_or_default()
                };
                let mut add = |source: &str, why: String, found: &mut Vec<(&'static str, String)>| {
                    let inside =
                        include.iter().any(|i| source == i.source || source.starts_with(&format!("{}/", i.source)));
                    if !inside && app_dir.join(source).exists() {
                        include.push(Include { source: source.to_string(), dest: source.to_string() });
                        found.push(("include", format!("{source} ({why})")));
                    }
                };
                if let Some(c) = &gunicorn_config {
                    add(c, "gunicorn's config".to_string(), found);
                }
                if code.manage_py.is_some() {
                    add("manage.py", "Django's manage.py".to_string(), found);
                    if let Some(settings) = code.manage_py.as_deref().and_then(detect::django_settings) {
                        let package = settings.split('.').next().unwrap_or_default().to_string();
                        add(&package, format!("the package of DJANGO_SETTINGS_MODULE {settings}"), found);
                    }
                }
                if let Some(ini) = &code.alembic_ini {
                    add("alembic.ini", "alembic's config".to_string(), found);
                    if let Some((scripts, line)) = detect::alembic_scripts(ini) {
                        add(&scripts, format!("alembic's script_location, alembic.ini:{line}"), found);
                    }
                }
                for folder in detect::read_folders(&code.sources, app_dir) {
                    add(&folder.value, format!("read by the app at {}", folder.at), found);
                }
                include
            }
        };
        let volumes = match x.strings("volumes")? {
            Some(volumes) => {
                for (i, volume) in volumes.iter().enumerate() {
                    let valid = volume.starts_with('/')
                        && volume.trim_end_matches('/').len() > 1
                        && !volume.contains(char::is_whitespace)
                        && !volume.split('/').any(|c| c == "..");
                    if !valid {
                        return Err(x.element_error(
                            "volumes",
                            i,
                            format!("tool.xtask.volumes: '{volume}' must be an absolute path in the image other than /, e.g. \"/data\""),
                        ));
                    }
                }
                volumes.iter().map(|v| v.trim_end_matches('/').to_string()).collect()
            }
            None => {
                let dirs = detect::data_dirs(&code.sources, code.alembic_ini.as_deref());
                for dir in &dirs {
                    found.push(("volumes", format!("{} (a SQLite database there, {})", dir.value, dir.at)));
                }
                dirs.into_iter().map(|d| d.value).collect()
            }
        };
        let env_file = match x.string("env-file")? {
            Some(f) if is_relative_inside(&f) || f.starts_with('/') => Some(f),
            Some(_) => return Err(x.error("env-file", "tool.xtask.env-file must be a path, e.g. \".env\"")),
            None => None,
        };
        if env_file.is_none() && app_dir.join(".env").is_file() {
            suggestions.push((
                "env-file",
                "\".env\"".to_string(),
                "the variables `cargo xtask run` passes to the container; never put in the image".to_string(),
            ));
        }
        let dockerfile = match x.string("dockerfile")? {
            Some(d) if is_relative_inside(&d) || d.starts_with('/') => Some(d),
            Some(_) => {
                return Err(
                    x.error("dockerfile", "tool.xtask.dockerfile must be a path, e.g. \"docker/Dockerfile.xtask\"")
                )
            }
            None => None,
        };
        Ok(FileSettings { include, volumes, env_file, dockerfile })
    }
}

/// What is installed: the dependency groups and extras, the build and system packages.
struct DependencySettings {
    groups: Vec<String>,
    extras: Vec<String>,
    build_packages: Vec<String>,
    system_packages: Vec<String>,
}

impl DependencySettings {
    fn read(x: &Reader<'_>, meta: &Metadata<'_>) -> Result<DependencySettings> {
        let groups = x.strings("groups")?.unwrap_or_default();
        let known_groups = meta.groups()?;
        for (i, group) in groups.iter().enumerate() {
            if group != "main" && !known_groups.contains(group) {
                return Err(x.element_error(
                    "groups",
                    i,
                    format!(
                        "tool.xtask.groups: the project has no dependency group '{group}' ({})",
                        listing(&known_groups)
                    ),
                ));
            }
        }
        let extras = x.strings("extras")?.unwrap_or_default();
        let known_extras = meta.extras()?;
        for (i, extra) in extras.iter().enumerate() {
            if !known_extras.iter().any(|e| normalize(e) == normalize(extra)) {
                return Err(x.element_error(
                    "extras",
                    i,
                    format!("tool.xtask.extras: the project has no extra '{extra}' ({})", listing(&known_extras)),
                ));
            }
        }
        let build_packages = x.packages("build-packages")?;
        let system_packages = x.packages("system-packages")?;
        Ok(DependencySettings { groups, extras, build_packages, system_packages })
    }
}

/// How the container runs: its environment, labels, user and workdir.
struct RuntimeSettings {
    env: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    user: String,
    uid: u32,
    workdir: String,
}

impl RuntimeSettings {
    fn read(x: &Reader<'_>) -> Result<RuntimeSettings> {
        let env = x.string_table("env")?.unwrap_or_default();
        for (name, _) in &env {
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(x.entry_error(
                    "env",
                    name,
                    format!(
                        "tool.xtask.env: '{name}' is not a valid environment variable name (letters, digits and _)"
                    ),
                ));
            }
        }
        let labels = x.string_table("labels")?.unwrap_or_default();
        let user = x.string("user")?.unwrap_or_else(|| DEFAULT_USER.to_string());
        let valid_user = user.len() <= 32
            && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_user || user == "root" {
            return Err(
                x.error("user", "tool.xtask.user must be a non-root user name (lowercase letters, digits, - and _)")
            );
        }
        let uid = match x.integer("uid")? {
            None => DEFAULT_UID,
            Some(u) if (1..=2_147_483_647).contains(&u) => u as u32,
            Some(_) => return Err(x.error("uid", "tool.xtask.uid must be a positive integer (0 is root)")),
        };
        let workdir = x.string("workdir")?.unwrap_or_else(|| DEFAULT_WORKDIR.to_string());
        if !workdir.starts_with('/') || workdir.trim_end_matches('/').is_empty() {
            return Err(x.error("workdir", "tool.xtask.workdir must be an absolute path other than /, e.g. \"/app\""));
        }
        if workdir.contains(|c: char| c.is_whitespace() || c.is_control() || "\"'\\$".contains(c)) {
            return Err(x.error(
                "workdir",
                "tool.xtask.workdir must not contain spaces, quotes, backslashes or $ (it is a path in the Dockerfile)",
            ));
        }
        let workdir = workdir.trim_end_matches('/').to_string();
        Ok(RuntimeSettings { env, labels, user, uid, workdir })
    }
}

/// Project metadata, from `[project]` (PEP 621, Poetry 2) or else `[tool.poetry]` (Poetry 1).
struct Metadata<'a> {
    file: &'a TomlFile,
    project: Option<&'a dyn TableLike>,
    poetry: Option<&'a dyn TableLike>,
}

impl Metadata<'_> {
    /// `[project].<key>`, else `[tool.poetry].<key>`, as a string.
    fn string(&self, key: &str) -> Result<Option<String>> {
        for (table, prefix) in [(self.project, "project"), (self.poetry, "tool.poetry")] {
            if let Some(item) = table.and_then(|t| t.get(key)) {
                return string(self.file, item, &format!("{prefix}.{key}")).map(Some);
            }
        }
        Ok(None)
    }

    /// The lowest Python `requires-python` or Poetry's `python` dependency allows.
    /// `requires-python` (or Poetry's `python` dependency): where it is written and its text.
    fn requires_python(&self) -> Result<Option<(&'static str, String)>> {
        match self.requires_python_item() {
            Some((item, what)) => Ok(Some((what, string(self.file, item, what)?))),
            None => Ok(None),
        }
    }

    fn requires_python_item(&self) -> Option<(&Item, &'static str)> {
        self.project.and_then(|p| p.get("requires-python")).map(|i| (i, "project.requires-python")).or_else(|| {
            self.poetry
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.get("python"))
                .map(|i| (i, "tool.poetry.dependencies.python"))
        })
    }

    fn python(&self) -> Result<PythonVersion> {
        let Some((item, what)) = self.requires_python_item() else { return Ok(PythonVersion { major: 3, minor: 12 }) };
        let spec = string(self.file, item, what)?;
        lowest_python(&spec).ok_or_else(|| {
            self.file.error_at(
                item,
                format!("cannot derive a Python version from {what} = \"{spec}\": set tool.xtask.python = \"X.Y\""),
            )
        })
    }

    /// The main dependencies (`[project].dependencies` and `[tool.poetry.dependencies]`): normalized names
    /// with the extras asked for (`fastapi[standard]`).
    fn dependencies(&self) -> Result<Vec<(String, Vec<String>)>> {
        let mut deps = Vec::new();
        if let Some(item) = self.project.and_then(|p| p.get("dependencies")) {
            for value in item.as_array().into_iter().flatten() {
                if let Some(spec) = value.as_str() {
                    let name: String =
                        spec.chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
                    let rest = spec[name.len()..].trim_start();
                    let extras = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                        Some((extras, _)) => extras.split(',').map(|e| normalize(e.trim())).collect(),
                        None => Vec::new(),
                    };
                    deps.push((normalize(&name), extras));
                }
            }
        }
        if let Some(table) = self.poetry.and_then(|p| p.get("dependencies")).and_then(Item::as_table_like) {
            for (name, spec) in table.iter() {
                let extras = spec
                    .get("extras")
                    .and_then(Item::as_array)
                    .map(|a| a.iter().filter_map(|e| e.as_str()).map(normalize).collect())
                    .unwrap_or_default();
                deps.push((normalize(name), extras));
            }
        }
        Ok(deps)
    }

    /// The project's dependency groups: `[tool.poetry.group.<name>]`, the legacy `dev-dependencies` (`dev`), and
    /// PEP 735 `[dependency-groups]`.
    fn groups(&self) -> Result<Vec<String>> {
        let mut groups = Vec::new();
        if let Some(group) = self.poetry.and_then(|p| p.get("group")).and_then(Item::as_table_like) {
            groups.extend(group.iter().map(|(name, _)| name.to_string()));
        }
        if self.poetry.is_some_and(|p| p.contains_key("dev-dependencies")) && !groups.iter().any(|g| g == "dev") {
            groups.push("dev".to_string());
        }
        if let Some(pep735) = self.file.doc.get("dependency-groups").and_then(Item::as_table_like) {
            for (name, _) in pep735.iter() {
                if !groups.iter().any(|g| g == name) {
                    groups.push(name.to_string());
                }
            }
        }
        Ok(groups)
    }

    /// The project's extras: `[project.optional-dependencies]` and `[tool.poetry.extras]`.
    fn extras(&self) -> Result<Vec<String>> {
        let mut extras = Vec::new();
        for table in
            [self.project.and_then(|p| p.get("optional-dependencies")), self.poetry.and_then(|p| p.get("extras"))]
        {
            if let Some(table) = table.and_then(Item::as_table_like) {
                extras.extend(table.iter().map(|(name, _)| name.to_string()));
            }
        }
        Ok(extras)
    }
}

/// Reads typed values out of `[tool.xtask]` with errors at the value's position.
struct Reader<'a> {
    file: &'a TomlFile,
    table: &'a dyn TableLike,
}

impl Reader<'_> {
    /// Every key must be one of `KEYS`.
    fn check_keys(&self) -> Result<()> {
        for (key, _) in self.table.iter() {
            if !KEYS.iter().any(|(k, ..)| *k == key) {
                let hint = match KEYS.iter().find(|(k, ..)| k.replace('-', "") == key.replace(['_', '-'], "")) {
                    Some((k, ..)) => format!("did you mean {k}?"),
                    None => {
                        let known: Vec<&str> = KEYS.iter().map(|(k, ..)| *k).collect();
                        format!("known keys: {}", known.join(", "))
                    }
                };
                bail!("{}: unknown key tool.xtask.{key}; {hint}", key_location(self.file, self.table, key));
            }
        }
        Ok(())
    }

    fn error(&self, key: &str, message: impl std::fmt::Display) -> anyhow::Error {
        match self.table.get(key) {
            Some(item) => self.file.error_at(item, message),
            None => format_err!("{}: {message}", key_location(self.file, self.table, key)),
        }
    }

    /// An error at element `index` of the array `key`.
    fn element_error(&self, key: &str, index: usize, message: impl std::fmt::Display) -> anyhow::Error {
        let span = self.table.get(key).and_then(Item::as_array).and_then(|a| a.get(index)).and_then(Value::span);
        match span {
            Some(span) => format_err!("{}: {message}", self.file.location(span.start)),
            None => self.error(key, message),
        }
    }

    /// An error at the entry `name` of the table `key`.
    fn entry_error(&self, key: &str, name: &str, message: impl std::fmt::Display) -> anyhow::Error {
        match self.table.get(key).and_then(Item::as_table_like) {
            Some(table) => format_err!("{}: {message}", key_location(self.file, table, name)),
            None => self.error(key, message),
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
                None => bail!(
                    "{}: tool.xtask.{key} must be an array of strings, found {}",
                    self.value_location(value),
                    value_type_name(value)
                ),
            }
        }
        Ok(Some(out))
    }

    /// `build-packages`, `system-packages`: package names as Debian's apt takes them (`libldap-dev`,
    /// `libldap-2.5-0`, optionally `=version`), each once.
    fn packages(&self, key: &str) -> Result<Vec<String>> {
        let packages = self.strings(key)?.unwrap_or_default();
        for (i, package) in packages.iter().enumerate() {
            let (name, version) = package.split_once('=').unwrap_or((package, ""));
            let valid_name = name.len() >= 2
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
            let valid_version = !package.contains('=')
                || (!version.is_empty() && version.chars().all(|c| c.is_ascii_alphanumeric() || "+-.:~".contains(c)));
            if !valid_name || !valid_version {
                return Err(self.element_error(
                    key,
                    i,
                    format!(
                        "tool.xtask.{key}: '{package}' is not a package name as apt takes it (lowercase letters, digits, \
                         + - and ., optionally =version), e.g. \"libldap-dev\""
                    ),
                ));
            }
            if packages[..i].contains(package) {
                return Err(self.element_error(key, i, format!("tool.xtask.{key}: '{package}' is listed twice")));
            }
        }
        Ok(packages)
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

    /// `include`: paths relative to the app (`"static"`), or `{ include = "pkg", from = "src" }` tables that copy
    /// `src/pkg` to `pkg`, as Poetry's `packages` do. Each must exist.
    fn includes(&self, app_dir: &Path) -> Result<Option<Vec<Include>>> {
        let Some(item) = self.table.get("include") else { return Ok(None) };
        let shape = "tool.xtask.include must be an array of paths or { include = \"...\", from = \"...\" } tables";
        let Some(array) = item.as_array() else {
            return Err(self.file.error_at(item, format!("{shape}, not {}", type_name(item))));
        };
        let mut out = Vec::new();
        for value in array.iter() {
            let at = self.value_location(value);
            let (include, from) = match value {
                Value::String(s) => (s.value().to_string(), None),
                Value::InlineTable(t) => {
                    for (k, _) in t.iter() {
                        if k != "include" && k != "from" {
                            bail!("{at}: tool.xtask.include: unknown key '{k}' (an entry has include and from)");
                        }
                    }
                    let Some(include) = t.get("include").and_then(Value::as_str) else {
                        bail!("{at}: tool.xtask.include: a table entry needs include = \"path\"");
                    };
                    let from = match t.get("from") {
                        None => None,
                        Some(v) => match v.as_str() {
                            Some(f) => Some(f.trim_end_matches('/').to_string()),
                            None => bail!("{at}: tool.xtask.include: from must be a string"),
                        },
                    };
                    (include.to_string(), from)
                }
                other => bail!("{at}: {shape}, found {}", value_type_name(other)),
            };
            let dest = include.trim_end_matches('/').to_string();
            let source = match &from {
                Some(from) if !from.is_empty() && from != "." => format!("{from}/{dest}"),
                _ => dest.clone(),
            };
            if !is_relative_inside(&source) {
                bail!("{at}: tool.xtask.include: '{source}' must be a relative path inside the app");
            }
            if !app_dir.join(&source).exists() {
                bail!("{at}: tool.xtask.include: '{source}' does not exist in the app directory");
            }
            out.push(Include { source, dest });
        }
        Ok(Some(out))
    }

    fn value_location(&self, value: &Value) -> String {
        value.span().map(|s| self.file.location(s.start)).unwrap_or_else(|| self.file.display.clone())
    }
}

/// `path:line:col` of `key` in `table` (or of the table when the key has no span).
fn key_location(file: &TomlFile, table: &dyn TableLike, key: &str) -> String {
    match table.key(key).and_then(|k| k.span()) {
        Some(span) => file.location(span.start),
        None => file.display.clone(),
    }
}

/// The table (standard or inline) at `parent[key]`; `what` names it in the error when it is something else.
fn table_at<'a>(
    file: &TomlFile,
    parent: &'a dyn TableLike,
    key: &str,
    what: &str,
) -> Result<Option<&'a dyn TableLike>> {
    match parent.get(key) {
        None => Ok(None),
        Some(item) => match item.as_table_like() {
            Some(t) => Ok(Some(t)),
            None => Err(file.error_at(item, format!("{what} must be a table, not {}", type_name(item)))),
        },
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

/// `the project has: a, b` / `the project has none`, for errors about groups and extras.
fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "the project has none".to_string()
    } else {
        format!("the project has: {}", names.join(", "))
    }
}

/// PEP 503/685 name normalization: lowercase, runs of `-_.` become `-`.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if "-_.".contains(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The packages Poetry puts in the project's wheel, as image includes: `[tool.poetry] packages`
/// (`{ include = "pkg", from = "src" }` copies `src/pkg` to `pkg`), or else the module named like the project
/// (`my-app` → `my_app`, at the top or under `src/`), as Poetry finds it.
fn poetry_packages(
    file: &TomlFile,
    poetry: Option<&dyn TableLike>,
    project_name: &str,
    app_dir: &Path,
) -> Result<Vec<Include>> {
    let mut out = Vec::new();
    if let Some(item) = poetry.and_then(|p| p.get("packages")) {
        let Some(array) = item.as_array() else {
            return Err(file
                .error_at(item, format!("tool.poetry.packages must be an array of tables, not {}", type_name(item))));
        };
        for value in array.iter() {
            let at = value.span().map(|s| file.location(s.start)).unwrap_or_else(|| file.display.clone());
            let Some(table) = value.as_inline_table() else {
                bail!("{at}: tool.poetry.packages entries must be tables like {{ include = \"pkg\" }}");
            };
            let Some(include) = table.get("include").and_then(|v| v.as_str()) else {
                bail!("{at}: tool.poetry.packages entries need include = \"pkg\"");
            };
            let include = include.trim_end_matches('/');
            if include.contains(['*', '?', '[']) {
                bail!("{at}: tool.poetry.packages include '{include}' is a glob: set tool.xtask.include to the paths the image needs");
            }
            let from = table.get("from").and_then(|v| v.as_str()).map(|f| f.trim_end_matches('/'));
            let source = match from {
                Some(from) if !from.is_empty() && from != "." => format!("{from}/{include}"),
                _ => include.to_string(),
            };
            out.push(Include { source, dest: include.to_string() });
        }
        return Ok(out);
    }
    let module = normalize(project_name).replace('-', "_");
    for (source, dest) in [
        (module.clone(), module.clone()),
        (format!("src/{module}"), module.clone()),
        (format!("{module}.py"), format!("{module}.py")),
        (format!("src/{module}.py"), format!("{module}.py")),
    ] {
        if app_dir.join(&source).exists() {
            out.push(Include { source, dest });
            break;
        }
    }
    Ok(out)
}

/// For an app that is not a package (`package-mode = false`): the top-level module of `app` (`api.main:app` →
/// the folder `api/` or the file `api.py`, at the top or under `src/`), if the app directory has it. When it
/// does not, the module must come from a dependency, and nothing is included.
fn app_module(app_dir: &Path, app: &str) -> Vec<Include> {
    let top = app.split(':').next().unwrap_or(app).split('.').next().unwrap_or_default();
    for dest in [top.to_string(), format!("{top}.py")] {
        for source in [dest.clone(), format!("src/{dest}")] {
            if app_dir.join(&source).exists() {
                return vec![Include { source, dest }];
            }
        }
    }
    Vec::new()
}

/// The project's entry points, `(group, name, reference)`: `[project.scripts]`, `[project.gui-scripts]`,
/// `[project.entry-points.<group>]`, and Poetry's `[tool.poetry.scripts]` (a string, or a table with
/// `reference`/`callable`) and `[tool.poetry.plugins.<group>]`.
fn entry_points(
    file: &TomlFile,
    project: Option<&dyn TableLike>,
    poetry: Option<&dyn TableLike>,
) -> Result<Vec<(String, String, String)>> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut group = |group: &str, table: Option<&Item>, what: &str| -> Result<()> {
        let Some(table) = table.and_then(Item::as_table_like) else { return Ok(()) };
        for (name, value) in table.iter() {
            let reference = match value.as_str() {
                Some(r) => r.to_string(),
                None => match value.get("reference").or_else(|| value.get("callable")).and_then(Item::as_str) {
                    Some(r) if value.get("type").and_then(Item::as_str).is_none_or(|t| t == "console") => r.to_string(),
                    Some(_) => continue,
                    None => {
                        return Err(file.error_at(value, format!("{what}.{name} must be a string \"module:function\"")))
                    }
                },
            };
            if !out.iter().any(|(g, n, _)| g == group && n == name) {
                out.push((group.to_string(), name.to_string(), reference));
            }
        }
        Ok(())
    };
    group("console_scripts", project.and_then(|p| p.get("scripts")), "project.scripts")?;
    group("gui_scripts", project.and_then(|p| p.get("gui-scripts")), "project.gui-scripts")?;
    group("console_scripts", poetry.and_then(|p| p.get("scripts")), "tool.poetry.scripts")?;
    for (table, what) in [
        (project.and_then(|p| p.get("entry-points")), "project.entry-points"),
        (poetry.and_then(|p| p.get("plugins")), "tool.poetry.plugins"),
    ] {
        for (name, item) in
            table.and_then(Item::as_table_like).map(|t| t.iter().collect::<Vec<_>>()).unwrap_or_default()
        {
            group(name, Some(item), &format!("{what}.{name}"))?;
        }
    }
    Ok(out)
}

/// gunicorn's default graceful timeout: the seconds a server gets to finish its requests when stopped.
const DEFAULT_STOP_TIMEOUT: u32 = 30;

/// The other defaults that are plain values (`KEYS` states them too: a test holds the two together).
const DEFAULT_PORT: u16 = 8080;
const DEFAULT_HEALTH_PATH: &str = "/health";
const DEFAULT_USER: &str = "app";
const DEFAULT_UID: u32 = 10001;
const DEFAULT_WORKDIR: &str = "/app";

/// Why no command can be derived when no callable was found.
const NO_APP: &str = "no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = \
    Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = \"module:attribute\"";

/// The servers the project depends on, which decide the default command.
#[derive(Debug, Clone, Copy, Default)]
struct Servers {
    gunicorn: bool,
    uvicorn: bool,
    uvicorn_worker: bool,
    hypercorn: bool,
    granian: bool,
    daphne: bool,
    waitress: bool,
}

impl Servers {
    /// From the main dependencies (normalized names with their extras): `fastapi[standard]` brings uvicorn.
    fn of(deps: &[(String, Vec<String>)]) -> Servers {
        let depends_on = |name: &str| deps.iter().any(|(d, _)| d == name);
        let fastapi_standard =
            deps.iter().any(|(d, extras)| d == "fastapi" && extras.iter().any(|e| e == "standard" || e == "all"));
        Servers {
            gunicorn: depends_on("gunicorn"),
            uvicorn: depends_on("uvicorn") || fastapi_standard,
            uvicorn_worker: depends_on("uvicorn-worker"),
            hypercorn: depends_on("hypercorn"),
            granian: depends_on("granian"),
            daphne: depends_on("daphne"),
            waitress: depends_on("waitress"),
        }
    }

    fn asgi_server(&self) -> bool {
        self.uvicorn || self.hypercorn || self.granian || self.daphne
    }

    /// The command that serves `app` on `port` with the servers at hand: gunicorn when the project has it
    /// (with uvicorn workers for an ASGI app, unless its config sets a worker class), else the first of
    /// uvicorn, hypercorn, granian, daphne (ASGI) or granian, waitress, uvicorn (WSGI). `gunicorn` is the config
    /// file and whether it sets `worker_class`. The bind is always given: it wins over the config's. The
    /// graceful timeout is `stop_timeout` (a gunicorn config's own `graceful_timeout` is left to decide).
    fn command(
        &self,
        app: &str,
        interface: Interface,
        gunicorn: Option<(&str, bool)>,
        port: u16,
        stop_timeout: u32,
    ) -> Result<Vec<String>, String> {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        let port_text = port.to_string();
        let bind = format!("0.0.0.0:{port}");
        // `module:factory()`: gunicorn calls it; uvicorn and granian take the name and a flag.
        let (factory_app, is_factory) = match app.strip_suffix("()") {
            Some(name) => (name, true),
            None => (app, false),
        };
        let gunicorn_command = |worker: Option<&str>| {
            let mut c = words(&["gunicorn"]);
            if let Some((config, _)) = gunicorn {
                c.extend(words(&["--config", config]));
            }
            c.extend(words(&["--bind", &bind]));
            if gunicorn.is_none() {
                c.extend(words(&["--graceful-timeout", &stop_timeout.to_string()]));
            }
            if let Some(worker) = worker.filter(|_| !gunicorn.is_some_and(|(_, sets)| sets)) {
                c.extend(words(&["--worker-class", worker]));
            }
            c.push(app.to_string());
            c
        };
        let uvicorn = |extra: &[&str]| {
            let mut c = words(&["uvicorn", factory_app]);
            if is_factory {
                c.push("--factory".to_string());
            }
            c.extend(words(extra));
            c.extend(words(&["--host", "0.0.0.0", "--port", &port_text]));
            c.extend(words(&["--timeout-graceful-shutdown", &stop_timeout.to_string()]));
            c
        };
        let granian = |interface: &str| {
            let mut c = words(&["granian", "--interface", interface, "--host", "0.0.0.0", "--port", &port_text]);
            if is_factory {
                c.push("--factory".to_string());
            }
            c.push(factory_app.to_string());
            c
        };
        match interface {
            Interface::Asgi if self.gunicorn && self.uvicorn_worker => Ok(gunicorn_command(Some(UVICORN_WORKER))),
            Interface::Asgi if self.gunicorn && self.uvicorn => Ok(gunicorn_command(Some(UVICORN_BUILTIN_WORKER))),
            Interface::Asgi if self.uvicorn => Ok(uvicorn(&[])),
            Interface::Asgi if self.hypercorn => Ok(words(&["hypercorn", "--bind", &bind, app])),
            Interface::Asgi if self.granian => Ok(granian("asgi")),
            Interface::Asgi if self.daphne && !is_factory => Ok(words(&["daphne", "--bind", "0.0.0.0", "--port", &port_text, app])),
            Interface::Asgi if self.gunicorn => Err(format!(
                "{app} is an ASGI app and gunicorn needs uvicorn's workers to serve it: add uvicorn-worker (or uvicorn) to the project's dependencies, or set tool.xtask.command"
            )),
            Interface::Asgi => Err(format!(
                "the project depends on no ASGI server to serve {app}: add uvicorn (or gunicorn with uvicorn-worker, hypercorn, granian) to its dependencies, or set tool.xtask.command"
            )),
            Interface::Wsgi if self.gunicorn => Ok(gunicorn_command(None)),
            Interface::Wsgi if self.granian => Ok(granian("wsgi")),
            Interface::Wsgi if self.waitress && !is_factory => Ok(words(&["waitress-serve", &format!("--listen={bind}"), app])),
            Interface::Wsgi if self.uvicorn => Ok(uvicorn(&["--interface", "wsgi"])),
            Interface::Wsgi => Err(format!(
                "the project depends on no WSGI server to serve {app}: add gunicorn (or granian, waitress) to its dependencies, or set tool.xtask.command"
            )),
        }
    }
}

/// What `detect` reads of the app's files: its Python sources, alembic.ini and Django's manage.py.
struct Code {
    sources: detect::Sources,
    alembic_ini: Option<String>,
    manage_py: Option<String>,
}

impl Code {
    fn read(app_dir: &Path) -> Code {
        Code {
            sources: detect::Sources::read(app_dir),
            alembic_ini: std::fs::read_to_string(app_dir.join("alembic.ini")).ok(),
            manage_py: std::fs::read_to_string(app_dir.join("manage.py")).ok(),
        }
    }
}

pub(crate) fn default_base_image(python: PythonVersion) -> String {
    format!("python:{python}-slim")
}

pub(crate) fn is_linux_platform(p: &str) -> bool {
    p.strip_prefix("linux/").is_some_and(|arch| {
        !arch.is_empty()
            && arch.split('/').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
    })
}

/// `pkg.module:attr` (gunicorn also accepts a factory call, `pkg.module:create_app()`).
fn is_app_path(app: &str) -> bool {
    let Some((module, attr)) = app.split_once(':') else { return false };
    let identifier = |s: &str| {
        s.starts_with(|c: char| c.is_alphabetic() || c == '_') && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    module.split('.').all(identifier) && identifier(attr.split('(').next().unwrap_or_default())
}

/// A relative path that stays inside its base: no leading `/`, no `..`.
fn is_relative_inside(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|c| c == "..")
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

pub(crate) fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_image_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A project version as an image tag: PEP 440 local versions (`1.0+abc`) and other characters become `-`.
fn image_tag_from(version: &str) -> String {
    let tag: String =
        version.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect();
    let tag = tag.trim_start_matches(['.', '-']);
    if tag.is_empty() {
        "0.0.0".to_string()
    } else {
        tag.chars().take(128).collect()
    }
}

/// The lowest `3.Y` that a `requires-python` (PEP 440) or Poetry python constraint allows.
pub(crate) fn lowest_python(spec: &str) -> Option<PythonVersion> {
    let alternatives: Vec<&str> = spec.split("||").flat_map(|s| s.split(" or ")).collect();
    (6..=30).find_map(|minor| {
        let allowed = alternatives.iter().any(|alt| {
            [0u64, 99].iter().any(|&patch| {
                let version = [3, minor, patch];
                alt.split([',', ' ']).filter(|c| !c.trim().is_empty()).all(|clause| allows(clause.trim(), version))
            })
        });
        allowed.then_some(PythonVersion { major: 3, minor: minor as u32 })
    })
}

/// Whether a `requires-python` (PEP 440) or Poetry python constraint allows some release of `python`.
fn python_allowed(spec: &str, python: PythonVersion) -> bool {
    let alternatives: Vec<&str> = spec.split("||").flat_map(|s| s.split(" or ")).collect();
    alternatives.iter().any(|alt| {
        (0u64..=99).any(|patch| {
            let version = [u64::from(python.major), u64::from(python.minor), patch];
            alt.split([',', ' ']).filter(|c| !c.trim().is_empty()).all(|clause| allows(clause.trim(), version))
        })
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

/// The lines around the table in README.md, so that a test can find it.
#[cfg(test)]
const README_TABLE_START: &str =
    "<!-- rendered from xtask/src/config.rs KEYS; UPDATE_EXPECT=1 cargo test rewrites it -->";
#[cfg(test)]
const README_TABLE_END: &str = "<!-- end of the rendered table -->";

/// The README's "Configuration reference" table, rendered from `KEYS`.
#[cfg(test)]
pub(crate) fn reference_table() -> String {
    let mut out = String::from("| key | type | default | what it does |\n|---|---|---|---|\n");
    for (key, kind, default, meaning) in KEYS {
        out.push_str(&format!("| `{key}` | {kind} | {default} | {meaning} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh app directory holding `files` (path, contents); `pyproject.toml` among them.
    fn app(files: &[(&str, &str)]) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-config-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, contents) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        dir
    }

    fn load_in(dir: &Path, pyproject: &str) -> Result<Config> {
        let file = TomlFile::parse("app/pyproject.toml", pyproject.to_string())?;
        Config::from_pyproject(dir, &file)
    }

    /// An app whose code makes a FastAPI app in `app/main.py`.
    fn load(pyproject: &str) -> Result<Config> {
        let code = "from fastapi import FastAPI\n\napp = FastAPI()\n";
        load_in(&app(&[("app/__init__.py", ""), ("app/main.py", code), ("src/lib/__init__.py", "")]), pyproject)
    }

    /// Every setting, after defaults, as `cargo xtask init` would write them.
    fn settings(config: &Config) -> String {
        KEYS.iter().map(|(key, ..)| format!("{key} = {}\n", config.setting_toml(key))).collect()
    }

    fn check_error(tail: &str, expect: Expect) {
        let err = load(&format!("{HEAD}{tail}")).expect_err("an error");
        expect.assert_eq(&err.to_string());
    }

    const HEAD: &str = "[project]\nname = \"My_App\"\nversion = \"1.2.3\"\nrequires-python = \">=3.11,<3.14\"\n\
                        dependencies = [\"fastapi>=0.110\", \"gunicorn\", \"uvicorn\"]\n[project.optional-dependencies]\nfast = [\"orjson\"]\n\
                        [tool.poetry]\npackages = [{ include = \"app\" }]\n[tool.poetry.group.dev.dependencies]\n\
                        pytest = \"*\"\n[tool.xtask]\n";

    /// The defaults `KEYS` states (and the README renders) are the ones the code applies.
    #[test]
    fn keys_state_the_defaults_the_code_applies() {
        let default = |key: &str| KEYS.iter().find(|k| k.0 == key).map(|k| k.2).unwrap();
        assert!(default("port").ends_with(&format!("`{DEFAULT_PORT}`")), "{}", default("port"));
        assert!(default("stop-timeout").starts_with(&format!("`{DEFAULT_STOP_TIMEOUT}`")));
        assert_eq!(default("health-path"), format!("`{DEFAULT_HEALTH_PATH}`"));
        assert_eq!(default("user"), format!("`{DEFAULT_USER}`"));
        assert_eq!(default("uid"), format!("`{DEFAULT_UID}`"));
        assert_eq!(default("workdir"), format!("`{DEFAULT_WORKDIR}`"));
    }

    #[test]
    fn defaults() {
        let c = load(HEAD).unwrap();
        expect![[r#"
            name = "my-app"
            version = "1.2.3"
            python = "3.11"
            base-image = "python:3.11-slim"
            platform = "linux/amd64"
            platforms = ["linux/amd64"]
            repository = 
            port = 8080
            health-path = "/health"
            stop-timeout = 30
            app = "app.main:app"
            interface = "asgi"
            gunicorn-config = 
            command = ["gunicorn", "--bind", "0.0.0.0:8080", "--graceful-timeout", "30", "--worker-class", "uvicorn.workers.UvicornWorker", "app.main:app"]
            release = 
            include = ["app"]
            volumes = []
            groups = []
            extras = []
            build-packages = []
            system-packages = []
            env = {}
            env-file = 
            labels = {}
            user = "app"
            uid = 10001
            workdir = "/app"
            dockerfile = 
        "#]]
        .assert_eq(&settings(&c));
    }

    #[test]
    fn every_setting() {
        let dir = app(&[("app/__init__.py", ""), ("conf/gunicorn.py", ""), ("static/x.css", "")]);
        let c = load_in(
            &dir,
            &format!(
                "{HEAD}name = \"team/my-app\"\nversion = \"2024.1\"\npython = \"3.13\"\nbase-image = \"registry.local/python:3.13\"\n\
                 platform = \"linux/arm64\"\nport = 9000\nhealth-path = \"/-/ready\"\napp = \"app.api:make()\"\ninterface = \"wsgi\"\n\
                 gunicorn-config = \"conf/gunicorn.py\"\ncommand = [\"python\", \"-m\", \"app\"]\n\
                 include = [\"static/\", {{ include = \"app\" }}]\ngroups = [\"dev\"]\nextras = [\"fast\"]\n\
                 env = {{ A = \"1\", B_2 = \"two\" }}\nlabels = {{ \"org.example.team\" = \"web\" }}\nuser = \"web\"\nuid = 1234\nworkdir = \"/srv/app/\"\n\
                 release = [\"alembic\", \"upgrade\", \"head\"]\nvolumes = [\"/data/\", \"/var/lib/app\"]\nenv-file = \".env.local\"\n\
                 dockerfile = \"docker/Dockerfile.xtask\"\n"
            ),
        )
        .unwrap();
        expect![[r#"
            name = "team/my-app"
            version = "2024.1"
            python = "3.13"
            base-image = "registry.local/python:3.13"
            platform = "linux/arm64"
            platforms = ["linux/arm64"]
            repository = 
            port = 9000
            health-path = "/-/ready"
            stop-timeout = 30
            app = "app.api:make()"
            interface = "wsgi"
            gunicorn-config = "conf/gunicorn.py"
            command = ["python", "-m", "app"]
            release = ["alembic", "upgrade", "head"]
            include = ["static", "app"]
            volumes = ["/data", "/var/lib/app"]
            groups = ["dev"]
            extras = ["fast"]
            build-packages = []
            system-packages = []
            env = { A = "1", B_2 = "two" }
            env-file = ".env.local"
            labels = { "org.example.team" = "web" }
            user = "web"
            uid = 1234
            workdir = "/srv/app"
            dockerfile = "docker/Dockerfile.xtask"
        "#]]
        .assert_eq(&settings(&c));
    }

    #[test]
    fn poetry1_project_in_src_layout() {
        let dir = app(&[
            ("src/greeter_web/__init__.py", ""),
            ("src/greeter_web/wsgi.py", "from flask import Flask\n\napplication = Flask(__name__)\n"),
            ("gunicorn.conf.py", ""),
        ]);
        let c = load_in(
            &dir,
            "[tool.poetry]\nname = \"greeter\"\nversion = \"0.3.0+local.1\"\n\
             packages = [{ include = \"greeter_web\", from = \"src\" }]\n\
             [tool.poetry.dependencies]\npython = \"^3.10\"\nflask = \"^3\"\ngunicorn = \"*\"\nhumanize = { version = \"*\", optional = true }\n\
             [tool.poetry.extras]\nsizes = [\"humanize\"]\n[tool.poetry.dev-dependencies]\npytest = \"*\"\n\
             [tool.xtask]\nextras = [\"Sizes\"]\ngroups = [\"dev\"]\n",
        )
        .unwrap();
        expect![[r#"
            name = "greeter"
            version = "0.3.0-local.1"
            python = "3.10"
            base-image = "python:3.10-slim"
            platform = "linux/amd64"
            platforms = ["linux/amd64"]
            repository = 
            port = 8080
            health-path = "/health"
            stop-timeout = 30
            app = "greeter_web.wsgi:application"
            interface = "wsgi"
            gunicorn-config = "gunicorn.conf.py"
            command = ["gunicorn", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8080", "greeter_web.wsgi:application"]
            release = 
            include = [{ include = "greeter_web", from = "src" }, "gunicorn.conf.py"]
            volumes = []
            groups = ["dev"]
            extras = ["Sizes"]
            build-packages = []
            system-packages = []
            env = {}
            env-file = 
            labels = {}
            user = "app"
            uid = 10001
            workdir = "/app"
            dockerfile = 
        "#]]
        .assert_eq(&settings(&c));
        assert_eq!(c.include[0], Include { source: "src/greeter_web".into(), dest: "greeter_web".into() });
    }

    #[test]
    fn poetry2_project_finds_its_package() {
        // No `packages`: Poetry finds the module named like the project, here under src/.
        let dir = app(&[
            ("src/shop_api/__init__.py", ""),
            ("src/shop_api/wsgi.py", "application = get_wsgi_application()\n"),
        ]);
        let c = load_in(
            &dir,
            "[project]\nname = \"Shop.API\"\ndynamic = [\"version\"]\nrequires-python = \"~=3.12\"\n\
             dependencies = [\"django (>=5)\"]\n[tool.poetry]\nversion = \"5.0.0\"\n\
             [dependency-groups]\nlint = [\"ruff\"]\n[tool.xtask]\ngroups = [\"lint\"]\n",
        )
        .unwrap();
        expect![[r#"shop-api 5.0.0 3.12 shop_api.wsgi:application wsgi [Include { source: "src/shop_api", dest: "shop_api" }] ["lint"]"#]]
            .assert_eq(&format!(
                "{} {} {} {} {} {:?} {:?}",
                c.name,
                c.version,
                c.python,
                c.app.as_deref().unwrap_or("-"),
                c.interface.as_str(),
                c.include,
                c.groups
            ));
    }

    #[test]
    fn package_mode_false_includes_the_app_module() {
        let pyproject = |app: &str| {
            format!("[project]\nname = \"scripts\"\nversion = \"1\"\n[tool.poetry]\npackage-mode = false\n[tool.xtask]\n{app}")
        };
        let check = |files: &[(&str, &str)], app: &str, expect: Expect| {
            let c = load_in(&self::app(files), &pyproject(app)).unwrap();
            expect.assert_eq(&format!("{} {}", c.app.as_deref().unwrap_or("-"), c.setting_toml("include")));
        };
        check(&[("main.py", "app = FastAPI()\n")], "", expect![[r#"main:app ["main.py"]"#]]);
        check(
            &[("service/api.py", ""), ("gunicorn_config.py", "")],
            "app = \"service.api:app\"",
            expect![[r#"service.api:app ["service", "gunicorn_config.py"]"#]],
        );
        check(
            &[("src/web.py", "")],
            "app = \"web:app\"",
            expect![[r#"web:app [{ include = "web.py", from = "src" }]"#]],
        );
        // The module comes from a dependency: nothing of the app goes into the image.
        check(&[], "app = \"thirdparty.wsgi:app\"", expect!["thirdparty.wsgi:app []"]);
        check(
            &[("main.py", "app = FastAPI()\n"), ("tpl/a.html", "")],
            "include = [\"main.py\", \"tpl\"]",
            expect![[r#"main:app ["main.py", "tpl"]"#]],
        );
    }

    #[test]
    fn interface_from_dependencies() {
        // No code to tell: the framework among the dependencies does.
        let check = |deps: &str, expect: Expect| {
            let pyproject = format!("[project]\nname = \"a\"\ndependencies = [{deps}]\n");
            let c = load_in(&app(&[("a/__init__.py", "")]), &pyproject).unwrap();
            expect.assert_eq(c.interface.as_str());
        };
        check("", expect!["asgi"]);
        check("\"Flask>=3\"", expect!["wsgi"]);
        check("\"flask\", \"fastapi\"", expect!["asgi"]);
        check("\"pyramid[testing]\"", expect!["wsgi"]);
    }

    /// The default command follows the servers the project depends on.
    #[test]
    fn command_from_dependencies() {
        let check = |code: &str, deps: &str, expect: Expect| {
            let pyproject = format!("[project]\nname = \"a\"\ndependencies = [{deps}]\n");
            let c = load_in(&app(&[("a/__init__.py", ""), ("a/main.py", code)]), &pyproject).unwrap();
            let problem = c.command_problem.map(|p| format!("no command: {p}")).unwrap_or_default();
            expect.assert_eq(&format!("{}{problem}", c.command.join(" ")));
        };
        let fastapi = "app = FastAPI()\n";
        check(
            fastapi,
            "\"fastapi\", \"gunicorn\", \"uvicorn\"",
            expect!["gunicorn --bind 0.0.0.0:8080 --graceful-timeout 30 --worker-class uvicorn.workers.UvicornWorker a.main:app"],
        );
        check(
            fastapi,
            "\"fastapi\", \"gunicorn\", \"Uvicorn_Worker>=0.2\"",
            expect!["gunicorn --bind 0.0.0.0:8080 --graceful-timeout 30 --worker-class uvicorn_worker.UvicornWorker a.main:app"],
        );
        check(
            fastapi,
            "\"fastapi\", \"uvicorn[standard]\"",
            expect!["uvicorn a.main:app --host 0.0.0.0 --port 8080 --timeout-graceful-shutdown 30"],
        );
        check(
            fastapi,
            "\"fastapi[standard]>=0.115\"",
            expect!["uvicorn a.main:app --host 0.0.0.0 --port 8080 --timeout-graceful-shutdown 30"],
        );
        check(fastapi, "\"fastapi\", \"hypercorn\"", expect!["hypercorn --bind 0.0.0.0:8080 a.main:app"]);
        check(
            fastapi,
            "\"fastapi\", \"granian\"",
            expect!["granian --interface asgi --host 0.0.0.0 --port 8080 a.main:app"],
        );
        check(
            "def create_app():\n    return FastAPI()\n",
            "\"fastapi\", \"uvicorn\"",
            expect!["uvicorn a.main:create_app --factory --host 0.0.0.0 --port 8080 --timeout-graceful-shutdown 30"],
        );
        check(
            "app = Flask(__name__)\n",
            "\"flask\", \"gunicorn\"",
            expect!["gunicorn --bind 0.0.0.0:8080 --graceful-timeout 30 a.main:app"],
        );
        check(
            "app = Flask(__name__)\n",
            "\"flask\", \"waitress\"",
            expect!["waitress-serve --listen=0.0.0.0:8080 a.main:app"],
        );
        check(fastapi, "\"fastapi\"", expect!["no command: the project depends on no ASGI server to serve a.main:app: add uvicorn (or gunicorn with uvicorn-worker, hypercorn, granian) to its dependencies, or set tool.xtask.command"]);
        check(fastapi, "\"fastapi\", \"gunicorn\"", expect!["no command: a.main:app is an ASGI app and gunicorn needs uvicorn's workers to serve it: add uvicorn-worker (or uvicorn) to the project's dependencies, or set tool.xtask.command"]);
        check(
            "",
            "\"fastapi\", \"uvicorn\"",
            expect![[
                r#"no command: no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = "module:attribute""#
            ]],
        );
    }

    /// One case per kind of error: each names `file:line:col` of the offending key or value.
    #[test]
    fn errors_point_at_the_value() {
        // Unknown keys.
        check_error("prot = 80\n", expect!["app/pyproject.toml:13:1: unknown key tool.xtask.prot; known keys: name, version, python, base-image, platform, platforms, repository, port, health-path, stop-timeout, app, interface, gunicorn-config, command, release, include, volumes, groups, extras, build-packages, system-packages, env, env-file, labels, user, uid, workdir, dockerfile"]);
        check_error(
            "health_path = \"/\"\n",
            expect!["app/pyproject.toml:13:1: unknown key tool.xtask.health_path; did you mean health-path?"],
        );
        // Shipping.
        check_error(
            "platforms = []\n",
            expect!["app/pyproject.toml:13:13: tool.xtask.platforms must list at least one platform"],
        );
        check_error(
            "platforms = [\"linux/amd64\", \"windows/amd64\"]\n",
            expect![[
                r#"app/pyproject.toml:13:29: tool.xtask.platforms: 'windows/amd64' is not a Linux platform such as "linux/amd64" or "linux/arm64""#
            ]],
        );
        check_error(
            "platforms = [\"linux/amd64\", \"linux/amd64\"]\n",
            expect!["app/pyproject.toml:13:29: tool.xtask.platforms lists linux/amd64 twice"],
        );
        check_error("repository = \"ghcr.io/org/app:1.0\"\n", expect!["app/pyproject.toml:13:14: tool.xtask.repository: 'ghcr.io/org/app:1.0' has a tag; give a repository such as 127.0.0.1:5000/team/app or ghcr.io/org/app, without a tag (push tags it itself)"]);
        check_error("repository = \"Team/App\"\n", expect!["app/pyproject.toml:13:14: tool.xtask.repository: 'Team/App' is not a valid repository: lowercase letters and digits, separated by . _ - or /; give a repository such as 127.0.0.1:5000/team/app or ghcr.io/org/app, without a tag"]);
        // Wrong types, one per type of setting.
        check_error(
            "port = \"80\"\n",
            expect!["app/pyproject.toml:13:8: tool.xtask.port must be an integer, not a string"],
        );
        check_error(
            "python = 3.12\n",
            expect!["app/pyproject.toml:13:10: tool.xtask.python must be a string, not a float"],
        );
        check_error(
            "groups = \"dev\"\n",
            expect!["app/pyproject.toml:13:10: tool.xtask.groups must be an array of strings, not a string"],
        );
        check_error(
            "groups = [\"dev\", 1]\n",
            expect!["app/pyproject.toml:13:18: tool.xtask.groups must be an array of strings, found an integer"],
        );
        check_error(
            "env = [\"A=1\"]\n",
            expect!["app/pyproject.toml:13:7: tool.xtask.env must be a table of strings, not an array"],
        );
        check_error(
            "env = { A = 1 }\n",
            expect!["app/pyproject.toml:13:13: tool.xtask.env.A must be a string, not an integer"],
        );
        check_error(
            "[tool.xtask.labels]\nteam = true\n",
            expect!["app/pyproject.toml:14:8: tool.xtask.labels.team must be a string, not a boolean"],
        );
        check_error(
            "include = \"app\"\n",
            expect![[
                r#"app/pyproject.toml:13:11: tool.xtask.include must be an array of paths or { include = "...", from = "..." } tables, not a string"#
            ]],
        );
        check_error(
            "include = [1]\n",
            expect![[
                r#"app/pyproject.toml:13:12: tool.xtask.include must be an array of paths or { include = "...", from = "..." } tables, found an integer"#
            ]],
        );
        check_error(
            "include = [{ path = \"app\" }]\n",
            expect!["app/pyproject.toml:13:12: tool.xtask.include: unknown key 'path' (an entry has include and from)"],
        );
        // Values out of range or of the wrong shape.
        check_error(
            "port = 70000\n",
            expect!["app/pyproject.toml:13:8: tool.xtask.port must be an integer between 1 and 65535"],
        );
        check_error("name = \"My App\"\n", expect!["app/pyproject.toml:13:8: tool.xtask.name must be a valid image name: lowercase letters and digits, separated by . _ - or /"]);
        check_error("version = \"1.0+local\"\n", expect!["app/pyproject.toml:13:11: tool.xtask.version must be a valid image tag: letters, digits, _ . and -, not starting with . or -"]);
        check_error(
            "python = \"3\"\n",
            expect![[r#"app/pyproject.toml:13:10: tool.xtask.python must be a Python version X.Y, e.g. "3.12""#]],
        );
        check_error(
            "base-image = \"\"\n",
            expect![[
                r#"app/pyproject.toml:13:14: tool.xtask.base-image must be an image reference such as "python:3.12-slim""#
            ]],
        );
        check_error(
            "platform = \"darwin/arm64\"\n",
            expect![[
                r#"app/pyproject.toml:13:12: tool.xtask.platform must be a Linux platform such as "linux/amd64" or "linux/arm64""#
            ]],
        );
        check_error(
            "health-path = \"health\"\n",
            expect![[
                r#"app/pyproject.toml:13:15: tool.xtask.health-path must be a URL path starting with '/', not "health""#
            ]],
        );
        check_error(
            "app = \"app.main\"\n",
            expect![[
                r#"app/pyproject.toml:13:7: tool.xtask.app must be `module:attribute` with a dotted module path, e.g. "app.main:app""#
            ]],
        );
        check_error(
            "interface = \"rsgi\"\n",
            expect![[r#"app/pyproject.toml:13:13: tool.xtask.interface must be "asgi" or "wsgi""#]],
        );
        check_error(
            "gunicorn-config = \"gunicorn.py\"\n",
            expect!["app/pyproject.toml:13:19: tool.xtask.gunicorn-config: no file 'gunicorn.py' in the app directory"],
        );
        check_error("command = []\n", expect!["app/pyproject.toml:13:11: tool.xtask.command must not be empty"]);
        check_error(
            "release = [\"\", \"x\"]\n",
            expect!["app/pyproject.toml:13:11: tool.xtask.release must not start with an empty word"],
        );
        check_error(
            "volumes = [\"data\"]\n",
            expect![[
                r#"app/pyproject.toml:13:12: tool.xtask.volumes: 'data' must be an absolute path in the image other than /, e.g. "/data""#
            ]],
        );
        check_error(
            "volumes = [\"/\"]\n",
            expect![[
                r#"app/pyproject.toml:13:12: tool.xtask.volumes: '/' must be an absolute path in the image other than /, e.g. "/data""#
            ]],
        );
        check_error(
            "include = [\"../secrets\"]\n",
            expect![
                "app/pyproject.toml:13:12: tool.xtask.include: '../secrets' must be a relative path inside the app"
            ],
        );
        check_error(
            "include = [{ include = \"lib\", from = \"source\" }]\n",
            expect!["app/pyproject.toml:13:12: tool.xtask.include: 'source/lib' does not exist in the app directory"],
        );
        check_error("groups = [\"docs\"]\n", expect!["app/pyproject.toml:13:11: tool.xtask.groups: the project has no dependency group 'docs' (the project has: dev)"]);
        check_error(
            "build-packages = [\"gcc\", \"Lib LDAP\"]\n",
            expect![[
                r#"app/pyproject.toml:13:26: tool.xtask.build-packages: 'Lib LDAP' is not a package name as apt takes it (lowercase letters, digits, + - and ., optionally =version), e.g. "libldap-dev""#
            ]],
        );
        check_error(
            "system-packages = [\"libldap-2.5-0\", \"libldap-2.5-0\"]\n",
            expect!["app/pyproject.toml:13:37: tool.xtask.system-packages: 'libldap-2.5-0' is listed twice"],
        );
        check_error(
            "system-packages = \"libmagic1\"\n",
            expect!["app/pyproject.toml:13:19: tool.xtask.system-packages must be an array of strings, not a string"],
        );
        check_error(
            "extras = [\"fast\", \"slow\"]\n",
            expect![
                "app/pyproject.toml:13:19: tool.xtask.extras: the project has no extra 'slow' (the project has: fast)"
            ],
        );
        check_error("env = { \"A-B\" = \"1\" }\n", expect!["app/pyproject.toml:13:9: tool.xtask.env: 'A-B' is not a valid environment variable name (letters, digits and _)"]);
        check_error("user = \"root\"\n", expect!["app/pyproject.toml:13:8: tool.xtask.user must be a non-root user name (lowercase letters, digits, - and _)"]);
        check_error(
            "uid = 0\n",
            expect!["app/pyproject.toml:13:7: tool.xtask.uid must be a positive integer (0 is root)"],
        );
        check_error("workdir = \"/my app\"\n", expect!["app/pyproject.toml:13:11: tool.xtask.workdir must not contain spaces, quotes, backslashes or $ (it is a path in the Dockerfile)"]);
        check_error("health-path = \"/he alth\"\n", expect!["app/pyproject.toml:13:15: tool.xtask.health-path must not contain spaces or control characters (percent-encode them)"]);
        check_error(
            "health-path = '\"/health\"'\n",
            expect![[
                r#"app/pyproject.toml:13:15: tool.xtask.health-path must be a URL path starting with '/', not "\"/health\"""#
            ]],
        );
        check_error(
            "python = \"3.8\"\n",
            expect![[
                r#"app/pyproject.toml:13:10: tool.xtask.python = "3.8" is not allowed by project.requires-python = ">=3.11,<3.14": pick a Python the project supports"#
            ]],
        );
        check_error(
            "stop-timeout = 0\n",
            expect!["app/pyproject.toml:13:16: tool.xtask.stop-timeout must be a number of seconds between 1 and 3600"],
        );
        check_error(
            "workdir = \"/\"\n",
            expect![[
                r#"app/pyproject.toml:13:11: tool.xtask.workdir must be an absolute path other than /, e.g. "/app""#
            ]],
        );
    }

    /// Errors in the project's own metadata that the defaults are derived from.
    #[test]
    fn errors_in_project_metadata() {
        let check = |pyproject: &str, expect: Expect| {
            let err = load(pyproject).expect_err("an error");
            expect.assert_eq(&err.to_string());
        };
        check(
            "[project]\nversion = \"1\"\n",
            expect!["app/pyproject.toml: the project has no name: set [project].name (or [tool.poetry].name)"],
        );
        check(
            "[tool.poetry]\nname = 1\n",
            expect!["app/pyproject.toml:2:8: tool.poetry.name must be a string, not an integer"],
        );
        check("project = 1\n", expect!["app/pyproject.toml:1:11: project must be a table, not an integer"]);
        check(
            "[tool]\nxtask = \"port=1\"\n",
            expect!["app/pyproject.toml:2:9: tool.xtask must be a table, not a string"],
        );
        check(
            "[project]\nname = \"a\"\nrequires-python = \">=4\"\n",
            expect![[
                r#"app/pyproject.toml:3:19: cannot derive a Python version from project.requires-python = ">=4": set tool.xtask.python = "X.Y""#
            ]],
        );
        check(
            "[tool.poetry]\nname = \"a\"\npackage-mode = \"no\"\n",
            expect!["app/pyproject.toml:3:16: tool.poetry.package-mode must be a boolean, not a string"],
        );
        check("[tool.poetry]\nname = \"a\"\npackages = [{ include = \"a/*.py\" }]\n", expect!["app/pyproject.toml:3:13: tool.poetry.packages include 'a/*.py' is a glob: set tool.xtask.include to the paths the image needs"]);
        check(
            "[tool.poetry]\nname = \"***\"\n",
            expect!["app/pyproject.toml: cannot make an image name of the project name '***': set tool.xtask.name"],
        );
    }

    #[test]
    fn workspace_metadata_app() {
        let check = |manifest: &str, expect: Expect| {
            let dir = app(&[("Cargo.toml", manifest)]);
            let actual = match workspace_app(&dir.join("Cargo.toml")) {
                Ok(app) => format!("{app:?}"),
                Err(e) => e.to_string().replace(&paths::display(&dir), "<dir>"),
            };
            expect.assert_eq(&actual);
        };
        check("[workspace]\nmembers = [\"xtask\"]\n", expect!["None"]);
        check("[workspace.metadata.xtask]\napp = \"services/web\"\n", expect![[r#"Some("services/web")"#]]);
        check("[workspace.metadata.xtask]\napp = [\"web\"]\n", expect!["<dir>/Cargo.toml:2:7: workspace.metadata.xtask.app must be a string (the app's directory), not an array"]);
        check("[workspace.metadata.xtask]\napp = \"web\"\nport = 1\n", expect!["<dir>/Cargo.toml:3:1: unknown key workspace.metadata.xtask.port; the only key is app (the app's directory); the app's settings go in [tool.xtask] of its pyproject.toml"]);
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
        let actual: Vec<String> = cases
            .iter()
            .map(|(s, _)| format!("{s} -> {}", lowest_python(s).map(|p| p.to_string()).unwrap_or_default()))
            .collect();
        let expected: Vec<String> = cases.iter().map(|(s, p)| format!("{s} -> {p}")).collect();
        assert_eq!(actual, expected);
    }

    /// README.md's "Configuration reference" table is `KEYS` rendered; `UPDATE_EXPECT=1 cargo test` rewrites it.
    /// A repository that copied `xtask/` and whose README has no such table is not checked.
    #[test]
    fn readme_reference_table_is_fresh() {
        let readme_path = paths::workspace_root().join("README.md");
        let Ok(readme) = std::fs::read_to_string(&readme_path) else { return };
        let (start, end) = (README_TABLE_START, README_TABLE_END);
        let (Some(a), Some(b)) = (readme.find(start), readme.find(end)) else { return };
        let a = a + start.len() + 1;
        assert!(a <= b, "README.md: {start} must come before {end}");
        let fresh = reference_table();
        if readme[a..b] == fresh {
            return;
        }
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            crate::gen::write_atomic(&readme_path, format!("{}{fresh}{}", &readme[..a], &readme[b..]).as_bytes())
                .unwrap();
            return;
        }
        panic!(
            "README.md's configuration reference differs from config::KEYS; run `UPDATE_EXPECT=1 cargo test -p xtask readme_reference_table` to rewrite it.\nexpected:\n{fresh}"
        );
    }
}
