//! The settings of one run, resolved in one place: what the app's pyproject.toml declares (`config.rs`, with
//! the defaults derived from the project) plus this run's overrides (the command line first, then the
//! environment). Both are kept: the tasks use the effective settings, and the committed Dockerfile is rendered
//! from the declared ones, so that it does not depend on the machine or the command line.

use anyhow::{bail, Result};

use crate::config::{self, Config};
use crate::engine::{Builder, Engine};
use crate::flags::{EngineFlags, Overrides};

/// Environment variable that overrides the base image (like `--base-image`).
pub const BASE_IMAGE_ENV: &str = "XTASK_BASE_IMAGE";
/// Environment variable that picks the engine, like `--engine`.
pub const ENGINE_ENV: &str = "XTASK_ENGINE";
/// Environment variable that picks the builder, like `--builder`.
pub const BUILDER_ENV: &str = "XTASK_BUILDER";

/// The app's settings for this run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What pyproject.toml declares, with the derived defaults: what docker/Dockerfile is rendered from.
    pub declared: Config,
    /// `declared` with this run's overrides: what the tasks use.
    pub config: Config,
    /// Whether the app is the workspace's own (`[workspace.metadata.xtask] app`, or the root's
    /// pyproject.toml), whose Dockerfile is committed as docker/Dockerfile.
    pub is_workspace_app: bool,
}

/// Reads the app's pyproject.toml (the app of `--app`, else the workspace's) and applies the overrides:
/// `--name`, `--python` (which moves a default base image along), `--platform`, and the base image from
/// `--base-image`, else `XTASK_BASE_IMAGE`.
pub fn resolve(overrides: &Overrides) -> Result<Settings> {
    let app_dir = config::app_dir(overrides.app.as_deref())?;
    let declared = Config::read(&app_dir)?;
    let is_workspace_app = overrides.app.is_none() || config::app_dir(None).is_ok_and(|dir| dir == app_dir);
    let base_image_env = std::env::var(BASE_IMAGE_ENV).ok().filter(|v| !v.is_empty());
    let config = apply(&declared, overrides, base_image_env)?;
    Ok(Settings { declared, config, is_workspace_app })
}

/// `declared` with `overrides` and the environment's base image applied (pure).
fn apply(declared: &Config, overrides: &Overrides, base_image_env: Option<String>) -> Result<Config> {
    let mut config = declared.clone();
    if let Some(python) = overrides.python {
        config.python = python;
        if config.base_image_is_default {
            config.base_image = config::default_base_image(python);
        }
    }
    if let Some(platform) = &overrides.platform {
        if !config::is_linux_platform(platform) {
            bail!("invalid value '{platform}' for --platform: expected a Linux platform such as linux/amd64 or linux/arm64");
        }
        config.platform = platform.clone();
    }
    if let Some(base) = overrides.base_image.clone().or(base_image_env) {
        if base.contains(char::is_whitespace) {
            bail!("invalid base image '{base}': an image reference such as python:3.12-slim");
        }
        config.base_image = base;
        config.base_image_is_default = false;
    }
    if let Some(name) = &overrides.name {
        if !config::is_image_name(name) {
            bail!("invalid value '{name}' for --name: lowercase letters and digits, separated by . _ - or /");
        }
        config.name = name.clone();
    }
    Ok(config)
}

impl EngineChoice {
    /// The engine, probed.
    pub fn engine(&self, dry_run: bool) -> Result<Engine> {
        Engine::new(&self.program, self.builder, dry_run)
    }
}

/// Which engine client to use and which builder was asked for: `--engine`, else `XTASK_ENGINE`, else
/// `docker`; `--builder`, else `XTASK_BUILDER`, else none (the engine's best).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChoice {
    pub program: String,
    pub builder: Option<Builder>,
}

pub fn engine_choice(flags: &EngineFlags) -> Result<EngineChoice> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let program = flags.engine.clone().or_else(|| env(ENGINE_ENV)).unwrap_or_else(|| "docker".to_string());
    let builder = match (flags.builder, env(BUILDER_ENV)) {
        (Some(builder), _) => Some(builder),
        (None, Some(value)) => Some(value.parse::<Builder>().map_err(|e| anyhow::format_err!("{BUILDER_ENV}: {e}"))?),
        (None, None) => None,
    };
    Ok(EngineChoice { program, builder })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PythonVersion;

    fn declared() -> Config {
        let dir = std::env::temp_dir().join(format!("xtask-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pyproject.toml"), "[project]\nname = \"svc\"\nrequires-python = \">=3.11\"\n")
            .unwrap();
        let config = Config::read(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        config
    }

    #[test]
    fn overrides_apply_in_one_place() {
        let declared = declared();
        let show =
            |c: &Config| format!("{} {} {} {} {}", c.name, c.python, c.platform, c.base_image, c.base_image_is_default);
        assert_eq!(show(&declared), "svc 3.11 linux/amd64 python:3.11-slim true");
        let python = Some(PythonVersion { major: 3, minor: 13 });
        let moved = apply(&declared, &Overrides { python, ..Overrides::default() }, None).unwrap();
        assert_eq!(show(&moved), "svc 3.13 linux/amd64 python:3.13-slim true", "a default base image follows --python");
        let env =
            apply(&declared, &Overrides { python, ..Overrides::default() }, Some("local/py:3.13".into())).unwrap();
        assert_eq!(show(&env), "svc 3.13 linux/amd64 local/py:3.13 false");
        let flag = Overrides {
            base_image: Some("flag/py".into()),
            name: Some("team/svc".into()),
            platform: Some("linux/arm64".into()),
            ..Overrides::default()
        };
        let both = apply(&declared, &flag, Some("env/py".into())).unwrap();
        assert_eq!(show(&both), "team/svc 3.11 linux/arm64 flag/py false", "the flag wins over the environment");
        let bad = |o: Overrides| apply(&declared, &o, None).unwrap_err().to_string();
        assert_eq!(
            bad(Overrides { name: Some("Team".into()), ..Overrides::default() }),
            "invalid value 'Team' for --name: lowercase letters and digits, separated by . _ - or /"
        );
        assert_eq!(
            bad(Overrides { platform: Some("darwin/arm64".into()), ..Overrides::default() }),
            "invalid value 'darwin/arm64' for --platform: expected a Linux platform such as linux/amd64 or linux/arm64"
        );
    }
}
