//! The README's Layout table names every module: each entry (directory or `.rs` file) under
//! `src/` and `loadtest/src/` in that root's row, and every workspace member in the first
//! column of some row. A module added without a word in the README fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The rows of the table under `## Layout`, as (first cell, whole row).
fn layout_rows(readme: &str) -> Vec<(String, String)> {
    let section = readme
        .split("\n## ")
        .find(|part| part.starts_with("Layout\n"))
        .expect("README.md has a `## Layout` section");
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let first = line.split('|').nth(1).unwrap_or_default().trim().to_owned();
            (first, line.to_owned())
        })
        .collect()
}

/// The modules of `dir`: its directories as `name/`, its `.rs` files as `name.rs`, without
/// the crate roots.
fn modules(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                Some(format!("{name}/"))
            } else if name.ends_with(".rs") && name != "lib.rs" && name != "main.rs" {
                Some(name)
            } else {
                None
            }
        })
        .collect();
    names.sort();
    names
}

/// `members = [...]` of the workspace's Cargo.toml.
fn workspace_members(manifest: &str) -> Vec<String> {
    let start = manifest.find("members = [").expect("a members list") + "members = [".len();
    let end = start + manifest[start..].find(']').expect("the list's end");
    manifest[start..end]
        .split(',')
        .map(|member| member.trim().trim_matches('"').to_owned())
        .filter(|member| !member.is_empty())
        .collect()
}

/// What the table misses: `root: module` and `workspace member: path`.
fn missing(repo: &Path, readme: &str) -> Vec<String> {
    let rows = layout_rows(readme);
    let mut missing = Vec::new();
    for root in ["src/", "loadtest/src/"] {
        let cell = format!("`{root}`");
        let Some((_, row)) = rows.iter().find(|(first, _)| first.contains(&cell)) else {
            missing.push(format!("{root}: no row"));
            continue;
        };
        for module in modules(&repo.join(root)) {
            if !row.contains(&format!("`{module}`")) {
                missing.push(format!("{root}: {module}"));
            }
        }
    }
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).expect("Cargo.toml");
    for member in workspace_members(&manifest) {
        // The root package is the `src/` row.
        let path = if member == "." {
            "src/".to_owned()
        } else {
            format!("{member}/")
        };
        if !rows
            .iter()
            .any(|(first, _)| first.contains(&format!("`{path}`")))
        {
            missing.push(format!("workspace member: {path}"));
        }
    }
    missing
}

#[test]
fn the_layout_table_names_every_module_and_workspace_member() {
    let repo = repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    let missing = missing(&repo, &readme);
    assert!(
        missing.is_empty(),
        "README.md's Layout table does not name: {missing:#?}"
    );
}

#[test]
fn a_module_left_out_of_the_table_is_found() {
    let repo = repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    let without = readme.replacen("`matrix/`", "`matrix`", 1);
    assert_eq!(missing(&repo, &without), vec!["loadtest/src/: matrix/"]);
}
