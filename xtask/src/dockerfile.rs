//! `cargo xtask dockerfile`: the image's Dockerfile, rendered from the configuration (a pure function of
//! `Config`), written to docker/Dockerfile with a header naming the command and a checksum (see `gen.rs`).
//!
//! The Dockerfile expects the build context `cargo xtask image` assembles (`venv.tar`, `app/`, `sbom.cdx.json`: the
//! virtualenv and the bytecode are made on the host, `site.rs`) and builds offline, with BuildKit and with the
//! legacy builder alike: no `RUN --mount`, no `COPY --chmod`, no `# syntax=` line (that would pull a frontend
//! image). One stage: a step that depends on nothing of the app (system packages, the standard library's
//! bytecode, the virtualenv's interpreter links, the user), then copies only, ordered from what changes least
//! (the virtualenv) to what changes most (the app's files, with their bytecode: no step runs after them). The
//! values that change with every commit (revision, creation time) are build arguments declared last, so a commit
//! that does not touch the app rebuilds no layer.

use std::path::PathBuf;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::config::{self, Config};
use crate::flags::Dockerfile;
use crate::gen::{self, Mode, Outcome};
use crate::paths;
use crate::settings::{self, Settings};

/// The command that regenerates the Dockerfile, named in its header.
pub(crate) const COMMAND: &str = "cargo xtask dockerfile";

/// What to do when the Dockerfile's place holds someone else's file.
pub(crate) const ELSEWHERE: &str =
    "put the generated one elsewhere with tool.xtask.dockerfile = \"docker/Dockerfile.xtask\" (a path relative to the app)";

/// Where the context's parts are (`cargo xtask image` assembles it): the virtualenv (`lib/pythonX.Y/site-packages`
/// and `bin/`, laid over the one the image's Python makes) as an archive (`tarball.rs`), and the app's files as
/// they go into the workdir.
pub(crate) const CONTEXT_VENV_TAR: &str = "venv.tar";
/// The files of the packages added since `venv.tar` was written (`site::Layers`): a layer of their own.
pub(crate) const CONTEXT_VENV_ADDED: &str = "venv-added";
/// What the base stage does not compile of the standard library (`compileall -x`, searched in each path): what a
/// server never imports. Measured in the example app's base image (Debian's Python 3.11, 667 modules): 12.7 MB of
/// bytecode and 3.4 s of CPU with `compileall -j 0`, 9.5 MB and 2.3 s in one process with these left out (the
/// process pool cost more CPU than it saved time on 2 cores, where the base stage is built beside the wheels). An
/// official python image's site-packages (pip, setuptools: more files than the standard library) goes too.
pub(crate) const STDLIB_SKIPPED: &str = concat!(
    r"/(site-packages|dist-packages|test|tests|idlelib|tkinter|turtledemo|lib2to3|distutils|ensurepip|pydoc_data)/",
    r"|/(turtle|pydoc|doctest|_pydecimal|_pyio)\.py$",
);
/// The `.deb` files of `tool.xtask.system-packages`.
pub(crate) const CONTEXT_SYSTEM: &str = "system-packages";
pub(crate) const CONTEXT_APP: &str = "app";
/// The SBOM in the context (`sbom.rs`).
pub(crate) const CONTEXT_SBOM: &str = "sbom.cdx.json";

/// The first stage: the base image and the step that needs nothing of the app (`image` builds it beside the
/// wheels' download when the cache is cold).
pub(crate) const BASE_STAGE: &str = "base";

/// Where the SBOM is in the image, and the label that names that path.
pub const SBOM: &str = "/opt/sbom.cdx.json";
pub(crate) const SBOM_LABEL: &str = "xtask.sbom";

/// The build argument that makes the build's own writes reproducible: Python compiles hash-based bytecode
/// (py_compile's default when it is set) and useradd dates /etc/shadow by it, not by today. `image` gives it
/// (the commit's time) to the builder that rewrites file times too (buildah `--timestamp`); without it the
/// value is unset and nothing changes.
pub(crate) const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Where the virtualenv lives in the image.
pub const VENV: &str = "/opt/venv";

/// The label that says how long an engine or orchestrator should wait after SIGTERM before it kills.
pub(crate) const STOP_TIMEOUT_LABEL: &str = "xtask.stop-timeout";

