//! What the tool asks package indexes on the host, with pip's own `requests` (and so the machine's CA bundle and
//! the credentials of `credentials.rs`, read through `NETRC`): the URLs of the locked files on each package's
//! simple page (PEP 691 JSON, or HTML), fetched in parallel, and files fetched by URL (sdists to build, URL
//! dependencies), each checked against the lock's sha256 before it is kept.
//!
//! A page that answers 401 or 403, a project the index no longer has (404), an index that cannot be reached, or
//! a page that no longer lists any locked file of the package (the version was deleted), is a blocker naming the
//! package and the reason, rather than pip's "no matching distribution" later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use poetry_export::SelectedPackage;
use xshell::Shell;

use crate::credentials::{self, IndexAuth};
use crate::pip;

/// A locked file found on its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) url: String,
    /// The file's Requires-Python, as the index gives it.
    pub(crate) requires_python: String,
}

/// What a look-up found: the URL of each locked file listed, and why a package cannot be had (its name, the
/// blocker).
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    pub(crate) files: BTreeMap<String, Found>,
    pub(crate) blockers: Vec<(String, String)>,
    /// What became of each file fetched: `ok`, `hash` (with the sha256 got) or `fail` (with why).
    pub(crate) fetched: BTreeMap<String, (String, String)>,
    /// The process compiling the fetched wheels' bytecode (`BytecodeCache`), if one was started.
    pub(crate) compiler: Option<u32>,
}

/// The simple-index page of `package`: its private index's (`legacy`), else PyPI's. Without credentials.
pub(crate) fn index_of(package: &SelectedPackage) -> String {
    match package.source_kind.as_deref() {
        Some("legacy") => credentials::split_userinfo(package.source_url.as_deref().unwrap_or_default()).0,
        _ => pip::PYPI_SIMPLE.to_string(),
    }
}

