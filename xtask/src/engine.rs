//! The container engine: probes docker or podman and what it offers (BuildKit), builds images, runs containers.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, format_err, Context, Result};
use signal_hook::iterator::Signals;
use xshell::{Cmd, Shell};

use crate::json::{self, Json};
use crate::registry;

/// How long a probe may take before the tool is reported as not answering (a daemon behind an unreachable
/// `DOCKER_HOST` would otherwise hang `docker version` for minutes).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `program args...` and returns its trimmed stdout, or a one-line reason it failed (its stderr's first
/// line, or that it timed out). Never hangs longer than `PROBE_TIMEOUT`.
pub(crate) fn probe(program: &Path, args: &[&str]) -> Result<String, String> {
    let output = probe_output(program, args)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    Err(failure_reason(&output))
}

/// Runs `program args...` and returns its output whatever its exit status; fails only when it cannot run or
/// does not finish within `PROBE_TIMEOUT`.
fn probe_output(program: &Path, args: &[&str]) -> Result<Output, String> {
    let handle = duct::cmd(program, args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match handle.try_wait() {
            Ok(Some(output)) => return Ok(output.clone()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = handle.kill();
                let _ = handle.wait();
                return Err(format!("no answer within {} seconds", PROBE_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The first non-empty line of a failed command's stderr (else stdout), or its exit status.
fn failure_reason(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reason = stderr.lines().chain(stdout.lines()).map(str::trim).find(|l| !l.is_empty());
    reason.map(str::to_string).unwrap_or_else(|| format!("exited with {}", output.status))
}

/// What `docker version` tells, in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerVersions {
    /// The client's version (`docker version`'s Client.Version).
    pub(crate) client: String,
    /// The engine's version, or why no daemon answered the client.
    pub(crate) server: Result<String, String>,
}

/// The docker client's version and, when a daemon answers, the engine's: one `docker version` call (a client
/// that prints nothing without a daemon is asked `docker --version`). Fails when the client does not run.
pub(crate) fn docker_versions(docker: &Path) -> Result<DockerVersions, String> {
    let format = "{{.Client.Version}}\n{{.Server.Version}}";
    let (client, server) = match probe_output(docker, &["version", "--format", format]) {
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let mut versions = stdout.lines().map(str::trim).map(|v| Some(v.to_string()).filter(|v| !v.is_empty()));
            let client = versions.next().flatten();
            let server = match versions.next().flatten() {
                Some(server) if output.status.success() => Ok(server),
                _ => Err(failure_reason(&output)),
            };
            (client, server)
        }
        Err(e) => (None, Err(e)),
    };
    let client = match client {
        Some(client) => client,
        None => match probe(docker, &["--version"]) {
            Ok(text) => parse_docker_version(&text).unwrap_or(text),
            Err(e) => return Err(server.err().unwrap_or(e)),
        },
    };
    Ok(DockerVersions { client, server })
}

/// `Docker version 20.10.24+dfsg1, build 297e128` → `20.10.24+dfsg1`.
fn parse_docker_version(text: &str) -> Option<String> {
    let rest = text.strip_prefix("Docker version ")?;
    Some(rest.split(',').next()?.trim().to_string())
}

/// How a docker client gets BuildKit, if it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildKit {
    /// The buildx plugin is installed: `docker build` (client 23+) or `docker buildx build` use BuildKit.
    Buildx(String),
    /// A client before 23 with BuildKit built in: set `DOCKER_BUILDKIT=1`.
    Env,
    /// Only the legacy builder, and why.
    No(String),
}

/// What BuildKit support `docker` (client `client_version`, talking to engine `server_version`) offers.
pub(crate) fn docker_buildkit(docker: &Path, client_version: &str, server_version: &str) -> BuildKit {
    if let Ok(version) = probe(docker, &["buildx", "version"]) {
        return BuildKit::Buildx(version);
    }
    buildkit_without_buildx(client_version, server_version)
}

/// The decision for a client without the buildx plugin (pure, for the tests).
fn buildkit_without_buildx(client_version: &str, server_version: &str) -> BuildKit {
    let (Some(client), Some(server)) = (major_minor(client_version), major_minor(server_version)) else {
        return BuildKit::No(format!("cannot read the versions (client {client_version}, engine {server_version})"));
    };
    if server < (18, 9) {
        return BuildKit::No(format!("engine {server_version} predates BuildKit (18.09)"));
    }
    if client >= (23, 0) {
        return BuildKit::No(format!(
            "client {client_version} has no buildx plugin (BuildKit needs it from client 23.0 on)"
        ));
    }
    BuildKit::Env
}

/// `20.10.24+dfsg1` → `(20, 10)`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

// ---------------------------------------------------------------------------------------------------------
// The engine the tasks drive: which client, which builder, and the commands `image` and `run` need.
// ---------------------------------------------------------------------------------------------------------

/// The most processes a container of `run` may have: a server's workers and their threads, with room to spare.
pub(crate) const PIDS_LIMIT: u32 = 512;

/// The label that records what an image was built from (see `image.rs`).
pub(crate) const FINGERPRINT_LABEL: &str = "xtask.fingerprint";
/// The label of what an image was built from but the app's files (`image::Digest::Stem`): an app change can replace its
/// top layer alone (`app_layer`).
pub(crate) const STEM_LABEL: &str = "xtask.stem";
/// The label on containers `cargo xtask run` starts: the image name they run.
pub(crate) const RUN_LABEL: &str = "xtask.run";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

/// How images get built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// BuildKit: `DOCKER_BUILDKIT=1` (built into clients before 23, the buildx plugin after).
    BuildKit,
    /// The legacy builder: `DOCKER_BUILDKIT=0`.
    Legacy,
    /// Podman's builder.
    Buildah,
}

impl std::str::FromStr for Builder {
    type Err = String;
    fn from_str(s: &str) -> Result<Builder, String> {
        match s {
            "buildkit" => Ok(Builder::BuildKit),
            "legacy" => Ok(Builder::Legacy),
            other => Err(format!("unknown builder '{other}': expected buildkit or legacy")),
        }
    }
}

impl Builder {
    pub fn name(self) -> &'static str {
        match self {
            Builder::BuildKit => "BuildKit",
            Builder::Legacy => "the legacy builder",
            Builder::Buildah => "buildah",
        }
    }
}

/// A container engine client: docker (any docker-compatible client) or podman.
#[derive(Debug, Clone)]
pub struct Engine {
    pub kind: Kind,
    /// The program as it is shown and run by short commands: a name found on PATH (`docker`) or a path.
    pub program: PathBuf,
    /// Its resolved path, for long-running children and probes.
    pub path: PathBuf,
    /// Print the commands that change something instead of running them.
    pub dry_run: bool,
    /// The builder asked for (`--builder`, `XTASK_BUILDER`), if any.
    pub requested_builder: Option<Builder>,
}

/// What `image inspect` tells about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    /// Bytes, base layers included.
    pub size: u64,
    /// `linux/amd64`
    pub platform: String,
    /// The `xtask.fingerprint` label, empty when absent.
    pub fingerprint: String,
    /// The `xtask.stem` label (what the image was built from but the app's files), empty when absent.
    pub stem: String,
}

