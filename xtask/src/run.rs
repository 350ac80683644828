//! `cargo xtask run`: the image (built first if needed, like `cargo xtask image`) in a container on 127.0.0.1,
//! waited for until its health path answers, then its logs in the foreground. Ctrl-C, SIGTERM or SIGHUP stop
//! the container gracefully and remove it; nothing is left behind. `--detach` leaves it running instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use signal_hook::iterator::Signals;
use xshell::Shell;

use crate::config::Config;
use crate::dockerfile;
use crate::engine::{self, Engine, RunRequest};
use crate::flags::Run;
use crate::image::{self, BuildOptions};

/// How long the container gets to stop after SIGTERM before the engine kills it.
const STOP_TIMEOUT: u32 = 10;

impl Run {
    pub(crate) fn run(self, sh: &Shell) -> Result<()> {
        run(sh, &self)
    }
}

fn run(sh: &Shell, flags: &Run) -> Result<()> {
    let timeout = Duration::from_secs(flags.timeout_secs);
    let env = &flags.env;
    // Catch the signals before anything starts, so that none is lost in between.
    let mut signals = crate::signals::catch_stop_signals()?;

    let options = BuildOptions {
        settings: &flags.settings,
        engine: &flags.engine,
        no_cache: false,
        always_build: false,
        force: false,
        dry_run: flags.dry_run,
    };
    let built = image::build(sh, &options)?;
    let config = &built.config;
    let engine = &built.engine;
    let port = flags.port.unwrap_or(config.port);
    let name = container_name(&config.name);
    if !engine.dry_run {
        clear_the_way(sh, engine, &name, &config.name, flags.replace)?;
        crate::server::ensure_port_free(port, "run")?;
    }
    let home = dockerfile::home_dir(config);
    let tmpfs = ["/tmp".to_string(), engine.private_tmpfs(&home, config.uid)];
    let labels = [(engine::RUN_LABEL.to_string(), config.name.clone())];
    let read_only = !flags.writable;
    let image = if engine.dry_run { built.tag.clone() } else { built.id.clone() };
    let request = RunRequest {
        name: &name,
        image: &image,
        labels: &labels,
        publish: (port, config.port),
        read_only,
        tmpfs: if read_only { &tmpfs } else { &[] },
        env,
    };
    engine.run_detached(sh, &request)?;
    if engine.dry_run {
        return Ok(());
    }
    let url = format!("http://127.0.0.1:{port}");
    println!("run: started container {name} of {} on {url}; waiting for {}", built.tag, config.health_path);
    if let Err(e) = wait_healthy(sh, engine, config, &name, port, timeout, &mut signals) {
        let _ = engine.remove(sh, &name);
        return Err(e);
    }
    println!("run: {url} answers (GET {} → 200)", config.health_path);
    if flags.detach {
        println!("run: left running; stop and remove it with `{} rm --force {name}`", engine.shown());
        return Ok(());
    }
    println!("run: logs follow; Ctrl-C stops and removes the container");
    follow(sh, engine, &name, &mut signals)
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
) -> Result<()> {
    let started = Instant::now();
    let mut last_check = Instant::now();
    loop {
        if let Some(signal) = signals.pending().next() {
            println!("run: {} received while waiting: removing {name}", crate::signals::name(signal));
            bail!("interrupted before {name} answered");
        }
        if http_status(port, &config.health_path) == Some(200) {
            return Ok(());
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

/// Streams the container's logs until it stops by itself or a signal asks to stop it; then removes it.
fn follow(sh: &Shell, engine: &Engine, name: &str, signals: &mut Signals) -> Result<()> {
    let logs = engine.follow_logs(name)?;
    let mut stopping = false;
    loop {
        if logs.try_wait()?.is_some() {
            break;
        }
        if let Some(signal) = signals.pending().next() {
            if stopping {
                println!("run: {} received again: killing {name}", crate::signals::name(signal));
                engine.remove(sh, name)?;
            } else {
                println!(
                    "run: {} received: stopping {name} (up to {STOP_TIMEOUT} seconds)",
                    crate::signals::name(signal)
                );
                stopping = true;
                // The logs end when the container has stopped, showing its last lines.
                let (sh_engine, container) = (engine.clone(), name.to_string());
                std::thread::spawn(move || {
                    let sh = Shell::new().ok();
                    if let Some(sh) = sh {
                        let _ = sh_engine.stop(&sh, &container, STOP_TIMEOUT);
                    }
                });
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = engine.container(sh, name)?;
    engine.remove(sh, name)?;
    match info {
        Some(_) if stopping => {
            println!("run: stopped and removed {name}");
            Ok(())
        }
        Some(info) if info.exit_code == 0 => {
            println!("run: {name} exited; removed it");
            Ok(())
        }
        Some(info) => bail!("the container {name} exited with code {} (logs above); removed it", info.exit_code),
        None => bail!("the container {name} disappeared (removed by someone else?)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        assert_eq!(container_name("string-service"), "string-service");
        assert_eq!(container_name("registry.example.com/team/api"), "registry.example.com-team-api");
    }
}
