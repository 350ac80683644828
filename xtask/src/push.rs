//! `cargo xtask push`: the image (built as `cargo xtask image` builds it, once per platform) pushed to a
//! registry under the tags `image` makes, and for several platforms one multi-platform index under each tag;
//! prints the digest, and with `--json` the result for CI. The engine does the work with its own login (`docker
//! push`, `docker manifest`, `podman push`, `podman manifest`); the registry's names are given to the local image
//! only for the push and taken away afterwards, whether it succeeded, failed or was interrupted.

use std::os::fd::AsFd;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, format_err, Context, Result};
use signal_hook::iterator::Signals;
use xshell::Shell;

use crate::engine::Engine;
use crate::flags::{Overrides, Push};
use crate::image::{self, BuildOptions, Built};
use crate::json::Json;
use crate::registry::Repository;
use crate::signals::{self, Interrupted};
use crate::{gen, paths, settings};

impl Push {
    /// Exits 128 + the signal's number when a stop signal ended it.
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        if self.json && !self.dry_run {
            return json(&self);
        }
        let mut signals = signals::catch_stop_signals()?;
        match push(sh, &self, &mut signals) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            // A build that Ctrl-C stopped fails; the signal says why.
            Err(e) => match e
                .chain()
                .find_map(|cause| cause.downcast_ref::<Interrupted>().copied())
                .or_else(|| signals.pending().next().map(Interrupted))
            {
                Some(Interrupted(signal)) => {
                    println!(
                        "push: stopped by {}; the registry's tags given to the local image for the push are removed",
                        signals::name(signal)
                    );
                    Ok(signals::exit_code(signal))
                }
                None => Err(e),
            },
        }
    }
}

/// The image of one platform, pushed.
struct Pushed {
    platform: String,
    /// The digest the registry has the platform's image under.
    digest: String,
    /// For several platforms, the image's own tag in the registry (`<version>-<arch>`).
    tag: Option<String>,
    built: Built,
}

