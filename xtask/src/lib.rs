//! `cargo xtask`: replaces a Python app's Makefile. The binary (`main.rs`) calls `main` here; the library
//! target exists for the workspace's benchmarks (`xtask-bench`), which drive the same engine and settings.
//! See `cargo xtask --help` and the README's architecture section.

mod app_layer;
mod bench;
mod bytecode;
pub mod config;
mod credentials;
mod detect;
pub mod dockerfile;
mod doctor;
pub mod engine;
mod export;
pub mod flags;
pub mod gen;
mod git_deps;
mod identity;
mod image;
mod index;
mod init;
mod inventory;
mod json;
mod path_deps;
pub mod paths;
mod pip;
mod project_wheel;
mod push;
mod pytest;
mod registry;
pub mod run;
mod sbom;
mod sdists;
mod server;
pub mod settings;
pub mod signals;
mod site;
mod system_packages;
mod tarball;
mod toml_file;
mod uv;
mod venv;
mod wheels;

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags::{Command, Parsed};

/// `cargo xtask <args>`: prints the error and each of its causes on a line of its own.
pub fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            // A task that watched stop signals (`image`, `wheels`) ends as the signal would have ended it.
            match signals::received() {
                Some(signal) => signals::exit_code(signal),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn try_main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match flags::parse(&args)? {
        Parsed::Help(help) => {
            print!("{help}");
            return Ok(ExitCode::SUCCESS);
        }
        Parsed::Run(command) => command,
    };
    let sh = Shell::new()?;
    sh.change_dir(paths::workspace_root());
    let done = |()| ExitCode::SUCCESS;
    match command {
        Command::Image(flags) => flags.run(&sh).map(done),
        Command::Push(flags) => flags.run(&sh),
        Command::Run(flags) => flags.run(&sh),
        Command::Server(flags) => flags.run(&sh),
        Command::Test(flags) => flags.run(&sh).map(done),
        Command::Export(flags) => flags.run(&sh).map(done),
        Command::Wheels(flags) => flags.run(&sh).map(done),
        Command::Dockerfile(flags) => flags.run(&sh).map(done),
        Command::Init(flags) => flags.run(&sh).map(done),
        Command::Doctor(flags) => flags.run(&sh).map(done),
        Command::Bench(flags) => flags.run(&sh).map(done),
    }
}