/// What both scripts share: a session of pip's `requests` with the CA bundle (argv[1]),
/// page requests with retries, the innermost reason of a failure, and a file fetched to `dest` through
/// `dest.part`, checked for its length and sha256 before it takes its name.
macro_rules! common_script {
    () => {
        r##"
import concurrent.futures, hashlib, html, os, re, sys, time, urllib.parse
from pip._vendor import requests
session = requests.Session()
if len(sys.argv) > 1:
    session.verify = sys.argv[1]
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
def get(page):
    for attempt in range(3):
        try:
            response = session.get(page, headers={"Accept": ACCEPT}, timeout=60)
            if response.status_code < 500:
                return response
        except requests.RequestException as e:
            if attempt == 2:
                raise
        time.sleep(1 + attempt)
    return response
def reason(e):
    # The innermost cause ("[Errno -2] Name or service not known"), not urllib3's whole chain.
    text = str(e).replace("\t", " ").replace("\n", " ")
    errno = re.findall(r"\[Errno [^\]]+\][^'\")]*", text)
    return errno[-1].strip() if errno else text[:200]
def fetch(url, dest, sha256):
    part = dest + ".part"
    try:
        with session.get(url, stream=True, timeout=120) as response:
            if response.status_code != 200:
                return "fail", "HTTP %d %s" % (response.status_code, response.reason)
            digest, size = hashlib.sha256(), 0
            with open(part, "wb") as out:
                for chunk in response.iter_content(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            expected = response.headers.get("Content-Length", "")
        if expected.isdigit() and size != int(expected):
            os.remove(part)
            return "fail", "the connection closed after %d of its %s bytes" % (size, expected)
        if digest.hexdigest() != sha256:
            os.remove(part)
            return "hash", digest.hexdigest()
        os.replace(part, dest)
        return "ok", ""
    except BaseException as e:
        try:
            os.remove(part)
        except OSError:
            pass
        if not isinstance(e, Exception):
            raise
        return "fail", reason(e)
"##
    };
}

const LOOKUP_SCRIPT: &str = concat!(
    common_script!(),
    r##"# The bytecode of each wheel fetched, compiled while the other wheels download by bytecode.rs' compiler, this
# interpreter running the script in XTASK_COMPILE, given each wheel as it arrives. XTASK_BYTECODE: the cache, the
# site-packages folder in the image, the image's Python version, the folder the wheels are moved to afterwards.
compiler = None
if os.environ.get("XTASK_BYTECODE"):
    import subprocess, threading
    compiler_lock = threading.Lock()
    *arguments, moved_to = os.environ["XTASK_BYTECODE"].split("\t")
    compiler = subprocess.Popen([sys.executable, "-I", "-S", "-c", os.environ["XTASK_COMPILE"], "--wheels", *arguments],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
def compile_wheel(path, sha256):
    global compiler
    if compiler is not None:
        with compiler_lock:
            try:
                # And where the file will be once the wheelhouse is in place: the compiler may come to it later.
                moved = os.path.join(moved_to, os.path.basename(path))
                compiler.stdin.write("%s\t%s\t%s\n" % (path, sha256, moved))
                compiler.stdin.flush()
            except OSError:
                # Gone (a host Python of another version than the image's: it compiles nothing).
                compiler = None
def links(numbered):
    number, line = numbered
    page, files, wanted, dest = (line.split("\t") + ["", "", ""])[:4]
    try:
        response = get(page)
    except Exception as e:
        return ["page\t%d\tunreachable\t%s" % (number, reason(e))]
    if response.status_code != 200:
        return ["page\t%d\t%d\t%s" % (number, response.status_code, response.reason)]
    found = {}
    if "json" in response.headers.get("Content-Type", ""):
        for f in response.json().get("files", []):
            found[f["filename"]] = (f["url"], f.get("requires-python") or "")
    else:
        for attributes in re.findall(r"<a\s([^>]*)>", response.text):
            href = re.search(r'href\s*=\s*"([^"]*)"', attributes)
            if href:
                url = html.unescape(href.group(1))
                requires = re.search(r'data-requires-python\s*=\s*"([^"]*)"', attributes)
                name = urllib.parse.unquote(url.split("#")[0].rsplit("/", 1)[-1])
                found[name] = (url, html.unescape(requires.group(1)) if requires else "")
    out = ["page\t%d\tok\t" % number]
    urls = {}
    for f in files.split(" "):
        if f in found:
            urls[f] = urllib.parse.urljoin(response.url, found[f][0].split("#")[0])
            out.append("file\t%s\t%s\t%s" % (f, urls[f], found[f][1]))
    # The first of the wanted files (best first) that the page lists, fetched and checked.
    for want in wanted.split(" "):
        name, _, sha256 = want.partition("=")
        if name in urls:
            status, why = fetch(urls[name], os.path.join(dest, name), sha256)
            out.append("got\t%s\t%s\t%s" % (name, status, why))
            if status == "ok" and name.endswith(".whl"):
                compile_wheel(os.path.join(dest, name), sha256)
            break
    return out
lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    for result in pool.map(links, enumerate(lines)):
        for line in result:
            print(line, flush=True)
if compiler is not None:
    # Not waited for: it goes on beside uv's install until site.rs stops it (its pid) to link what it made. Its
    # output goes nowhere, so that reading this process's to the end does not wait for it either (what it could
    # not compile, site.rs' compiler compiles and reports).
    try:
        compiler.stdin.close()
    except OSError:
        pass
    print("compiler\t%d" % compiler.pid, flush=True)
"##
);

/// One page to ask: the simple-index page, the files whose URLs are wanted, and the files to fetch into `dest`
/// (best first, each with its sha256 in hex): the first the page lists is fetched and checked, the others not.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub(crate) page: String,
    pub(crate) files: Vec<String>,
    pub(crate) fetch: Vec<(String, String)>,
    pub(crate) dest: Option<PathBuf>,
}

/// What the pages answered: each query's page status and reason (`ok`, `404`, `unreachable`...), the URLs of
/// the files found, and what became of each file fetched (`ok`, `hash` with the sha256 got, `fail` with why).
#[derive(Debug, Default)]
pub(crate) struct Answers {
    pub(crate) pages: BTreeMap<usize, (String, String)>,
    pub(crate) files: BTreeMap<String, Found>,
    pub(crate) fetched: BTreeMap<String, (String, String)>,
    /// The process compiling the fetched wheels' bytecode (`BytecodeCache`), if one was started.
    pub(crate) compiler: Option<u32>,
}

/// Where the look-up has the bytecode of the wheels it fetches compiled (`bytecode::COMPILE`, `--wheels`).
pub(crate) struct BytecodeCache {
    /// `paths::bytecode_cache`.
    pub(crate) dir: PathBuf,
    /// The virtualenv's site-packages folder in the image.
    pub(crate) site: String,
    /// The image's Python version.
    pub(crate) version: String,
    /// The folder the fetched files are moved to when the look-up is over (the compiler goes on after it).
    pub(crate) moved_to: PathBuf,
}

/// Asks the pages of `queries` in parallel (one Python process: pip's `requests`, the CA bundle, `netrc`).
/// Fails only when the look-up itself cannot run.
pub(crate) fn ask(
    sh: &Shell,
    python: &Path,
    netrc: Option<&Path>,
    queries: &[Query],
    bytecode: Option<&BytecodeCache>,
) -> Result<Answers> {
    let mut input = String::new();
    for query in queries {
        let fetch: Vec<String> = query.fetch.iter().map(|(file, sha256)| format!("{file}={sha256}")).collect();
        let dest = query.dest.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
        input.push_str(&format!("{}\t{}\t{}\t{dest}\n", query.page, query.files.join(" "), fetch.join(" ")));
    }
    let mut command = sh.cmd(python).arg("-c").arg(LOOKUP_SCRIPT).args(pip::ca_bundle()).stdin(input).quiet();
    if let Some(netrc) = netrc {
        command = command.env("NETRC", netrc);
    }
    command = match bytecode {
        // The look-up's own interpreter compiles (only when it is the image's version: the script checks).
        Some(b) => command
            .env("XTASK_BYTECODE", format!("{}\t{}\t{}\t{}", b.dir.display(), b.site, b.version, b.moved_to.display()))
            .env("XTASK_COMPILE", crate::bytecode::COMPILE),
        None => command.env_remove("XTASK_BYTECODE"),
    };
    let output = command.ignore_status().output().context("cannot run python3")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("it failed");
        bail!("cannot look up the locked files' URLs on the index ({})", last.trim());
    }
    let mut answers = Answers::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["page", number, status, reason] => {
                if let Ok(number) = number.parse() {
                    answers.pages.insert(number, (status.to_string(), reason.to_string()));
                }
            }
            ["file", file, url, requires] => {
                let found = Found { url: url.to_string(), requires_python: requires.to_string() };
                answers.files.insert(file.to_string(), found);
            }
            ["got", file, status, why] => {
                answers.fetched.insert(file.to_string(), (status.to_string(), why.to_string()));
            }
            ["compiler", pid] => answers.compiler = pid.parse().ok(),
            _ => {}
        }
    }
    Ok(answers)
}

