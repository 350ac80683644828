//! Every path the tool uses, named once: the workspace, the app, and what the tool writes under `target/`.

use std::path::{Path, PathBuf};

/// The workspace root: the parent of the `xtask` crate.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The workspace manifest, which may name the app in `[workspace.metadata.xtask] app = "..."`.
pub(crate) fn workspace_manifest() -> PathBuf {
    workspace_root().join("Cargo.toml")
}

/// Where generated files that are committed live (`docker/Dockerfile`).
pub(crate) fn docker_dir() -> PathBuf {
    workspace_root().join("docker")
}

/// The committed, generated Dockerfile.
pub(crate) fn dockerfile() -> PathBuf {
    docker_dir().join("Dockerfile")
}

/// Scratch space for one app, by its image name and platform: requirements, wheelhouse, build context, SBOM,
/// stamps. Never committed. Apps live under `apps/`, apart from the tool's own state (`cache/`, `bench/`), and a
/// name's `/` becomes `+` (which no image name has), so that no two names share or nest a directory. Each
/// platform has a directory of its own (its wheelhouse, requirements and context differ): `<name>` for
/// linux/amd64, `<name>@linux-arm64` for another (`@` is in no image name either).
pub fn state_dir(image_name: &str, platform: &str) -> PathBuf {
    let mut dir = image_name.replace('/', "+");
    if platform != DEFAULT_PLATFORM {
        dir = format!("{dir}@{}", platform.replace('/', "-"));
    }
    cargo_target_dir().join("xtask").join("apps").join(dir)
}

/// The platform of the state directory without a platform suffix (and of `tool.xtask.platform`'s default).
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

/// In the state directory of an image: the wheelhouse, its stamp, the requirements the image installs, the build
/// context, the base image's facts, and the Dockerfile of an app other than the workspace's.
pub(crate) fn wheelhouse(state: &Path) -> PathBuf {
    state.join("wheelhouse")
}

pub(crate) fn wheelhouse_stamp(state: &Path) -> PathBuf {
    state.join("wheelhouse.stamp")
}

pub(crate) fn image_requirements(state: &Path) -> PathBuf {
    state.join("requirements.txt")
}

pub(crate) fn build_context(state: &Path) -> PathBuf {
    state.join("context")
}

pub(crate) fn base_image_facts(state: &Path) -> PathBuf {
    state.join("base-image.txt")
}

/// The project's own wheel (`project_wheel.rs`).
pub(crate) fn project_wheel_dir(state: &Path) -> PathBuf {
    state.join("project")
}

/// The image's SBOM (`sbom.rs`), as it goes into the context and the image.
pub(crate) fn sbom(state: &Path) -> PathBuf {
    state.join("sbom.cdx.json")
}

/// What the last `cargo xtask push` of the image pushed (`push --json` prints it).
pub(crate) fn push_result(state: &Path) -> PathBuf {
    state.join("push.json")
}

pub(crate) fn state_dockerfile(state: &Path) -> PathBuf {
    state.join("Dockerfile")
}

/// The local virtualenv `cargo xtask server` and `cargo xtask test` use, inside the app (like Poetry's
/// in-project venv). It is excluded from the image by the allowlist build context.
pub(crate) fn local_venv(app_dir: &Path) -> PathBuf {
    app_dir.join(".venv")
}

/// Inside the local virtualenv: what `cargo xtask` installed there, and the stamp written after a complete
/// install (the virtualenv is refreshed when the stamp would change).
pub(crate) fn venv_requirements(venv: &Path) -> PathBuf {
    venv.join("xtask-requirements.txt")
}

pub(crate) fn venv_stamp(venv: &Path) -> PathBuf {
    venv.join("xtask-stamp")
}

/// The path dependencies of the local virtualenv, installed after the hash-checked requirements.
pub(crate) fn venv_path_requirements(venv: &Path) -> PathBuf {
    venv.join("xtask-path-requirements.txt")
}

/// pip's download cache for the wheelhouses and the local virtualenvs, shared by every app of the workspace.
pub(crate) fn pip_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("pip")
}

/// Wheels built from sdists in containers of base images (`sdists.rs`), by sdist, target and build packages.
pub(crate) fn built_wheels_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("built-wheels")
}

/// Files fetched on the host (wheels from the indexes, sdists to build, URL dependencies), under their sha256.
pub(crate) fn fetched_files_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("files")
}

/// Bare clones of git dependencies' repositories (`git_deps.rs`).
pub(crate) fn git_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("git")
}

/// In the state directory: the private netrc file of an index's credentials lives here while pip runs.
pub(crate) fn credentials_dir(state: &Path) -> PathBuf {
    state.join("credentials")
}

/// `.deb` files of system packages fetched for a base image (`system_packages.rs`), by base image, platform and
/// packages.
pub(crate) fn system_packages_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("system-packages")
}

/// The pinned uv binary (`uv.rs`), by version and machine.
pub(crate) fn uv_dir() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("uv")
}

/// uv's own cache (unpacked wheels, which the image's virtualenvs link to), shared by every app of the workspace.
pub(crate) fn uv_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("uv-cache")
}

/// What the docker client said of its version and BuildKit, for the same client and engine (`engine.rs`).
pub(crate) fn engine_memo() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("docker-client.txt")
}

/// What each wheel holds (`inventory.rs`), by the wheel's sha256.
pub(crate) fn inventory_cache() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("inventory")
}

/// The bytecode of each wheel's modules for Python `python` (`X.Y`) as the image's virtualenv holds them, by
/// the wheel's sha256 (compiled by the look-up as the wheel arrives, linked into the virtualenv by `site.rs`).
pub(crate) fn bytecode_cache(python: &str) -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("bytecode").join(python)
}

/// The markers evaluated before for one marker environment (`wheels::evaluate_markers`), by its hash.
pub(crate) fn markers_memo(environment: &str) -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("markers").join(format!("{environment}.txt"))
}

/// The interpreter a `python3` launcher (pyenv's shim) started last, for that launcher, directory and
/// `PYENV_VERSION` (`wheels::host_python`).
pub(crate) fn host_python_launcher_memo() -> PathBuf {
    cargo_target_dir().join("xtask").join("cache").join("host-python-launcher.txt")
}

/// In the state directory: the image's virtualenv while it is assembled (`site.rs`), and its stamp.
/// The image's virtualenv as it was laid down last, of which the build context holds the archive
/// (`context/venv.tar`, `tarball.rs`).
pub(crate) fn venv_tree(state: &Path) -> PathBuf {
    state.join("venv")
}

pub(crate) fn venv_staging(state: &Path) -> PathBuf {
    state.join("venv.new")
}

pub(crate) fn venv_stamp_in(state: &Path) -> PathBuf {
    state.join("venv.stamp")
}

/// Scratch space of `cargo xtask bench <name>`.
pub fn bench_dir(name: &str) -> PathBuf {
    cargo_target_dir().join("xtask").join("bench").join(name)
}

/// cargo's target directory: `CARGO_TARGET_DIR`, else `target/` of the workspace.
pub fn cargo_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// `path` relative to the workspace root when it is inside it, for messages.
pub fn display(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}
