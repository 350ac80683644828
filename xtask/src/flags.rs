//! The command line: every task's flags as a struct, all of them in this file, parsed in one place. A task is
//! a `run(self, sh)` method on its struct (in the task's module); `main` matches on `Command`.
//!
//! The parser is a small table: each task declares its options (`Task`), `cargo xtask <task> --help` is rendered
//! from them, and the task's constructor reads each option through the constant that declares it, so a
//! misspelt option is a compile error. Reading an option the task does not declare, or declaring one the
//! constructor never reads, panics; a test builds every task from an empty command line to catch both.
//! (xflags, rust-analyzer's choice, would add a proc-macro crate to the first compile and renders one help
//! text for the whole command tree; this keeps a help page per task.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::config::PythonVersion;
use crate::engine::Builder;
use poetry_export::ExportRequest;

// ---------------------------------------------------------------------------------------------------------
// The tasks' flags
// ---------------------------------------------------------------------------------------------------------

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    Image(Image),
    Push(Push),
    Run(Run),
    Server(Server),
    Test(Test),
    Export(Export),
    Wheels(Wheels),
    Dockerfile(Dockerfile),
    Init(Init),
    Doctor(Doctor),
    Bench(Bench),
}

/// What the settings of a run are resolved from besides the app's pyproject.toml: the app's directory and the
/// overrides of `tool.xtask` values (see `settings::resolve`). Every field is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// `--app DIR`, relative to the current directory.
    pub app: Option<PathBuf>,
    /// `--name`: the image name instead of `tool.xtask.name`.
    pub name: Option<String>,
    /// `--python X.Y`.
    pub python: Option<PythonVersion>,
    /// `--platform`.
    pub platform: Option<String>,
    /// `--base-image` (else the environment's `XTASK_BASE_IMAGE`, else `tool.xtask.base-image`).
    pub base_image: Option<String>,
}

/// Which container engine, and which builder (`--engine`, `--builder`; else their environment variables).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EngineFlags {
    pub engine: Option<String>,
    pub builder: Option<Builder>,
}

/// `cargo xtask image`.
#[derive(Debug)]
pub(crate) struct Image {
    pub(crate) settings: Overrides,
    pub(crate) engine: EngineFlags,
    pub(crate) no_cache: bool,
    pub(crate) always_build: bool,
    pub(crate) force: bool,
    pub(crate) dry_run: bool,
    /// `--platform a,b`: several platforms, one image each (`settings.platform` is then unset).
    pub(crate) platforms: Vec<String>,
}

/// `cargo xtask push`.
#[derive(Debug)]
pub(crate) struct Push {
    /// `--platform` is not among them: `platforms` is, and `push` builds each with its own.
    pub(crate) settings: Overrides,
    pub(crate) engine: EngineFlags,
    /// `--to REPOSITORY`, else `tool.xtask.repository`.
    pub(crate) to: Option<String>,
    /// `--platform a,b`, else `tool.xtask.platforms`.
    pub(crate) platforms: Vec<String>,
    /// Push from a tree that differs from its commit, under the `-dirty` commit tag.
    pub(crate) dirty: bool,
    /// Print the result as JSON on stdout (everything else on stderr).
    pub(crate) json: bool,
    pub(crate) no_cache: bool,
    pub(crate) dry_run: bool,
}

/// `cargo xtask run`.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) settings: Overrides,
    pub(crate) engine: EngineFlags,
    pub(crate) port: Option<u16>,
    pub(crate) detach: bool,
    /// `KEY=VALUE`, checked.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout_secs: u64,
    pub(crate) replace: bool,
    pub(crate) writable: bool,
    /// `--env-file`: variables for the container, read by the engine (never printed, never in the image).
    pub(crate) env_file: Option<PathBuf>,
    /// `--volume SOURCE:PATH`, besides the named volumes of `tool.xtask.volumes`.
    pub(crate) volumes: Vec<String>,
    /// After `--`: a one-off command run in the image instead of the server.
    pub(crate) command: Vec<String>,
    pub(crate) dry_run: bool,
}

/// `cargo xtask server`.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) app: Option<PathBuf>,
    pub(crate) port: Option<u16>,
    pub(crate) reload: bool,
}

/// `cargo xtask test`.
#[derive(Debug)]
pub(crate) struct Test {
    pub(crate) app: Option<PathBuf>,
    /// Everything after `--`, for pytest.
    pub(crate) pytest_args: Vec<String>,
}

/// `cargo xtask export`.
#[derive(Debug)]
pub(crate) struct Export {
    pub(crate) app: Option<PathBuf>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) request: ExportRequest,
}

/// `cargo xtask wheels`.
#[derive(Debug)]
pub(crate) struct Wheels {
    pub(crate) settings: Overrides,
    pub(crate) engine: EngineFlags,
    pub(crate) dry_run: bool,
}

/// `cargo xtask dockerfile`.
#[derive(Debug)]
pub(crate) struct Dockerfile {
    pub(crate) settings: Overrides,
    pub(crate) check: bool,
    pub(crate) dry_run: bool,
    pub(crate) force: bool,
}

/// `cargo xtask init`.
#[derive(Debug)]
pub(crate) struct Init {
    pub(crate) app: Option<PathBuf>,
    pub(crate) dry_run: bool,
}

/// `cargo xtask doctor`.
#[derive(Debug)]
pub(crate) struct Doctor {}