/// What `container inspect` tells about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// `created`, `running`, `exited`, ...
    pub status: String,
    pub exit_code: i32,
    /// The `xtask.run` label: the image name, when `cargo xtask run` started it.
    pub run_label: String,
}

/// What to build.
pub struct BuildRequest<'a> {
    pub context: &'a Path,
    pub dockerfile: &'a Path,
    pub tags: &'a [String],
    pub build_args: &'a [(String, String)],
    pub labels: &'a [(String, String)],
    pub no_cache: bool,
    /// Where the engine writes the new image's id.
    pub iidfile: &'a Path,
    /// `--platform`: the platform of the image (BuildKit takes a local base image only for its platform).
    pub platform: Option<&'a str>,
    /// Images whose inline cache BuildKit may reuse (`--cache-from`); a missing one is only a note in its log.
    pub cache_from: &'a [String],
    /// Seconds since the epoch that buildah writes as every file's time and the image's creation time
    /// (`--timestamp`), for reproducible digests; ignored by the other builders, which cannot.
    pub timestamp: Option<u64>,
    /// `--target`: build only up to this stage.
    pub target: Option<&'a str>,
}

/// A build started by `build_in_background`; dropped before it ends, it is stopped (the engine cancels a build
/// whose client went).
pub(crate) struct BackgroundBuild {
    child: std::process::Child,
    started: std::time::Instant,
}

impl BackgroundBuild {
    /// Waits for the build; whether it succeeded, and how long it took.
    pub(crate) fn wait(mut self) -> (bool, std::time::Duration) {
        let ok = self.child.wait().is_ok_and(|s| s.success());
        (ok, self.started.elapsed())
    }
}

impl Drop for BackgroundBuild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A throwaway container of the base image that works on files of the host (sdists built to wheels, system
/// packages fetched): `input` goes in as a tar stream on its stdin, the script leaves its results in a tar
/// stream on its stdout, which is unpacked into `output`. No bind mounts, so it works with any engine, local or
/// remote, rootful or rootless; `--rm` and `--init`, so the engine removes it however the tool ends.
pub(crate) struct FilesRun<'a> {
    /// `xtask-build-<pid>-<n>`: removed after the run, whatever happened.
    pub(crate) name: String,
    /// The image (by id, so that it is the one the target was asked from) and its platform.
    pub(crate) image: &'a str,
    pub(crate) platform: &'a str,
    /// Plain values only: the command is printed with them.
    pub(crate) env: Vec<(String, String)>,
    /// Run by `sh -c`; its stdin is the tar of `input`, its stdout must be a tar of the results.
    pub(crate) script: &'a str,
    /// What the printed command shows instead of the script.
    pub(crate) script_shown: &'a str,
    pub(crate) input: &'a Path,
    pub(crate) output: &'a Path,
}

/// What to run: the server (detached, a port published) or a command in the foreground (the release step, a
/// one-off), with the same environment, mounts and file system.
pub(crate) struct RunRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) image: &'a str,
    pub(crate) labels: &'a [(String, String)],
    /// `(host port, container port)`, published on 127.0.0.1.
    pub(crate) publish: Option<(u16, u16)>,
    /// A read-only root file system...
    pub(crate) read_only: bool,
    /// ...with these tmpfs mounts (`/tmp`, `Engine::private_tmpfs`).
    pub(crate) tmpfs: &'a [String],
    /// `SOURCE:PATH`: named volumes and host directories.
    pub(crate) volumes: &'a [String],
    pub(crate) env: &'a [(String, String)],
    /// A file of variables the engine reads itself (`--env-file`).
    pub(crate) env_file: Option<&'a Path>,
    /// Instead of the image's command.
    pub(crate) command: &'a [String],
    /// Seconds the engine waits after SIGTERM before it kills the container (`docker stop` too).
    pub(crate) stop_timeout: u32,
}

const IMAGE_FORMAT: &str =
    "{{.Id}}\t{{.Size}}\t{{.Os}}/{{.Architecture}}\t{{with .Config.Labels}}{{index . \"xtask.fingerprint\"}}\
     {{end}}\t{{with .Config.Labels}}{{index . \"xtask.stem\"}}{{end}}";
const CONTAINER_FORMAT: &str =
    "{{.State.Status}}\t{{.State.ExitCode}}\t{{with .Config.Labels}}{{index . \"xtask.run\"}}{{end}}";

impl Engine {
    /// The engine client `program` (`docker`, `podman`, a path), building with `builder` when one is asked
    /// for (see `settings::engine_choice`); `dry_run` makes it print instead of run the commands that change
    /// something.
    pub fn new(program: &str, builder: Option<Builder>, dry_run: bool) -> Result<Engine> {
        let mut engine = Engine::find(program, dry_run)?;
        engine.requested_builder = builder;
        Ok(engine)
    }

    fn find(spec: &str, dry_run: bool) -> Result<Engine> {
        let program = PathBuf::from(spec);
        let file_name = program.file_name().and_then(|n| n.to_str()).unwrap_or(spec);
        let kind = if file_name.contains("podman") { Kind::Podman } else { Kind::Docker };
        let path =
            if spec.contains('/') { Some(program.clone()).filter(|p| p.is_file()) } else { which::which(spec).ok() };
        if path.is_none() && !dry_run {
            let remedy = match kind {
                Kind::Docker => {
                    "install Docker (Debian: `apt-get install -y docker.io`), or use Podman with `--engine podman`"
                }
                Kind::Podman => "install Podman (Debian: `apt-get install -y podman`), or use Docker",
            };
            bail!("the container engine `{spec}` is not found ({remedy}); `cargo xtask doctor` checks the setup");
        }
        let path = path.unwrap_or_else(|| program.clone());
        Ok(Engine { kind, program, path, dry_run, requested_builder: None })
    }

    /// The resource limits podman is told to give a container: the hard limits of open files and processes
    /// this process has (processes at most `kernel.pid_max`). Podman's defaults are higher (1048576 open
    /// files), and raising a limit above the caller's hard one needs CAP_SYS_RESOURCE, which a container's
    /// runtime started from a sandbox or CI runner may lack: then no container starts (`error setting rlimits
    /// ... operation not permitted`). Docker starts containers with dockerd's own limits; nothing to say there.
    fn container_limits(&self) -> Vec<String> {
        if self.kind != Kind::Podman {
            return Vec::new();
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").ok().and_then(|t| t.trim().parse().ok());
        let mut args = Vec::new();
        if let Some(files) = hard_limit(&limits, "Max open files") {
            args.extend(["--ulimit".to_string(), format!("nofile={files}:{files}")]);
        }
        if let Some(processes) = hard_limit(&limits, "Max processes") {
            let processes = pid_max.map_or(processes, |max: u64| processes.min(max));
            args.extend(["--ulimit".to_string(), format!("nproc={processes}:{processes}")]);
        }
        args
    }

    /// A `--tmpfs` mount at `path` that only `uid` may use (the user's home in a read-only container): docker
    /// takes the owner as mount options, podman's `U` gives it to the container's user.
    pub(crate) fn private_tmpfs(&self, path: &str, uid: u32) -> String {
        match self.kind {
            Kind::Docker => format!("{path}:uid={uid},gid={uid},mode=0700"),
            Kind::Podman => format!("{path}:U,mode=0700"),
        }
    }

    /// `docker` or `podman`, for messages the user may copy.
    pub fn shown(&self) -> String {
        self.program.display().to_string()
    }

    fn cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        sh.cmd(&self.program)
    }

