//! `cargo xtask init`: set this tool up in a repository with a Poetry app. It adds what is missing (the cargo
//! alias, the workspace member, where the app lives, a commented `[tool.xtask]` table with the derived
//! settings, `/target/` in `.gitignore`) and never changes what is there: every edit is one insertion into the
//! file, made with toml_edit and checked to leave every other byte as it was.

use std::path::{Path, PathBuf};

use anyhow::{bail, format_err, Context, Result};
use toml_edit::{DocumentMut, Item, Table, Value};
use xshell::Shell;

use crate::config::{self, Config, KEYS};
use crate::flags::Init;
use crate::{gen, paths};

/// What the alias runs.
const ALIAS: &str = "run --package xtask --";
/// The workspace member, which is this crate's directory.
const MEMBER: &str = "xtask";
/// The first line of the commented `[tool.xtask]` block; its presence means init already ran.
const BLOCK_MARKER: &str = "# Defaults `cargo xtask init` derived from this project; uncomment a line to change it.";

impl Init {
    pub(crate) fn run(self, _sh: &Shell) -> Result<()> {
        let root = paths::workspace_root();
        let app_flag = self.app.map(|dir| std::env::current_dir().map(|cwd| cwd.join(dir))).transpose()?;
        let plan = plan(&root, app_flag.as_deref())?;
        print!("{}", plan.report(self.dry_run));
        if !self.dry_run {
            for edit in plan.edits.iter().filter(|e| e.changed()) {
                gen::write_atomic(&edit.path, edit.text.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Everything init does in a repository, computed before anything is written.
struct Plan {
    /// The app's directory relative to the repository (`""` at the root).
    app: String,
    edits: Vec<FileEdit>,
    /// What the settings were derived from, read in the app's code and files.
    found: Vec<String>,
    /// Things left as they are that the user should know about.
    notes: Vec<String>,
}

/// One file's new text and the changes that make it.
struct FileEdit {
    path: PathBuf,
    /// How the file is named in messages.
    display: String,
    original: Option<String>,
    text: String,
    changes: Vec<Change>,
}

struct Change {
    summary: String,
    /// The text the change inserts (for --dry-run).
    inserted: String,
}

impl FileEdit {
    fn new(root: &Path, relative: &str) -> Result<FileEdit> {
        let path = root.join(relative);
        let original = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {relative}")),
        };
        let text = original.clone().unwrap_or_default();
        Ok(FileEdit { path, display: relative.to_string(), original, text, changes: Vec::new() })
    }

    fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Replaces the text with `new`, which must be the current text with one piece inserted.
    fn insert(&mut self, new: String, summary: String) -> Result<()> {
        let Some(inserted) = insertion(&self.text, &new) else {
            bail!(
                "{}: editing it would change more than the lines `cargo xtask init` adds; make the change by hand: {summary}",
                self.display
            );
        };
        self.text = new;
        self.changes.push(Change { summary, inserted });
        Ok(())
    }
}

impl Plan {
    fn report(&self, dry_run: bool) -> String {
        let mut out = String::new();
        let app = if self.app.is_empty() { "at the repository root".to_string() } else { format!("in {}", self.app) };
        let (verb, created) = if dry_run { ("would change", "would create") } else { ("changed", "created") };
        for edit in self.edits.iter().filter(|e| e.changed()) {
            let how = if edit.original.is_none() { created } else { verb };
            out.push_str(&format!("{} ({how}):\n", edit.display));
            for change in &edit.changes {
                out.push_str(&format!("  + {}\n", change.summary));
                if dry_run {
                    for line in change.inserted.trim_matches('\n').lines() {
                        out.push_str(&format!("    | {line}\n"));
                    }
                }
            }
        }
        for found in &self.found {
            out.push_str(&format!("found: {found}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        let changed = self.edits.iter().filter(|e| e.changed()).count();
        if changed == 0 {
            out.push_str(&format!("Nothing to change: this repository is set up for the app {app}.\n"));
        } else if dry_run {
            out.push_str(&format!("Dry run: {changed} file(s) would change; nothing was written.\n"));
        } else {
            out.push_str(&format!(
                "Set up for the app {app}. Next: `cargo xtask image`, then commit these files, docker/Dockerfile and Cargo.lock.\n"
            ));
        }
        out
    }
}

/// What init would do in the repository at `root` for the app `app_flag` (else the one it finds).
fn plan(root: &Path, app_flag: Option<&Path>) -> Result<Plan> {
    let manifest_path = root.join("Cargo.toml");
    let configured = if manifest_path.is_file() { config::workspace_app(&manifest_path)? } else { None };
    let app_dir = match (app_flag, &configured) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(app)) => root.join(app),
        (None, None) => find_app(root)?,
    };
    if !app_dir.join("pyproject.toml").is_file() {
        bail!("{} has no pyproject.toml: pass --app DIR, the directory of the Poetry project", app_dir.display());
    }
    let app_dir = app_dir.canonicalize().with_context(|| format!("cannot resolve {}", app_dir.display()))?;
    let root = root.canonicalize().with_context(|| format!("cannot resolve {}", root.display()))?;
    let relative = app_dir
        .strip_prefix(&root)
        .map_err(|_| {
            format_err!(
                "the app {} is outside the repository {}: move it in, or copy xtask/ next to it",
                app_dir.display(),
                root.display()
            )
        })?
        .to_str()
        .ok_or_else(|| format_err!("the app's path is not UTF-8: {}", app_dir.display()))?
        .replace(std::path::MAIN_SEPARATOR, "/");
    let config = Config::read(&app_dir)?;
    let mut notes = Vec::new();
    let found = config.found.iter().map(|(key, what)| format!("{key} = {what}")).collect();
    if let Some(problem) = &config.command_problem {
        notes.push(problem.clone());
    }
    // Someone's own Dockerfile where ours would go: ours goes next to it.
    let theirs = root.join("docker/Dockerfile");
    let dockerfile = match std::fs::read_to_string(&theirs) {
        Ok(text) if config.dockerfile.is_none() && !gen::is_generated(&text) => {
            let ours = if relative.is_empty() { "docker/Dockerfile.xtask" } else { "Dockerfile.xtask" };
            notes.push(format!(
                "docker/Dockerfile is your own (it has no `Generated by` header): the generated one goes to {ours} \
                 (tool.xtask.dockerfile), and yours is left as it is"
            ));
            Some(ours.to_string())
        }
        _ => None,
    };

    let mut manifest = FileEdit::new(&root, "Cargo.toml")?;
    edit_manifest(&mut manifest, &relative, configured.as_deref(), &mut notes)?;
    let mut cargo_config = FileEdit::new(&root, ".cargo/config.toml")?;
    if cargo_config.original.is_none() && root.join(".cargo/config").is_file() {
        cargo_config = FileEdit::new(&root, ".cargo/config")?;
    }
    edit_cargo_config(&mut cargo_config, &mut notes)?;
    let pyproject_display =
        if relative.is_empty() { "pyproject.toml".to_string() } else { format!("{relative}/pyproject.toml") };
    let mut pyproject = FileEdit::new(&root, &pyproject_display)?;
    edit_pyproject(&mut pyproject, &config, dockerfile.as_deref(), &mut notes)?;
    let mut gitignore = FileEdit::new(&root, ".gitignore")?;
    edit_gitignore(&mut gitignore)?;
    if !app_dir.join("poetry.lock").is_file() {
        notes.push(format!("{pyproject_display} has no poetry.lock next to it: run `poetry lock` there; the image is built from the lock"));
    }
    Ok(Plan { app: relative, edits: vec![manifest, cargo_config, pyproject, gitignore], found, notes })
}

/// The app when nothing names it: the directory holding pyproject.toml and poetry.lock (or, when no project
/// has a lock, pyproject.toml alone), if there is exactly one in the repository.
fn find_app(root: &Path) -> Result<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if dir.join("pyproject.toml").is_file() {
            out.push(dir.to_path_buf());
        }
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.')
                    && !["target", "node_modules", "venv", "__pycache__", "site-packages", MEMBER].contains(&&*name)
            })
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            walk(&dir, depth - 1, out);
        }
    }
    let mut projects = Vec::new();
    walk(root, 4, &mut projects);
    let locked: Vec<PathBuf> = projects.iter().filter(|p| p.join("poetry.lock").is_file()).cloned().collect();
    let candidates = if locked.is_empty() { projects } else { locked };
    match candidates.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("found no Poetry project (a directory with pyproject.toml) in {}: pass --app DIR", root.display()),
        many => {
            let names: Vec<String> =
                many.iter().map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string()).collect();
            bail!("found several Poetry projects ({}): pass --app DIR to choose", names.join(", "))
        }
    }
}