/// `cargo xtask bench ...`: handed whole to the workspace's benchmarks (see `bench.rs`).
#[derive(Debug)]
pub(crate) struct Bench {
    pub(crate) args: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------------
// The options, declared once
// ---------------------------------------------------------------------------------------------------------

const APP: Opt =
    Opt::value("app", "DIR", "the Python app's directory (default: [workspace.metadata.xtask] app in Cargo.toml)");
const NAME: Opt = Opt::value(
    "name",
    "NAME",
    "image name instead of tool.xtask.name (tags NAME:<version>, NAME:<commit>; names the container too)",
);
const PYTHON: Opt = Opt::value(
    "python",
    "X.Y",
    "the image's Python version (default: tool.xtask.python); changes the default base image",
);
const PLATFORM: Opt = Opt::value(
    "platform",
    "PLATFORM",
    "the image's platform, e.g. linux/arm64 (default: tool.xtask.platform, linux/amd64)",
);
const BASE_IMAGE: Opt = Opt::value(
    "base-image",
    "IMAGE",
    "the base image of the image and of the containers that build its sdists (default: tool.xtask.base-image, python:<X.Y>-slim; env XTASK_BASE_IMAGE)",
);
/// `--platform` of the tasks that build one image per platform.
const PLATFORMS: Opt = Opt::value(
    "platform",
    "PLATFORM[,PLATFORM...]",
    "the image's platform, e.g. linux/arm64 (default: tool.xtask.platform, linux/amd64); several, comma-separated, \
     build one image each, tagged <tag>-<arch>",
);
pub const ENGINE: Opt = Opt::value(
    "engine",
    "ENGINE",
    "docker (default), podman, or the path of a docker client, e.g. /usr/bin/docker (env XTASK_ENGINE)",
);
const BUILDER: Opt = Opt::value(
    "builder",
    "BUILDER",
    "buildkit or legacy (default: BuildKit when the docker client offers it; env XTASK_BUILDER)",
);
const DRY_RUN: Opt = Opt::switch("dry-run", "print the pip and engine commands instead of running them; write nothing");

const IMAGE_NO_CACHE: Opt =
    Opt::switch("no-cache", "build without the engine's layer cache (the wheelhouse is still reused)");
const IMAGE_ALWAYS_BUILD: Opt = Opt::switch(
    "always-build",
    "run the build even when the image is up to date or only app/ changed (the engine's cache applies)",
);
const IMAGE_FORCE: Opt = Opt::switch("force", "overwrite docker/Dockerfile even if someone edited it");

const PUSH_TO: Opt = Opt::value(
    "to",
    "REPOSITORY",
    "the repository to push to, e.g. ghcr.io/org/app or 127.0.0.1:5000/team/app (default: tool.xtask.repository)",
);
const PUSH_PLATFORMS: Opt = Opt::value(
    "platform",
    "PLATFORM[,PLATFORM...]",
    "the platforms to push, comma-separated, as one multi-platform index (default: tool.xtask.platforms, else \
     tool.xtask.platform)",
);
const PUSH_DIRTY: Opt = Opt::switch(
    "dirty",
    "push although the app or docker/ differ from the commit, under the tags <version> and <commit>-dirty",
);
const PUSH_JSON: Opt = Opt::switch(
    "json",
    "print the result as JSON on stdout (repository, tags, digest, platforms, size); everything else goes to stderr",
);
const PUSH_NO_CACHE: Opt = Opt::switch("no-cache", "build without the engine's layer cache and without the registry's");

const RUN_PORT: Opt = Opt::value("port", "PORT", "host port on 127.0.0.1 (default: tool.xtask.port)").short('p');
const RUN_DETACH: Opt =
    Opt::switch("detach", "leave the container running once healthy, and print how to stop it").short('d');
const RUN_ENV: Opt =
    Opt::value("env", "KEY=VALUE", "set an environment variable in the container (repeatable)").short('e');
const RUN_TIMEOUT: Opt =
    Opt::value("timeout", "SECONDS", "how long to wait for the health path to answer (default: 60)");
const RUN_REPLACE: Opt =
    Opt::switch("replace", "replace a running container of the same name started by `cargo xtask run`");
const RUN_WRITABLE: Opt = Opt::switch("writable", "do not make the container's root file system read-only");
const RUN_ENV_FILE: Opt = Opt::value(
    "env-file",
    "FILE",
    "pass the variables of FILE (KEY=VALUE lines) to the container, read by the engine (default: tool.xtask.env-file)",
);
const RUN_VOLUME: Opt = Opt::value(
    "volume",
    "SOURCE:PATH",
    "mount a volume or host directory at PATH too (repeatable; tool.xtask.volumes get named volumes of their own)",
)
.short('v');

const SERVER_PORT: Opt =
    Opt::value("port", "PORT", "listen on this port (default: tool.xtask.port, else 8080)").short('p');
const SERVER_RELOAD: Opt =
    Opt::switch("reload", "restart when the app's code changes (uvicorn --reload; gunicorn --reload for WSGI)");

const EXPORT_FORMAT: Opt = Opt::value("format", "FORMAT", "requirements.txt (default) or constraints.txt").short('f');
const EXPORT_OUTPUT: Opt = Opt::value("output", "FILE", "write to FILE (atomically) instead of stdout").short('o');
const EXPORT_WITHOUT_HASHES: Opt = Opt::switch("without-hashes", "leave out --hash lines");
const EXPORT_WITHOUT_URLS: Opt = Opt::switch("without-urls", "leave out the --index-url/--extra-index-url header");
const EXPORT_WITH: Opt =
    Opt::value("with", "GROUPS", "also export these dependency groups (comma-separated, repeatable)");
const EXPORT_WITHOUT: Opt = Opt::value("without", "GROUPS", "leave out these dependency groups (deprecated in Poetry)");
const EXPORT_ONLY: Opt = Opt::value("only", "GROUPS", "export only these dependency groups");
const EXPORT_ALL_GROUPS: Opt = Opt::switch("all-groups", "export every dependency group");
const EXPORT_EXTRAS: Opt = Opt::value("extras", "EXTRAS", "extras to include (space-separated, repeatable)").short('E');
const EXPORT_ALL_EXTRAS: Opt = Opt::switch("all-extras", "include every extra");
const EXPORT_WITH_CREDENTIALS: Opt =
    Opt::switch("with-credentials", "put credentials of private indexes (POETRY_HTTP_BASIC_*) in the URLs");

const DOCKERFILE_CHECK: Opt = Opt::switch("check", "fail if the file differs from what would be generated");
const DOCKERFILE_DRY_RUN: Opt = Opt::switch("dry-run", "print the Dockerfile; write nothing");
const DOCKERFILE_FORCE: Opt = Opt::switch("force", "overwrite the file even if someone edited it");

const INIT_DRY_RUN: Opt = Opt::switch("dry-run", "print what would change, with the text it would add; write nothing");

// ---------------------------------------------------------------------------------------------------------
// The tasks, in the order `cargo xtask --help` lists them
// ---------------------------------------------------------------------------------------------------------

pub(crate) const XTASK: Program = Program {
    name: "cargo xtask",
    summary: "build, run and ship a Poetry-managed Python web app as a Docker image",
    tasks: &[&IMAGE, &PUSH, &RUN, &SERVER, &TEST, &EXPORT, &WHEELS, &DOCKERFILE, &INIT, &DOCTOR, &BENCH],
    footer: "The app's settings live in [tool.xtask] of its pyproject.toml; see README.md for the reference.",
};

const IMAGE: Task = Task {
    name: "image",
    summary: "build the app's Docker image: export, wheels, Dockerfile, docker build",
    about: "\
Runs the pipeline, each step only when its inputs changed:
    export      the locked requirements (main, tool.xtask.groups and extras), hash-pinned
    base image  inspected (pulled if missing); its Python, machine and glibc asked once per image id
    wheels      the wheelhouse for the image's Python and platform (see `cargo xtask wheels --help`)
    dockerfile  docker/Dockerfile for the workspace's app (else target/xtask/apps/<name>/Dockerfile)
    sbom        target/xtask/apps/<name>/sbom.cdx.json: CycloneDX 1.5 of what the lock installs, from the
                wheelhouse; in the image at /opt/sbom.cdx.json (label xtask.sbom)
    venv        the virtualenv, made on the host from the wheelhouse by a pinned uv (downloaded once and
                checked by its hash; env XTASK_UV names another uv binary), bytecode compiled; uv itself
                never goes into the image
    context     target/xtask/apps/<name>/context: venv.tar (the virtualenv as laid down last, one archive)
                and venv-added/ (the packages added since: a layer of their own; none for `push`), app/
                (tool.xtask.include), system-packages/ (when tool.xtask.system-packages), the SBOM, nothing else
    build       <engine> build, tagged <name>:<version> and <name>:<short commit> (`-dirty` when the app or
                docker/ differ from the commit); skipped when the image already carries the fingerprint of
                this context, Dockerfile, base image and build arguments. When only app/ changed since the
                image was built (Docker, BuildKit, not for `push`), its top layer is replaced by one of app/
                and loaded through the engine's socket instead: the image a build makes, without the build
Then prints the image's size, the base image's size, the difference (virtualenv, app, bytecode) and each
step's time. The build needs no network. Labels: OCI title, version, revision, created (the commit's time),
source, base.name, xtask.sbom, plus tool.xtask.labels. Several platforms (--platform linux/amd64,linux/arm64):
a state directory (<name>@linux-arm64), wheelhouse and image each, tagged <tag>-<arch>. With BuildKit the
build takes layers from tool.xtask.repository's images (the inline cache `push` writes); with podman it is dated
by the commit (--timestamp, SOURCE_DATE_EPOCH): two builds of a commit have the same digest.",
    positional: "",
    options: &[
        APP,
        NAME,
        PYTHON,
        PLATFORMS,
        BASE_IMAGE,
        ENGINE,
        BUILDER,
        IMAGE_NO_CACHE,
        IMAGE_ALWAYS_BUILD,
        IMAGE_FORCE,
        DRY_RUN,
    ],
};

