//! The layering, checked: no crate's modules import each other in a circle, and the core
//! depends on no engine and no chain (what `cargo tree -p reclaim-core` shows, enforced).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src`, as (module path, file text); `lib.rs`/`main.rs` are the root
/// (`""`), `a/mod.rs` is `a`, `a/b.rs` is `a::b`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("under src")
                .with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("lib" | "main" | "mod")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The modules `text` refers to through `crate::…` paths, resolved to the longest known module.
fn references(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("::");
            if known.contains(&candidate) {
                found.insert(candidate);
                break;
            }
        }
    }
    found
}

/// A cycle in `edges`, if any, as the list of modules around it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, edges, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut path = Vec::new();
            if let Some(cycle) = visit(node, edges, &mut state, &mut path) {
                return Some(cycle);
            }
        }
    }
    None
}

fn crate_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).expect("crates") {
        let src = entry.expect("entry").path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    dirs
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut checked = 0;
    for src in crate_sources() {
        let modules = modules(&src);
        let known: BTreeSet<String> = modules.keys().filter(|m| !m.is_empty()).cloned().collect();
        let edges: BTreeMap<String, BTreeSet<String>> = modules
            .iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, text)| {
                let mut refs = references(text, &known);
                refs.remove(name);
                // A module's own children are not an import of it.
                refs.retain(|r| !r.starts_with(&format!("{name}::")));
                (name.clone(), refs)
            })
            .collect();
        if let Some(cycle) = find_cycle(&edges) {
            panic!(
                "{}: modules import each other in a circle: {}",
                src.display(),
                cycle.join(" -> ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} crates found");
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let known: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a", "use crate::b::X;"),
        ("b", "fn f() { crate::c::g() }"),
        ("c", "// crate::a is only mentioned\nuse crate::a::Y;"),
    ]
    .into_iter()
    .map(|(m, t)| (m.to_owned(), references(t, &known)))
    .collect();
    let cycle = find_cycle(&edges).expect("a -> b -> c -> a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}

/// The `[dependencies]` section of a crate's manifest (build and dev dependencies excluded).
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_section = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
            continue;
        }
        if in_section && let Some((name, _)) = line.split_once(['=', '.']) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                deps.push(name.to_owned());
            }
        }
    }
    deps
}

#[test]
fn the_core_knows_no_engine_and_no_chain_and_adapters_know_only_the_core() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |krate: &str| {
        std::fs::read_to_string(root.join("crates").join(krate).join("Cargo.toml"))
            .expect("manifest")
    };
    let core = normal_dependencies(&read("reclaim-core"));
    for forbidden in [
        "reclaim-cometbft",
        "redb",
        "sled",
        "rocksdb",
        "reclaim-redb",
        "reclaim-sled",
        "reclaim-rocksdb",
    ] {
        assert!(
            !core.contains(&forbidden.to_owned()),
            "reclaim-core depends on {forbidden}"
        );
    }
    for adapter in ["reclaim-redb", "reclaim-sled", "reclaim-rocksdb"] {
        let deps = normal_dependencies(&read(adapter));
        let ours: Vec<&String> = deps.iter().filter(|d| d.starts_with("reclaim")).collect();
        assert_eq!(ours, vec!["reclaim-core"], "{adapter} depends on {ours:?}");
    }
    let chain = normal_dependencies(&read("reclaim-cometbft"));
    assert!(chain.contains(&"reclaim-core".to_owned()));
    assert!(
        !chain
            .iter()
            .any(|d| ["redb", "sled", "rocksdb"].contains(&d.as_str()))
    );
}