/// Looks up the URLs of `wanted` files of each package on its index, and fetches into `dest` the first of each
/// package's files to fetch (best first) that its page lists. `netrc` is the private netrc file of the
/// credentials, if any. Fails only when the look-up itself cannot run (then pip searches the indexes itself).
pub(crate) fn lookup(
    sh: &Shell,
    python: &Path,
    auth: &IndexAuth,
    netrc: Option<&Path>,
    wanted: &[Want<'_>],
    dest: Option<&Path>,
    bytecode: Option<&BytecodeCache>,
) -> Result<Lookup> {
    let queries: Vec<Query> = wanted
        .iter()
        .map(|want| Query {
            page: format!("{}/{}/", index_of(want.package).trim_end_matches('/'), want.package.name),
            files: want.files.clone(),
            fetch: if dest.is_some() { want.fetch.clone() } else { Vec::new() },
            dest: dest.map(Path::to_path_buf),
        })
        .collect();
    let answers = ask(sh, python, netrc, &queries, bytecode)?;
    let mut lookup =
        Lookup { files: answers.files, fetched: answers.fetched, compiler: answers.compiler, ..Lookup::default() };
    let pages = answers.pages;
    for (number, want) in wanted.iter().enumerate() {
        let (package, files) = (want.package, &want.files);
        let index = index_of(package);
        let what = format!("{} {}", package.name, package.version);
        let source = auth.source_of(&index);
        let named = match source {
            Some(source) => format!("the index {} ({index})", source.name),
            None => format!("the index {index}"),
        };
        let blocker = match pages.get(&number).map(|(s, r)| (s.as_str(), r.as_str())) {
            Some(("ok", _)) if files.iter().any(|f| lookup.files.contains_key(f)) => continue,
            Some(("ok", _)) => format!(
                "{what}: {named} no longer lists its locked files ({}): the version was deleted from the \
                 index; lock another one (`poetry update {}`)",
                shorten(files),
                package.name
            ),
            Some((status @ ("401" | "403"), reason)) => {
                auth.refused(source, &index, &format!("{status} {reason}"), &what)
            }
            Some(("404", _)) => format!(
                "{what}: {named} has no project {} (404): it was removed from the index, or the lock was made \
                 with another index; lock again (`poetry lock`)",
                package.name
            ),
            Some(("unreachable", reason)) => format!("{what}: cannot reach {named}: {reason}"),
            Some((status, reason)) => format!("{what}: {named} answers {status} {reason}"),
            None => format!("{what}: no answer about it from {named}"),
        };
        lookup.blockers.push((package.name.clone(), blocker));
    }
    Ok(lookup)
}

/// A package whose files are looked up: the files whose URLs are wanted, and those to fetch (best first, with
/// their sha256 in hex).
pub(crate) struct Want<'a> {
    pub(crate) package: &'a SelectedPackage,
    pub(crate) files: Vec<String>,
    pub(crate) fetch: Vec<(String, String)>,
}