const PUSH: Task = Task {
    name: "push",
    summary: "build the image and push it to a registry: its tags, one index for several platforms, the digest",
    about: "\
Builds the image as `cargo xtask image` does (nothing to do when it is up to date), then pushes it to the
repository (--to, else tool.xtask.repository) under the tags `image` makes: <version> and <short commit>. A tree
that differs from its commit is refused unless --dirty (then the commit tag is <commit>-dirty). Prints the digest
the registry keeps the image under (`docker pull <repository>@<digest>` gets exactly it); --json prints the
result for CI on stdout, and target/xtask/apps/<name>/push.json keeps it.
Several platforms (--platform linux/amd64,linux/arm64, or tool.xtask.platforms): a wheelhouse and an image per
platform (a foreign one built under emulation: qemu-user-static with binfmt_misc), each pushed as
<version>-<arch>, then one multi-platform index under each tag (`docker manifest`, `podman manifest`). The base
image must then be an index in a registry (as python:<X.Y>-slim is): each platform's image is pulled by digest.
Credentials are the engine's own (`docker login`, `podman login`); this tool never reads or stores them. A
registry on 127.0.0.1 needs no TLS. The registry's names are given to the local image only for the push and
removed afterwards, also when the push fails or is interrupted (Ctrl-C): the engine keeps the tags `image`
made. With BuildKit the image carries its layers' cache (inline cache), and a build on a fresh machine takes
cached layers from the repository's images of the commit and the version (--cache-from).",
    positional: "",
    options: &[
        APP,
        NAME,
        PUSH_TO,
        PUSH_PLATFORMS,
        PUSH_DIRTY,
        PUSH_JSON,
        PYTHON,
        BASE_IMAGE,
        ENGINE,
        BUILDER,
        PUSH_NO_CACHE,
        DRY_RUN,
    ],
};