/// The workspace Cargo.toml: `xtask` among the members, and `[workspace.metadata.xtask] app` when the app is
/// not at the root. `configured` is the app it already names, if any.
fn edit_manifest(edit: &mut FileEdit, app: &str, configured: Option<&str>, notes: &mut Vec<String>) -> Result<()> {
    let metadata_comment =
        "# Where the Python app lives, relative to this file. `cargo xtask <task> --app DIR` overrides it.\n";
    if edit.original.is_none() {
        let mut text = format!("[workspace]\nmembers = [\"{MEMBER}\"]\nresolver = \"2\"\n");
        let mut summary = format!("a workspace with the member \"{MEMBER}\"");
        if !app.is_empty() {
            text.push_str(&format!("\n{metadata_comment}[workspace.metadata.xtask]\napp = {}\n", Value::from(app)));
            summary.push_str(&format!(" and [workspace.metadata.xtask] app = \"{app}\""));
        }
        return edit.insert(text, summary);
    }
    let mut doc = parse_mut(&edit.text, &edit.display)?;
    let last = last_position(&doc);
    match doc.get_mut("workspace") {
        None => {
            let mut workspace = Table::new();
            workspace.insert("members", toml_edit::value(Value::Array(std::iter::once(MEMBER).collect())));
            workspace.set_position(Some(last + 1));
            workspace.decor_mut().set_prefix("\n");
            doc.insert("workspace", Item::Table(workspace));
            edit.insert(render(&doc, &edit.text), format!("[workspace] with the member \"{MEMBER}\""))?;
        }
        Some(workspace) => {
            let Some(workspace) = workspace.as_table_like_mut() else {
                bail!("{}: workspace must be a table", edit.display);
            };
            match workspace.get_mut("members") {
                None => {
                    workspace.insert("members", toml_edit::value(Value::Array(std::iter::once(MEMBER).collect())));
                    edit.insert(render(&doc, &edit.text), format!("members = [\"{MEMBER}\"] in [workspace]"))?;
                }
                Some(members) => {
                    let Some(members) = members.as_array_mut() else {
                        bail!("{}: workspace.members must be an array of paths", edit.display);
                    };
                    let listed = members.iter().filter_map(Value::as_str).any(|m| member_matches(m, MEMBER));
                    if !listed {
                        let decor = members.iter().last().map(|v| v.decor().clone());
                        members.push(MEMBER);
                        if let (Some(decor), Some(new)) = (decor, members.iter_mut().last()) {
                            *new.decor_mut() = decor;
                        }
                        edit.insert(render(&doc, &edit.text), format!("\"{MEMBER}\" in workspace.members"))?;
                    }
                }
            }
        }
    }
    match configured {
        Some(configured) => {
            if configured.trim_end_matches('/') != app {
                notes.push(format!(
                    "Cargo.toml names the app \"{configured}\" in [workspace.metadata.xtask]; left as is (pass --app {configured} or change it by hand)"
                ));
            }
        }
        None if app.is_empty() => {}
        None => {
            let mut doc = parse_mut(&edit.text, &edit.display)?;
            let last = last_position(&doc);
            let Some(workspace) = doc.get_mut("workspace").and_then(Item::as_table_mut) else {
                bail!("{}: [workspace] must be a table to add [workspace.metadata.xtask]", edit.display);
            };
            let metadata = workspace.entry("metadata").or_insert_with(|| {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            });
            let Some(metadata) = metadata.as_table_mut() else {
                bail!("{}: workspace.metadata must be a table", edit.display);
            };
            let mut xtask = Table::new();
            xtask.insert("app", toml_edit::value(app));
            xtask.set_position(Some(last + 1));
            xtask.decor_mut().set_prefix(format!("\n{metadata_comment}"));
            metadata.insert("xtask", Item::Table(xtask));
            edit.insert(render(&doc, &edit.text), format!("[workspace.metadata.xtask] app = \"{app}\""))?;
        }
    }
    Ok(())
}

