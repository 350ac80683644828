//! The command line: a small declarative parser so that every task documents its own flags and has its own
//! `--help`. Each task module declares a `pub(crate) const TASK: Task` next to the code that reads the flags.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// One task of `cargo xtask`: its name, a one-line summary, a longer description and its options.
pub(crate) struct Task {
    pub(crate) name: &'static str,
    pub(crate) summary: &'static str,
    /// Extra paragraphs for `cargo xtask <task> --help`.
    pub(crate) about: &'static str,
    /// Positional arguments, for the usage line (`<what>...`); empty when the task takes none.
    pub(crate) positional: &'static str,
    pub(crate) options: &'static [Opt],
}

/// One option. `value` names the option's argument (`FILE`), or is empty for a switch.
pub(crate) struct Opt {
    pub(crate) long: &'static str,
    pub(crate) short: Option<char>,
    pub(crate) value: &'static str,
    pub(crate) help: &'static str,
}

impl Opt {
    pub(crate) const fn switch(long: &'static str, help: &'static str) -> Opt {
        Opt { long, short: None, value: "", help }
    }
    pub(crate) const fn value(long: &'static str, value: &'static str, help: &'static str) -> Opt {
        Opt { long, short: None, value, help }
    }
    pub(crate) const fn short(self, short: char) -> Opt {
        Opt { short: Some(short), ..self }
    }
}

/// The `--app DIR` option every task that works on the app accepts.
pub(crate) const APP: Opt =
    Opt::value("app", "DIR", "the Python app's directory (default: [workspace.metadata.xtask] app in Cargo.toml)");

/// What the parser found: the options given (in order, values as written) and the positional arguments.
#[derive(Debug, Default)]
pub(crate) struct Args {
    values: BTreeMap<&'static str, Vec<String>>,
    pub(crate) positional: Vec<String>,
    /// Everything after a bare `--`, passed through untouched (e.g. to pytest).
    pub(crate) rest: Vec<String>,
}

impl Args {
    pub(crate) fn has(&self, long: &str) -> bool {
        self.values.contains_key(long)
    }
    /// The last value given for `--long`.
    pub(crate) fn value(&self, long: &str) -> Option<&str> {
        self.values.get(long).and_then(|v| v.last()).map(String::as_str)
    }
    /// Every value given for `--long`, in order.
    pub(crate) fn values(&self, long: &str) -> Vec<String> {
        self.values.get(long).cloned().unwrap_or_default()
    }
    /// The last value of `--long` parsed with `FromStr`, with an error naming the option.
    pub(crate) fn parse<T: std::str::FromStr>(&self, long: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.value(long) {
            None => Ok(None),
            Some(v) => match v.parse() {
                Ok(v) => Ok(Some(v)),
                Err(e) => bail!("invalid value '{v}' for --{long}: {e}"),
            },
        }
    }
    pub(crate) fn no_positional(&self, task: &Task) -> Result<()> {
        if let Some(arg) = self.positional.first() {
            bail!("unexpected argument '{arg}' for `cargo xtask {}` (see --help)", task.name);
        }
        Ok(())
    }
}

/// What the command line asks for.
pub(crate) enum Parsed {
    Help(String),
    Run(&'static Task, Args),
}

/// Parses `args` (without the program name) against `tasks`.
pub(crate) fn parse(tasks: &'static [&'static Task], args: &[String]) -> Result<Parsed> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Parsed::Help(main_help(tasks)));
    };
    if matches!(first.as_str(), "-h" | "--help" | "help") {
        if let Some(task) = rest.first().and_then(|name| find(tasks, name)) {
            return Ok(Parsed::Help(task_help(task)));
        }
        return Ok(Parsed::Help(main_help(tasks)));
    }
    let Some(task) = find(tasks, first) else {
        bail!("unknown task '{first}'; `cargo xtask --help` lists the tasks");
    };
    let mut parsed = Args::default();
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        i += 1;
        if arg == "--" {
            parsed.rest = rest[i..].to_vec();
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help(task_help(task)));
        }
        let (opt, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let Some(opt) = task.options.iter().find(|o| o.long == name) else {
                bail!("unknown option '--{name}' for `cargo xtask {}` (see --help)", task.name);
            };
            (opt, inline)
        } else if arg.len() > 1 && arg.starts_with('-') && !is_number(arg) {
            let mut chars = arg[1..].chars();
            let c = chars.next().unwrap();
            let Some(opt) = task.options.iter().find(|o| o.short == Some(c)) else {
                bail!("unknown option '-{c}' for `cargo xtask {}` (see --help)", task.name);
            };
            let tail: String = chars.collect();
            let tail = tail.strip_prefix('=').map(str::to_string).unwrap_or(tail);
            (opt, (!tail.is_empty()).then_some(tail))
        } else {
            parsed.positional.push(arg.clone());
            continue;
        };
        let entry = parsed.values.entry(opt.long).or_default();
        if opt.value.is_empty() {
            if inline.is_some() {
                bail!("option '--{}' takes no value", opt.long);
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match rest.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => bail!("option '--{}' needs a value ({})", opt.long, opt.value),
            },
        };
        entry.push(value);
    }
    Ok(Parsed::Run(task, parsed))
}