const RUN: Task = Task {
    name: "run",
    summary: "build the image if needed and run it on 127.0.0.1, streaming logs",
    about: "\
Builds the image as `cargo xtask image` does (nothing to do when it is up to date), runs the release step
(tool.xtask.release, e.g. migrations) in a container of it and stops if that fails, then runs the server:
    docker run --detach --name <name> --publish 127.0.0.1:<port>:<tool.xtask.port> --read-only
               --tmpfs /tmp --tmpfs /home/<user> --volume <name>-<path>:<path> ... <image>
waits until GET <health-path> answers 200 (or prints the container's logs and fails after --timeout seconds),
prints the URL and streams the logs. Ctrl-C (or SIGTERM) stops the container (SIGTERM, SIGKILL after 10
seconds) and removes it. The root file system is read-only, as in production: the app may write to /tmp, its
home and tool.xtask.volumes, each a named volume kept from one run to the next. A container of the same name
left by an earlier `cargo xtask run` is replaced when it has stopped; a running one is an error unless
--replace. `cargo xtask run -- <command>...` runs a one-off command in the image instead (like `docker compose
run`): the same environment, env file, volumes and user, no port, no release step; its exit code is ours.",
    positional: "[-- COMMAND...]",
    options: &[
        APP,
        NAME,
        RUN_PORT,
        RUN_DETACH,
        RUN_ENV,
        RUN_TIMEOUT,
        RUN_REPLACE,
        RUN_WRITABLE,
        RUN_ENV_FILE,
        RUN_VOLUME,
        PYTHON,
        PLATFORM,
        BASE_IMAGE,
        ENGINE,
        BUILDER,
        DRY_RUN,
    ],
};

const SERVER: Task = Task {
    name: "server",
    summary: "run the app on the host from a local virtualenv (what `make server` did)",
    about: "\
Creates or refreshes the app's virtualenv (<app>/.venv) from poetry.lock: main and every non-optional group,
hash-checked, and only when the lock or the host's Python changed. Then runs, in the foreground, on 127.0.0.1:
    gunicorn --bind 127.0.0.1:<PORT> --config <gunicorn-config> <app>     (HOST and PORT are set too)
or with --reload:
    uvicorn <app> --reload --host 127.0.0.1 --port <PORT>                  (ASGI apps)
    gunicorn ... --reload                                                  (WSGI apps)
Ctrl-C (or SIGTERM) stops the server and waits for it: SIGTERM first, SIGKILL to everything it started after
10 seconds or on a second Ctrl-C. A port already in use is reported before anything starts.",
    positional: "",
    options: &[APP, SERVER_PORT, SERVER_RELOAD],
};

const TEST: Task = Task {
    name: "test",
    summary: "run the app's pytest suite in the local virtualenv",
    about: "\
Creates or refreshes the app's virtualenv like `cargo xtask server` (main and every non-optional group, so
pytest comes from the lock's dev group), then runs `python -m pytest` in the app's directory. Arguments after
`--` go to pytest, e.g. `cargo xtask test -- -k palindrome -x`. Fails when the tests fail.",
    positional: "[-- PYTEST ARGS...]",
    options: &[APP],
};

const EXPORT: Task = Task {
    name: "export",
    summary: "write requirements.txt from poetry.lock, exactly as `poetry export` does",
    about: "\
Reads the app's pyproject.toml and poetry.lock (lock versions 1.0 to 2.1) and prints what
`poetry export` (poetry 2.5 + poetry-plugin-export 1.10) prints, without Poetry. The lock must be
fresh (its content-hash must match pyproject.toml): run `poetry lock` after editing dependencies.",
    positional: "",
    options: &[
        APP,
        EXPORT_FORMAT,
        EXPORT_OUTPUT,
        EXPORT_WITHOUT_HASHES,
        EXPORT_WITHOUT_URLS,
        EXPORT_WITH,
        EXPORT_WITHOUT,
        EXPORT_ONLY,
        EXPORT_ALL_GROUPS,
        EXPORT_EXTRAS,
        EXPORT_ALL_EXTRAS,
        EXPORT_WITH_CREDENTIALS,
    ],
};

const WHEELS: Task = Task {
    name: "wheels",
    summary: "fill the wheelhouse for the image's Python and platform, checked against the lock's hashes",
    about: "\
Downloads, for the image's Python (tool.xtask.python, --python) and platform (tool.xtask.platform, --platform),
the wheel of every locked package the image installs into target/xtask/apps/<name>/wheelhouse: among the
package's locked files, the one pip would pick for CPython X.Y on manylinux_2_<N>_<arch> (packaging's order
of tags), fetched from its index in parallel with the look-up of its page and checked against the lock's
sha256 (kept in target/xtask/cache/files/ for the next wheelhouse); pip downloads what the look-up cannot
(`pip download --only-binary=:all: --python-version X.Y ... --no-deps --require-hashes`). The manylinux tags
go up to the base image's glibc, asked from the base image itself when the engine has it (else glibc 2.28 is
assumed). A package that publishes only an sdist is built on the host with `pip wheel`
and must give a pure-Python wheel; a package with neither is an error naming it. Every file is checked against
poetry.lock's sha256 hashes. Nothing runs when the requirements and the target are unchanged.
`cargo xtask image` does this as its second step.",
    positional: "",
    options: &[APP, NAME, PYTHON, PLATFORM, BASE_IMAGE, ENGINE, DRY_RUN],
};

const DOCKERFILE: Task = Task {
    name: "dockerfile",
    summary: "render docker/Dockerfile from the configuration (--check, --dry-run)",
    about: "\
Renders the Dockerfile of the workspace's app into docker/Dockerfile (commit it), or, for another app (--app) or
another Python (--python), into target/xtask/apps/<name>/Dockerfile. The file starts with a header naming this
command and a checksum: a file someone edited is not overwritten without --force. `--check` fails when the
file is stale (a test does this for docker/Dockerfile); `--dry-run` prints it. `cargo xtask image` runs this too.",
    positional: "",
    options: &[APP, PYTHON, DOCKERFILE_CHECK, DOCKERFILE_DRY_RUN, DOCKERFILE_FORCE],
};