    /// Runs a command that changes something, or prints it in a dry run.
    fn change(&self, command: Cmd<'_>) -> xshell::Result<()> {
        if self.dry_run {
            println!("$ {command}");
            return Ok(());
        }
        command.run()
    }

    /// Turns the engine's "cannot connect" failures into one message with the remedy.
    fn daemon_error(&self, stderr: &str) -> anyhow::Error {
        let first = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no answer");
        format_err!(
            "{} does not answer: {first}\nstart the engine (`systemctl start docker`, or `dockerd &` without systemd) \
             and check that you may use it (root, or the docker group); `cargo xtask doctor` checks the setup",
            self.shown()
        )
    }

    /// Inspects images; `None` for each one that does not exist. One engine call when all exist.
    pub fn images(&self, sh: &Shell, refs: &[&str]) -> Result<Vec<Option<ImageInfo>>> {
        // The daemon's own socket when the client would use it (`docker image inspect` takes 20-35 ms here, the
        // request on the socket a few: `image`'s "base image" step went from 0.04-0.05 s to 0.01 s); the client
        // otherwise, and for every error.
        if let Some(socket) = self.api_socket() {
            let answers: Option<Vec<Option<ImageInfo>>> = refs.iter().map(|r| api_image(&socket, r)).collect();
            if let Some(answers) = answers {
                return Ok(answers);
            }
        }
        let output = self
            .cmd(sh)
            .args(["image", "inspect", "--format", IMAGE_FORMAT])
            .args(refs)
            .quiet()
            .ignore_status()
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        if output.status.success() && lines.len() == refs.len() {
            return lines.iter().map(|l| parse_image_info(l).map(Some)).collect();
        }
        if refs.len() > 1 {
            return refs.iter().map(|r| Ok(self.images(sh, &[r])?.pop().flatten())).collect();
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if is_missing(&stderr) {
            return Ok(vec![None]);
        }
        Err(self.daemon_error(&stderr))
    }

    /// `<engine> pull [--platform P] <image>`. Returns the engine's last error line on failure.
    pub(crate) fn pull(&self, image: &str, platform: Option<&str>) -> Result<(), String> {
        let mut args = vec!["pull".to_string()];
        if let Some(platform) = platform {
            args.extend(["--platform".to_string(), platform.to_string()]);
        }
        args.extend(self.tls_args(&crate::registry::registry_of(image)));
        args.push(image.to_string());
        println!("$ {} {}", self.shown(), args.join(" "));
        if self.dry_run {
            return Ok(());
        }
        let output = duct::cmd(&self.path, &args)
            .stdin_null()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("cannot run {}: {e}", self.shown()))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("failed").to_string())
    }

    /// Runs `python3 -c <script>` in a throwaway container of `image` (no network) and returns its output.
    pub fn python_in(&self, sh: &Shell, image: &str, script: &str) -> Result<String> {
        let command = self
            .cmd(sh)
            .arg("run")
            .args(self.container_limits())
            .args(["--rm", "--network", "none", "--entrypoint", "python3", image, "-c", script])
            .quiet();
        command.read().with_context(|| format!("cannot run python3 in the image {image}"))
    }

    /// Runs `request`'s script in a throwaway container (see `FilesRun`), its stderr printed indented as it
    /// comes; fails when the script fails or a stop signal arrives (then the container is removed).
    pub(crate) fn run_with_files(&self, request: &FilesRun<'_>) -> Result<()> {
        use std::process::{Command, Stdio};
        let mut args: Vec<OsString> = ["run", "--rm", "--interactive", "--init"].iter().map(OsString::from).collect();
        args.extend(["--platform".into(), request.platform.into(), "--name".into(), request.name.clone().into()]);
        for (key, value) in &request.env {
            args.extend(["--env".into(), format!("{key}={value}").into()]);
        }
        args.extend(["--entrypoint".into(), "sh".into(), request.image.into(), "-c".into()]);
        let shown = format!("{} {} '{}'", self.shown(), shell_words(&args), request.script_shown);
        println!("$ {shown}");
        if self.dry_run {
            return Ok(());
        }
        args.push(request.script.into());
        std::fs::create_dir_all(request.output)
            .with_context(|| format!("cannot create {}", request.output.display()))?;
        let _container = RemoveOnDrop { engine: self, name: &request.name };
        let mut pack = Command::new("tar")
            .args(["--create", "--file", "-", "--directory"])
            .arg(request.input)
            .arg(".")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run tar (the host needs GNU tar or bsdtar)")?;
        let mut container = Command::new(&self.path)
            .args(&args)
            .stdin(pack.stdout.take().expect("piped"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.shown()))?;
        let unpack = Command::new("tar")
            .args(["--extract", "--file", "-", "--no-same-owner", "--no-same-permissions", "--directory"])
            .arg(request.output)
            .stdin(container.stdout.take().expect("piped"))
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run tar")?;
        let stderr = container.stderr.take().expect("piped");
        let printer = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                println!("  | {line}");
            }
        });
        let status = crate::signals::wait(&mut container, "the container");
        let _ = printer.join();
        let packed = pack.wait();
        let unpacked = unpack.wait_with_output();
        let status = status?;
        if !status.success() {
            bail!("the container {} failed ({status}): see its output above", request.name);
        }
        match (packed, unpacked) {
            (Ok(p), Ok(u)) if p.success() && u.status.success() => Ok(()),
            (_, Ok(u)) if !u.status.success() => bail!(
                "cannot unpack what the container {} gave: {}",
                request.name,
                String::from_utf8_lossy(&u.stderr).trim()
            ),
            _ => bail!("cannot hand the files to the container {}", request.name),
        }
    }

    /// The builder to use: `--builder`/`XTASK_BUILDER` when given (an error if the engine cannot), else BuildKit
    /// when the client offers it, else the legacy builder. Returns it with a short reason.
    pub fn builder(&self) -> Result<(Builder, String)> {
        let wanted = self.requested_builder;
        if self.kind == Kind::Podman {
            if wanted.is_some() {
                bail!("--builder applies to docker; podman always builds with buildah");
            }
            return Ok((Builder::Buildah, "podman".to_string()));
        }
        if self.dry_run {
            let builder = wanted.unwrap_or(Builder::BuildKit);
            return Ok((builder, "dry run: not probed".to_string()));
        }
        let (client, offered) = match self.remembered_client() {
            Some(known) => known,
            None => {
                let versions =
                    docker_versions(&self.path).map_err(|e| format_err!("{} does not run: {e}", self.shown()))?;
                let client = versions.client;
                let server = versions.server.map_err(|e| self.daemon_error(&e))?;
                let offered = docker_buildkit(&self.path, &client, &server);
                self.remember_client(&client, &server, &offered);
                (client, offered)
            }
        };
        match (wanted, offered) {
            (Some(Builder::Legacy), _) => Ok((Builder::Legacy, "--builder legacy".to_string())),
            (_, BuildKit::Buildx(version)) => Ok((Builder::BuildKit, format!("buildx {version}"))),
            (_, BuildKit::Env) => Ok((Builder::BuildKit, format!("client {client}, DOCKER_BUILDKIT=1"))),
            (Some(_), BuildKit::No(why)) => bail!(
                "BuildKit is not available with {}: {why}; install the buildx plugin (Debian: `apt-get install -y \
                 docker-buildx`), pick a client that has it with --engine, or build with --builder legacy",
                self.shown()
            ),
            (None, BuildKit::No(why)) => Ok((Builder::Legacy, why)),
        }
    }

    /// The build command line, without running it.
    pub fn build_command(
        &self,
        builder: Builder,
        request: &BuildRequest<'_>,
    ) -> (Vec<OsString>, Vec<(String, String)>) {
        let mut args: Vec<OsString> = vec!["build".into()];
        let mut env = Vec::new();
        match builder {
            Builder::BuildKit => {
                env.push(("DOCKER_BUILDKIT".to_string(), "1".to_string()));
                args.push("--progress=plain".into());
            }
            Builder::Legacy => {
                env.push(("DOCKER_BUILDKIT".to_string(), "0".to_string()));
                // A failed step's container goes too, not only those of the steps that worked.
                args.push("--force-rm".into());
            }
            // The OCI format, which has no HEALTHCHECK (buildah drops it, with a warning), because in the docker
            // format buildah before 1.41 (podman 5.6; Debian 12 has 4.3) records the build container's id and
            // host name in the image's configuration: no two builds would have the same digest.
            Builder::Buildah => {
                args.extend(["--format".into(), "oci".into()]);
                if let Some(timestamp) = request.timestamp {
                    args.extend(["--timestamp".into(), timestamp.to_string().into()]);
                }
            }
        }
        if let Some(platform) = request.platform {
            args.extend(["--platform".into(), platform.into()]);
        }
        if builder == Builder::BuildKit {
            for image in request.cache_from {
                args.extend(["--cache-from".into(), image.into()]);
            }
        }
        args.extend(["--file".into(), request.dockerfile.as_os_str().to_owned()]);
        if let Some(target) = request.target {
            args.extend(["--target".into(), target.into()]);
        }
        for tag in request.tags {
            args.extend(["--tag".into(), tag.into()]);
        }
        for (key, value) in request.build_args {
            args.extend(["--build-arg".into(), format!("{key}={value}").into()]);
        }
        for (key, value) in request.labels {
            args.extend(["--label".into(), format!("{key}={value}").into()]);
        }
        if request.no_cache {
            args.push("--no-cache".into());
        }
        // Everything the image needs is in the context: its RUN steps get no network, so none can fetch.
        args.extend(["--network".into(), "none".into()]);
        args.extend(["--iidfile".into(), request.iidfile.as_os_str().to_owned()]);
        args.push(request.context.as_os_str().to_owned());
        (args, env)
    }

    /// Builds an image, streaming the engine's output (indented), and returns the new image's id.
    pub(crate) fn build(&self, builder: Builder, request: &BuildRequest<'_>) -> Result<String> {
        let (args, env) = self.build_command(builder, request);
        let shown_env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        println!("$ {shown_env}{} {}", self.shown(), shell_words(&args));
        if self.dry_run {
            return Ok(String::new());
        }
        let _ = std::fs::remove_file(request.iidfile);
        let mut expression = duct::cmd(&self.path, &args).stdin_null().stderr_to_stdout().unchecked();
        for (key, value) in &env {
            expression = expression.env(key, value);
        }
        let reader = expression.reader().with_context(|| format!("cannot run {}", self.shown()))?;
        let mut deprecation = false;
        let mut no_healthcheck = false;
        for line in BufReader::new(&reader).lines() {
            let line = line.context("cannot read the build's output")?;
            // The docker client's multi-line notice that the legacy builder is deprecated: we said which builder
            // we use and why already.
            if line.starts_with("DEPRECATED: The legacy builder") {
                deprecation = true;
                continue;
            }
            if deprecation && (line.starts_with(char::is_whitespace) || line.is_empty()) {
                continue;
            }
            deprecation = false;
            // Once per HEALTHCHECK and stage; said once below.
            if line.contains("HEALTHCHECK is not supported for OCI image format") {
                no_healthcheck = true;
                continue;
            }
            println!("  | {line}");
        }
        if no_healthcheck {
            println!(
                "  | (buildah leaves HEALTHCHECK out of the OCI format, which has none; see the README's Podman notes)"
            );
        }
        let output = reader.try_wait().context("cannot wait for the build")?.cloned();
        let status = output.map(|o| o.status);
        if !status.is_some_and(|s| s.success()) {
            // A daemon gone in the middle (killed, restarted, out of memory) shows as the client's `unexpected
            // EOF`: ask it, so that the error says what happened rather than that the build failed.
            if let Err(why) = self.daemon_answers() {
                bail!(
                    "{} stopped answering during the build ({}; it says: {why}): the build did not finish and \
                     tagged nothing, so {} still names the image built before, if any; check the engine (`{} info`), \
                     start it again if it is down, then run the command again",
                    self.daemon_name(),
                    self.daemon_address(),
                    request.tags.first().map(String::as_str).unwrap_or("the tag"),
                    self.shown()
                );
            }
            let code = status.and_then(|s| s.code()).map(|c| format!(" (exit code {c})")).unwrap_or_default();
            bail!("{} build failed{code}: see its output above", self.shown());
        }
        let id = std::fs::read_to_string(request.iidfile)
            .with_context(|| format!("the build wrote no image id to {}", request.iidfile.display()))?;
        Ok(id.trim().to_string())
    }

    /// Whether the engine's daemon answers now; why not, if not. Podman has no daemon to lose: always `Ok`.
    fn daemon_answers(&self) -> Result<(), String> {
        match self.kind {
            Kind::Docker => probe(&self.path, &["version", "--format", "{{.Server.Version}}"]).map(|_| ()),
            Kind::Podman => Ok(()),
        }
    }

    /// `the docker daemon`, for messages.
    fn daemon_name(&self) -> String {
        format!("the {} daemon", self.shown())
    }

    /// Where the client finds its daemon: `DOCKER_HOST`, a context, or the default socket.
    fn daemon_address(&self) -> String {
        match (std::env::var("DOCKER_HOST"), std::env::var("DOCKER_CONTEXT")) {
            (Ok(host), _) if !host.is_empty() => format!("DOCKER_HOST={host}"),
            (_, Ok(context)) if !context.is_empty() => format!("DOCKER_CONTEXT={context}"),
            _ => "its current context, unix:///var/run/docker.sock by default".to_string(),
        }
    }

    /// Starts a build in the background, its output into `log`; `build` is what waits for it.
    pub(crate) fn build_in_background(
        &self,
        builder: Builder,
        request: &BuildRequest<'_>,
        log: &Path,
    ) -> Result<BackgroundBuild> {
        let (args, env) = self.build_command(builder, request);
        let shown_env: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        println!("$ {shown_env}{} {} > {} &", self.shown(), shell_words(&args), log.display());
        let file = std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
        let child = std::process::Command::new(&self.path)
            .args(&args)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot run {}", self.shown()))?;
        Ok(BackgroundBuild { child, started: std::time::Instant::now() })
    }

    /// `<engine> tag <source> <target>`.
    pub(crate) fn tag(&self, sh: &Shell, source: &str, target: &str) -> Result<()> {
        self.change(self.cmd(sh).args(["tag", source, target]))
            .with_context(|| format!("cannot tag {source} as {target}"))
    }

    /// Inspects a container; `None` when there is none of that name.
    pub fn container(&self, sh: &Shell, name: &str) -> Result<Option<ContainerInfo>> {
        let output = self
            .cmd(sh)
            .args(["container", "inspect", "--format", CONTAINER_FORMAT, name])
            .quiet()
            .ignore_status()
            .output()?;
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let fields: Vec<&str> = stdout.trim_end_matches('\n').split('\t').collect();
            if let [status, code, label] = fields.as_slice() {
                return Ok(Some(ContainerInfo {
                    status: status.to_string(),
                    exit_code: code.parse().unwrap_or(-1),
                    run_label: label.to_string(),
                }));
            }
            bail!("unexpected answer from {} container inspect: {stdout:?}", self.shown());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if is_missing(&stderr) {
            return Ok(None);
        }
        Err(self.daemon_error(&stderr))
    }

    /// Starts a container in the background; returns its id.
    /// The arguments of `run` for `request`, after `run` and its mode (`--detach`, `--rm`). The values of
    /// `--env` are in it: never print it as it is (`shown_run`).
    fn run_args(&self, request: &RunRequest<'_>) -> Vec<String> {
        let mut args = self.container_limits();
        args.extend(["--name".to_string(), request.name.to_string()]);
        for (key, value) in request.labels {
            args.extend(["--label".to_string(), format!("{key}={value}")]);
        }
        if let Some((host, container)) = request.publish {
            args.extend(["--publish".to_string(), format!("127.0.0.1:{host}:{container}")]);
        }
        if request.read_only {
            args.push("--read-only".to_string());
        }
        // Defence in depth, as Docker's and Kubernetes' baseline ask: no capability (the app binds a port
        // above 1024 as its own user), no gaining privileges through setuid files, a bound on processes.
        args.extend(["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit"].map(String::from));
        args.push(PIDS_LIMIT.to_string());
        args.extend(["--stop-timeout".to_string(), request.stop_timeout.to_string()]);
        for mount in request.tmpfs {
            args.extend(["--tmpfs".to_string(), mount.clone()]);
        }
        for volume in request.volumes {
            args.extend(["--volume".to_string(), volume.clone()]);
        }
        if let Some(file) = request.env_file {
            args.extend(["--env-file".to_string(), file.display().to_string()]);
        }
        for (key, value) in request.env {
            args.extend(["--env".to_string(), format!("{key}={value}")]);
        }
        args.push(request.image.to_string());
        args.extend(request.command.iter().cloned());
        args
    }

    /// `$ docker run ...` as printed: each `--env` value replaced by `***`.
    fn shown_run(&self, mode: &[&str], args: &[String]) -> String {
        let mut shown = vec![self.shown(), "run".to_string()];
        shown.extend(mode.iter().map(|m| m.to_string()));
        let mut redact = false;
        for arg in args {
            if redact {
                let key = arg.split('=').next().unwrap_or_default();
                shown.push(format!("{key}=***"));
            } else {
                shown.push(if arg.contains(' ') { format!("'{arg}'") } else { arg.clone() });
            }
            redact = arg == "--env";
        }
        format!("$ {}", shown.join(" "))
    }

    /// Starts the container in the background; returns its id.
    pub(crate) fn run_detached(&self, sh: &Shell, request: &RunRequest<'_>) -> Result<String> {
        let args = self.run_args(request);
        println!("{}", self.shown_run(&["--detach"], &args));
        if self.dry_run {
            return Ok(String::new());
        }
        self.cmd(sh)
            .args(["run", "--detach"])
            .args(&args)
            .quiet()
            .read()
            .with_context(|| format!("cannot start a container of {}", request.image))
    }

    /// Runs the container in the foreground, its output on ours (a terminal when ours is one), and removes it;
    /// returns its exit code.
    pub(crate) fn run_foreground(&self, request: &RunRequest<'_>) -> Result<i32> {
        use std::io::IsTerminal;
        let mut mode = vec!["--rm", "--interactive"];
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            mode.push("--tty");
        }
        let args = self.run_args(request);
        println!("{}", self.shown_run(&mode, &args));
        if self.dry_run {
            return Ok(0);
        }
        let status = std::process::Command::new(&self.path)
            .arg("run")
            .args(&mode)
            .args(&args)
            .status()
            .with_context(|| format!("cannot run {}", self.shown()))?;
        Ok(status.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)))
    }

    /// The container's output so far (stdout and stderr), for error messages.
    pub fn logs(&self, sh: &Shell, name: &str) -> String {
        match self.cmd(sh).args(["logs", name]).quiet().ignore_status().output() {
            Ok(output) => {
                let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&output.stderr));
                text
            }
            Err(e) => format!("(cannot read the logs: {e})"),
        }
    }

    /// `<engine> logs --follow <name>`: a long-running child, in a process group of its own so that a terminal's
    /// Ctrl-C does not cut the container's last lines.
    pub(crate) fn follow_logs(&self, name: &str) -> Result<duct::Handle> {
        duct::cmd(&self.path, ["logs", "--follow", name])
            .stdin_null()
            .unchecked()
            .before_spawn(|command| {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
                Ok(())
            })
            .start()
            .with_context(|| format!("cannot run {} logs", self.shown()))
    }

    /// Stops a container: SIGTERM, then SIGKILL after `timeout` seconds.
    pub(crate) fn stop(&self, sh: &Shell, name: &str, timeout: u32) -> Result<()> {
        let timeout = timeout.to_string();
        self.change(self.cmd(sh).args(["stop", "--time", &timeout, name]).quiet().ignore_stdout())
            .with_context(|| format!("cannot stop the container {name}"))
    }

    /// Removes a container, stopping it first if it runs.
    pub fn remove(&self, sh: &Shell, name: &str) -> Result<()> {
        self.change(self.cmd(sh).args(["rm", "--force", name]).quiet().ignore_stdout())
            .with_context(|| format!("cannot remove the container {name}"))
    }
}