fn is_number(arg: &str) -> bool {
    arg[1..].chars().all(|c| c.is_ascii_digit())
}

fn find(tasks: &'static [&'static Task], name: &str) -> Option<&'static Task> {
    tasks.iter().copied().find(|t| t.name == name)
}

pub(crate) fn main_help(tasks: &[&Task]) -> String {
    let mut out = String::from(
        "cargo xtask: build, run and ship a Poetry-managed Python web app as a Docker image\n\n\
         USAGE:\n    cargo xtask <TASK> [OPTIONS]\n    cargo xtask <TASK> --help\n\nTASKS:\n",
    );
    let width = tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for task in tasks {
        out.push_str(&format!("    {:width$}  {}\n", task.name, task.summary));
    }
    out.push_str("\nThe app's settings live in [tool.xtask] of its pyproject.toml; see README.md for the reference.\n");
    out
}

pub(crate) fn task_help(task: &Task) -> String {
    let mut out = format!("cargo xtask {}: {}\n\nUSAGE:\n    cargo xtask {}", task.name, task.summary, task.name);
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

    const DEMO: Task = Task {
        name: "demo",
        summary: "a task for the tests",
        about: "",
        positional: "[ARGS]...",
        options: &[
            Opt::value("format", "FORMAT", "output format").short('f'),
            Opt::value("extras", "EXTRAS", "extras").short('E'),
            Opt::switch("check", "check only"),
        ],
    };
    const TASKS: &[&Task] = &[&DEMO];

    fn check(args: &str, expect: Expect) {
        let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
        let actual = match parse(TASKS, &args) {
            Ok(Parsed::Help(h)) => format!("help: {}", h.lines().next().unwrap()),
            Ok(Parsed::Run(t, a)) => format!("{} {:?} {:?} {:?}", t.name, a.values, a.positional, a.rest),
            Err(e) => format!("error: {e}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn parses() {
        check("demo -f requirements.txt", expect![[r#"demo {"format": ["requirements.txt"]} [] []"#]]);
        check(
            "demo --format=x -Ea -E b --check p",
            expect![[r#"demo {"check": [], "extras": ["a", "b"], "format": ["x"]} ["p"] []"#]],
        );
        check("demo -- -k x", expect![[r#"demo {} [] ["-k", "x"]"#]]);
        check("demo --help", expect!["help: cargo xtask demo: a task for the tests"]);
        check("help demo", expect!["help: cargo xtask demo: a task for the tests"]);
        check("", expect!["help: cargo xtask: build, run and ship a Poetry-managed Python web app as a Docker image"]);
        check("demo --nope", expect!["error: unknown option '--nope' for `cargo xtask demo` (see --help)"]);
        check("demo -f", expect!["error: option '--format' needs a value (FORMAT)"]);
        check("demo --check=1", expect!["error: option '--check' takes no value"]);
        check("nope", expect!["error: unknown task 'nope'; `cargo xtask --help` lists the tasks"]);
    }

    #[test]
    fn task_help_indents_and_wraps_option_text() {
        const LONG: Task = Task {
            name: "long",
            summary: "a task with a long option text",
            about: "",
            positional: "",
            options: &[Opt::value("base-image", "IMAGE", "the base image of both stages (default: tool.xtask.base-image, python:<X.Y>-slim; env XTASK_BASE_IMAGE)")],
        };
        expect![[r#"
            cargo xtask long: a task with a long option text

            USAGE:
                cargo xtask long [OPTIONS]

            OPTIONS:
                    --base-image <IMAGE>
                        the base image of both stages (default: tool.xtask.base-image, python:<X.Y>-slim; env
                        XTASK_BASE_IMAGE)
                -h, --help
                        print this help
        "#]]
        .assert_eq(&task_help(&LONG));
    }
}