const INIT: Task = Task {
    name: "init",
    summary: "set up this tool in a repository with a Poetry app",
    about: "\
Adds what is missing, and nothing else:
  - the alias `xtask = \"run --package xtask --\"` in .cargo/config.toml;
  - `xtask` in the workspace's members (writing a workspace Cargo.toml if there is none);
  - `[workspace.metadata.xtask] app = \"<dir>\"` in Cargo.toml when the app is not at the root;
  - a `[tool.xtask]` table in the app's pyproject.toml with every setting derived from the project, commented
    out so that the defaults stay live (uncomment a line to change it);
  - `/target/` in .gitignore.
Existing settings are never changed; comments and formatting are kept byte for byte. Running it again
changes nothing. The app is --app, else [workspace.metadata.xtask] app, else the pyproject.toml at the root,
else the one Poetry project (a directory with pyproject.toml and poetry.lock) in the repository.",
    positional: "",
    options: &[APP, INIT_DRY_RUN],
};

const DOCTOR: Task = Task {
    name: "doctor",
    summary: "check the tools this needs (python3, pip, docker, ...) and say how to get what is missing",
    about: "\
One line per tool: `ok`, `missing` (with the remedy) or `note`. Required: python3 with pip and venv (the
wheelhouse, `server`, `test`), a docker client and a daemon that answers it (`image`, `run`). Optional: BuildKit
(faster rebuilds; the legacy builder works too), poetry (locking, and the reference for the export tests),
podman (an alternative engine), hadolint (lints the generated Dockerfile). Fails when a required tool is missing.",
    positional: "",
    options: &[],
};

const BENCH: Task = Task {
    name: "bench",
    summary: "benchmarks of this workspace (`cargo xtask bench --help` lists them)",
    about: "\
Runs the workspace's benchmarks, which live in a workspace member of their own named `xtask-bench` (not in
xtask/, which holds nothing app-specific): `cargo xtask bench <ARGS>` is `cargo run --package xtask-bench --
<ARGS>`, compiled the first time it is asked for. `cargo xtask bench --help` shows its own help.",
    positional: "<BENCHMARK> [OPTIONS]",
    options: &[],
};

/// Builds the flags of `task` from what the parser found.
fn command(task: &'static Task, m: &mut Matches) -> Result<Command> {
    Ok(match task.name {
        "image" => {
            let mut settings = overrides(m)?;
            let platforms = platform_list(settings.platform.as_deref())?;
            if platforms.len() > 1 {
                settings.platform = None;
            }
            Command::Image(Image {
                settings,
                engine: engine_flags(m)?,
                no_cache: m.switch(&IMAGE_NO_CACHE),
                always_build: m.switch(&IMAGE_ALWAYS_BUILD),
                force: m.switch(&IMAGE_FORCE),
                dry_run: m.switch(&DRY_RUN),
                platforms,
            })
        }
        "push" => {
            let mut settings = overrides(m)?;
            let platforms = platform_list(settings.platform.take().as_deref())?;
            Command::Push(Push {
                settings,
                engine: engine_flags(m)?,
                to: m.value(&PUSH_TO),
                platforms,
                dirty: m.switch(&PUSH_DIRTY),
                json: m.switch(&PUSH_JSON),
                no_cache: m.switch(&PUSH_NO_CACHE),
                dry_run: m.switch(&DRY_RUN),
            })
        }
        "run" => Command::Run(Run {
            settings: overrides(m)?,
            engine: engine_flags(m)?,
            port: port(m, &RUN_PORT)?,
            detach: m.switch(&RUN_DETACH),
            env: m.values(&RUN_ENV).into_iter().map(|pair| key_value(&pair)).collect::<Result<_>>()?,
            timeout_secs: m.parse(&RUN_TIMEOUT)?.unwrap_or(60),
            replace: m.switch(&RUN_REPLACE),
            writable: m.switch(&RUN_WRITABLE),
            env_file: m.path(&RUN_ENV_FILE),
            volumes: m.values(&RUN_VOLUME),
            command: std::mem::take(&mut m.rest),
            dry_run: m.switch(&DRY_RUN),
        }),
        "server" => Command::Server(Server {
            app: m.path(&APP),
            port: port(m, &SERVER_PORT)?,
            reload: m.switch(&SERVER_RELOAD),
        }),
        "test" => Command::Test(Test { app: m.path(&APP), pytest_args: std::mem::take(&mut m.rest) }),
        "export" => Command::Export(Export {
            app: m.path(&APP),
            output: m.path(&EXPORT_OUTPUT),
            request: ExportRequest {
                format: m.parse(&EXPORT_FORMAT)?.unwrap_or_default(),
                with_hashes: !m.switch(&EXPORT_WITHOUT_HASHES),
                with_urls: !m.switch(&EXPORT_WITHOUT_URLS),
                with_credentials: m.switch(&EXPORT_WITH_CREDENTIALS),
                with: m.values(&EXPORT_WITH),
                without: m.values(&EXPORT_WITHOUT),
                only: m.values(&EXPORT_ONLY),
                all_groups: m.switch(&EXPORT_ALL_GROUPS),
                extras: m.values(&EXPORT_EXTRAS),
                all_extras: m.switch(&EXPORT_ALL_EXTRAS),
            },
        }),
        "wheels" => {
            Command::Wheels(Wheels { settings: overrides(m)?, engine: engine_flags(m)?, dry_run: m.switch(&DRY_RUN) })
        }
        "dockerfile" => Command::Dockerfile(Dockerfile {
            settings: Overrides { app: m.path(&APP), python: m.parse(&PYTHON)?, ..Overrides::default() },
            check: m.switch(&DOCKERFILE_CHECK),
            dry_run: m.switch(&DOCKERFILE_DRY_RUN),
            force: m.switch(&DOCKERFILE_FORCE),
        }),
        "init" => Command::Init(Init { app: m.path(&APP), dry_run: m.switch(&INIT_DRY_RUN) }),
        "doctor" => Command::Doctor(Doctor {}),
        "bench" => Command::Bench(Bench { args: m.take_all() }),
        other => unreachable!("flags::command: no flags for the task {other}"),
    })
}