/// Removes a container (if it still exists) when dropped.
struct RemoveOnDrop<'a> {
    engine: &'a Engine,
    name: &'a str,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.engine.path)
            .args(["rm", "--force", self.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The hard limit of the line `name` of /proc/<pid>/limits (`Max open files  1024  20000  files`); `None` when
/// it is unlimited or absent.
fn hard_limit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------------------
// Registries: what a reference holds, pushes, multi-platform indexes. The engine's own login is used (docker's
// config.json and credential helpers, podman's auth.json); this tool never sees a credential.
// ---------------------------------------------------------------------------------------------------------

impl Engine {
    /// What podman needs to reach `registry` without TLS when it is on this machine (dockerd does that by
    /// default for 127.0.0.0/8; a registry elsewhere without TLS is the engine's configuration, not ours).
    pub(crate) fn tls_args(&self, registry: &str) -> Vec<String> {
        match self.kind {
            Kind::Podman if registry::is_loopback(registry) => vec!["--tls-verify=false".to_string()],
            _ => Vec::new(),
        }
    }

    /// `--insecure` for `docker manifest`, which talks to registries itself, when dockerd reaches `registry`
    /// without TLS: on this machine, or among the daemon's insecure registries.
    fn manifest_tls_args(&self, sh: &Shell, registry: &str) -> Vec<String> {
        if self.kind == Kind::Podman {
            return self.tls_args(registry);
        }
        let insecure = registry::is_loopback(registry) || {
            let format = "{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}|{{range $name, $index := \
                          .RegistryConfig.IndexConfigs}}{{if not $index.Secure}}{{$name}} {{end}}{{end}}";
            let text =
                self.cmd(sh).args(["info", "--format", format]).quiet().ignore_stderr().read().unwrap_or_default();
            let (cidrs, names) = text.split_once('|').unwrap_or((&text, ""));
            let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
            registry::in_insecure_list(registry, &words(cidrs), &words(names))
        };
        if insecure {
            vec!["--insecure".to_string()]
        } else {
            Vec::new()
        }
    }

    /// The images of a multi-platform index in its registry, as `(platform, digest)` (`linux/arm64`,
    /// `linux/arm/v7`); `None` when `reference` names a single image, or the engine cannot tell (podman 4.3 asks
    /// no registry for an index; it pulls with `--platform`).
    pub(crate) fn index_platforms(&self, sh: &Shell, reference: &str) -> Result<Option<Vec<(String, String)>>> {
        if self.kind == Kind::Podman {
            return Ok(None);
        }
        let registry = registry::registry_of(reference);
        let output = self
            .cmd(sh)
            .args(["manifest", "inspect"])
            .args(self.manifest_tls_args(sh, &registry))
            .arg(reference)
            .quiet()
            .ignore_status()
            .output()?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr);
            return Err(registry::error(&self.shown(), false, &registry, &format!("look up {reference}"), &text));
        }
        let manifest = json::parse(&String::from_utf8_lossy(&output.stdout))
            .with_context(|| format!("unexpected answer from {} manifest inspect {reference}", self.shown()))?;
        let Some(manifests) = manifest.get("manifests").and_then(Json::as_array) else { return Ok(None) };
        let mut platforms = Vec::new();
        for entry in manifests {
            let (Some(digest), Some(platform)) = (entry.get("digest").and_then(Json::as_str), entry.get("platform"))
            else {
                continue;
            };
            let field = |key: &str| platform.get(key).and_then(Json::as_str).unwrap_or_default();
            let mut name = format!("{}/{}", field("os"), field("architecture"));
            if !field("variant").is_empty() {
                name = format!("{name}/{}", field("variant"));
            }
            platforms.push((name, digest.to_string()));
        }
        Ok(Some(platforms))
    }

    /// Pushes the local image `image` (an id) as `remote` (`<repository>:<tag>`) to `registry`; returns the digest
    /// the registry has it under. Docker pushes only tags: `remote` is given to the image first and recorded in
    /// `tagged`, for the caller to remove again whatever happens. A stop signal stops the push (`Interrupted`).
    pub(crate) fn push(
        &self,
        sh: &Shell,
        image: &str,
        remote: &str,
        registry: &str,
        tagged: &mut Vec<String>,
        signals: &mut Signals,
    ) -> Result<String> {
        let what = format!("push {remote}");
        match self.kind {
            Kind::Docker => {
                self.tag(sh, image, remote)?;
                tagged.push(remote.to_string());
                let (ok, output) = self.run_streamed(&["push".to_string(), remote.to_string()], signals)?;
                if self.dry_run {
                    return Ok(String::new());
                }
                if !ok {
                    return Err(registry::error(&self.shown(), false, registry, &what, &output));
                }
                // `<tag>: digest: sha256:... size: 1234`
                let digest = output.lines().find_map(|line| {
                    let rest = line.split(": digest: ").nth(1)?;
                    rest.split_whitespace().next().filter(|d| d.starts_with("sha256:")).map(str::to_string)
                });
                digest.ok_or_else(|| format_err!("{} push {remote} printed no digest:\n{output}", self.shown()))
            }
            Kind::Podman => {
                let digest_file = std::env::temp_dir().join(format!("xtask-push-{}.digest", std::process::id()));
                let mut args = vec!["push".to_string()];
                args.extend(self.tls_args(registry));
                args.extend(["--digestfile".to_string(), digest_file.display().to_string()]);
                args.extend([image.to_string(), format!("docker://{remote}")]);
                let _ = std::fs::remove_file(&digest_file);
                let (ok, output) = self.run_streamed(&args, signals)?;
                if self.dry_run {
                    return Ok(String::new());
                }
                let digest = std::fs::read_to_string(&digest_file).unwrap_or_default().trim().to_string();
                let _ = std::fs::remove_file(&digest_file);
                if !ok {
                    return Err(registry::error(&self.shown(), true, registry, &what, &output));
                }
                if !digest.starts_with("sha256:") {
                    bail!("{} push {remote} wrote no digest:\n{output}", self.shown());
                }
                Ok(digest)
            }
        }
    }

    /// Pushes a multi-platform index of `members` (`<repository>@<digest>`, each pushed before) as `list`
    /// (`<repository>:<tag>`); returns its digest. The engine keeps the index locally while it makes it
    /// (`docker manifest` under its config directory, podman in its store): `list` is recorded in `lists` for the
    /// caller to remove whatever happens.
    pub(crate) fn push_index(
        &self,
        sh: &Shell,
        list: &str,
        members: &[String],
        registry: &str,
        lists: &mut Vec<String>,
        signals: &mut Signals,
    ) -> Result<String> {
        let what = format!("push the index {list}");
        let podman = self.kind == Kind::Podman;
        let tls = self.manifest_tls_args(sh, registry);
        // An index of that name left by someone else's interrupted run: `create` would refuse to amend it.
        self.remove_index(sh, list);
        lists.push(list.to_string());
        let mut create: Vec<String> = vec!["manifest".into(), "create".into()];
        if podman {
            create.push(list.to_string());
        } else {
            create.extend(tls.iter().cloned());
            create.push(list.to_string());
            create.extend(members.iter().cloned());
        }
        let (ok, output) = self.run_streamed(&create, signals)?;
        if !ok && !self.dry_run {
            return Err(registry::error(&self.shown(), podman, registry, &what, &output));
        }
        if podman {
            for member in members {
                let mut add: Vec<String> = vec!["manifest".into(), "add".into()];
                add.extend(tls.iter().cloned());
                add.extend([list.to_string(), format!("docker://{member}")]);
                let (ok, output) = self.run_streamed(&add, signals)?;
                if !ok && !self.dry_run {
                    return Err(registry::error(&self.shown(), true, registry, &what, &output));
                }
            }
        }
        let digest_file = std::env::temp_dir().join(format!("xtask-index-{}.digest", std::process::id()));
        let mut push: Vec<String> = vec!["manifest".into(), "push".into()];
        push.extend(tls);
        if podman {
            push.extend(["--all".to_string(), "--digestfile".to_string(), digest_file.display().to_string()]);
            push.extend([list.to_string(), format!("docker://{list}")]);
        } else {
            push.extend(["--purge".to_string(), list.to_string()]);
        }
        let _ = std::fs::remove_file(&digest_file);
        let (ok, output) = self.run_streamed(&push, signals)?;
        if self.dry_run {
            return Ok(String::new());
        }
        if !ok {
            return Err(registry::error(&self.shown(), podman, registry, &what, &output));
        }
        let digest = if podman {
            std::fs::read_to_string(&digest_file).unwrap_or_default().trim().to_string()
        } else {
            // The last line is the index's digest.
            output.lines().map(str::trim).rfind(|l| l.starts_with("sha256:")).unwrap_or_default().to_string()
        };
        let _ = std::fs::remove_file(&digest_file);
        if !digest.starts_with("sha256:") {
            bail!("{} manifest push {list} gave no digest:\n{output}", self.shown());
        }
        Ok(digest)
    }

    /// Removes the local tag `tag` (the image stays under its other tags), quietly: for cleaning up.
    pub(crate) fn untag(&self, sh: &Shell, tag: &str) {
        // `podman untag IMAGE` alone would remove every name of the image.
        let args: Vec<&str> = match self.kind {
            Kind::Docker => vec!["rmi", "--no-prune", tag],
            Kind::Podman => vec!["untag", tag, tag],
        };
        if self.dry_run {
            return;
        }
        let _ = self.cmd(sh).args(args).quiet().ignore_stdout().ignore_stderr().ignore_status().run();
    }

    /// Removes the local index `list` (`docker manifest rm`, `podman manifest rm`), quietly: for cleaning up.
    pub(crate) fn remove_index(&self, sh: &Shell, list: &str) {
        if self.dry_run {
            return;
        }
        let _ =
            self.cmd(sh).args(["manifest", "rm", list]).quiet().ignore_stdout().ignore_stderr().ignore_status().run();
    }

    /// Runs the engine with `args`, its output (both streams) printed as it comes, indented; a stop signal
    /// (SIGINT, SIGTERM, SIGHUP) stops it and comes back as `Interrupted`. Returns whether it succeeded, and
    /// its output. In a dry run, prints the command only.
    fn run_streamed(&self, args: &[String], signals: &mut Signals) -> Result<(bool, String)> {
        let shown: Vec<OsString> = args.iter().map(OsString::from).collect();
        println!("$ {} {}", self.shown(), shell_words(&shown));
        if self.dry_run {
            return Ok((true, String::new()));
        }
        let reader = std::sync::Arc::new(
            duct::cmd(&self.path, args)
                .stdin_null()
                .stderr_to_stdout()
                .unchecked()
                .reader()
                .with_context(|| format!("cannot run {}", self.shown()))?,
        );
        let (send, receive) = std::sync::mpsc::channel::<String>();
        let lines = reader.clone();
        let thread = std::thread::spawn(move || {
            for line in BufReader::new(&*lines).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut output = String::new();
        loop {
            match receive.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    println!("  | {line}");
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Some(signal) = signals.pending().next() {
                let _ = reader.kill();
                let _ = thread.join();
                return Err(crate::signals::Interrupted(signal).into());
            }
        }
        let _ = thread.join();
        let status = reader.try_wait().context("cannot wait for the engine")?.map(|o| o.status);
        Ok((status.is_some_and(|s| s.success()), output))
    }
}

fn is_missing(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    lower.contains("no such image")
        || lower.contains("no such object")
        || lower.contains("no such container")
        || lower.contains("image not known")
        || lower.contains("no container with name")
}

fn parse_image_info(line: &str) -> Result<ImageInfo> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [id, size, platform, fingerprint, stem] = fields.as_slice() else {
        bail!("unexpected answer from image inspect: {line:?}");
    };
    Ok(ImageInfo {
        // podman prints the digest without its algorithm; docker and the id files of both have it.
        id: if id.contains(':') { id.to_string() } else { format!("sha256:{id}") },
        size: size.parse().with_context(|| format!("unexpected image size in {line:?}"))?,
        platform: platform.to_string(),
        fingerprint: fingerprint.to_string(),
        stem: stem.to_string(),
    })
}

impl Engine {
    /// The unix socket of the Docker daemon the client talks to, when that is plain to see: `DOCKER_HOST` unset
    /// (or `unix://...`), no context chosen (`DOCKER_CONTEXT`, the client configuration's `currentContext`).
    fn api_socket(&self) -> Option<PathBuf> {
        if self.kind != Kind::Docker || self.dry_run {
            return None;
        }
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => PathBuf::from(host.strip_prefix("unix://")?),
            _ => PathBuf::from("/var/run/docker.sock"),
        };
        if std::env::var("DOCKER_CONTEXT").is_ok_and(|c| !c.is_empty() && c != "default") {
            return None;
        }
        let config = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
        };
        if let Ok(text) = std::fs::read_to_string(config.join("config.json")) {
            let chosen = crate::json::parse(&text)
                .ok()
                .and_then(|j| j.get("currentContext").and_then(|c| c.as_str().map(str::to_string)));
            if chosen.is_some_and(|c| !c.is_empty() && c != "default") {
                return None;
            }
        }
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(&socket).ok().filter(|m| m.file_type().is_socket()).map(|_| socket)
    }
}

