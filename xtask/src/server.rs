//! `cargo xtask server`: run the app on the host from its local virtualenv, as `make server` did: gunicorn with
//! the app's gunicorn config in the foreground, or a reloading uvicorn for development. The server runs in its
//! own process group; Ctrl-C, SIGTERM or SIGHUP stop it (SIGTERM to the server, then SIGKILL to the whole group
//! if it hangs), so nothing is left listening on the port.

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use signal_hook::iterator::Signals;
use xshell::Shell;

use crate::config::{Config, Interface, UVICORN_BUILTIN_WORKER, UVICORN_WORKER};
use crate::flags::{Overrides, Server};
use crate::{paths, settings, venv};

/// How long the server gets to stop after SIGTERM before its process group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        let config = settings::resolve(&Overrides { app: self.app, ..Overrides::default() })?.config;
        let port = self.port.unwrap_or(config.port);
        ensure_port_free(port, "server")?;
        let venv = venv::ensure(sh, &config)?;
        let server = command(&config, &venv, port, self.reload)?;
        // Again: refreshing the virtualenv may have taken a while.
        ensure_port_free(port, "server")?;
        serve(&config, &server, port)
    }
}

/// The server's command line.
struct ServerCommand {
    program: PathBuf,
    args: Vec<String>,
}

fn command(config: &Config, venv: &venv::Venv, port: u16, reload: bool) -> Result<ServerCommand> {
    let Some(app) = config.app.clone() else {
        bail!("{}", config.command_problem.as_deref().unwrap_or("tool.xtask.app is not set"));
    };
    let has_gunicorn = venv.dir.join("bin").join("gunicorn").is_file();
    // Without gunicorn, an ASGI app runs under uvicorn alone, as in the image.
    if config.interface == Interface::Asgi && (reload || !has_gunicorn) {
        let (module, factory) = match app.strip_suffix("()") {
            Some(name) => (name.to_string(), true),
            None => (app.clone(), false),
        };
        let mut args = vec![module];
        if factory {
            args.push("--factory".into());
        }
        if reload {
            args.push("--reload".into());
        }
        // Watch the app's own packages only: by default uvicorn would poll every .py file under the app
        // directory, the virtualenv's thousands included.
        for include in config.include.iter().filter(|_| reload) {
            if config.app_dir.join(&include.source).is_dir() {
                args.extend(["--reload-dir".into(), include.source.clone()]);
            }
        }
        args.extend(["--host".into(), "127.0.0.1".into(), "--port".into(), port.to_string()]);
        return Ok(ServerCommand { program: venv.script("uvicorn", "uvicorn")?, args });
    }
    let mut args = vec!["--bind".to_string(), format!("127.0.0.1:{port}")];
    match &config.gunicorn_config {
        Some(file) => args.extend(["--config".into(), file.clone()]),
        None if config.interface == Interface::Asgi => {
            let worker = if venv.has_module("uvicorn_worker") { UVICORN_WORKER } else { UVICORN_BUILTIN_WORKER };
            args.extend(["--worker-class".into(), worker.into()]);
        }
        None => {}
    }
    if reload {
        args.push("--reload".into());
    }
    args.push(app);
    Ok(ServerCommand { program: venv.script("gunicorn", "gunicorn")?, args })
}

