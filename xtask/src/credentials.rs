//! Credentials for the project's private indexes (`[[tool.poetry.source]]`), found where Poetry finds them:
//! `POETRY_HTTP_BASIC_<SOURCE>_USERNAME` / `_PASSWORD`, Poetry's `http-basic` config (`auth.toml`, when the
//! password is stored there rather than in a keyring), the source's URL itself, or `~/.netrc` (`NETRC`).
//!
//! They are sent on the host only, to the index's host only: written for the duration of a pip call (or of the
//! tool's own look-ups) to a netrc file that only the user can read, which pip and its `requests` read through
//! `NETRC`; the file is removed when the call ends (and at the next start, should a kill have left it). No
//! credential is ever put on a command line, in the image's requirements, the build context, the Dockerfile,
//! build arguments or labels, and none is printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::Item;

use crate::paths;
use crate::toml_file::TomlFile;

/// A declared package source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) name: String,
    /// Without credentials.
    pub(crate) url: String,
}

/// A login for one index, and where it was found (for messages; never the secret itself).
#[derive(Clone, PartialEq, Eq)]
struct Login {
    source: String,
    host: String,
    user: String,
    password: String,
    origin: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login {{ source: {}, host: {}, origin: {} }}", self.source, self.host, self.origin)
    }
}

/// The project's sources and the logins found for them.
#[derive(Debug, Clone, Default)]
pub(crate) struct IndexAuth {
    pub(crate) sources: Vec<Source>,
    logins: Vec<Login>,
}

/// Where the process looks for credentials: the environment, Poetry's config directory and the netrc file.
pub(crate) struct Lookup<'a> {
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    /// Poetry's `auth.toml`, if there is one.
    pub(crate) poetry_auth: Option<PathBuf>,
    /// `~/.netrc` or `NETRC`, if there is one.
    pub(crate) netrc: Option<PathBuf>,
}

impl Lookup<'_> {
    /// This process's: its environment, `$POETRY_CONFIG_DIR` (else `$XDG_CONFIG_HOME/pypoetry`, else
    /// `~/.config/pypoetry`) and `$NETRC` (else `~/.netrc`).
    pub(crate) fn of_process(env: &dyn Fn(&str) -> Option<String>) -> Lookup<'_> {
        let home = env("HOME").map(PathBuf::from);
        let config_dir = env("POETRY_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| env("XDG_CONFIG_HOME").map(|d| Path::new(&d).join("pypoetry")))
            .or_else(|| home.as_ref().map(|h| h.join(".config/pypoetry")));
        let netrc = env("NETRC").map(PathBuf::from).or_else(|| home.map(|h| h.join(".netrc")));
        Lookup {
            env,
            poetry_auth: config_dir.map(|d| d.join("auth.toml")).filter(|p| p.is_file()),
            netrc: netrc.filter(|p| p.is_file()),
        }
    }
}

/// `POETRY_HTTP_BASIC_<NAME>` for the source `name` (Poetry's spelling: upper case, `-` and `.` as `_`).
pub(crate) fn env_prefix(source: &str) -> String {
    let name: String =
        source.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("POETRY_HTTP_BASIC_{name}")
}

impl IndexAuth {
    /// The sources `<app>/pyproject.toml` declares and the logins found for them.
    pub(crate) fn read(app_dir: &Path) -> Result<IndexAuth> {
        let path = app_dir.join("pyproject.toml");
        let file = TomlFile::read(&path, &paths::display(&path))?;
        let declared = declared_sources(&file);
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        Ok(IndexAuth::find(declared, &Lookup::of_process(&env)))
    }