impl Engine {
    /// The daemon's socket, when the client would use it (Docker, its socket plain to see): found once, for the
    /// questions and the load that follow.
    pub(crate) fn api(&self) -> Option<Api> {
        self.api_socket().map(|socket| Api { socket })
    }

    /// What decides the client's BuildKit without asking it: the client binary (path, size, modification time),
    /// the plugin folders it looks in for buildx (their modification times), the variables that pick a daemon.
    fn client_key(&self) -> Option<String> {
        let stamp = |path: &Path| {
            std::fs::metadata(path).ok().map_or("-".to_string(), |m| {
                let time = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                format!("{} {}", m.len(), time.map_or(0, |t| t.as_nanos()))
            })
        };
        let config = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
        };
        let mut key = format!("{} {}\n", self.path.display(), stamp(&self.path));
        for dir in [
            config.join("cli-plugins"),
            "/usr/local/lib/docker/cli-plugins".into(),
            "/usr/local/libexec/docker/cli-plugins".into(),
            "/usr/lib/docker/cli-plugins".into(),
            "/usr/libexec/docker/cli-plugins".into(),
        ] {
            key.push_str(&format!("{} {}\n", dir.display(), stamp(&dir)));
        }
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"] {
            key.push_str(&format!("{var}={}\n", std::env::var(var).unwrap_or_default()));
        }
        Some(poetry_export::sha256::hex_digest(key.as_bytes()))
    }

    /// The client's version and BuildKit as a previous run found them for the same client, when the engine
    /// (asked on its socket: a few ms, against two client starts, ~0.1 s) is the same version as then.
    fn remembered_client(&self) -> Option<(String, BuildKit)> {
        let socket = self.api_socket()?;
        let text = std::fs::read_to_string(crate::paths::engine_memo()).ok()?;
        let mut lines = text.lines();
        if lines.next()? != self.client_key()? {
            return None;
        }
        let (client, server, offered) = (lines.next()?, lines.next()?, lines.next()?);
        if api_version(&socket)? != server {
            return None;
        }
        let offered = match offered.split_once(' ') {
            Some(("buildx", version)) => BuildKit::Buildx(version.to_string()),
            _ if offered == "env" => BuildKit::Env,
            _ => return None,
        };
        Some((client.to_string(), offered))
    }

    /// Remembers what the client said, when it offers BuildKit (without, it is asked every time: it says why).
    fn remember_client(&self, client: &str, server: &str, offered: &BuildKit) {
        let offered = match offered {
            BuildKit::Buildx(version) if !version.contains('\n') => format!("buildx {version}"),
            BuildKit::Env => "env".to_string(),
            _ => return,
        };
        let (Some(key), Some(_)) = (self.client_key(), self.api_socket()) else { return };
        let path = crate::paths::engine_memo();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::gen::write_atomic(&path, format!("{key}\n{client}\n{server}\n{offered}\n").as_bytes());
    }
}

