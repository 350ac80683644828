//! Sdists built to wheels for the target: in a throwaway container of the base image (the image's own Python,
//! glibc and architecture; emulated by qemu for another architecture), with `tool.xtask.build-packages`
//! installed there by apt, from the sdist whose sha256 the lock pins. The wheel is cached under
//! `target/xtask/cache/built-wheels/`, keyed by the sdist's sha256, the target, the base image's id and the
//! build packages, so it is built once; the image build itself only installs it (no network, no compiler).
//!
//! The container also says which shared libraries of the base image's distribution the wheel links that the
//! base image lacks (`ldd`, then `dpkg -S`: `libldap-2.5.so.0` from `libldap-2.5-0`): the image must get them
//! from `tool.xtask.system-packages`, which `image` checks before it builds.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use poetry_export::sha256::Sha256;

use crate::engine::{Engine, FilesRun};
use crate::{gen, path_deps, paths, pip};

/// One sdist to build.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Normalized.
    pub(crate) name: String,
    pub(crate) version: String,
    /// The sdist on the host, checked against the lock's hash already.
    pub(crate) sdist: PathBuf,
    /// Hex.
    pub(crate) sha256: String,
}

/// A library the built wheel links that the base image lacks, and the package of the base image's
/// distribution that has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Need {
    pub(crate) package: String,
    pub(crate) library: String,
}

/// A wheel built from an sdist, in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Built {
    pub(crate) wheel: PathBuf,
    pub(crate) file_name: String,
    /// Hex.
    pub(crate) sha256: String,
    pub(crate) needs: Vec<Need>,
}

/// Where and for what the sdists are built.
pub(crate) struct Builder<'a> {
    pub(crate) engine: &'a Engine,
    /// As the user names it, for messages.
    pub(crate) base_image: &'a str,
    pub(crate) base_id: &'a str,
    pub(crate) platform: &'a str,
    /// `Target::key`.
    pub(crate) target_key: String,
    pub(crate) build_packages: &'a [String],
    /// The index the build backends come from (the project's primary index, without credentials).
    pub(crate) index_url: String,
    /// Failed builds' logs are kept here.
    pub(crate) logs: PathBuf,
}

/// The cache entry of `job` built by `builder`.
fn cache_dir(builder: &Builder<'_>, job: &Job) -> PathBuf {
    let mut hasher = Sha256::default();
    hasher.update(b"xtask sdist build 1\n");
    let mut packages = builder.build_packages.to_vec();
    packages.sort();
    for part in [&job.sha256, &builder.target_key, builder.base_id, builder.platform, &packages.join(" ")] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    let key = hasher.hex();
    paths::built_wheels_cache().join(format!("{}-{}-{}", job.name, job.version, &key[..16]))
}

/// The wheel cached for `job`, when there is one and it is still the file recorded.
pub(crate) fn cached(builder: &Builder<'_>, job: &Job) -> Option<Built> {
    read_record(&cache_dir(builder, job), &job.sha256)
}

/// `record`: `sdist <sha256>`, `wheel <file> <sha256>`, `need <package> <library>` lines.
fn read_record(dir: &Path, sdist_sha256: &str) -> Option<Built> {
    let text = std::fs::read_to_string(dir.join("record")).ok()?;
    let mut sdist = None;
    let mut wheel = None;
    let mut needs = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["sdist", sha] => sdist = Some(sha.to_string()),
            ["wheel", file, sha] => wheel = Some((file.to_string(), sha.to_string())),
            ["need", package, library] => {
                needs.push(Need { package: package.to_string(), library: library.to_string() })
            }
            _ => return None,
        }
    }
    let (file_name, sha256) = wheel?;
    if sdist.as_deref() != Some(sdist_sha256) {
        return None;
    }
    let path = dir.join(&file_name);
    // Hash what is copied: the cache is outside the wheelhouse's stamp.
    if gen::sha256_file(&path).ok()? != sha256 {
        return None;
    }
    Some(Built { wheel: path, file_name, sha256, needs })
}