/// How long the engine waits after SIGTERM before it kills: the server's graceful timeout and 5 seconds for
/// the server to exit after its last response.
pub(crate) fn engine_stop_timeout(config: &Config) -> u32 {
    config.stop_timeout + 5
}

/// The label that carries the release step (`tool.xtask.release`, exec form), for orchestrators and `run`.
pub(crate) const RELEASE_LABEL: &str = "xtask.release";

impl Dockerfile {
    pub(crate) fn run(self, _sh: &Shell) -> Result<()> {
        let settings = settings::resolve(&self.settings)?;
        let mode = Mode::new(self.check, self.dry_run, self.force)?;
        let (path, contents) = target(&settings)?;
        match gen::apply(&path, &contents, mode, COMMAND, ELSEWHERE)? {
            Outcome::Unchanged => println!("dockerfile: {} is up to date", paths::display(&path)),
            Outcome::Written => println!("dockerfile: wrote {}", paths::display(&path)),
            Outcome::Printed => {}
        }
        Ok(())
    }
}

/// Where the Dockerfile of these settings goes and its full text: docker/Dockerfile when the app is the
/// workspace's and renders as declared (only the base image, which the Dockerfile takes as a build argument,
/// may differ), else the app's state directory (an app elsewhere, or `--python` for a one-off build).
pub(crate) fn target(settings: &Settings) -> Result<(PathBuf, String)> {
    let (declared, config) = (&settings.declared, &settings.config);
    let contents = gen::render(COMMAND, &render(config, &default_base(declared, config))?);
    if settings.is_workspace_app || declared.dockerfile.is_some() {
        let committed = gen::render(COMMAND, &render(declared, &declared.base_image)?);
        if committed == contents {
            let path = match &declared.dockerfile {
                Some(path) => declared.app_dir.join(path),
                None => paths::dockerfile(),
            };
            return Ok((path, contents));
        }
    }
    Ok((paths::state_dockerfile(&config.state_dir()), contents))
}

/// The base image the Dockerfile names as its default: the one pyproject.toml configures (or `python:X.Y-slim`
/// for the Python of this build), never an override from the command line or the environment, so that the
/// committed file does not depend on the machine.
fn default_base(declared: &Config, config: &Config) -> String {
    if declared.base_image_is_default {
        config::default_base_image(config.python)
    } else {
        declared.base_image.clone()
    }
}

