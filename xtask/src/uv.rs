//! The pinned uv that assembles the image's virtualenv on the host (`site.rs`): uv's wheel from PyPI for the
//! host's machine, checked against the sha256 pinned here, downloaded once into `target/xtask/cache/uv/`; the
//! static `uv` binary it carries is used directly. uv never goes into the image. `XTASK_UV` names another uv
//! binary (a machine without PyPI), used as it is.

use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use xshell::{cmd, Shell};

use crate::{gen, index, paths, pip, wheels};

/// The uv release we pin; its wheels' hashes per host machine below.
pub(crate) const VERSION: &str = "0.13.9";

/// `(machine, platform tag of the wheel, sha256)`: the manylinux wheels of uv `VERSION` on PyPI.
const WHEELS: &[(&str, &str, &str)] = &[
    (
        "x86_64",
        "manylinux_2_17_x86_64.manylinux2014_x86_64",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    (
        "aarch64",
        "manylinux_2_17_aarch64.manylinux2014_aarch64",
        "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",
    ),
];

/// The environment variable that names a uv binary to use instead of the pinned one.
pub(crate) const UV_ENV: &str = "XTASK_UV";

/// The uv binary, now when it is there, else from a thread that downloads it (started at once, so that the
/// download runs beside the wheelhouse's).
pub(crate) enum Uv {
    Ready(PathBuf),
    Downloading(std::thread::JoinHandle<Result<PathBuf>>),
}

impl Uv {
    pub(crate) fn start() -> Uv {
        if std::env::var_os(UV_ENV).is_some_and(|v| !v.is_empty()) {
            return Uv::Downloading(std::thread::spawn(|| ensure(&Shell::new()?)));
        }
        match pinned() {
            Ok((binary, _, _)) if binary.is_file() => Uv::Ready(binary),
            _ => Uv::Downloading(std::thread::spawn(|| ensure(&Shell::new()?))),
        }
    }

    pub(crate) fn binary(self) -> Result<PathBuf> {
        match self {
            Uv::Ready(binary) => Ok(binary),
            Uv::Downloading(thread) => thread.join().map_err(|_| format_err!("the download of uv failed"))?,
        }
    }
}

/// Where the pinned uv of this machine goes, its wheel's platform tag and sha256.
fn pinned() -> Result<(PathBuf, &'static str, &'static str)> {
    let machine = std::env::consts::ARCH;
    let Some(&(_, tag, sha256)) = WHEELS.iter().find(|(m, _, _)| *m == machine) else {
        bail!(
            "uv {VERSION} is pinned for {} hosts only, this one is {machine}: install uv and name it in {UV_ENV}",
            WHEELS.iter().map(|w| w.0).collect::<Vec<_>>().join(" and ")
        );
    };
    Ok((paths::uv_dir().join(format!("{VERSION}-{machine}")).join("uv"), tag, sha256))
}

/// The uv binary: `XTASK_UV`, else the pinned one (downloaded and checked on first use).
pub(crate) fn ensure(sh: &Shell) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(UV_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{UV_ENV}={} is not a file: name a uv binary, or unset it to use the pinned uv {VERSION}",
                path.display()
            );
        }
        return Ok(path);
    }
    let machine = std::env::consts::ARCH;
    let (binary, tag, sha256) = pinned()?;
    let dir = binary.parent().unwrap().to_path_buf();
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", paths::display(&dir)))?;
    let wheel_name = format!("uv-{VERSION}-py3-none-{tag}.whl");
    let wheel = dir.join(&wheel_name);
    // Parallel runs (tests) each download into a folder of their own and rename the checked wheel into place.
    let download = dir.join(format!("download-{}", std::process::id()));
    let known = wheel.is_file() && gen::sha256_file(&wheel)? == sha256;
    if !known {
        println!("uv: downloading uv {VERSION} for {machine} from PyPI (once; it assembles the image's virtualenv)");
        let python = wheels::host_python()?;
        std::fs::create_dir_all(&download).with_context(|| format!("cannot create {}", paths::display(&download)))?;
        // Straight from PyPI's page of uv (one small process), else with pip.
        let query = index::Query {
            page: format!("{}/uv/", pip::PYPI_SIMPLE),
            files: vec![wheel_name.clone()],
            fetch: vec![(wheel_name.clone(), sha256.to_string())],
            dest: Some(download.clone()),
        };
        // `ok`: the look-up checked the file against `sha256` as it arrived.
        let fetched = index::ask(sh, &python, None, &[query], None)
            .is_ok_and(|a| a.fetched.get(&wheel_name).is_some_and(|(status, _)| status == "ok"));
        let downloaded = download.join(&wheel_name);
        if !fetched {
            let requirement = dir.join(format!("requirement-{}.txt", std::process::id()));
            gen::write_atomic(&requirement, format!("uv=={VERSION} --hash=sha256:{sha256}\n").as_bytes())?;
            let platform = tag.split('.').next().unwrap_or(tag);
            let command = pip::pip(sh, &python, "download")
                .args(["--no-deps", "--only-binary=:all:", "--require-hashes", "--no-cache-dir"])
                .args(["--platform", platform, "--index-url", pip::PYPI_SIMPLE, "--dest"])
                .arg(&download)
                .arg("--requirement")
                .arg(&requirement);
            let result = pip::run(command, "pip download of uv");
            let _ = std::fs::remove_file(&requirement);
            result.map_err(|e| {
                format_err!("{e:#}: uv {VERSION} cannot be downloaded from PyPI; install uv and name it in {UV_ENV}")
            })?;
            let got = gen::sha256_file(&downloaded)?;
            if got != sha256 {
                bail!("{} has sha256 {got}, not the pinned {sha256}", paths::display(&downloaded));
            }
        }
        std::fs::rename(&downloaded, &wheel).with_context(|| format!("cannot write {}", paths::display(&wheel)))?;
        let _ = std::fs::remove_dir_all(&download);
    }
    extract(sh, &wheel, &binary)?;
    Ok(binary)
}

/// Takes the `uv` binary out of its wheel (a zip file; the host's Python reads it), through a temporary file.
fn extract(sh: &Shell, wheel: &Path, binary: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let python = wheels::host_python()?;
    let member = format!("uv-{VERSION}.data/scripts/uv");
    let tmp = binary.with_extension(format!("{}.tmp", std::process::id()));
    // Streamed: reading the 38 MB binary into memory first cost 0.1-0.4 s more (0.42 s against 0.56-0.91 s here).
    let script = "import shutil, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as binary, \
                  open(sys.argv[3], 'wb') as out:\n    shutil.copyfileobj(binary, out, 1 << 20)";
    cmd!(sh, "{python} -I -S -c {script} {wheel} {member} {tmp}")
        .quiet()
        .run()
        .with_context(|| format!("cannot take uv out of {}", paths::display(wheel)))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, binary).with_context(|| format!("cannot write {}", paths::display(binary)))?;
    Ok(())
}
