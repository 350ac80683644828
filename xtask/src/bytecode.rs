//! The bytecode compiler the image's virtualenv and app are compiled with: one Python script, run on the host
//! (its `python3` when it is the image's version) or in a container of the base image (`site.rs`), and by the
//! index look-up for each wheel it fetches (`index.rs`), so that both ways write the same bytes.

use crate::config::PythonVersion;

/// Compiles the bytecode of every `.py` file under `root` (`argv[1]`) whose `.pyc` is missing or stale, for the
/// image's Python (`argv[4]`: exits with 75, compiling nothing, when it is another); `argv[2]` is where `root`
/// is in the image (the paths tracebacks show). Removes the bytecode of sources that are gone and of other
/// versions. A file that does not compile is left out (a package's Python 2 example), or with `strict` (the
/// app's own files) is an error that names it. With `--wheels <cache> <site-packages in the image> <X.Y>`, the
/// bytecode of each wheel named on stdin instead (`path<TAB>sha256<TAB>path once moved`), into
/// `<cache>/<sha256>/`. With `--when-told` first, the tree is compiled once a line `go` comes on stdin (`Pending`).
/// Only double quotes: the container runs it in single quotes.
pub(crate) const COMPILE: &str = r#"import _imp, os, sys
# What py_compile and importlib.util do, with the import machinery every Python starts with: their own imports
# (traceback, tokenize, ...) take 15 ms of a 30 ms start; py_compile is imported only to word an error.
import _frozen_importlib_external as fx
tag = sys.implementation.cache_tag
def source_hash(data):
    return _imp.source_hash(fx._RAW_MAGIC_NUMBER, data)
# Unchecked hash-based, named by the path in the image. marshal marks the objects it shares by their reference
# counts, which the objects alive in the process change: both ways below run this same script, one file at a
# time (and the bytes do not depend on the order: compared with the wheels given in reverse).
def to_pyc(data, dfile):
    code = fx.SourceFileLoader("<xtask>", dfile).source_to_code(data, dfile)
    return fx._code_to_hash_pyc(code, source_hash(data), False)
if sys.argv[1] == "--wheels":
    # Each wheel named on stdin as it arrives (path, sha256): the bytecode of its modules as the virtualenv at
    # argv[3] (site-packages in the image) holds them, into argv[2]/<sha256>/ (what site.rs links in).
    cache, site, version = sys.argv[2:5]
    if "%d.%d" % sys.version_info[:2] != version:
        sys.exit(75)
    import zipfile
    for line in sys.stdin:
        # The wheel, its sha256, and where it is once moved (the wheelhouse put in place meanwhile).
        path, sha256, *moved = line.rstrip("\n").split("\t")
        final = os.path.join(cache, sha256)
        if os.path.isdir(final):
            continue
        tmp = "%s.tmp-%d" % (final, os.getpid())
        try:
            try:
                wheel = zipfile.ZipFile(path)
            except FileNotFoundError:
                if not (moved and moved[0]):
                    raise
                wheel = zipfile.ZipFile(moved[0])
            with wheel as z:
                for name in z.namelist():
                    parts = name.split("/")
                    if parts[0].endswith(".data") and len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                        parts = parts[2:]
                    elif parts[0].endswith((".data", ".dist-info")):
                        continue
                    if not parts[-1].endswith(".py"):
                        continue
                    try:
                        pyc = to_pyc(z.read(name), site + "/" + "/".join(parts))
                    except Exception:
                        continue
                    folder = os.path.join(tmp, *parts[:-1], "__pycache__")
                    os.makedirs(folder, exist_ok=True)
                    fx._write_atomic(os.path.join(folder, "%s.%s.pyc" % (parts[-1][:-3], tag)), pyc, 0o666)
            os.makedirs(cache, exist_ok=True)
            os.rename(tmp, final)
        except Exception as e:
            print("bytecode of %s: %s" % (path, e), file=sys.stderr)
    sys.exit(0)
told = sys.argv[1] == "--when-told"
if told:
    del sys.argv[1]
root, prefix, strict, version = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"), sys.argv[3] == "strict", sys.argv[4]
if "%d.%d" % sys.version_info[:2] != version:
    sys.exit(75)
# Started before the tree is ready (the interpreter starts while the context is assembled): compiles when told
# so on stdin, and nothing when stdin closes first.
if told and sys.stdin.readline() != "go\n":
    sys.exit(0)