    /// The logins for `declared` sources (`(name, url as declared)`), from `lookup` (pure but for reading the two
    /// files it names).
    pub(crate) fn find(declared: Vec<(String, String)>, lookup: &Lookup<'_>) -> IndexAuth {
        let poetry_auth = lookup
            .poetry_auth
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok());
        let netrc = lookup.netrc.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| parse_netrc(&t));
        let mut auth = IndexAuth::default();
        for (name, declared_url) in declared {
            let (url, embedded) = split_userinfo(&declared_url);
            let host = host_of(&url);
            auth.sources.push(Source { name: name.clone(), url: url.clone() });
            let prefix = env_prefix(&name);
            let from_env =
                match ((lookup.env)(&format!("{prefix}_USERNAME")), (lookup.env)(&format!("{prefix}_PASSWORD"))) {
                    (Some(user), Some(password)) => Some((user, password, format!("{prefix}_USERNAME/_PASSWORD"))),
                    _ => None,
                };
            let from_config = || {
                let table = poetry_auth.as_ref()?.get("http-basic")?.get(&name)?;
                let user = table.get("username").and_then(Item::as_str)?.to_string();
                let password = table.get("password").and_then(Item::as_str)?.to_string();
                Some((user, password, format!("Poetry's http-basic.{name} (auth.toml)")))
            };
            let from_url = || embedded.clone().map(|(u, p)| (u, p, format!("the URL of the source {name}")));
            let from_netrc = || {
                let entries = netrc.as_ref()?;
                let (user, password) = entries
                    .iter()
                    .find(|(machine, ..)| machine.as_deref() == Some(host.as_str()))
                    .or_else(|| entries.iter().find(|(machine, ..)| machine.is_none()))
                    .map(|(_, user, password)| (user.clone(), password.clone()))?;
                Some((user, password, "the netrc file".to_string()))
            };
            if let Some((user, password, origin)) = from_env.or_else(from_config).or_else(from_url).or_else(from_netrc)
            {
                auth.logins.push(Login { source: name, host: host.clone(), user, password, origin });
            }
        }
        auth
    }

    /// The declared source whose URL is `url` (an index URL as the lock records it).
    pub(crate) fn source_of(&self, url: &str) -> Option<&Source> {
        let (url, _) = split_userinfo(url);
        self.sources.iter().find(|s| s.url.trim_end_matches('/') == url.trim_end_matches('/'))
    }

    /// Where the login for the source `name` comes from, if there is one.
    pub(crate) fn origin(&self, source: &str) -> Option<&str> {
        self.logins.iter().find(|l| l.source == source).map(|l| l.origin.as_str())
    }

    /// What to say when the index of `source` at `url` refuses the tool (`status`: 401, 403).
    pub(crate) fn refused(&self, source: Option<&Source>, url: &str, status: &str, package: &str) -> String {
        let host = host_of(source.map(|s| s.url.as_str()).unwrap_or(url));
        match source {
            Some(source) => match self.origin(&source.name) {
                Some(origin) => format!(
                    "{package}: the index {} ({}) answers {status} to the credentials from {origin}: check them",
                    source.name, source.url
                ),
                None => {
                    let prefix = env_prefix(&source.name);
                    format!(
                        "{package}: the index {} ({}) answers {status}: it needs credentials: set {prefix}_USERNAME and \
                         {prefix}_PASSWORD (Poetry's own variables), or `poetry config http-basic.{} <user> <password>`, or \
                         add `machine {host}` to ~/.netrc",
                        source.name, source.url, source.name
                    )
                }
            },
            None => format!("{package}: the index {url} answers {status}: add a ~/.netrc entry for {host}"),
        }
    }

    /// A netrc file with every login, readable only by the user, in `dir`; removed when the returned guard is
    /// dropped. `None` when there are no logins.
    pub(crate) fn netrc_file(&self, dir: &Path) -> Result<Option<NetrcFile>> {
        remove_leftover(dir);
        if self.logins.is_empty() {
            return Ok(None);
        }
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", paths::display(dir)))?;
        let path = dir.join("netrc");
        let mut text = String::new();
        for login in &self.logins {
            text.push_str(&format!(
                "machine {} login {} password {}\n",
                login.host,
                netrc_token(&login.user),
                netrc_token(&login.password)
            ));
        }
        let guard = NetrcFile { path: path.clone() };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", paths::display(&path)))?;
        file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", paths::display(&path)))?;
        Ok(Some(guard))
    }
}

/// The private netrc file; removed on drop.
#[derive(Debug)]
pub(crate) struct NetrcFile {
    pub(crate) path: PathBuf,
}

impl Drop for NetrcFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A netrc file a killed run may have left in `dir`.
fn remove_leftover(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("netrc"));
}

/// `[[tool.poetry.source]]`: `(name, url)` of each source with both.
pub(crate) fn declared_sources(file: &TomlFile) -> Vec<(String, String)> {
    let sources = file.doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("source"));
    let Some(sources) = sources.and_then(Item::as_array_of_tables) else { return Vec::new() };
    sources
        .iter()
        .filter_map(|s| {
            let name = s.get("name").and_then(Item::as_str)?;
            let url = s.get("url").and_then(Item::as_str)?;
            Some((name.to_string(), url.to_string()))
        })
        .collect()
}

/// `https://user:pass@host/simple` → (`https://host/simple`, the percent-decoded user and password).
pub(crate) fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let login = Some((percent_decode(user), percent_decode(password)));
            (format!("{scheme}://{host}{}", &rest[end..]), login)
        }
        None => (url.to_string(), None),
    }
}