fn push(sh: &Shell, flags: &Push, signals: &mut Signals) -> Result<()> {
    let settings = settings::resolve(&flags.settings)?;
    let config = &settings.config;
    let repository = match (&flags.to, &config.repository) {
        (Some(to), _) => Repository::parse(to).map_err(|e| format_err!("invalid value for --to: {e}"))?,
        (None, Some(configured)) => Repository::parse(configured)?,
        (None, None) => bail!(
            "push needs a repository: `cargo xtask push --to <registry>/<path>` (e.g. --to ghcr.io/<org>/{}), or \
             repository = \"...\" in [tool.xtask] of {}",
            config.name,
            paths::display(&config.app_dir.join("pyproject.toml"))
        ),
    };
    let platforms = if flags.platforms.is_empty() { config.platforms.clone() } else { flags.platforms.clone() };
    let git = image::git_info(config);
    if let Some(git) = git.as_ref().filter(|g| g.dirty) {
        if !flags.dirty {
            bail!(
                "the app or docker/ differ from the commit {short} (`git status` lists what): push ships what is \
                 committed; commit or stash the changes, or pass --dirty to push them as {} and {short}-dirty",
                repository.tag(&config.version),
                short = git.short
            );
        }
    }
    let tags = image::tag_names(config, git.as_ref());
    let multi = platforms.len() > 1;
    println!(
        "push: {} as {} for {}",
        config.name,
        tags.iter().map(|t| repository.tag(t)).collect::<Vec<_>>().join(" and "),
        platforms.join(", ")
    );

    let mut built = Vec::new();
    for platform in &platforms {
        let overrides = Overrides { platform: Some(platform.clone()), ..flags.settings.clone() };
        let options = BuildOptions {
            settings: &overrides,
            engine: &flags.engine,
            no_cache: flags.no_cache,
            always_build: false,
            force: false,
            dry_run: flags.dry_run,
            multi_platform: multi,
            for_registry: true,
            repository: (!flags.no_cache).then_some(&repository),
        };
        let image = image::build(sh, &options)?;
        if let Some(signal) = signals.pending().next() {
            return Err(Interrupted(signal).into());
        }
        built.push((platform.clone(), image));
    }

    let engine = built[0].1.engine.clone();
    let mut leftovers = Leftovers { sh, engine: &engine, tags: Vec::new(), lists: Vec::new() };
    let registry = repository.registry.as_str();
    let mut pushed = Vec::new();
    let mut references = Vec::new();
    if !multi {
        let (platform, image) = built.pop().expect("one platform");
        let mut digest = String::new();
        for tag in &tags {
            let remote = repository.tag(tag);
            println!("push: {} to {remote}", image.tag);
            digest = engine.push(sh, local(&image), &remote, registry, &mut leftovers.tags, signals)?;
            references.push(format!("{remote}@{digest}"));
        }
        pushed.push(Pushed { platform, digest, tag: None, built: image });
    } else {
        let mut members = Vec::new();
        for (platform, image) in built {
            let tag = format!("{}-{}", tags[0], image::platform_suffix(&platform));
            let remote = repository.tag(&tag);
            println!("push: {} ({platform}) to {remote}", image.tag);
            let mut digest = engine.push(sh, local(&image), &remote, registry, &mut leftovers.tags, signals)?;
            if flags.dry_run {
                digest = format!("<digest of {tag}>");
            }
            members.push(repository.at(&digest));
            pushed.push(Pushed { platform, digest, tag: Some(tag), built: image });
        }
        for tag in &tags {
            let list = repository.tag(tag);
            println!("push: the index of {} to {list}", platforms.join(", "));
            let digest = engine.push_index(sh, &list, &members, registry, &mut leftovers.lists, signals)?;
            references.push(format!("{list}@{digest}"));
        }
    }
    drop(leftovers);
    if flags.dry_run {
        return Ok(());
    }

    let digest = references[0].rsplit('@').next().unwrap_or_default().to_string();
    let size: u64 = pushed.iter().map(|p| p.built.size).sum();
    for reference in &references {
        println!("push: pushed {reference}");
    }
    println!("push: digest {digest}: `{} pull {}` gets exactly this image", engine.shown(), repository.at(&digest));
    let result = Json::object([
        ("repository", Json::string(&repository.name)),
        ("registry", Json::string(registry)),
        ("tags", Json::Array(tags.iter().map(Json::string).collect())),
        ("digest", Json::string(&digest)),
        ("references", Json::Array(references.iter().map(Json::string).collect())),
        (
            "platforms",
            Json::Array(
                pushed
                    .iter()
                    .map(|p| {
                        let mut members = vec![
                            ("platform", Json::string(&p.platform)),
                            ("digest", Json::string(&p.digest)),
                            ("image", Json::string(&p.built.id)),
                            ("size", Json::number(p.built.size)),
                        ];
                        if let Some(tag) = &p.tag {
                            members.push(("tag", Json::string(tag)));
                        }
                        Json::object(members)
                    })
                    .collect(),
            ),
        ),
        ("size", Json::number(size)),
    ]);
    gen::write_atomic(&paths::push_result(&config.state_dir()), result.to_pretty().as_bytes())
}

/// The local image to push: its id, or its tag in a dry run (which builds nothing).
fn local(image: &Built) -> &str {
    if image.id.is_empty() {
        &image.tag
    } else {
        &image.id
    }
}

/// The registry's names given to local images for the push, and the indexes the engine keeps while it makes
/// them: removed when the push is over, however it ended.
struct Leftovers<'a> {
    sh: &'a Shell,
    engine: &'a Engine,
    tags: Vec<String>,
    lists: Vec<String>,
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        for tag in &self.tags {
            self.engine.untag(self.sh, tag);
        }
        for list in &self.lists {
            self.engine.remove_index(self.sh, list);
        }
    }
}

/// `push --json`: the push runs as a child of this process with its output on our stderr, so that stdout holds
/// only the result (what the child writes to push.json). A stop signal is passed on to the child, which stops
/// the push and cleans up; our exit code is the child's.
fn json(flags: &Push) -> Result<ExitCode> {
    let result = paths::push_result(&settings::resolve(&flags.settings)?.config.state_dir());
    let _ = std::fs::remove_file(&result);
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).filter(|a| a != "--json").collect();
    let program = std::env::current_exe().context("cannot find this program's path")?;
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().context("cannot pass stderr on")?;
    let mut signals = signals::catch_stop_signals()?;
    let mut child = std::process::Command::new(&program)
        .args(&args)
        .stdout(Stdio::from(stderr))
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the push")? {
            break status;
        }
        for signal in signals.pending() {
            let name = match signal {
                signal_hook::consts::SIGINT => "INT",
                signal_hook::consts::SIGHUP => "HUP",
                _ => "TERM",
            };
            signals::kill(child.id(), name);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let code =
            status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    let text = std::fs::read_to_string(&result)
        .with_context(|| format!("the push wrote no result to {}", paths::display(&result)))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