/// `--app`, `--name`, `--python`, `--platform`, `--base-image`: those of them the task declares.
fn overrides(m: &mut Matches) -> Result<Overrides> {
    Ok(Overrides {
        app: m.path(&APP),
        name: m.value(&NAME),
        python: m.parse(&PYTHON)?,
        platform: m.value(&PLATFORM),
        base_image: m.value(&BASE_IMAGE),
    })
}

/// `linux/amd64,linux/arm64` → both, each checked; none when not given.
fn platform_list(value: Option<&str>) -> Result<Vec<String>> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let mut list: Vec<String> = Vec::new();
    for platform in value.split(',').map(str::trim) {
        if !crate::config::is_linux_platform(platform) {
            bail!("invalid value '{value}' for --platform: expected Linux platforms such as linux/amd64,linux/arm64");
        }
        if list.iter().any(|p| p == platform) {
            bail!("invalid value '{value}' for --platform: {platform} is listed twice");
        }
        list.push(platform.to_string());
    }
    Ok(list)
}

/// `--engine`, and `--builder` when the task builds.
fn engine_flags(m: &mut Matches) -> Result<EngineFlags> {
    let builder = if m.task.declares(&BUILDER) { m.parse(&BUILDER)? } else { None };
    Ok(EngineFlags { engine: m.value(&ENGINE), builder })
}

fn port(m: &mut Matches, opt: &Opt) -> Result<Option<u16>> {
    match m.parse::<u16>(opt)? {
        Some(0) => bail!("invalid value '0' for --{}: the port must be between 1 and 65535", opt.long),
        port => Ok(port),
    }
}

fn key_value(pair: &str) -> Result<(String, String)> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => bail!("invalid value '{pair}' for --env: expected KEY=VALUE"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The parser
// ---------------------------------------------------------------------------------------------------------

/// A command with tasks: `cargo xtask`, or `cargo xtask bench`.
pub struct Program {
    /// How it is typed: `cargo xtask`.
    pub name: &'static str,
    pub summary: &'static str,
    pub tasks: &'static [&'static Task],
    /// The last line of its --help.
    pub footer: &'static str,
}

/// One task of `cargo xtask`: its name, a one-line summary, a longer description and its options.
#[derive(Debug)]
pub struct Task {
    pub name: &'static str,
    pub summary: &'static str,
    /// Extra paragraphs for `cargo xtask <task> --help`.
    pub about: &'static str,
    /// Positional arguments, for the usage line (`<what>...`); empty when the task takes none.
    pub positional: &'static str,
    pub options: &'static [Opt],
}

impl Task {
    fn declares(&self, opt: &Opt) -> bool {
        self.options.iter().any(|o| o.long == opt.long)
    }
}

/// One option. `value` names the option's argument (`FILE`), or is empty for a switch.
#[derive(Debug)]
pub struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: &'static str,
    pub help: &'static str,
}

impl Opt {
    pub const fn switch(long: &'static str, help: &'static str) -> Opt {
        Opt { long, short: None, value: "", help }
    }
    pub const fn value(long: &'static str, value: &'static str, help: &'static str) -> Opt {
        Opt { long, short: None, value, help }
    }
    pub const fn short(self, short: char) -> Opt {
        Opt { short: Some(short), ..self }
    }
}

/// What the parser found for one task: the options given (in order, values as written), the positional
/// arguments and what follows `--`. The task's constructor takes each option out through its `Opt`.
#[derive(Debug)]
pub struct Matches {
    pub task: &'static Task,
    values: BTreeMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
    /// Everything after a bare `--`, passed through untouched (e.g. to pytest).
    pub rest: Vec<String>,
    /// The options the constructor read.
    read: Vec<&'static str>,
}

impl Matches {
    /// Every value given for `opt`, which the task must declare.
    fn take(&mut self, opt: &Opt) -> Vec<String> {
        let declared = self.task.options.iter().find(|o| o.long == opt.long);
        let Some(declared) = declared else {
            panic!("the task {} reads --{}, which it does not declare", self.task.name, opt.long)
        };
        self.read.push(declared.long);
        self.values.remove(declared.long).unwrap_or_default()
    }
    pub fn switch(&mut self, opt: &Opt) -> bool {
        assert!(opt.value.is_empty(), "--{} takes a value", opt.long);
        let given = self.values.contains_key(opt.long);
        self.take(opt);
        given
    }
    /// The last value given for `opt`.
    pub fn value(&mut self, opt: &Opt) -> Option<String> {
        self.take(opt).pop()
    }
    pub fn values(&mut self, opt: &Opt) -> Vec<String> {
        self.take(opt)
    }
    pub fn path(&mut self, opt: &Opt) -> Option<PathBuf> {
        self.value(opt).map(PathBuf::from)
    }
    /// The last value of `opt` parsed with `FromStr`, with an error naming the option.
    pub fn parse<T: std::str::FromStr>(&mut self, opt: &Opt) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.value(opt) {
            None => Ok(None),
            Some(v) => match v.parse() {
                Ok(v) => Ok(Some(v)),
                Err(e) => bail!("invalid value '{v}' for --{}: {e}", opt.long),
            },
        }
    }
    /// The whole command line after the task's name, as given (for a task that hands it on).
    pub fn take_all(&mut self) -> Vec<String> {
        std::mem::take(&mut self.positional)
    }
    /// Positional arguments are an error unless the task takes them; every declared option must have been read.
    fn finish(self, program: &str) -> Result<()> {
        if let Some(arg) = self.positional.first() {
            bail!("unexpected argument '{arg}' for `{program} {}` (see --help)", self.task.name);
        }
        if !self.rest.is_empty() {
            bail!("`{program} {}` takes no arguments after `--` (see --help)", self.task.name);
        }
        for opt in self.task.options {
            let name = self.task.name;
            assert!(self.read.contains(&opt.long), "`{program} {name}` declares --{} but never reads it", opt.long);
        }
        Ok(())
    }
}

