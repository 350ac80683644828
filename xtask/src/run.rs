//! `cargo xtask run`: the image (built first if needed, like `cargo xtask image`) in a container on 127.0.0.1,
//! waited for until its health path answers, then its logs in the foreground. Ctrl-C, SIGTERM or SIGHUP stop
//! the container gracefully and remove it; nothing is left behind. `--detach` leaves it running instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use signal_hook::iterator::Signals;
use xshell::Shell;

use crate::config::Config;
use crate::dockerfile;
use crate::engine::{self, Engine, RunRequest};
use crate::flags::Run;
use crate::image::{self, BuildOptions};

impl Run {
    /// Exits with the one-off command's code, or 0 once the server stopped.
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        run(sh, &self)
    }
}

fn run(sh: &Shell, flags: &Run) -> Result<ExitCode> {
    let timeout = Duration::from_secs(flags.timeout_secs);
    // Catch the signals before anything starts, so that none is lost in between.
    let mut signals = crate::signals::catch_stop_signals()?;

    let options = BuildOptions {
        settings: &flags.settings,
        engine: &flags.engine,
        no_cache: false,
        always_build: false,
        force: false,
        dry_run: flags.dry_run,
        multi_platform: false,
        for_registry: false,
        repository: None,
    };
    let built = image::build(sh, &options)?;
    let config = &built.config;
    let engine = &built.engine;
    let port = flags.port.unwrap_or(config.port);
    let name = container_name(&config.name);
    let env_file = env_file(config, flags.env_file.as_deref())?;
    let home = dockerfile::home_dir(config);
    let tmpfs = ["/tmp".to_string(), engine.private_tmpfs(&home, config.uid)];
    let labels = [(engine::RUN_LABEL.to_string(), config.name.clone())];
    let read_only = !flags.writable;
    let image = if engine.dry_run { built.tag.clone() } else { built.id.clone() };
    let mut volumes: Vec<String> =
        config.volumes.iter().map(|path| format!("{}:{path}", volume_name(&name, path))).collect();
    volumes.extend(flags.volumes.iter().cloned());
    let server = RunRequest {
        name: &name,
        image: &image,
        labels: &labels,
        publish: Some((port, config.port)),
        read_only,
        tmpfs: if read_only { &tmpfs } else { &[] },
        volumes: &volumes,
        env: &flags.env,
        env_file: env_file.as_deref(),
        command: &[],
        stop_timeout: dockerfile::engine_stop_timeout(config),
    };

    // A one-off command: in the foreground, like the server's container but without its port.
    if !flags.command.is_empty() {
        let one_off = format!("{name}-run-{}", std::process::id());
        let code =
            engine.run_foreground(&RunRequest { name: &one_off, publish: None, command: &flags.command, ..server })?;
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }

    if !engine.dry_run {
        clear_the_way(sh, engine, &name, &config.name, flags.replace)?;
        crate::server::ensure_port_free(port, "run")?;
    }
    // The release step, before the server: the same image, environment and volumes.
    if !config.release.is_empty() {
        println!("run: the release step first: {}", config.release.join(" "));
        let release = format!("{name}-release");
        let code =
            engine.run_foreground(&RunRequest { name: &release, publish: None, command: &config.release, ..server })?;
        if let Some(signal) = signals.pending().next() {
            println!(
                "run: {} received during the release step: the server was not started",
                crate::signals::name(signal)
            );
            return Ok(crate::signals::exit_code(signal));
        }
        if code != 0 {
            bail!(
                "the release step `{}` failed with exit code {code} (its output is above): the server was not started",
                config.release.join(" ")
            );
        }
    }
    engine.run_detached(sh, &server)?;
    if engine.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let url = format!("http://127.0.0.1:{port}");
    println!("run: started container {name} of {} on {url}; waiting for {}", built.tag, config.health_path);
    match wait_healthy(sh, engine, config, &name, port, timeout, &mut signals) {
        Ok(None) => {}
        Ok(Some(signal)) => {
            engine.remove(sh, &name)?;
            return Ok(crate::signals::exit_code(signal));
        }
        Err(e) => {
            let _ = engine.remove(sh, &name);
            return Err(e);
        }
    }
    println!("run: {url} answers (GET {} → 200)", config.health_path);
    if flags.detach {
        println!("run: left running; stop and remove it with `{} rm --force {name}`", engine.shown());
        return Ok(ExitCode::SUCCESS);
    }
    println!("run: logs follow; Ctrl-C stops and removes the container");
    follow(sh, engine, &name, server.stop_timeout, &mut signals)
}

/// The env file for the container: `--env-file` (which must exist), else `tool.xtask.env-file` when the
/// developer has that file (relative to the app).
fn env_file(config: &Config, flag: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(file) = flag {
        let path = std::env::current_dir()?.join(file);
        if !path.is_file() {
            bail!("--env-file {}: no such file", file.display());
        }
        return Ok(Some(path));
    }
    let Some(file) = &config.env_file else { return Ok(None) };
    let path = config.app_dir.join(file);
    if path.is_file() {
        Ok(Some(path))
    } else {
        println!("run: note: tool.xtask.env-file {file} is not there; running without it");
        Ok(None)
    }
}