/// The Docker daemon's API on its socket (`Engine::api`).
pub(crate) struct Api {
    socket: PathBuf,
}

impl Api {
    /// `GET <path>`: the JSON of a 200; `None` for anything else.
    pub(crate) fn json(&self, path: &str) -> Option<crate::json::Json> {
        api_get(&self.socket, path)?.ok()
    }

    /// Loads an image archive (`docker load`'s format); an error says the daemon's words.
    pub(crate) fn load(&self, archive: &[u8]) -> Result<()> {
        let (status, body) = api_request(&self.socket, "POST", "/images/load?quiet=1", Some(archive))
            .ok_or_else(|| format_err!("the engine did not answer the image's load"))?;
        // The answer is a stream of JSON messages; a failure is one with an `error`.
        let failure = body
            .split(['\r', '\n'])
            .filter_map(|m| crate::json::parse(m.trim()).ok())
            .find_map(|m| m.get("error").and_then(|e| e.as_str()).map(str::to_string));
        match (status.as_str(), failure) {
            ("200", None) => Ok(()),
            (_, Some(error)) => bail!("the engine refused the image: {error}"),
            (status, None) => bail!("the engine refused the image (HTTP {status}): {}", body.trim()),
        }
    }
}

/// The engine's version: the `Server: Docker/<version> (<os>)` header of `GET /_ping` on its socket, else `GET
/// /version` (which Docker 20.10 answers by running `runc --version` and `docker-init --version`: 17-30 ms
/// against 12-23 ms for the ping, most of that curl's own start, 3 each).
fn api_version(socket: &Path) -> Option<String> {
    let (status, head, _) = api_exchange(socket, "GET", "/_ping", None)?;
    let server = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("server").then(|| value.trim().strip_prefix("Docker/")?.split(' ').next())?
    });
    match server {
        Some(version) if status == "200" && !version.is_empty() => Some(version.to_string()),
        _ => {
            let json = api_get(socket, "/version")?.ok()?;
            json.get("Version").and_then(|v| v.as_str()).map(str::to_string)
        }
    }
}