/// The Dockerfile of `config`, without the header (pure).
pub(crate) fn render(config: &Config, base_image: &str) -> Result<String> {
    let user = &config.user;
    let uid = config.uid;
    let home = home_dir(config);
    let workdir = &config.workdir;
    let port = config.port;
    let includes: Vec<&str> = config.include.iter().map(|i| i.dest.as_str()).collect();
    if config.command.is_empty() {
        bail!("{}", config.command_problem.as_deref().unwrap_or("tool.xtask.command is empty"));
    }
    // Each value quoted; ours unescaped, since PATH must expand `${PATH}`. PYTHONPATH makes the workdir
    // importable from anywhere (console scripts such as alembic, run from another directory); PORT is the
    // port, for servers and configs that read it.
    // tool.xtask.env may set PYTHONPATH (it replaces ours), not another PORT than the port.
    let set = |key: &str| config.env.iter().any(|(k, _)| k == key);
    if let Some((_, value)) = config.env.iter().find(|(k, v)| k == "PORT" && v != &port.to_string()) {
        bail!("tool.xtask.env.PORT = \"{value}\" contradicts tool.xtask.port = {port}: set the port with tool.xtask.port only");
    }
    let mut env = vec![format!("PATH=\"{VENV}/bin:${{PATH}}\""), format!("VIRTUAL_ENV=\"{VENV}\"")];
    if !set("PYTHONPATH") {
        env.push(format!("PYTHONPATH={}", quote_for_dockerfile("workdir", "", workdir)?));
    }
    env.extend(["PYTHONUNBUFFERED=\"1\"".to_string(), "PYTHONDONTWRITEBYTECODE=\"1\"".to_string()]);
    env.push(format!("PORT=\"{port}\""));
    for (key, value) in config.env.iter().filter(|(k, _)| k != "PORT") {
        env.push(format!("{key}={}", quote_for_dockerfile("tool.xtask.env", key, value)?));
    }
    let env = env.join(" \\\n    ");
    let health_url = format!("http://127.0.0.1:{port}{}", config.health_path);
    let health_script = format!(
        "import sys, urllib.request; sys.exit(urllib.request.urlopen({}, timeout=4).status != 200)",
        python_string(&health_url)
    );
    let health = exec_form(&["python".to_string(), "-c".to_string(), health_script]);
    let command = exec_form(&config.command);
    let oci = "org.opencontainers.image";
    let mut labels = vec![
        format!("{oci}.title={}", quote_for_dockerfile("title", "", &config.project_name)?),
        format!("{oci}.version={}", quote_for_dockerfile("version", "", &config.version)?),
        format!("{oci}.base.name=\"${{BASE_IMAGE}}\""),
    ];
    for (key, value) in &config.labels {
        if key.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
            bail!("tool.xtask.labels: '{key}' cannot be a label name (no spaces, quotes or =)");
        }
        labels.push(format!("{key}={}", quote_for_dockerfile("tool.xtask.labels", key, value)?));
    }
    labels.push(format!("{STOP_TIMEOUT_LABEL}=\"{}\"", engine_stop_timeout(config)));
    labels.push(format!("{SBOM_LABEL}=\"{SBOM}\""));
    if !config.release.is_empty() {
        labels.push(format!(
            "{RELEASE_LABEL}={}",
            quote_for_dockerfile("tool.xtask.release", "", &exec_form(&config.release))?
        ));
    }
    let labels = labels.join(" \\\n      ");
    // The data folders: made and given to the app's user here, so that a new volume (which the engine fills
    // from the image) is the user's too.
    let volumes = if config.volumes.is_empty() {
        String::new()
    } else {
        format!(" \\\n    && mkdir -p {dirs} \\\n    && chown {uid}:{uid} {dirs}", dirs = config.volumes.join(" "))
    };
    let volume_line =
        if config.volumes.is_empty() { String::new() } else { format!("VOLUME {}\n", exec_form(&config.volumes)) };
    let base_image = quote_for_dockerfile("base image", "", base_image)?;
    // System packages: their .deb files, fetched before the build by apt in a container of the base image, are
    // installed offline by dpkg; the first runtime step, so that the app's changes rebuild nothing of it.
    let (system_copy, system_install, system_context) = if config.system_packages.is_empty() {
        (String::new(), String::new(), String::new())
    } else {
        (
            format!(
                "# The system packages (tool.xtask.system-packages: {}) and the dependencies the base image lacks, \
                 from the\n# .deb files apt fetched in a container of the base image before the build: no network \
                 here.\nCOPY {CONTEXT_SYSTEM}/ /tmp/{CONTEXT_SYSTEM}/\n",
                config.system_packages.join(", ")
            ),
            format!(
                "find /tmp/{CONTEXT_SYSTEM} -name '*.deb' -exec dpkg --install {{}} + \\\n    && rm -rf \
                 /tmp/{CONTEXT_SYSTEM} \\\n    && "
            ),
            format!(", {CONTEXT_SYSTEM}/"),
        )
    };

    Ok(format!(
        r#"# The image of {project} {version}. Build it with `cargo xtask image`, which assembles the build context
# (target/xtask/apps/<name>/context: {CONTEXT_VENV_TAR}, {CONTEXT_VENV_ADDED}/{system_context}, {CONTEXT_APP}/ and {CONTEXT_SBOM}, nothing else) and passes the
# build arguments. The build needs no network and runs no installer: the wheels were downloaded and checked
# against the lock's hashes on the host, where uv installed them and Python compiled the bytecode.

ARG BASE_IMAGE={base_image}

# The base image, the standard library's bytecode (slim images ship none, and the non-root user could not write
# it, so every start would compile it again; not what a server never imports: the base image's own site-packages,
# which the virtualenv does not see, tests, GUIs, 2to3, distutils, help texts, pure-Python fallbacks), the
# virtualenv's interpreter links (made by the base image's own Python), the user, no setuid or setgid file left
# (su, passwd, mount: nothing the app could gain privileges through). Nothing of the app: this step is rebuilt
# only with the base image.
FROM ${{BASE_IMAGE}} AS {BASE_STAGE}
ARG {SOURCE_DATE_EPOCH}
{system_copy}RUN {system_install}python3 -m compileall -q -x '{STDLIB_SKIPPED}' "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
    && python3 -m venv --without-pip {VENV} \
    && groupadd --gid {uid} {user} \
    && useradd --no-log-init --uid {uid} --gid {uid} --home-dir {home} --create-home --shell /usr/sbin/nologin {user} \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {{}} +{volumes}

FROM {BASE_STAGE}
# The virtualenv's packages and console scripts with their bytecode, owned by root: the app cannot change them.
# {CONTEXT_VENV_TAR} is the virtualenv as it was laid down last, unpacked here (one file for the engine to check on
# every build, not a thousand); {CONTEXT_VENV_ADDED}/ holds the packages added since (empty after any other change,
# and for `cargo xtask push`): a dependency added rebuilds that small layer, not the whole virtualenv's.
ADD {CONTEXT_VENV_TAR} {VENV}/
COPY {CONTEXT_VENV_ADDED}/ {VENV}/
COPY {CONTEXT_SBOM} {SBOM}
WORKDIR {workdir}
# The app's files (tool.xtask.include: {includes}) and their bytecode, owned by root.
COPY {CONTEXT_APP}/ ./
ENV {env}
EXPOSE {port}
{volume_line}HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD {health}
USER {uid}:{uid}
CMD {command}

# The commit, its time and the repository are labels `cargo xtask image` gives the build (`--label`), when
# it knows them: a new commit changes only this metadata and rebuilds no layer.
ARG BASE_IMAGE
LABEL {labels}
"#,
        project = config.project_name,
        version = config.version,
        includes = includes.join(", "),
    ))
}