/// Serves until the server exits (0) or a signal stops it: then 128 + the signal, as a shell reports it.
fn serve(config: &Config, server: &ServerCommand, port: u16) -> Result<ExitCode> {
    // Catch the signals before the server exists, so that none is lost in between.
    let mut signals = crate::signals::catch_stop_signals()?;
    println!("server: http://127.0.0.1:{port} (Ctrl-C stops it)");
    println!(
        "$ cd {} && {} {}",
        paths::display(&config.app_dir),
        paths::display(&server.program),
        server.args.join(" ")
    );
    // On Linux, the server gets SIGTERM when we die, even by SIGKILL, so that it never outlives `cargo xtask`
    // (util-linux's setpriv sets the parent-death signal, then runs the server in its place).
    let setpriv = which::which("setpriv").ok().filter(|_| cfg!(target_os = "linux"));
    let mut expression = match &setpriv {
        Some(setpriv) => {
            let mut args: Vec<std::ffi::OsString> = vec!["--pdeathsig".into(), "TERM".into(), "--".into()];
            args.push(server.program.clone().into());
            args.extend(server.args.iter().map(Into::into));
            duct::cmd(setpriv, args)
        }
        None => duct::cmd(&server.program, &server.args),
    }
    .dir(&config.app_dir);
    if let Some(path) = venv::python_path(config) {
        expression = expression.env("PYTHONPATH", path);
    }
    let handle = expression
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdin_null()
        .unchecked()
        .before_spawn(|command| {
            // A process group of its own: the whole server, workers included, can be signalled at once, and a
            // terminal's Ctrl-C reaches only us.
            std::os::unix::process::CommandExt::process_group(command, 0);
            Ok(())
        })
        .start()
        .with_context(|| format!("cannot start {}", paths::display(&server.program)))?;
    let pid = handle.pids()[0];

    loop {
        if let Some(output) = handle.try_wait()? {
            let status = output.status;
            sweep(pid);
            if status.success() {
                println!("server: the server exited");
                return Ok(ExitCode::SUCCESS);
            }
            ensure_port_free(port, "server")?;
            bail!("the server exited with {status} (see its output above)");
        }
        if let Some(signal) = signals.pending().next() {
            println!("server: {} received: stopping the server (pid {pid})", crate::signals::name(signal));
            stop(&handle, pid, &mut signals)?;
            println!("server: stopped");
            return Ok(crate::signals::exit_code(signal));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to the server (gunicorn's master or uvicorn's reloader stop their own workers), then waits; kills the
/// whole process group after `STOP_TIMEOUT` or when another signal arrives.
fn stop(handle: &duct::Handle, pid: u32, signals: &mut Signals) -> Result<()> {
    // The child we started and have not reaped yet.
    crate::signals::kill(pid, "TERM");
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if handle.try_wait()?.is_some() {
            break;
        }
        let again = signals.pending().next().is_some();
        if again || Instant::now() >= deadline {
            let why = if again { "asked again" } else { "still running after 10 seconds" };
            eprintln!("server: {why}: killing the server's process group {pid}");
            // The process group we created; its leader is our unreaped child.
            crate::signals::kill_group(pid, "KILL");
            handle.wait()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sweep(pid);
    Ok(())
}

/// Kills what is left of the server's process group after its leader exited (a worker or a grandchild that
/// outlived it).
fn sweep(pgid: u32) {
    let left = group_members(pgid);
    if !left.is_empty() {
        eprintln!("server: killing processes the server left behind: {}", left.join("; "));
        crate::signals::kill_group(pgid, "KILL");
    }
}

/// The live (not zombie) processes of a process group, as `pid command`.
fn group_members(pgid: u32) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(proc) = std::fs::read_dir("/proc") else {
        // No /proc (not Linux): signal the group blindly.
        if crate::signals::group_exists(pgid) {
            out.push(format!("process group {pgid}"));
        }
        return out;
    };
    for entry in proc.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses.
        let Some((comm, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            let comm = comm.split_once(" (").map(|(_, c)| c).unwrap_or(comm);
            out.push(format!("{pid} {comm}"));
        }
    }
    out
}

/// Fails with a clear message when something already listens on 127.0.0.1:`port` (`task`: the task whose
/// `--port` picks another).
pub(crate) fn ensure_port_free(port: u16, task: &str) -> Result<()> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            let holder = listener_of(port).map(|p| format!(" (by {p})")).unwrap_or_default();
            bail!(
                "port {port} is already in use on 127.0.0.1{holder}: stop what listens there, or pick another port \
                 with `cargo xtask {task} --port <PORT>`"
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on 127.0.0.1:{port}: pick another port with --port")),
    }
}

/// Which process listens on TCP `port`, as `pid N: command line`, when /proc tells (Linux, own processes).
fn listener_of(port: u16) -> Option<String> {
    let wanted = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() > 9 && fields[1].ends_with(&wanted) && fields[3] == "0A" {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                return Some(format!("pid {pid}: {}", cmdline.trim_end()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use_names_the_port_and_the_way_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = ensure_port_free(port, "server").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("port {port} is already in use on 127.0.0.1 (by pid {}: ", std::process::id())),
            "{err}"
        );
        assert!(err.ends_with("pick another port with `cargo xtask server --port <PORT>`"), "{err}");
        drop(listener);
        ensure_port_free(port, "server").unwrap();
    }
}