/// The named volume `run` mounts at the data path `path` of the container `container`: `notes-data` for
/// `/data`, kept from one run to the next (`docker volume rm` deletes it).
pub(crate) fn volume_name(container: &str, path: &str) -> String {
    let slug: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    container_name(&format!("{container}-{}", slug.join("-")))
}

/// The container's name: the image name, made valid for a container (`team/api` → `team-api`).
pub(crate) fn container_name(image_name: &str) -> String {
    image_name.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect()
}

/// Removes a container of the same name that an earlier `cargo xtask run` left stopped (or running, with
/// `--replace`); refuses to touch anything else.
fn clear_the_way(sh: &Shell, engine: &Engine, name: &str, image_name: &str, replace: bool) -> Result<()> {
    let Some(existing) = engine.container(sh, name)? else { return Ok(()) };
    let docker = engine.shown();
    if existing.run_label != image_name {
        bail!(
            "a container named {name} exists and `cargo xtask run` did not start it: remove it (`{docker} rm \
             --force {name}`) or run under another name (--name)"
        );
    }
    if existing.status == "running" && !replace {
        bail!(
            "{name} is already running (started by `cargo xtask run`, in another terminal or with --detach): stop \
             it with `{docker} rm --force {name}`, or pass --replace"
        );
    }
    println!("run: removing the {} container {name} an earlier run left", existing.status);
    engine.remove(sh, name)
}

/// Polls the health path until it answers 200; fails with the container's logs when the container exits or
/// the time is up; stops on a signal.
fn wait_healthy(
    sh: &Shell,
    engine: &Engine,
    config: &Config,
    name: &str,
    port: u16,
    timeout: Duration,
    signals: &mut Signals,
) -> Result<Option<i32>> {
    let started = Instant::now();
    let mut last_check = Instant::now();
    loop {
        if let Some(signal) = signals.pending().next() {
            println!("run: {} received while waiting: removing {name}", crate::signals::name(signal));
            return Ok(Some(signal));
        }
        if http_status(port, &config.health_path) == Some(200) {
            return Ok(None);
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let Some(container) = engine.container(sh, name)? {
                if container.status != "running" && container.status != "created" {
                    let logs = engine.logs(sh, name);
                    bail!(
                        "the container exited (status {}, exit code {}) before {} answered; its logs:\n{logs}",
                        container.status,
                        container.exit_code,
                        config.health_path
                    );
                }
            }
        }
        if started.elapsed() >= timeout {
            let logs = engine.logs(sh, name);
            bail!(
                "GET {} on 127.0.0.1:{port} did not answer 200 within {} seconds; the container's logs:\n{logs}",
                config.health_path,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status code of `GET path` on 127.0.0.1:`port`, if anything answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Streams the container's logs until it stops by itself (0) or a signal asks to stop it (128 + the signal);
/// then removes it.
fn follow(sh: &Shell, engine: &Engine, name: &str, stop_timeout: u32, signals: &mut Signals) -> Result<ExitCode> {
    let logs = engine.follow_logs(name)?;
    let mut stopping = None;
    loop {
        if logs.try_wait()?.is_some() {
            break;
        }
        if let Some(signal) = signals.pending().next() {
            if stopping.is_some() {
                println!("run: {} received again: killing {name}", crate::signals::name(signal));
                engine.remove(sh, name)?;
            } else {
                println!(
                    "run: {} received: stopping {name} (up to {stop_timeout} seconds)",
                    crate::signals::name(signal)
                );
                stopping = Some(signal);
                // The logs end when the container has stopped, showing its last lines.
                let (sh_engine, container) = (engine.clone(), name.to_string());
                std::thread::spawn(move || {
                    let sh = Shell::new().ok();
                    if let Some(sh) = sh {
                        let _ = sh_engine.stop(&sh, &container, stop_timeout);
                    }
                });
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = engine.container(sh, name)?;
    engine.remove(sh, name)?;
    match info {
        Some(_) if stopping.is_some() => {
            println!("run: stopped and removed {name}");
            Ok(stopping.map(crate::signals::exit_code).unwrap_or(ExitCode::SUCCESS))
        }
        Some(info) if info.exit_code == 0 => {
            println!("run: {name} exited; removed it");
            Ok(ExitCode::SUCCESS)
        }
        Some(info) => bail!("the container {name} exited with code {} (logs above); removed it", info.exit_code),
        None => bail!("the container {name} disappeared (removed by someone else?)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names() {
        assert_eq!(volume_name("notes", "/data"), "notes-data");
        assert_eq!(volume_name("site", "/var/lib/site/"), "site-var-lib-site");
    }

    #[test]
    fn container_names() {
        assert_eq!(container_name("orders-api"), "orders-api");
        assert_eq!(container_name("registry.example.com/team/api"), "registry.example.com-team-api");
    }
}