/// `GET <path>` on the daemon's socket: the JSON of a 200, `Err(status)` for another status, `None` when there is
/// no answer.
fn api_get(socket: &Path, path: &str) -> Option<Result<crate::json::Json, String>> {
    let (status, body) = api_request(socket, "GET", path, None)?;
    if status != "200" {
        return Some(Err(status));
    }
    crate::json::parse(&body).ok().map(Ok)
}

/// One HTTP/1.0 request on the daemon's socket (the answer then ends with the connection, never chunked): the
/// status and the body, `None` when there is no answer.
fn api_request(socket: &Path, method: &str, path: &str, body: Option<&[u8]>) -> Option<(String, String)> {
    api_exchange(socket, method, path, body).map(|(status, _, body)| (status, body))
}

/// `api_request` with the answer's head too (its status line and headers).
fn api_exchange(socket: &Path, method: &str, path: &str, body: Option<&[u8]>) -> Option<(String, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    // A question is answered at once; an upload (an image's load) is given a minute.
    let timeout = std::time::Duration::from_secs(if body.is_some() { 60 } else { 10 });
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n").into_bytes();
    if let Some(body) = body {
        request.extend(format!("Content-Type: application/x-tar\r\nContent-Length: {}\r\n", body.len()).bytes());
    }
    request.extend(b"\r\n");
    request.extend(body.unwrap_or_default());
    stream.write_all(&request).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split(' ').nth(1)?;
    Some((status.to_string(), head.to_string(), body.to_string()))
}