/// The home directory of the image's user (tmpfs-mounted by `cargo xtask run`, which runs read-only).
pub(crate) fn home_dir(config: &Config) -> String {
    format!("/home/{}", config.user)
}

/// A value in double quotes for ENV or LABEL: `\`, `"` and `$` escaped; a line break is an error.
fn quote_for_dockerfile(setting: &str, key: &str, value: &str) -> Result<String> {
    if value.contains(['\n', '\r']) {
        let name = if key.is_empty() { setting.to_string() } else { format!("{setting}.{key}") };
        bail!("{name}: a value with a line break cannot go into a Dockerfile");
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$");
    Ok(format!("\"{escaped}\""))
}

/// A Python string literal.
fn python_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An exec-form (JSON array) instruction argument.
fn exec_form(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| json_string(w)).collect();
    format!("[{}]", quoted.join(", "))
}

fn json_string(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    /// docker/Dockerfile is what `cargo xtask dockerfile` makes of the workspace's app. `UPDATE_EXPECT=1 cargo
    /// test` rewrites it.
    #[test]
    fn committed_dockerfile_is_fresh() {
        let settings = settings::resolve(&crate::flags::Overrides::default()).unwrap();
        let (path, contents) = target(&settings).unwrap();
        assert_eq!(path, paths::dockerfile());
        let mode = if std::env::var_os("UPDATE_EXPECT").is_some() { Mode::Write { force: false } } else { Mode::Check };
        if let Err(e) = gen::apply(&path, &contents, mode, COMMAND, ELSEWHERE) {
            panic!("{e}\n(or run `UPDATE_EXPECT=1 cargo test -p xtask committed_dockerfile_is_fresh`)");
        }
    }

    #[test]
    fn renders_every_setting() {
        let dir = std::env::temp_dir().join(format!("xtask-dockerfile-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/svc")).unwrap();
        std::fs::write(dir.join("src/svc/api.py"), "app = None\n").unwrap();
        std::fs::write(
            dir.join("pyproject.toml"),
            r#"[project]
name = "My Svc"
version = "2.0.1+local"
requires-python = ">=3.12"
dependencies = ["flask>=3", "gunicorn"]

[tool.poetry]
packages = [{ include = "svc", from = "src" }]

[tool.xtask]
app = "svc.api:app"
port = 9000
health-path = "/healthz?full='1'"
env = { GREETING = "say \"hi\" for $5", WEB_CONCURRENCY = "4" }
labels = { "com.example.team" = "strings" }
user = "svc"
uid = 4242
workdir = "/srv/svc/"
system-packages = ["libmagic1"]
"#,
        )
        .unwrap();
        let config = Config::read(&dir).unwrap();
        let text = render(&config, "python:3.12-slim").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        expect![[r##"
            # The image of My Svc 2.0.1-local. Build it with `cargo xtask image`, which assembles the build context
            # (target/xtask/apps/<name>/context: venv.tar, venv-added/, system-packages/, app/ and sbom.cdx.json, nothing else) and passes the
            # build arguments. The build needs no network and runs no installer: the wheels were downloaded and checked
            # against the lock's hashes on the host, where uv installed them and Python compiled the bytecode.

            ARG BASE_IMAGE="python:3.12-slim"

            # The base image, the standard library's bytecode (slim images ship none, and the non-root user could not write
            # it, so every start would compile it again; not what a server never imports: the base image's own site-packages,
            # which the virtualenv does not see, tests, GUIs, 2to3, distutils, help texts, pure-Python fallbacks), the
            # virtualenv's interpreter links (made by the base image's own Python), the user, no setuid or setgid file left
            # (su, passwd, mount: nothing the app could gain privileges through). Nothing of the app: this step is rebuilt
            # only with the base image.
            FROM ${BASE_IMAGE} AS base
            ARG SOURCE_DATE_EPOCH
            # The system packages (tool.xtask.system-packages: libmagic1) and the dependencies the base image lacks, from the
            # .deb files apt fetched in a container of the base image before the build: no network here.
            COPY system-packages/ /tmp/system-packages/
            RUN find /tmp/system-packages -name '*.deb' -exec dpkg --install {} + \
                && rm -rf /tmp/system-packages \
                && python3 -m compileall -q -x '/(site-packages|dist-packages|test|tests|idlelib|tkinter|turtledemo|lib2to3|distutils|ensurepip|pydoc_data)/|/(turtle|pydoc|doctest|_pydecimal|_pyio)\.py$' "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
                && python3 -m venv --without-pip /opt/venv \
                && groupadd --gid 4242 svc \
                && useradd --no-log-init --uid 4242 --gid 4242 --home-dir /home/svc --create-home --shell /usr/sbin/nologin svc \
                && find / -xdev -perm /6000 -type f -exec chmod a-s {} +

            FROM base
            # The virtualenv's packages and console scripts with their bytecode, owned by root: the app cannot change them.
            # venv.tar is the virtualenv as it was laid down last, unpacked here (one file for the engine to check on
            # every build, not a thousand); venv-added/ holds the packages added since (empty after any other change,
            # and for `cargo xtask push`): a dependency added rebuilds that small layer, not the whole virtualenv's.
            ADD venv.tar /opt/venv/
            COPY venv-added/ /opt/venv/
            COPY sbom.cdx.json /opt/sbom.cdx.json
            WORKDIR /srv/svc
            # The app's files (tool.xtask.include: svc) and their bytecode, owned by root.
            COPY app/ ./
            ENV PATH="/opt/venv/bin:${PATH}" \
                VIRTUAL_ENV="/opt/venv" \
                PYTHONPATH="/srv/svc" \
                PYTHONUNBUFFERED="1" \
                PYTHONDONTWRITEBYTECODE="1" \
                PORT="9000" \
                GREETING="say \"hi\" for \$5" \
                WEB_CONCURRENCY="4"
            EXPOSE 9000
            HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
                CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9000/healthz?full=\\'1\\'', timeout=4).status != 200)"]
            USER 4242:4242
            CMD ["gunicorn", "--bind", "0.0.0.0:9000", "--graceful-timeout", "30", "svc.api:app"]

            # The commit, its time and the repository are labels `cargo xtask image` gives the build (`--label`), when
            # it knows them: a new commit changes only this metadata and rebuilds no layer.
            ARG BASE_IMAGE
            LABEL org.opencontainers.image.title="My Svc" \
                  org.opencontainers.image.version="2.0.1-local" \
                  org.opencontainers.image.base.name="${BASE_IMAGE}" \
                  com.example.team="strings" \
                  xtask.stop-timeout="35" \
                  xtask.sbom="/opt/sbom.cdx.json"
        "##]]
        .assert_eq(&text);
        let err = quote_for_dockerfile("tool.xtask.env", "X", "a\nb").unwrap_err().to_string();
        assert_eq!(err, "tool.xtask.env.X: a value with a line break cannot go into a Dockerfile");
    }
}
