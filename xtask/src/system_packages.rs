//! `tool.xtask.system-packages` for the image's base stage, fetched before the build so that the build stays
//! offline: apt in a throwaway container of the base image downloads them with every dependency the base image
//! lacks (`apt-get install --download-only`; apt checks them against the distribution's signed indexes), the
//! `.deb` files go into the build context, and the base stage installs them with `dpkg` and deletes them.
//! Kept under `target/xtask/cache/system-packages/` with a stamp of their sha256, keyed by the base image's id,
//! the platform and the packages, so apt runs once.
//!
//! Why packages rather than libraries vendored into the wheels (auditwheel repair): the base image keeps one
//! copy of each library, from its distribution, updated with it; `dpkg -l` lists it; and libraries that are
//! loaded at run time (SASL's mechanisms, for libldap) come with it, which vendoring misses. See the README.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use poetry_export::sha256::Sha256;

use crate::config::Config;
use crate::engine::{Engine, FilesRun, ImageInfo};
use crate::sdists::Need;
use crate::{gen, paths};

/// The fetched `.deb` files.
#[derive(Debug, Clone, Default)]
pub(crate) struct SystemPackages {
    pub(crate) dir: PathBuf,
    /// File name and sha256 of each `.deb`, sorted.
    pub(crate) debs: Vec<(String, String)>,
    /// The packages they install (the ones asked for and the dependencies the base image lacks).
    pub(crate) installed: BTreeSet<String>,
}

/// The file in the folder of `.deb` files that lists what was asked for and what was fetched.
pub(crate) const LIST: &str = "packages.txt";

const SCRIPT: &str = r#"set -u
exec 3>&1 1>&2
mkdir -p /xtask/in /xtask/out/partial && cd /xtask
tar -x -f - -C in --no-same-owner || exit 90
if ! command -v apt-get > /dev/null; then echo "the base image has no apt-get"; exit 91; fi
apt-get update -q > /xtask/apt.log 2>&1 || { cat /xtask/apt.log; exit 92; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only --no-install-recommends \
  -o Dir::Cache::archives=/xtask/out $XTASK_SYSTEM_PACKAGES > /xtask/apt.log 2>&1 || { cat /xtask/apt.log; exit 93; }
rm -rf /xtask/out/partial /xtask/out/lock
echo "fetched: $(cd /xtask/out && ls)"
tar -c -f - -C out . >&3
"#;

/// The key of the fetched packages: base image, platform, packages.
fn key(base_id: &str, platform: &str, packages: &[String]) -> String {
    let mut hasher = Sha256::default();
    hasher.update(format!("xtask system packages 1\n{base_id}\n{platform}\n{}\n", packages.join(" ")).as_bytes());
    hasher.hex()
}

/// The `.deb` files of `config.system_packages` for the base image `base`: the ones fetched before when the
/// stamp still matches, else fetched now. `None` when the app declares none.
pub(crate) fn ensure(engine: &Engine, config: &Config, base: &ImageInfo) -> Result<Option<SystemPackages>> {
    if config.system_packages.is_empty() {
        return Ok(None);
    }
    let key = key(&base.id, &config.platform, &config.system_packages);
    let dir = paths::system_packages_cache().join(&key[..16]);
    let stamp = dir.with_extension("stamp");
    if let Some(found) = read_stamp(&stamp, &key, &dir) {
        println!(
            "system packages: {} up to date ({} .deb files for {})",
            paths::display(&dir),
            found.debs.len(),
            config.system_packages.join(", ")
        );
        return Ok(Some(found));
    }
    let _ = std::fs::remove_file(&stamp);
    println!(
        "system packages: fetching {} with apt in a container of {}",
        config.system_packages.join(", "),
        config.base_image
    );
    let scratch = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let _scratch = gen::Scratch(scratch.clone());
    let input = scratch.join("in");
    let output = scratch.join("out");
    std::fs::create_dir_all(&input).with_context(|| format!("cannot create {}", paths::display(&input)))?;
    let request = FilesRun {
        name: format!("xtask-debs-{}", std::process::id()),
        image: &base.id,
        platform: &config.platform,
        env: vec![("XTASK_SYSTEM_PACKAGES".to_string(), config.system_packages.join(" "))],
        script: SCRIPT,
        script_shown: "<apt-get install --download-only the system packages>",
        input: &input,
        output: &output,
    };
    engine.run_with_files(&request).with_context(|| {
        format!(
            "apt in {} could not fetch tool.xtask.system-packages ({}): check the names with `apt-cache policy` in \
             that image",
            config.base_image,
            config.system_packages.join(", ")
        )
    })?;
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(&output)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") {
            debs.push((name.clone(), gen::sha256_file(&entry.path())?));
        }
    }
    debs.sort();
    let mut list = format!("# tool.xtask.system-packages: {}\n", config.system_packages.join(" "));
    for (name, sha256) in &debs {
        list.push_str(&format!("{sha256}  {name}\n"));
    }
    gen::write_atomic(&output.join(LIST), list.as_bytes())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&output, &dir).with_context(|| format!("cannot write {}", paths::display(&dir)))?;
    let mut text = format!("# Written by cargo xtask after apt fetched these for {}\nkey {key}\n", config.base_image);
    for (name, sha256) in &debs {
        text.push_str(&format!("deb {name} {sha256}\n"));
    }
    gen::write_atomic(&stamp, text.as_bytes())?;
    let installed = debs.iter().map(|(name, _)| package_of(name)).collect();
    println!("system packages: {} .deb files in {}", debs.len(), paths::display(&dir));
    Ok(Some(SystemPackages { dir, debs, installed }))
}