/// `a, b, c and 4 more`.
fn shorten(files: &[String]) -> String {
    let shown: Vec<&str> = files.iter().take(3).map(String::as_str).collect();
    match files.len() {
        n if n > 3 => format!("{} and {} more", shown.join(", "), n - 3),
        _ => shown.join(", "),
    }
}

/// A file to fetch by URL into `dest`, checked against `sha256` (hex).
#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    pub(crate) url: String,
    pub(crate) dest: PathBuf,
    pub(crate) sha256: String,
}

const FETCH_SCRIPT: &str = concat!(
    common_script!(),
    r##"
def fetch_line(line):
    url, dest, sha256 = line.split("\t")
    status, why = fetch(url, dest, sha256)
    return "%s\t%s\t%s" % (status, dest, why)
lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    for result in pool.map(fetch_line, lines):
        print(result)
"##
);

/// Fetches each of `files` (in parallel), keeping it only when its sha256 is the expected one; returns, for
/// each, `Ok` or why not.
pub(crate) fn fetch(
    sh: &Shell,
    python: &Path,
    netrc: Option<&Path>,
    files: &[Fetch],
) -> Result<Vec<Result<(), String>>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = String::new();
    for file in files {
        if let Some(parent) = file.dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        input.push_str(&format!("{}\t{}\t{}\n", file.url, file.dest.display(), file.sha256));
    }
    let mut command = sh.cmd(python).arg("-c").arg(FETCH_SCRIPT).args(pip::ca_bundle()).stdin(input).quiet();
    if let Some(netrc) = netrc {
        command = command.env("NETRC", netrc);
    }
    let output = command.ignore_status().output().context("cannot run python3")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "cannot fetch files: {}",
            stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("python3 failed")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: BTreeMap<&str, (&str, &str)> = stdout
        .lines()
        .filter_map(|l| {
            let mut fields = l.splitn(3, '\t');
            Some((fields.nth(1)?, (l.split('\t').next()?, fields.next().unwrap_or(""))))
        })
        .collect();
    Ok(files
        .iter()
        .map(|file| match answers.get(file.dest.display().to_string().as_str()) {
            Some(("ok", _)) => Ok(()),
            Some(("hash", got)) => Err(format!(
                "{} is not the file the lock pins: its sha256 is {got}, the lock says {}; check the URL, then \
                 `poetry lock`",
                file.url, file.sha256
            )),
            Some((_, why)) => Err(format!("cannot fetch {}: {why}", file.url)),
            None => Err(format!("cannot fetch {}: no answer", file.url)),
        })
        .collect())
}

/// A page of links pip can read (`--find-links`) for the `found` files of `packages`, each with its locked hash
/// and Requires-Python.
pub(crate) fn links_page(found: &BTreeMap<String, Found>, packages: &[&SelectedPackage]) -> String {
    let mut page = String::from("<!DOCTYPE html>\n<html><body>\n");
    for package in packages {
        for file in &package.files {
            let Some(found) = found.get(&file.file).filter(|_| file.file.ends_with(".whl")) else { continue };
            let hash = &file.hash;
            let hash = if hash.contains(':') { hash.replacen(':', "=", 1) } else { format!("sha256={hash}") };
            let requires = if found.requires_python.is_empty() {
                String::new()
            } else {
                format!(" data-requires-python=\"{}\"", escape(&found.requires_python))
            };
            page.push_str(&format!("<a href=\"{}#{hash}\"{requires}>{}</a>\n", escape(&found.url), escape(&file.file)));
        }
    }
    page.push_str("</body></html>\n");
    page
}

/// `&`, `<`, `>` and `"` as HTML entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_shortened() {
        let files: Vec<String> = (1..=5).map(|i| format!("f{i}")).collect();
        assert_eq!(shorten(&files), "f1, f2, f3 and 2 more");
        assert_eq!(shorten(&files[..2]), "f1, f2");
    }
}