/// The script run in the container: unpacks the sdists from stdin, installs the build packages, builds each
/// sdist on its own (a failure does not stop the others), and lists the libraries each wheel links that the
/// base image lacks; writes the results as a tar to stdout.
const SCRIPT: &str = r#"set -u
exec 3>&1 1>&2
mkdir -p /xtask/in /xtask/out /xtask/x && cd /xtask
tar -x -f - -C in --no-same-owner || exit 90
dpkg-query -W -f '${Package}\n' 2>/dev/null | sort -u > base-packages
if [ -n "$XTASK_BUILD_PACKAGES" ]; then
  echo "installing the build packages: $XTASK_BUILD_PACKAGES"
  if ! command -v apt-get > /dev/null; then
    echo "the base image has no apt-get" > out/apt.log; echo failed > out/apt.status
  elif (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $XTASK_BUILD_PACKAGES) > out/apt.log 2>&1; then
    echo ok > out/apt.status
  else
    echo failed > out/apt.status
  fi
fi
[ -f in/ca.crt ] && export PIP_CERT=/xtask/in/ca.crt
if [ "$(cat out/apt.status 2>/dev/null)" != failed ]; then
  while read -r name version file; do
    start=$(date +%s)
    mkdir -p "out/$name"
    if python3 -m pip wheel --no-deps --no-cache-dir --progress-bar off --wheel-dir "out/$name" "in/$file" > "out/$name.log" 2>&1; then
      echo ok > "out/$name.status"
      for wheel in out/"$name"/*.whl; do python3 -m zipfile -e "$wheel" "x/$name"; done
      find "x/$name" -type f -name '*.so*' | while read -r so; do ldd "$so" 2>/dev/null; done \
        | awk '$2 == "=>" { print $1, $3 }' | sort -u | while read -r library path; do
          if [ "$path" = not ]; then echo "need ? $library"; continue; fi
          owner=""
          for candidate in "$path" "/usr$path" "$(readlink -f "$path")" "/usr$(readlink -f "$path")"; do
            owner=$(dpkg -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$owner" ] && break
          done
          if [ -n "$owner" ] && ! grep -qx "$owner" base-packages; then echo "need $owner $library"; fi
        done > "out/$name.needs"
    else
      echo failed > "out/$name.status"
    fi
    echo "$name $version: $(cat "out/$name.status") in $(($(date +%s) - start)) s"
  done < in/jobs
fi
tar -c -f - -C out . >&3
"#;

/// Builds `jobs` (none of them cached) in one container; returns each job's wheel, or why it could not be
/// built and what would make it buildable.
pub(crate) fn build(builder: &Builder<'_>, jobs: &[&Job], scratch: &Path) -> Result<Vec<Result<Built, String>>> {
    let dry_run = builder.engine.dry_run;
    let input = scratch.join("in");
    let output = scratch.join("out");
    if !dry_run {
        let _ = std::fs::remove_dir_all(scratch);
        std::fs::create_dir_all(&input).with_context(|| format!("cannot create {}", paths::display(&input)))?;
    }
    let _scratch = (!dry_run).then(|| gen::Scratch(scratch.to_path_buf()));
    let mut list = String::new();
    for job in jobs.iter().filter(|_| !dry_run) {
        let file = job.sdist.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if file.contains(char::is_whitespace) {
            bail!("{}: the sdist's file name has a space", file);
        }
        std::fs::copy(&job.sdist, input.join(&file)).with_context(|| format!("cannot copy {file}"))?;
        list.push_str(&format!("{} {} {file}\n", job.name, job.version));
    }
    if !dry_run {
        gen::write_atomic(&input.join("jobs"), list.as_bytes())?;
        if let Some(bundle) = pip::ca_bundle() {
            std::fs::copy(&bundle, input.join("ca.crt"))
                .with_context(|| format!("cannot copy {}", bundle.display()))?;
        }
    }
    let shown: Vec<String> = jobs.iter().map(|j| format!("{} {}", j.name, j.version)).collect();
    let packages = builder.build_packages.join(" ");
    println!(
        "wheels: building {} from source in a container of {} ({}){}",
        shown.join(", "),
        builder.base_image,
        builder.platform,
        if packages.is_empty() { String::new() } else { format!(" with {packages}") }
    );
    let request = FilesRun {
        name: format!("xtask-build-{}", std::process::id()),
        image: builder.base_id,
        platform: builder.platform,
        env: vec![
            ("XTASK_BUILD_PACKAGES".to_string(), packages),
            ("PIP_CONFIG_FILE".to_string(), "/dev/null".to_string()),
            ("PIP_INDEX_URL".to_string(), builder.index_url.clone()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".to_string(), "1".to_string()),
            ("PIP_NO_INPUT".to_string(), "1".to_string()),
        ],
        script: SCRIPT,
        script_shown: "<build script: apt-get install the build packages; pip wheel each sdist; ldd>",
        input: &input,
        output: &output,
    };
    builder.engine.run_with_files(&request)?;
    if dry_run {
        return Ok(Vec::new());
    }
    let apt_failed = std::fs::read_to_string(output.join("apt.status")).is_ok_and(|s| s.trim() == "failed");
    let apt_log = std::fs::read_to_string(output.join("apt.log")).unwrap_or_default();
    let mut results = Vec::new();
    for job in jobs {
        let what = format!("{} {}", job.name, job.version);
        if apt_failed {
            results.push(Err(format!(
                "{what}: apt in {} could not install tool.xtask.build-packages ({}): {}",
                builder.base_image,
                builder.build_packages.join(", "),
                last_error(&apt_log)
            )));
            continue;
        }
        results.push(collect(builder, job, &output).map_err(|e| format!("{what}: {e:#}")));
    }
    Ok(results)
}

/// The wheel of `job` from the container's output, checked and moved into the cache.
fn collect(builder: &Builder<'_>, job: &Job, output: &Path) -> Result<Built> {
    let status = std::fs::read_to_string(output.join(format!("{}.status", job.name))).unwrap_or_default();
    let log = std::fs::read_to_string(output.join(format!("{}.log", job.name))).unwrap_or_default();
    let sdist = job.sdist.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if status.trim() != "ok" {
        std::fs::create_dir_all(&builder.logs)?;
        let kept = builder.logs.join(format!("{}-{}.log", job.name, job.version));
        gen::write_atomic(&kept, log.as_bytes())?;
        println!("wheels: the build of {sdist} failed; the end of its log ({}):", paths::display(&kept));
        for line in tail(&log, 15) {
            println!("  | {line}");
        }
        bail!(
            "building {sdist} in a container of {} failed: {} (its log: {})",
            builder.base_image,
            remedy(&log, builder.build_packages),
            paths::display(&kept)
        );
    }
    let dir = output.join(&job.name);
    let wheels: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("the build of {sdist} made no wheel"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".whl"))
        .collect();
    let [file_name] = wheels.as_slice() else { bail!("building {sdist} made {} wheels, expected one", wheels.len()) };
    match path_deps::parse_wheel_name(file_name) {
        Some((name, ..)) if name == job.name => {}
        _ => bail!("building {sdist} made {file_name}, which is not a wheel of {}", job.name),
    }
    let needs_text = std::fs::read_to_string(output.join(format!("{}.needs", job.name))).unwrap_or_default();
    let mut needs = Vec::new();
    for line in needs_text.lines() {
        if let ["need", package, library] = line.split(' ').collect::<Vec<_>>().as_slice() {
            if *package == "?" {
                bail!(
                    "its wheel {file_name} links {library}, which is not found even with the build packages installed: \
                     add the package that has it to tool.xtask.build-packages"
                );
            }
            needs.push(Need { package: package.to_string(), library: library.to_string() });
        }
    }
    needs.sort();
    needs.dedup();
    let sha256 = gen::sha256_file(&dir.join(file_name))?;
    let cache = cache_dir(builder, job);
    let staging = cache.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", paths::display(&staging)))?;
    std::fs::rename(dir.join(file_name), staging.join(file_name))
        .with_context(|| format!("cannot move {file_name} into {}", paths::display(&staging)))?;
    let mut record = format!("sdist {}\nwheel {file_name} {sha256}\n", job.sha256);
    for need in &needs {
        record.push_str(&format!("need {} {}\n", need.package, need.library));
    }
    gen::write_atomic(&staging.join("record"), record.as_bytes())?;
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::rename(&staging, &cache).with_context(|| format!("cannot write {}", paths::display(&cache)))?;
    println!("wheels: built {file_name} ({}), kept in {}", job.name, paths::display(&cache));
    Ok(Built { wheel: cache.join(file_name), file_name: file_name.clone(), sha256, needs })
}

/// The last `n` non-empty lines of a log.
fn tail(log: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The last line of apt's log that says what went wrong.
fn last_error(log: &str) -> String {
    log.lines().rev().find(|l| l.starts_with("E: ")).or_else(|| tail(log, 1).first().copied()).unwrap_or("").to_string()
}

/// What a failed build's log says is missing, and what to add to `tool.xtask.build-packages` (pure).
pub(crate) fn remedy(log: &str, build_packages: &[String]) -> String {
    let asked = |p: &str| build_packages.iter().any(|b| b == p || b.starts_with(&format!("{p}=")));
    let header = log.lines().find_map(|l| {
        let (_, rest) = l.split_once("fatal error: ")?;
        let name = rest.split(':').next()?.trim();
        Some(name.to_string())
    });
    let no_compiler =
        log.lines().any(|l| l.contains("No such file or directory") && (l.contains("gcc'") || l.contains("'cc'")))
            || log.contains("command 'gcc' failed")
            || log.contains("-gcc' failed")
            || log.contains("gcc: not found")
            || log.contains("unable to execute 'gcc'")
            || log.contains("error: command 'cc' failed")
            || log.contains("C compiler cannot create executables");
    if no_compiler && !asked("gcc") {
        return "it compiles C and the container has no compiler: add \"gcc\" and \"libc6-dev\" to \
                tool.xtask.build-packages, with the -dev packages of the libraries it builds against"
            .to_string();
    }
    match header {
        Some(header) if header == "Python.h" => format!(
            "the Python headers are missing (Python.h): add \"python3-dev\" to tool.xtask.build-packages (the base \
             image's Python{} has none)",
            if asked("python3-dev") { " does not use Debian's python3-dev and" } else { "" }
        ),
        // Headers CPython stopped installing (3.11 moved longintrepr.h and eval.h inside): the code predates it.
        Some(header) if ["longintrepr.h", "eval.h"].contains(&header.as_str()) => format!(
            "its C code includes {header}, which this Python no longer has (CPython 3.11 made it internal): lock a \
             version of it that supports this Python"
        ),
        Some(header) => format!(
            "the C header {header} is missing: add the -dev package that has it to tool.xtask.build-packages \
             (`apt-file search {header}` on a Debian machine tells which)"
        ),
        None => said(log),
    }
}

/// The line of a failed build's log that says most about why (pure): a library the build looked for, the last
/// exception with a message, else the first specific `error:` line.
fn said(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.iter().any(|l| l.contains("object has no attribute 'cython_sources'")) {
        return "its setup does not work with Cython 3 (AttributeError: 'build_ext' object has no attribute \
                'cython_sources'): this version cannot be built any more; lock a newer one"
            .to_string();
    }
    let wants_library = |l: &&&str| {
        let lower = l.to_lowercase();
        lower.contains("development packages")
            || lower.contains("headers or library files could not be found")
            || (lower.contains("not found") && (lower.contains("pkg-config") || lower.contains("library")))
    };
    if let Some(line) = lines.iter().find(wants_library) {
        return format!("{line}: add the -dev packages it names to tool.xtask.build-packages");
    }
    // `c/_cffi_backend.c:407:23: error: lvalue required`: the compiler ran and the code is wrong for this Python.
    let compile_error = |l: &&&str| {
        let Some((place, _)) = l.split_once(": error: ") else { return false };
        let file = place.split(':').next().unwrap_or_default();
        [".c", ".h", ".cc", ".cpp", ".cxx", ".pyx"].iter().any(|ext| file.ends_with(ext))
    };
    if let Some(line) = lines.iter().find(compile_error) {
        return format!(
            "its C code does not compile for this Python ({line}): lock a version of it that supports this Python"
        );
    }
    let exception = |l: &&&str| {
        let Some((kind, message)) = l.split_once(": ") else { return false };
        !message.trim().is_empty()
            && (kind.ends_with("Error") || kind.ends_with("Exception"))
            && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    };
    if let Some(line) = lines.iter().rev().find(exception) {
        return format!("{line}; see the end of its log above");
    }
    let generic = |l: &str| {
        l.contains("Failed to build")
            || l.contains("Failed building wheel")
            || l.contains("subprocess-exited-with-error")
    };
    let error = lines.iter().find(|l| l.to_lowercase().starts_with("error:") && !generic(l));
    match error.or(lines.last()) {
        Some(line) => format!("{line}; see the end of its log above"),
        None => "see its log".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_says_what_to_add() {
        let no_gcc =
            "building '_ldap' extension\nerror: command 'x86_64-linux-gnu-gcc' failed: No such file or directory\n";
        assert!(remedy(no_gcc, &[]).starts_with("it compiles C and the container has no compiler: add \"gcc\""));
        let no_gcc =
            "      error: [Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'\nERROR: Failed to build\n";
        assert!(remedy(no_gcc, &[]).starts_with("it compiles C and the container has no compiler"));
        let header = "Modules/common.h:15:10: fatal error: lber.h: No such file or directory\n";
        let packages = ["gcc".to_string(), "libc6-dev".to_string()];
        assert_eq!(
            remedy(header, &packages),
            "the C header lber.h is missing: add the -dev package that has it to tool.xtask.build-packages \
             (`apt-file search lber.h` on a Debian machine tells which)"
        );
        let python = "src/x.c:1:10: fatal error: Python.h: No such file or directory\n";
        assert!(remedy(python, &packages).starts_with("the Python headers are missing (Python.h): add \"python3-dev\""));
        assert_eq!(remedy("a\nValueError: nope\n\n", &packages), "ValueError: nope; see the end of its log above");
        let generic =
            "  error: subprocess-exited-with-error\n  error: metadata-generation-failed\nERROR: Failed to build\n";
        assert_eq!(remedy(generic, &packages), "error: metadata-generation-failed; see the end of its log above");
        // Real logs (mealie's pins on Python 3.11): what the build looked for, or the exception that ended it.
        let lxml = "  error: subprocess-exited-with-error\n      Error: Please make sure the libxml2 and libxslt \
                    development packages are installed.\n  note: This error originates from a subprocess\n";
        assert_eq!(
            remedy(lxml, &packages),
            "Error: Please make sure the libxml2 and libxslt development packages are installed.: add the -dev \
             packages it names to tool.xtask.build-packages"
        );
        let pillow = "      raise RequiredDependencyException(f)\n      RequiredDependencyException: zlib\n\n      \
                      During handling of the above exception\n      RequiredDependencyException:\n";
        assert_eq!(remedy(pillow, &packages), "RequiredDependencyException: zlib; see the end of its log above");
        let cffi = "      c/_cffi_backend.c:407:23: error: lvalue required as left operand of assignment\n      \
                    error: command '/usr/bin/x86_64-linux-gnu-gcc' failed with exit code 1\n";
        assert_eq!(
            remedy(cffi, &packages),
            "its C code does not compile for this Python (c/_cffi_backend.c:407:23: error: lvalue required as left \
             operand of assignment): lock a version of it that supports this Python"
        );
        let lxml = "src/lxml/etree.c:289:12: fatal error: longintrepr.h: No such file or directory\n";
        assert!(remedy(lxml, &packages).starts_with("its C code includes longintrepr.h, which this Python no longer"));
        let pyyaml = "      AttributeError: 'build_ext' object has no attribute 'cython_sources'\n";
        assert!(remedy(pyyaml, &packages).starts_with("its setup does not work with Cython 3"));
        assert_eq!(
            last_error("Reading\nE: Unable to locate package libfoo-dev\nx\n"),
            "E: Unable to locate package libfoo-dev"
        );
    }

    #[test]
    fn records_round_trip() {
        let dir = std::env::temp_dir().join(format!("xtask-sdists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x-1-cp311-cp311-linux_x86_64.whl"), b"wheel").unwrap();
        let sha = poetry_export::sha256::hex_digest(b"wheel");
        let record = format!("sdist aa\nwheel x-1-cp311-cp311-linux_x86_64.whl {sha}\nneed libx1 libx.so.1\n");
        std::fs::write(dir.join("record"), record).unwrap();
        let built = read_record(&dir, "aa").unwrap();
        assert_eq!(built.needs, [Need { package: "libx1".into(), library: "libx.so.1".into() }]);
        assert_eq!(read_record(&dir, "bb"), None, "another sdist");
        std::fs::write(dir.join("x-1-cp311-cp311-linux_x86_64.whl"), b"changed").unwrap();
        assert_eq!(read_record(&dir, "aa"), None, "a wheel that changed is not reused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
