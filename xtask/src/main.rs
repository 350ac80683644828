//! `cargo xtask`: replaces a Python app's Makefile. Flags → task dispatch, with one `Shell` rooted at the
//! workspace. See `cargo xtask --help` and the README's architecture section.

mod bench;
mod bench_image;
mod config;
mod dockerfile;
mod doctor;
mod engine;
mod export;
mod flags;
mod gen;
mod image;
mod init;
mod path_deps;
mod paths;
mod pip;
mod pytest;
mod run;
mod server;
mod signals;
mod toml_file;
mod venv;
mod wheels;

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags::{Parsed, Task};

/// Every task, in the order `cargo xtask --help` lists them.
const TASKS: &[&Task] = &[
    &image::TASK,
    &run::TASK,
    &server::TASK,
    &pytest::TASK,
    &export::TASK,
    &wheels::TASK,
    &dockerfile::TASK,
    &init::TASK,
    &doctor::TASK,
    &bench::TASK,
];

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, args) = match flags::parse(TASKS, &args)? {
        Parsed::Help(help) => {
            print!("{help}");
            return Ok(ExitCode::SUCCESS);
        }
        Parsed::Run(task, args) => (task, args),
    };
    let sh = Shell::new()?;
    sh.change_dir(paths::workspace_root());
    let result = match task.name {
        "image" => image::run(&sh, &args),
        "run" => run::run(&sh, &args),
        "server" => server::run(&sh, &args),
        "test" => pytest::run(&sh, &args),
        "export" => export::run(&sh, &args),
        "wheels" => wheels::run(&sh, &args),
        "dockerfile" => dockerfile::run(&sh, &args),
        "init" => init::run(&sh, &args),
        "doctor" => doctor::run(&sh, &args),
        "bench" => bench::run(&sh, &args),
        other => unreachable!("task {other} is listed but not dispatched"),
    };
    result.map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_help_lists_every_task() {
        let help = flags::main_help(TASKS);
        for task in TASKS {
            assert!(help.contains(task.name), "{} missing from --help", task.name);
            assert!(!task.summary.is_empty() && !task.summary.contains('\n'), "{}: one-line summary", task.name);
        }
    }
}