/// What a command line asks for: a help text to print, or a task to run with its flags.
#[derive(Debug)]
pub enum Parsed<T> {
    Help(String),
    Run(T),
}

/// Parses `args` (without the program name).
pub(crate) fn parse(args: &[String]) -> Result<Parsed<Command>> {
    parse_tasks(&XTASK, args, command)
}

/// Parses `args` against the tasks of `program`, building the flags of the task found with `build`.
pub fn parse_tasks<T>(
    program: &Program,
    args: &[String],
    build: impl FnOnce(&'static Task, &mut Matches) -> Result<T>,
) -> Result<Parsed<T>> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Parsed::Help(main_help(program)));
    };
    if matches!(first.as_str(), "-h" | "--help" | "help") {
        if let Some(task) = rest.first().and_then(|name| find(program, name)) {
            return Ok(Parsed::Help(task_help(program, task)));
        }
        return Ok(Parsed::Help(main_help(program)));
    }
    let Some(task) = find(program, first) else {
        bail!("unknown task '{first}'; `{} --help` lists them", program.name);
    };
    // A task without options of its own hands its whole command line on (bench).
    let mut m = if task.options.is_empty() && !task.positional.is_empty() {
        Matches { task, values: BTreeMap::new(), positional: rest.to_vec(), rest: Vec::new(), read: Vec::new() }
    } else {
        match scan(program.name, task, rest)? {
            Some(m) => m,
            None => return Ok(Parsed::Help(task_help(program, task))),
        }
    };
    let flags = build(task, &mut m)?;
    m.finish(program.name)?;
    Ok(Parsed::Run(flags))
}

/// The options of `task` in `args`; `None` when they ask for help.
fn scan(program: &str, task: &'static Task, args: &[String]) -> Result<Option<Matches>> {
    let mut m = Matches { task, values: BTreeMap::new(), positional: Vec::new(), rest: Vec::new(), read: Vec::new() };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            m.rest = args[i..].to_vec();
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (opt, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let Some(opt) = task.options.iter().find(|o| o.long == name) else {
                bail!("unknown option '--{name}' for `{program} {}` (see --help)", task.name);
            };
            (opt, inline)
        } else if arg.len() > 1 && arg.starts_with('-') && !is_number(arg) {
            let mut chars = arg[1..].chars();
            let c = chars.next().unwrap();
            let Some(opt) = task.options.iter().find(|o| o.short == Some(c)) else {
                bail!("unknown option '-{c}' for `{program} {}` (see --help)", task.name);
            };
            let tail: String = chars.collect();
            let tail = tail.strip_prefix('=').map(str::to_string).unwrap_or(tail);
            (opt, (!tail.is_empty()).then_some(tail))
        } else {
            m.positional.push(arg.clone());
            continue;
        };
        let entry = m.values.entry(opt.long).or_default();
        if opt.value.is_empty() {
            if inline.is_some() {
                bail!("option '--{}' takes no value", opt.long);
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => bail!("option '--{}' needs a value ({})", opt.long, opt.value),
            },
        };
        entry.push(value);
    }
    Ok(Some(m))
}

fn is_number(arg: &str) -> bool {
    arg[1..].chars().all(|c| c.is_ascii_digit())
}

fn find(program: &Program, name: &str) -> Option<&'static Task> {
    program.tasks.iter().copied().find(|t| t.name == name)
}

pub(crate) fn main_help(program: &Program) -> String {
    let name = program.name;
    let mut out = format!(
        "{name}: {}\n\nUSAGE:\n    {name} <TASK> [OPTIONS]\n    {name} <TASK> --help\n\nTASKS:\n",
        program.summary
    );
    let width = program.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for task in program.tasks {
        out.push_str(&format!("    {:width$}  {}\n", task.name, task.summary));
    }
    out.push_str(&format!("\n{}\n", program.footer));
    out
}

pub(crate) fn task_help(program: &Program, task: &Task) -> String {
    let program = program.name;
    let mut out = format!("{program} {}: {}\n\nUSAGE:\n    {program} {}", task.name, task.summary, task.name);
    if !task.options.is_empty() {
        out.push_str(" [OPTIONS]");
    }
    if !task.positional.is_empty() {
        out.push(' ');
        out.push_str(task.positional);
    }
    out.push('\n');
    if !task.about.is_empty() {
        out.push('\n');
        out.push_str(task.about.trim_end());
        out.push('\n');
    }
    out.push_str("\nOPTIONS:\n");
    let help = Opt::switch("help", "print this help").short('h');
    for opt in task.options.iter().chain(std::iter::once(&help)) {
        let short = opt.short.map(|c| format!("-{c}, ")).unwrap_or_else(|| "    ".to_string());
        let value = if opt.value.is_empty() { String::new() } else { format!(" <{}>", opt.value) };
        out.push_str(&format!("    {short}--{}{value}\n", opt.long));
        out.push_str(&wrap(opt.help, "            ", 110));
    }
    out
}