/// The host of a URL, without port and credentials: what a netrc `machine` names.
pub(crate) fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    let netloc = netloc.rsplit_once('@').map(|(_, h)| h).unwrap_or(netloc);
    if let Some(v6) = netloc.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    netloc.split(':').next().unwrap_or("").to_string()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A netrc token: quoted, with `"` and `\` escaped, as Python's `netrc` reads it.
fn netrc_token(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `(machine or None for default, login, password)` of each entry of a netrc file.
fn parse_netrc(text: &str) -> Vec<(Option<String>, String, String)> {
    let mut tokens = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line.trim();
        while !rest.is_empty() {
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut token = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => token.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => token.push(c),
                    }
                }
                tokens.push(token);
                rest = quoted[end..].trim_start();
            } else {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                tokens.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
        }
    }
    let mut entries = Vec::new();
    let mut i = 0;
    let mut current: Option<(Option<String>, String, String)> = None;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "machine" | "default" => {
                entries.extend(current.take());
                let machine = if tokens[i] == "machine" {
                    i += 1;
                    tokens.get(i).cloned()
                } else {
                    None
                };
                current = Some((machine, String::new(), String::new()));
            }
            "login" | "password" | "account" => {
                let value = tokens.get(i + 1).cloned().unwrap_or_default();
                if let Some(entry) = current.as_mut() {
                    match tokens[i].as_str() {
                        "login" => entry.1 = value,
                        "password" => entry.2 = value,
                        _ => {}
                    }
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    entries.extend(current);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            split_userinfo("https://me%40corp:p%3Ass@pkgs.example.org:8443/simple/"),
            ("https://pkgs.example.org:8443/simple/".to_string(), Some(("me@corp".to_string(), "p:ss".to_string())))
        );
        assert_eq!(split_userinfo("https://pypi.org/simple"), ("https://pypi.org/simple".to_string(), None));
        assert_eq!(host_of("http://u:p@127.0.0.1:18431/simple"), "127.0.0.1");
        assert_eq!(host_of("https://[::1]:8080/x"), "::1");
        assert_eq!(env_prefix("my-repo.corp"), "POETRY_HTTP_BASIC_MY_REPO_CORP");
    }

    #[test]
    fn logins_come_from_the_environment_then_poetry_then_the_url_then_netrc() {
        let dir = std::env::temp_dir().join(format!("xtask-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("auth.toml"), "[http-basic.config]\nusername = \"cu\"\npassword = \"cp\"\n").unwrap();
        std::fs::write(
            dir.join("netrc"),
            "machine other.example.org login nu password \"n p\\\"q\"\ndefault login du password dp\n",
        )
        .unwrap();
        let env = |key: &str| match key {
            "POETRY_HTTP_BASIC_ENV_SOURCE_USERNAME" => Some("eu".to_string()),
            "POETRY_HTTP_BASIC_ENV_SOURCE_PASSWORD" => Some("ep".to_string()),
            "POETRY_HTTP_BASIC_HALF_USERNAME" => Some("only-user".to_string()),
            _ => None,
        };
        let lookup = Lookup { env: &env, poetry_auth: Some(dir.join("auth.toml")), netrc: Some(dir.join("netrc")) };
        let declared = vec![
            ("env-source".to_string(), "https://a.example.org/simple".to_string()),
            ("config".to_string(), "https://b.example.org/simple".to_string()),
            ("embedded".to_string(), "https://uu:up@c.example.org/simple".to_string()),
            ("other".to_string(), "https://other.example.org/simple".to_string()),
            ("half".to_string(), "https://d.example.org/simple".to_string()),
        ];
        let auth = IndexAuth::find(declared, &lookup);
        let found: Vec<(String, String, String, String)> = auth
            .logins
            .iter()
            .map(|l| (l.source.clone(), l.user.clone(), l.password.clone(), l.origin.clone()))
            .collect();
        let row = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
        assert_eq!(
            found,
            [
                row("env-source", "eu", "ep", "POETRY_HTTP_BASIC_ENV_SOURCE_USERNAME/_PASSWORD"),
                row("config", "cu", "cp", "Poetry's http-basic.config (auth.toml)"),
                row("embedded", "uu", "up", "the URL of the source embedded"),
                row("other", "nu", "n p\"q", "the netrc file"),
                // A user name without a password is no login; the netrc file's default entry is.
                row("half", "du", "dp", "the netrc file"),
            ]
        );
        assert_eq!(auth.source_of("https://c.example.org/simple/").unwrap().url, "https://c.example.org/simple");
        // The netrc file for pip: only the user may read it, Python's netrc reads it back, and it goes.
        let file = auth.netrc_file(&dir.join("private")).unwrap().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file.path).unwrap().permissions().mode() & 0o777, 0o600);
        let script = "import netrc, sys; n = netrc.netrc(sys.argv[1]); print(n.authenticators('other.example.org'))";
        let output = std::process::Command::new("python3").args(["-c", script]).arg(&file.path).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "('nu', '', 'n p\"q')");
        let path = file.path.clone();
        drop(file);
        assert!(!path.exists());
        let message =
            auth.refused(auth.source_of("https://e.example.org/simple"), "https://e.example.org/simple", "401", "x");
        assert!(message.contains("add a ~/.netrc entry for e.example.org"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_login_names_the_variables() {
        let env = |_: &str| None;
        let lookup = Lookup { env: &env, poetry_auth: None, netrc: None };
        let auth = IndexAuth::find(vec![("corp-pkgs".into(), "https://pkgs.corp.example/simple".into())], &lookup);
        let message =
            auth.refused(auth.source_of("https://pkgs.corp.example/simple"), "", "401 Unauthorized", "greeting 1.0");
        assert_eq!(
            message,
            "greeting 1.0: the index corp-pkgs (https://pkgs.corp.example/simple) answers 401 Unauthorized: it needs \
             credentials: set POETRY_HTTP_BASIC_CORP_PKGS_USERNAME and POETRY_HTTP_BASIC_CORP_PKGS_PASSWORD (Poetry's \
             own variables), or `poetry config http-basic.corp-pkgs <user> <password>`, or add `machine \
             pkgs.corp.example` to ~/.netrc"
        );
    }
}
