//! The direction of the guest's modules, read from its sources: the command layer calls
//! `run` and `render`, which call the helpers below them, and nothing calls upwards (a
//! circle makes every module depend on every other one's details).

use std::collections::BTreeMap;
use std::path::Path;

/// Every module of `src/` by layer, lowest first: a module may use only modules of a lower
/// layer (and its own submodules, `src/NAME/*.rs`). `main` is the crate root.
const LAYERS: &[&[&str]] = &[
    &["addr", "args", "env", "format"],
    &["output"],
    &["health", "render", "report"],
    &["run"],
    &["commands"],
    &["main"],
];

/// The modules a source file names as `crate::NAME` (in paths and `use crate::{...}`).
fn uses(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        // `use crate::{a::X, b}` names every module in the group; `crate::a::X` one.
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for item in names {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // Items of the crate root itself (`crate::USAGE`) are upper case.
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                found.push("main".to_owned());
            } else if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn modules_call_downwards_only() {
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(n, names)| names.iter().map(move |name| (*name, n)))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            for sub in std::fs::read_dir(&path).expect("module folder") {
                files.push(sub.expect("entry").path());
            }
        } else {
            files.push(path);
        }
    }
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs"))
            .expect("module name");
        let Some(&own) = layer.get(module) else {
            wrong.push(format!(
                "{}: module {module} has no layer",
                relative.display()
            ));
            continue;
        };
        let source = std::fs::read_to_string(file).expect("source");
        for used in uses(&source) {
            match layer.get(used.as_str()) {
                Some(&n) if n < own => {}
                _ if used == module => {}
                _ => wrong.push(format!(
                    "{}: {module} uses crate::{used}",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