/// `GET /images/<reference>/json` on the daemon's socket: the image, `Some(None)` when there is none of that
/// name, `None` when the answer is anything else (then the client asks).
fn api_image(socket: &Path, reference: &str) -> Option<Option<ImageInfo>> {
    if reference.is_empty() || !reference.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c)) {
        return None;
    }
    let json = match api_get(socket, &format!("/images/{reference}/json"))? {
        Ok(json) => json,
        Err(status) if status == "404" => return Some(None),
        Err(_) => return None,
    };
    let text = |j: Option<&crate::json::Json>| j.and_then(|j| j.as_str()).map(str::to_string);
    let id = text(json.get("Id"))?;
    let size = json.get("Size")?.as_u64()?;
    let platform = format!("{}/{}", text(json.get("Os"))?, text(json.get("Architecture"))?);
    let label =
        |key| text(json.get("Config").and_then(|c| c.get("Labels")).and_then(|l| l.get(key))).unwrap_or_default();
    let (fingerprint, stem) = (label(FINGERPRINT_LABEL), label(STEM_LABEL));
    Some(Some(ImageInfo { id, size, platform, fingerprint, stem }))
}

/// Arguments as a shell would need them quoted, for printing commands.
pub(crate) fn shell_words(args: &[OsString]) -> String {
    args.iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c)) {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_decision() {
        assert_eq!(buildkit_without_buildx("20.10.24+dfsg1", "20.10.24+dfsg1"), BuildKit::Env);
        assert!(
            matches!(buildkit_without_buildx("28.2.2", "20.10.24+dfsg1"), BuildKit::No(why) if why.contains("buildx"))
        );
        assert!(matches!(buildkit_without_buildx("20.10.5", "17.12.1-ce"), BuildKit::No(why) if why.contains("18.09")));
        assert_eq!(parse_docker_version("Docker version 20.10.24+dfsg1, build 297e128").unwrap(), "20.10.24+dfsg1");
        assert_eq!(major_minor("v0.12.1"), Some((0, 12)));
    }
}