if not strict:
    # For a virtualenv: the objects alive as in the way above, so that what this compiles is what the look-up
    # had compiled for the same file (all but 1 of 14 134 files of 306 wheels, compared); not for the app.
    import zipfile
def stale(src, cfile):
    try:
        with open(cfile, "rb") as f:
            head = f.read(16)
        with open(src, "rb") as f:
            data = f.read()
    except OSError:
        return True
    return head[:8] != fx.MAGIC_NUMBER + bytes([1, 0, 0, 0]) or head[8:] != source_hash(data)
def build(job):
    src, cfile, dfile = job
    try:
        with open(src, "rb") as f:
            data = f.read()
        try:
            pyc = to_pyc(data, dfile)
        except Exception as err:
            import py_compile
            return str(py_compile.PyCompileError(err.__class__, err, dfile)).strip() or dfile
        os.makedirs(os.path.dirname(cfile), exist_ok=True)
        fx._write_atomic(cfile, pyc, fx._calc_mode(src))
        return ""
    except Exception as e:
        return str(e).strip() or dfile
jobs = []
for d, dirs, files in os.walk(root):
    dirs[:] = [x for x in dirs if x != "__pycache__"]
    for name in files:
        if name.endswith(".py"):
            src = os.path.join(d, name)
            cfile = fx.cache_from_source(src)
            if stale(src, cfile):
                jobs.append((src, cfile, prefix + src[len(root):]))
    cache = os.path.join(d, "__pycache__")
    if os.path.isdir(cache):
        for name in os.listdir(cache):
            if not name.endswith("." + tag + ".pyc") or not os.path.isfile(os.path.join(d, name.split(".")[0] + ".py")):
                os.remove(os.path.join(cache, name))
if len(jobs) > 64 and (os.cpu_count() or 1) > 1:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork")) as pool:
        failed = [e for e in pool.map(build, jobs, chunksize=16) if e]
else:
    failed = [e for e in map(build, jobs) if e]
if strict and failed:
    sys.exit("\n".join(failed))
"#;

/// `lib/pythonX.Y/site-packages`: where the packages are in the virtualenv.
pub(crate) fn site_packages(python: PythonVersion) -> String {
    format!("lib/python{python}/site-packages")
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    /// The look-up's compiler goes on after the look-up, and the wheelhouse is moved into place meanwhile: a
    /// wheel it comes to later is read where it went.
    #[test]
    fn a_wheel_moved_while_queued_is_compiled_from_where_it_went() {
        let python = crate::wheels::host_python().expect("a host python3");
        let dir = std::env::temp_dir().join(format!("xtask-bytecode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("moved")).unwrap();
        let wheel = dir.join("moved/pkg-1.0-py3-none-any.whl");
        let made = Command::new(&python)
            .args([
                "-c",
                "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.writestr('pkg/__init__.py', 'x = 1\\n'); \
                 z.close(); print(sys.version_info[0], sys.version_info[1])",
            ])
            .arg(&wheel)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let version = String::from_utf8_lossy(&made.stdout).trim().replace(' ', ".");
        let site = format!("/opt/venv/{}", super::site_packages(version.parse().unwrap()));
        let cache = dir.join("cache");
        let mut compiler = Command::new(&python)
            .args(["-I", "-S", "-c", super::COMPILE, "--wheels"])
            .arg(&cache)
            .args([&site, &version])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let gone = dir.join("tmp/pkg-1.0-py3-none-any.whl");
        let line = format!("{}\t{}\t{}\n", gone.display(), "ab".repeat(32), wheel.display());
        std::io::Write::write_all(compiler.stdin.as_mut().unwrap(), line.as_bytes()).unwrap();
        drop(compiler.stdin.take());
        assert!(compiler.wait().unwrap().success());
        let tag = version.replace('.', "");
        let pyc = cache.join("ab".repeat(32)).join(format!("pkg/__pycache__/__init__.cpython-{tag}.pyc"));
        assert!(pyc.is_file(), "{} was not written", pyc.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The container runs the compiler in single quotes (`sh -c '... python3 -c '<COMPILE>' ...'`).
    #[test]
    fn the_compiler_has_no_single_quote() {
        assert!(!super::COMPILE.contains('\''), "a single quote in COMPILE ends the container's script early");
    }
}