/// The stamped `.deb` files, when the stamp has `key` and every file is still the one recorded.
fn read_stamp(stamp: &Path, key: &str, dir: &Path) -> Option<SystemPackages> {
    let text = std::fs::read_to_string(stamp).ok()?;
    let mut found_key = None;
    let mut debs = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["key", k] => found_key = Some(k.to_string()),
            ["deb", name, sha256] => debs.push((name.to_string(), sha256.to_string())),
            _ => return None,
        }
    }
    if found_key.as_deref() != Some(key) {
        return None;
    }
    let present = std::fs::read_dir(dir).ok()?.flatten().count();
    if present != debs.len() + 1
        || !dir.join(LIST).is_file()
        || debs.iter().any(|(name, sha)| gen::sha256_file(&dir.join(name)).ok().as_ref() != Some(sha))
    {
        return None;
    }
    let installed = debs.iter().map(|(name, _)| package_of(name)).collect();
    Some(SystemPackages { dir: dir.to_path_buf(), debs, installed })
}

/// `libldap-2.5-0_2.5.13+dfsg-5_amd64.deb` → `libldap-2.5-0`.
fn package_of(deb: &str) -> String {
    deb.split('_').next().unwrap_or(deb).to_string()
}

/// The libraries built wheels link (`needs`: wheel file, what it needs) that neither the base image nor the
/// system packages provide: an error naming each and the setting to add them to.
pub(crate) fn check(config: &Config, needs: &[(String, Vec<Need>)], fetched: Option<&SystemPackages>) -> Result<()> {
    let installed = fetched.map(|f| &f.installed);
    let mut missing: Vec<String> = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for (wheel, wanted) in needs {
        let lacking: Vec<&Need> =
            wanted.iter().filter(|n| !installed.is_some_and(|i| i.contains(&n.package))).collect();
        if lacking.is_empty() {
            continue;
        }
        let listed: Vec<String> = lacking.iter().map(|n| format!("{} (from {})", n.library, n.package)).collect();
        missing.push(format!("{wheel} links {}", listed.join(", ")));
        for need in lacking {
            if !packages.contains(&need.package.as_str()) {
                packages.push(&need.package);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut all: Vec<String> = config.system_packages.clone();
    all.extend(packages.iter().map(|p| p.to_string()));
    bail!(
        "the image would lack shared libraries its wheels link, which the base image {} does not have: {}; install \
         them in the image: system-packages = [{}] in [tool.xtask]",
        config.base_image,
        missing.join("; "),
        all.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_names_and_the_check() {
        assert_eq!(package_of("libldap-2.5-0_2.5.13+dfsg-5_amd64.deb"), "libldap-2.5-0");
        let dir = std::env::temp_dir().join(format!("xtask-system-packages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pyproject.toml"), "[project]\nname = \"svc\"\n").unwrap();
        let config = Config::read(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let need = |p: &str, l: &str| Need { package: p.into(), library: l.into() };
        let needs = vec![(
            "python_ldap-3.4.8-cp311-cp311-linux_x86_64.whl".to_string(),
            vec![need("libldap-2.5-0", "libldap-2.5.so.0"), need("libsasl2-2", "libsasl2.so.2")],
        )];
        let err = check(&config, &needs, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "the image would lack shared libraries its wheels link, which the base image python:3.12-slim does not \
             have: python_ldap-3.4.8-cp311-cp311-linux_x86_64.whl links libldap-2.5.so.0 (from libldap-2.5-0), \
             libsasl2.so.2 (from libsasl2-2); install them in the image: system-packages = [\"libldap-2.5-0\", \
             \"libsasl2-2\"] in [tool.xtask]"
        );
        // libldap-2.5-0 asked for, libsasl2-2 fetched as its dependency: nothing lacks.
        let fetched = SystemPackages {
            installed: ["libldap-2.5-0", "libsasl2-2", "libsasl2-modules-db"].iter().map(|s| s.to_string()).collect(),
            ..SystemPackages::default()
        };
        check(&config, &needs, Some(&fetched)).unwrap();
    }
}