/// Whether the workspace member pattern `pattern` (a path, maybe with `*` globs) names `member`.
fn member_matches(pattern: &str, member: &str) -> bool {
    let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
    if !pattern.contains('*') {
        return pattern == member;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !member.starts_with(first) || !member.ends_with(last) || member.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &member[first.len()..member.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    !member.contains('/') || pattern.contains('/')
}

/// `.cargo/config.toml`: the alias `xtask`.
fn edit_cargo_config(edit: &mut FileEdit, notes: &mut Vec<String>) -> Result<()> {
    let comment = "# `cargo xtask <task>` runs this workspace's xtask crate (see `cargo xtask --help`).\n";
    if edit.original.is_none() {
        return edit.insert(format!("{comment}[alias]\nxtask = \"{ALIAS}\"\n"), format!("[alias] xtask = \"{ALIAS}\""));
    }
    let mut doc = parse_mut(&edit.text, &edit.display)?;
    let last = last_position(&doc);
    match doc.get_mut("alias") {
        None => {
            let mut alias = Table::new();
            alias.insert("xtask", toml_edit::value(ALIAS));
            alias.set_position(Some(last + 1));
            alias.decor_mut().set_prefix(if edit.text.trim().is_empty() {
                comment.to_string()
            } else {
                format!("\n{comment}")
            });
            doc.insert("alias", Item::Table(alias));
        }
        Some(alias) => {
            let Some(alias) = alias.as_table_like_mut() else {
                bail!("{}: alias must be a table", edit.display);
            };
            match alias.get("xtask") {
                None => {
                    alias.insert("xtask", toml_edit::value(ALIAS));
                }
                Some(existing) => {
                    let words: Vec<String> = match existing.as_str() {
                        Some(s) => s.split_whitespace().map(str::to_string).collect(),
                        None => existing
                            .as_array()
                            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                            .unwrap_or_default(),
                    };
                    if words != ALIAS.split_whitespace().collect::<Vec<_>>() {
                        notes.push(format!(
                            "{} has another alias xtask = {}; left as is (this tool expects \"{ALIAS}\")",
                            edit.display,
                            existing.to_string().trim()
                        ));
                    }
                    return Ok(());
                }
            }
        }
    }
    edit.insert(render(&doc, &edit.text), format!("[alias] xtask = \"{ALIAS}\""))
}

/// The app's pyproject.toml: a `[tool.xtask]` table listing, commented out, every setting the app does not
/// set, with the value derived for it. An existing table gets the commented lines right after its header.
fn edit_pyproject(
    edit: &mut FileEdit,
    config: &Config,
    dockerfile: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<()> {
    if edit.text.lines().any(|line| line.trim() == BLOCK_MARKER) {
        return Ok(());
    }
    let newline = if edit.text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut doc = parse_mut(&edit.text, &edit.display)?;
    let last = last_position(&doc);
    let existing = doc.get("tool").and_then(|t| t.get("xtask"));
    let set: Vec<String> = match existing.and_then(Item::as_table_like) {
        Some(table) => table.iter().map(|(k, _)| k.to_string()).collect(),
        None => Vec::new(),
    };
    let mut block = vec![BLOCK_MARKER.to_string()];
    for (key, _, _, meaning) in KEYS {
        if set.iter().any(|k| k == key) {
            continue;
        }
        // A setting the app needs: written live, not commented.
        if let (&"dockerfile", Some(path)) = (key, dockerfile) {
            block.push(format!("{key} = {}  # docker/Dockerfile is the app's own", Value::from(path)));
            continue;
        }
        let meaning = meaning.replace('`', "");
        let value = config.setting_toml(key);
        if !value.is_empty() {
            block.push(format!("# {key} = {value}  # {meaning}"));
        } else if let Some((_, value, why)) = config.suggestions.iter().find(|(k, ..)| k == key) {
            block.push(format!("# {key} = {value}  # {why}"));
        } else if *key == "release" {
            block.push(format!("# {key} = []  # {meaning}"));
        } else if *key == "repository" {
            block.push(format!("# {key}: none set; {key} = \"<registry>/<path>/{}\" is {meaning}", config.name));
        } else if *key == "app" {
            block.push(format!("# {key}: not found in the code; set {key} = \"module:attribute\", {meaning}"));
        }
    }
    if block.len() == 1 {
        return Ok(());
    }
    let block = block.join(newline);
    let summary = match existing {
        Some(Item::Table(table)) if !table.is_implicit() && !table.is_dotted() => {
            let table = doc["tool"]["xtask"].as_table_mut().expect("checked above");
            let suffix = table.decor().suffix().and_then(|s| s.as_str()).unwrap_or("").to_string();
            table.decor_mut().set_suffix(format!("{suffix}{newline}{block}"));
            format!("{} commented settings with their derived values in [tool.xtask]", block.lines().count() - 1)
        }
        Some(_) => {
            notes.push(format!(
                "{}: tool.xtask is not written as a [tool.xtask] table; left as is (the README lists the settings)",
                edit.display
            ));
            return Ok(());
        }
        None => {
            let tool = doc.entry("tool").or_insert_with(|| {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            });
            let Some(tool) = tool.as_table_mut() else {
                bail!("{}: tool must be a table to add [tool.xtask]", edit.display);
            };
            let mut xtask = Table::new();
            xtask.set_position(Some(last + 1));
            xtask.decor_mut().set_prefix(newline);
            xtask.decor_mut().set_suffix(format!("{newline}{block}"));
            tool.insert("xtask", Item::Table(xtask));
            format!(
                "[tool.xtask] with the {} settings derived from the project, commented out",
                block.lines().count() - 1
            )
        }
    };
    edit.insert(render(&doc, &edit.text), summary)
}

/// `.gitignore`: `/target/`, where cargo and this tool keep their build output and scratch files.
fn edit_gitignore(edit: &mut FileEdit) -> Result<()> {
    let ignored = edit.text.lines().any(|line| matches!(line.trim(), "target" | "target/" | "/target" | "/target/"));
    if ignored {
        return Ok(());
    }
    let mut text = edit.text.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("/target/\n");
    edit.insert(text, "/target/ (cargo's and this tool's build output)".to_string())
}

/// `doc` as text; without a final newline when `original` has none (toml_edit always ends a line).
fn render(doc: &DocumentMut, original: &str) -> String {
    let mut text = doc.to_string();
    if !original.is_empty() && !original.ends_with('\n') && text.ends_with('\n') {
        text.pop();
    }
    text
}

fn parse_mut(text: &str, display: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|e| format_err!("{display}: invalid TOML: {}", e.message().trim_end()))
}

/// The largest table position in `doc`, so that a new table goes at the end.
fn last_position(doc: &DocumentMut) -> isize {
    fn walk(table: &Table, max: &mut isize) {
        if let Some(p) = table.position() {
            *max = (*max).max(p);
        }
        for (_, item) in table.iter() {
            match item {
                Item::Table(t) => walk(t, max),
                Item::ArrayOfTables(a) => a.iter().for_each(|t| walk(t, max)),
                _ => {}
            }
        }
    }
    let mut max = 0;
    walk(doc.as_table(), &mut max);
    max
}

/// The one piece `after` inserts into `before`, or `None` when `after` changes anything else.
fn insertion(before: &str, after: &str) -> Option<String> {
    if after.len() < before.len() {
        return None;
    }
    let mut prefix = before.bytes().zip(after.bytes()).take_while(|(a, b)| a == b).count();
    while !before.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let max_suffix = before.len() - prefix;
    let mut suffix = before.bytes().rev().zip(after.bytes().rev()).take(max_suffix).take_while(|(a, b)| a == b).count();
    while !before.is_char_boundary(before.len() - suffix) {
        suffix -= 1;
    }
    (prefix + suffix == before.len()).then(|| after[prefix..after.len() - suffix].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh repository holding `files` (path, contents).
    fn repo(files: &[(&str, &str)]) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-init-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, contents) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        dir
    }

    /// Runs init in `root` (writing), and returns its report followed by every file it changed.
    fn init(root: &Path, app: Option<&str>) -> String {
        let plan = match plan(root, app.map(|a| root.join(a)).as_deref()) {
            Ok(plan) => plan,
            Err(e) => return format!("error: {e}\n"),
        };
        let mut out = plan.report(false);
        for edit in plan.edits.iter().filter(|e| e.changed()) {
            gen::write_atomic(&edit.path, edit.text.as_bytes()).unwrap();
            out.push_str(&format!("\n=== {}\n{}", edit.display, edit.text));
        }
        out
    }

    /// A repository whose root is a copy of the fixture app `name` (`xtask/tests/fixtures/apps/<name>`), as a
    /// real app's repository is.
    fn fixture_repo(name: &str) -> PathBuf {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap().flatten() {
                let target = to.join(entry.file_name());
                if entry.path().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        let root = repo(&[]);
        copy(&paths::workspace_root().join("xtask/tests/fixtures/apps").join(name), &root);
        root
    }

    /// What init finds in each layout of a real app, and the settings it writes (the lines that depend on the
    /// code: the callable, the command, the release step, the files beside the package, the data folders).
    #[test]
    fn reads_each_layout() {
        let check = |name: &str, expect: Expect| {
            let root = fixture_repo(name);
            let plan = plan(&root, None).unwrap();
            let mut out: String = plan
                .report(true)
                .lines()
                .filter(|l| l.starts_with("found:") || l.starts_with("note:"))
                .map(|l| format!("{l}\n"))
                .collect();
            let pyproject = plan.edits.iter().find(|e| e.display == "pyproject.toml").unwrap();
            for line in pyproject.text.lines() {
                let key = line.trim_start_matches("# ").split([' ', ':']).next().unwrap_or_default();
                if ["port", "app", "command", "release", "include", "volumes", "dockerfile", "env-file"].contains(&key)
                {
                    out.push_str(&format!("{}\n", line.split("  # ").next().unwrap()));
                }
            }
            std::fs::remove_dir_all(&root).unwrap();
            expect.assert_eq(&out);
        };
        check(
            "orders",
            expect![[r#"
                found: app = orders.app:app, made by FastAPI(...) at orders/app.py:14
                found: include = templates (read by the app at orders/app.py:12)
                # port = 8080
                # app = "orders.app:app"
                # command = ["gunicorn", "--bind", "0.0.0.0:8080", "--graceful-timeout", "30", "--worker-class", "uvicorn.workers.UvicornWorker", "orders.app:app"]
                # release = []
                # include = ["orders", "templates"]
                # volumes = []
            "#]],
        );
        check(
            "web-py",
            expect![[r#"
                found: app = web:app, made by FastAPI(...) at web.py:5
                # port = 8080
                # app = "web:app"
                # command = ["uvicorn", "web:app", "--host", "0.0.0.0", "--port", "8080", "--timeout-graceful-shutdown", "30"]
                # release = []
                # include = ["web.py"]
                # volumes = []
            "#]],
        );
        check(
            "flask-shop",
            expect![[r#"
            found: port = 8000, the port gunicorn's bind names (gunicorn.conf.py:4)
            found: app = shop.wsgi:app, the wsgi_app of gunicorn's config (gunicorn.conf.py:3)
            found: include = gunicorn.conf.py (gunicorn's config)
            # port = 8000
            # app = "shop.wsgi:app"
            # command = ["gunicorn", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "shop.wsgi:app"]
            # release = []
            # include = ["shop", "gunicorn.conf.py"]
            # volumes = []
        "#]],
        );
        check(
            "django-site",
            expect![[r#"
                found: app = mysite.wsgi:application, made by get_wsgi_application() at mysite/wsgi.py:9 (also found: mysite.asgi:application)
                found: include = manage.py (Django's manage.py)
                found: volumes = /data (a SQLite database there, mysite/settings.py:29)
                # port = 8080
                # app = "mysite.wsgi:application"
                # command = ["gunicorn", "--bind", "0.0.0.0:8080", "--graceful-timeout", "30", "mysite.wsgi:application"]
                # release = ["python", "manage.py", "migrate", "--noinput"]
                # include = ["mysite", "manage.py"]
                # volumes = ["/data"]
            "#]],
        );
        check(
            "notes",
            expect![[r#"
                found: app = notes.main:app, made by FastAPI(...) at notes/main.py:10
                found: include = alembic.ini (alembic's config)
                found: include = alembic (alembic's script_location, alembic.ini:5)
                found: volumes = /data (a SQLite database there, notes/db.py:8)
                # port = 8080
                # app = "notes.main:app"
                # command = ["uvicorn", "notes.main:app", "--host", "0.0.0.0", "--port", "8080", "--timeout-graceful-shutdown", "30"]
                # release = ["alembic", "upgrade", "head"]
                # include = ["notes", "alembic.ini", "alembic"]
                # volumes = ["/data"]
            "#]],
        );
    }

    /// docker/Dockerfile of the app's own: init points the generated one elsewhere, live, and leaves theirs.
    #[test]
    fn an_apps_own_dockerfile_is_left_alone() {
        let root = fixture_repo("web-py");
        std::fs::create_dir_all(root.join("docker")).unwrap();
        std::fs::write(root.join("docker/Dockerfile"), "FROM python:3.12\nCOPY . /app\n").unwrap();
        let out = init(&root, None);
        assert!(out.contains("note: docker/Dockerfile is your own"), "{out}");
        let config = Config::read(&root).unwrap();
        assert_eq!(config.dockerfile.as_deref(), Some("docker/Dockerfile.xtask"));
        assert_eq!(std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap(), "FROM python:3.12\nCOPY . /app\n");
        std::fs::remove_dir_all(&root).unwrap();
    }

    const PYPROJECT: &str = r#"# The greeter service.
[tool.poetry]
name = "greeter"   # the distribution name
version = "0.3.0"
packages = [{ include = "greeter_web", from = "src" }]

[tool.poetry.dependencies]
python = "^3.11"
flask = "^3.1"   # WSGI

[build-system]
requires = ["poetry-core>=1.0.0"]
build-backend = "poetry.core.masonry.api"
"#;

    #[test]
    fn fresh_repository() {
        let root = repo(&[
            ("services/greeter/pyproject.toml", PYPROJECT),
            ("services/greeter/poetry.lock", ""),
            ("services/greeter/src/greeter_web/__init__.py", ""),
            ("libs/shout/pyproject.toml", "[project]\nname = \"shout\"\n"),
            (".gitignore", "__pycache__/"),
        ]);
        expect![[r#"
            Cargo.toml (created):
              + a workspace with the member "xtask" and [workspace.metadata.xtask] app = "services/greeter"
            .cargo/config.toml (created):
              + [alias] xtask = "run --package xtask --"
            services/greeter/pyproject.toml (changed):
              + [tool.xtask] with the 24 settings derived from the project, commented out
            .gitignore (changed):
              + /target/ (cargo's and this tool's build output)
            note: no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = "module:attribute"
            Set up for the app in services/greeter. Next: `cargo xtask image`, then commit these files, docker/Dockerfile and Cargo.lock.

            === Cargo.toml
            [workspace]
            members = ["xtask"]
            resolver = "2"

            # Where the Python app lives, relative to this file. `cargo xtask <task> --app DIR` overrides it.
            [workspace.metadata.xtask]
            app = "services/greeter"

            === .cargo/config.toml
            # `cargo xtask <task>` runs this workspace's xtask crate (see `cargo xtask --help`).
            [alias]
            xtask = "run --package xtask --"

            === services/greeter/pyproject.toml
            # The greeter service.
            [tool.poetry]
            name = "greeter"   # the distribution name
            version = "0.3.0"
            packages = [{ include = "greeter_web", from = "src" }]

            [tool.poetry.dependencies]
            python = "^3.11"
            flask = "^3.1"   # WSGI

            [build-system]
            requires = ["poetry-core>=1.0.0"]
            build-backend = "poetry.core.masonry.api"

            [tool.xtask]
            # Defaults `cargo xtask init` derived from this project; uncomment a line to change it.
            # name = "greeter"  # image name: tags <name>:<version> and <name>:<git sha>
            # version = "0.3.0"  # image version tag and OCI label
            # python = "3.11"  # Python of the image and its wheelhouse (--python)
            # base-image = "python:3.11-slim"  # base image of the image and of the containers that build its sdists (--base-image, env XTASK_BASE_IMAGE)
            # platform = "linux/amd64"  # platform of the image and its wheels (--platform)
            # platforms = ["linux/amd64"]  # the platforms cargo xtask push ships as one multi-platform index (--platform linux/amd64,linux/arm64): a wheelhouse and an image per platform
            # repository: none set; repository = "<registry>/<path>/greeter" is where cargo xtask push pushes (--to), e.g. ghcr.io/org/app; the registry cache BuildKit builds from
            # port = 8080  # port the server listens on, in the container and on the host
            # health-path = "/health"  # path the HEALTHCHECK and cargo xtask run probe
            # stop-timeout = 30  # seconds the server gets to finish the requests in flight when stopped: the default command's graceful timeout; the engine waits 5 more before it kills (docker run --stop-timeout, label xtask.stop-timeout: set Kubernetes' terminationGracePeriodSeconds to it)
            # app: not found in the code; set app = "module:attribute", the ASGI/WSGI callable, module:attribute
            # interface = "wsgi"  # how the server speaks to the app
            # release = []  # the release step: run by cargo xtask run in a container of the image before the server, e.g. migrations
            # include = [{ include = "greeter_web", from = "src" }]  # files and folders of the app copied into the image's workdir
            # volumes = []  # where the app writes data: owned by its user in the image; cargo xtask run mounts a named volume on each
            # groups = []  # Poetry dependency groups installed besides main (each must exist)
            # extras = []  # extras of the project installed (each must exist)
            # build-packages = []  # packages (as the base image's apt names them) installed in the container of the base image where sdists without a wheel for the target are built, e.g. ["gcc", "libc6-dev", "python3-dev", "libldap-dev"]; never in the image
            # system-packages = []  # packages installed in the image's base stage from .deb files fetched beforehand in a container of the base image (the build stays offline): the libraries built wheels link (libldap-2.5-0), or what a package needs at run time (libmagic1)
            # env = {}  # environment variables baked into the image
            # labels = {}  # image labels besides the OCI ones
            # user = "app"  # the non-root user the container runs as
            # uid = 10001  # that user's uid and gid
            # workdir = "/app"  # the app's directory in the image

            === .gitignore
            __pycache__/
            /target/
        "#]]
        .assert_eq(&init(&root, None));
        // The commented table is valid TOML, and uncommented it configures the same app.
        let pyproject = std::fs::read_to_string(root.join("services/greeter/pyproject.toml")).unwrap();
        let uncommented: String = pyproject
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|l| KEYS.iter().any(|(k, ..)| l.starts_with(&format!("{k} = "))))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let dir = root.join("services/greeter");
        let file = crate::toml_file::TomlFile::parse("pyproject.toml", uncommented).unwrap();
        let a = Config::from_pyproject(&dir, &file).unwrap();
        let b = Config::read(&dir).unwrap();
        for (key, ..) in KEYS {
            assert_eq!(a.setting_toml(key), b.setting_toml(key), "{key}");
        }
        // Idempotent.
        expect![[r#"
            note: no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = "module:attribute"
            Nothing to change: this repository is set up for the app in services/greeter.
        "#]]
        .assert_eq(&init(&root, None));
    }

    #[test]
    fn existing_files_keep_every_byte() {
        let cargo = "# Our tools.\n[workspace]\nmembers = [\n    \"crates/*\",   # libraries\n    \"cli\",\n]\n\n[workspace.dependencies]\nserde = \"1\"\n";
        let config = "[build]\njobs = 2\n\n[alias]\nb = \"build\" # short\n\n[env]\nA = \"1\"\n";
        let pyproject = "[project]\nname = \"api\"\nversion = \"1.0\"\ndependencies = [\"fastapi\"]\n\n[tool.xtask]  # ours\nport = 9000 # not 8080\nhealth-path = \"/ping\"\n\n[tool.black]\nline-length = 100";
        let root = repo(&[
            ("Cargo.toml", cargo),
            (".cargo/config.toml", config),
            ("pyproject.toml", pyproject),
            ("api/__init__.py", ""),
            (".gitignore", "/target\n"),
        ]);
        expect![[r#"
            Cargo.toml (changed):
              + "xtask" in workspace.members
            .cargo/config.toml (changed):
              + [alias] xtask = "run --package xtask --"
            pyproject.toml (changed):
              + 22 commented settings with their derived values in [tool.xtask]
            note: no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = "module:attribute"
            note: pyproject.toml has no poetry.lock next to it: run `poetry lock` there; the image is built from the lock
            Set up for the app at the repository root. Next: `cargo xtask image`, then commit these files, docker/Dockerfile and Cargo.lock.

            === Cargo.toml
            # Our tools.
            [workspace]
            members = [
                "crates/*",   # libraries
                "cli",   # libraries
                "xtask",
            ]

            [workspace.dependencies]
            serde = "1"

            === .cargo/config.toml
            [build]
            jobs = 2

            [alias]
            b = "build" # short
            xtask = "run --package xtask --"

            [env]
            A = "1"

            === pyproject.toml
            [project]
            name = "api"
            version = "1.0"
            dependencies = ["fastapi"]

            [tool.xtask]  # ours
            # Defaults `cargo xtask init` derived from this project; uncomment a line to change it.
            # name = "api"  # image name: tags <name>:<version> and <name>:<git sha>
            # version = "1.0"  # image version tag and OCI label
            # python = "3.12"  # Python of the image and its wheelhouse (--python)
            # base-image = "python:3.12-slim"  # base image of the image and of the containers that build its sdists (--base-image, env XTASK_BASE_IMAGE)
            # platform = "linux/amd64"  # platform of the image and its wheels (--platform)
            # platforms = ["linux/amd64"]  # the platforms cargo xtask push ships as one multi-platform index (--platform linux/amd64,linux/arm64): a wheelhouse and an image per platform
            # repository: none set; repository = "<registry>/<path>/api" is where cargo xtask push pushes (--to), e.g. ghcr.io/org/app; the registry cache BuildKit builds from
            # stop-timeout = 30  # seconds the server gets to finish the requests in flight when stopped: the default command's graceful timeout; the engine waits 5 more before it kills (docker run --stop-timeout, label xtask.stop-timeout: set Kubernetes' terminationGracePeriodSeconds to it)
            # app: not found in the code; set app = "module:attribute", the ASGI/WSGI callable, module:attribute
            # interface = "asgi"  # how the server speaks to the app
            # release = []  # the release step: run by cargo xtask run in a container of the image before the server, e.g. migrations
            # include = ["api"]  # files and folders of the app copied into the image's workdir
            # volumes = []  # where the app writes data: owned by its user in the image; cargo xtask run mounts a named volume on each
            # groups = []  # Poetry dependency groups installed besides main (each must exist)
            # extras = []  # extras of the project installed (each must exist)
            # build-packages = []  # packages (as the base image's apt names them) installed in the container of the base image where sdists without a wheel for the target are built, e.g. ["gcc", "libc6-dev", "python3-dev", "libldap-dev"]; never in the image
            # system-packages = []  # packages installed in the image's base stage from .deb files fetched beforehand in a container of the base image (the build stays offline): the libraries built wheels link (libldap-2.5-0), or what a package needs at run time (libmagic1)
            # env = {}  # environment variables baked into the image
            # labels = {}  # image labels besides the OCI ones
            # user = "app"  # the non-root user the container runs as
            # uid = 10001  # that user's uid and gid
            # workdir = "/app"  # the app's directory in the image
            port = 9000 # not 8080
            health-path = "/ping"

            [tool.black]
            line-length = 100"#]]
        .assert_eq(&init(&root, None));
        expect![[r#"
            note: no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = "module:attribute"
            note: pyproject.toml has no poetry.lock next to it: run `poetry lock` there; the image is built from the lock
            Nothing to change: this repository is set up for the app at the repository root.
        "#]]
        .assert_eq(&init(&root, None));
    }

    #[test]
    fn never_overwrites() {
        let root = repo(&[
            (
                "Cargo.toml",
                "[package]\nname = \"tool\"\nversion = \"0.1.0\"\n\n[workspace.metadata.xtask]\napp = \"old\"\n",
            ),
            (".cargo/config.toml", "[alias]\nxtask = \"run -p my-xtask --\"\n"),
            ("web/pyproject.toml", "[tool.poetry]\nname = \"web\"\n[tool]\nxtask.port = 1\n"),
            ("web/poetry.lock", ""),
            (".gitignore", "target/\n"),
        ]);
        expect![[r#"
            Cargo.toml (changed):
              + members = ["xtask"] in [workspace]
            note: no ASGI/WSGI callable found in the app's code (a module-level `app = FastAPI()`, `app = Flask(__name__)`, `app = create_app()`, Django's wsgi.py or asgi.py): set tool.xtask.app = "module:attribute"
            note: Cargo.toml names the app "old" in [workspace.metadata.xtask]; left as is (pass --app old or change it by hand)
            note: .cargo/config.toml has another alias xtask = "run -p my-xtask --"; left as is (this tool expects "run --package xtask --")
            note: web/pyproject.toml: tool.xtask is not written as a [tool.xtask] table; left as is (the README lists the settings)
            Set up for the app in web. Next: `cargo xtask image`, then commit these files, docker/Dockerfile and Cargo.lock.

            === Cargo.toml
            [package]
            name = "tool"
            version = "0.1.0"

            [workspace]
            members = ["xtask"]

            [workspace.metadata.xtask]
            app = "old"
        "#]]
        .assert_eq(&init(&root, Some("web")));
    }

    #[test]
    fn finding_the_app() {
        let check = |files: &[(&str, &str)], expect: Expect| {
            let root = repo(files);
            let actual = match plan(&root, None) {
                Ok(plan) => format!("app: {}", plan.app),
                Err(e) => e.to_string().replace(&root.display().to_string(), "<repo>"),
            };
            expect.assert_eq(&actual);
        };
        let py = "[project]\nname = \"a\"\n";
        check(&[("pyproject.toml", py), ("sub/pyproject.toml", py), ("sub/poetry.lock", "")], expect!["app: sub"]);
        check(
            &[("a/pyproject.toml", py), ("b/pyproject.toml", py)],
            expect!["found several Poetry projects (a, b): pass --app DIR to choose"],
        );
        check(&[("a/pyproject.toml", py), ("b/pyproject.toml", py), ("b/poetry.lock", "")], expect!["app: b"]);
        check(
            &[("README.md", "")],
            expect!["found no Poetry project (a directory with pyproject.toml) in <repo>: pass --app DIR"],
        );
        check(
            &[(".venv/pyproject.toml", py), ("target/pyproject.toml", py)],
            expect!["found no Poetry project (a directory with pyproject.toml) in <repo>: pass --app DIR"],
        );
        check(&[("pyproject.toml", "[tool.xtask]\nprot = 1\n[project]\nname = \"a\"\n")], expect!["<repo>/pyproject.toml:2:1: unknown key tool.xtask.prot; known keys: name, version, python, base-image, platform, platforms, repository, port, health-path, stop-timeout, app, interface, gunicorn-config, command, release, include, volumes, groups, extras, build-packages, system-packages, env, env-file, labels, user, uid, workdir, dockerfile"]);
    }

    #[test]
    fn insertions() {
        assert_eq!(insertion("ab", "aXb").as_deref(), Some("X"));
        assert_eq!(insertion("ab", "abX").as_deref(), Some("X"));
        assert_eq!(insertion("", "X").as_deref(), Some("X"));
        assert_eq!(insertion("a = 1\n", "a = 1\n").as_deref(), Some(""));
        assert_eq!(insertion("a = 1\n", "a=1\nb = 2\n"), None);
        assert_eq!(insertion("é", "éé").as_deref(), Some("é"));
        assert!(member_matches("*", "xtask") && member_matches("./xtask/", "xtask") && member_matches("x*k", "xtask"));
        assert!(!member_matches("crates/*", "xtask") && !member_matches("xtask-*", "xtask"));
    }
}