/// `text` in lines of at most `width` columns (a longer word stands alone), each starting with `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&format!("{indent}{line}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    fn check(args: &str, expect: Expect) {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        let actual = match parse(&args) {
            Ok(Parsed::Help(h)) => format!("help: {}", h.lines().next().unwrap()),
            Ok(Parsed::Run(command)) => format!("{command:?}"),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&actual);
    }

    /// Every task builds from an empty command line: it reads every option it declares, and none it does not
    /// (`Matches` panics otherwise).
    #[test]
    fn every_task_reads_exactly_its_options() {
        for task in XTASK.tasks {
            let parsed = parse(&[task.name.to_string()]);
            assert!(matches!(parsed, Ok(Parsed::Run(_))), "{}: {parsed:?}", task.name);
            assert!(task_help(&XTASK, task).contains(&format!("cargo xtask {}: {}", task.name, task.summary)));
        }
    }

    #[test]
    fn parses_into_each_tasks_flags() {
        check(
            "image --no-cache --python 3.13 --builder legacy --app svc",
            expect![[
                r#"Image(Image { settings: Overrides { app: Some("svc"), name: None, python: Some(PythonVersion { major: 3, minor: 13 }), platform: None, base_image: None }, engine: EngineFlags { engine: None, builder: Some(Legacy) }, no_cache: true, always_build: false, force: false, dry_run: false, platforms: [] })"#
            ]],
        );
        // `run` has no --force, --no-cache or --always-build of its own.
        check("run --force", expect!["error: unknown option '--force' for `cargo xtask run` (see --help)"]);
        check(
            "run -p 9000 -e A=1 -e B=x=y --detach --timeout 5",
            expect![[
                r#"Run(Run { settings: Overrides { app: None, name: None, python: None, platform: None, base_image: None }, engine: EngineFlags { engine: None, builder: None }, port: Some(9000), detach: true, env: [("A", "1"), ("B", "x=y")], timeout_secs: 5, replace: false, writable: false, env_file: None, volumes: [], command: [], dry_run: false })"#
            ]],
        );
        check(
            "push --to 127.0.0.1:5000/team/app --platform linux/amd64,linux/arm64 --json --dirty",
            expect![[
                r#"Push(Push { settings: Overrides { app: None, name: None, python: None, platform: None, base_image: None }, engine: EngineFlags { engine: None, builder: None }, to: Some("127.0.0.1:5000/team/app"), platforms: ["linux/amd64", "linux/arm64"], dirty: true, json: true, no_cache: false, dry_run: false })"#
            ]],
        );
        check(
            "image --platform linux/arm64",
            expect![[
                r#"Image(Image { settings: Overrides { app: None, name: None, python: None, platform: Some("linux/arm64"), base_image: None }, engine: EngineFlags { engine: None, builder: None }, no_cache: false, always_build: false, force: false, dry_run: false, platforms: ["linux/arm64"] })"#
            ]],
        );
        check(
            "push --platform linux/amd64,linux/amd64",
            expect!["error: invalid value 'linux/amd64,linux/amd64' for --platform: linux/amd64 is listed twice"],
        );
        check(
            "image --platform linux/amd64,darwin/arm64",
            expect!["error: invalid value 'linux/amd64,darwin/arm64' for --platform: expected Linux platforms such as linux/amd64,linux/arm64"],
        );
        check("run -e A", expect!["error: invalid value 'A' for --env: expected KEY=VALUE"]);
        check("server --port 0", expect!["error: invalid value '0' for --port: the port must be between 1 and 65535"]);
        check("server --port x", expect!["error: invalid value 'x' for --port: invalid digit found in string"]);
        check("image --python 3", expect!["error: invalid value '3' for --python: expected X.Y, e.g. 3.12"]);
        check(
            "image --builder fast",
            expect!["error: invalid value 'fast' for --builder: unknown builder 'fast': expected buildkit or legacy"],
        );
        check("test -- -k x", expect![[r#"Test(Test { app: None, pytest_args: ["-k", "x"] })"#]]);
        check("image -- x", expect!["error: `cargo xtask image` takes no arguments after `--` (see --help)"]);
        check(
            "export -f constraints.txt -Ea -E b --with=dev --without-hashes",
            expect![[
                r#"Export(Export { app: None, output: None, request: ExportRequest { format: ConstraintsTxt, with_hashes: false, with_urls: true, with_credentials: false, with: ["dev"], without: [], only: [], all_groups: false, extras: ["a", "b"], all_extras: false } })"#
            ]],
        );
        check("export -f", expect!["error: option '--format' needs a value (FORMAT)"]);
        check("export --all-groups=1", expect!["error: option '--all-groups' takes no value"]);
        check("export nope", expect!["error: unexpected argument 'nope' for `cargo xtask export` (see --help)"]);
        check("bench image --runs 3 --help", expect![[r#"Bench(Bench { args: ["image", "--runs", "3", "--help"] })"#]]);
        check(
            "image --help",
            expect!["help: cargo xtask image: build the app's Docker image: export, wheels, Dockerfile, docker build"],
        );
        check(
            "help run",
            expect!["help: cargo xtask run: build the image if needed and run it on 127.0.0.1, streaming logs"],
        );
        check("", expect!["help: cargo xtask: build, run and ship a Poetry-managed Python web app as a Docker image"]);
        check("nope", expect!["error: unknown task 'nope'; `cargo xtask --help` lists them"]);
    }

    #[test]
    fn main_help_lists_every_task() {
        let help = main_help(&XTASK);
        for task in XTASK.tasks {
            assert!(
                help.contains(&format!("    {:10}  {}\n", task.name, task.summary)),
                "{} missing from --help",
                task.name
            );
            assert!(!task.summary.is_empty() && !task.summary.contains('\n'), "{}: one-line summary", task.name);
        }
    }

    #[test]
    fn task_help_indents_and_wraps_option_text() {
        const LONG: Task = Task {
            name: "long",
            summary: "a task with a long option text",
            about: "",
            positional: "",
            options: &[BASE_IMAGE, RUN_PORT],
        };
        expect![[r#"
            cargo xtask long: a task with a long option text

            USAGE:
                cargo xtask long [OPTIONS]

            OPTIONS:
                    --base-image <IMAGE>
                        the base image of the image and of the containers that build its sdists (default:
                        tool.xtask.base-image, python:<X.Y>-slim; env XTASK_BASE_IMAGE)
                -p, --port <PORT>
                        host port on 127.0.0.1 (default: tool.xtask.port)
                -h, --help
                        print this help
        "#]]
        .assert_eq(&task_help(&XTASK, &LONG));
    }
}
