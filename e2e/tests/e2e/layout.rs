//! The dependency rules of ARCHITECTURE.md, held by reading the sources and
//! manifests: the core never names HTTP or HTML types; the vendor clients
//! never name the database; the web layer reaches the database only through
//! the core; the core's folders use only what their module docs allow; no
//! module of the core sits at its root but the shared ground.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source without comments (so a doc that names a crate is no use of it).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let l = line.trim_start();
        if l.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Paths a source names with `name::` (a crate or a module), as whole words.
fn names(src: &str, name: &str) -> bool {
    let pat = format!("{name}::");
    src.match_indices(&pat).any(|(i, _)| {
        i == 0 || {
            let c = src.as_bytes()[i - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        }
    })
}

/// The dependency names of a manifest's `[dependencies]` table.
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[dependencies]";
            continue;
        }
        if inside && let Some((k, _)) = l.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && !k.starts_with('#') {
                out.insert(k.split('.').next().unwrap_or(k).to_owned());
            }
        }
    }
    out
}

fn violations(files: &[PathBuf], forbidden: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in files {
        let src = code(f);
        for n in forbidden {
            if names(&src, n) || src.contains(&format!("use {n};")) {
                bad.push(format!("{} names {n}", f.display()));
            }
        }
    }
    bad
}

const HTTP: &[&str] = &[
    "axum",
    "askama",
    "askama_web",
    "hyper",
    "tower",
    "tower_http",
    "http",
];
const DATABASE: &[&str] = &["sea_orm", "sea_query", "sqlx", "sea_orm_migration"];

#[test]
fn the_core_knows_nothing_of_http() {
    let r = root();
    let bad = violations(&rust_files(&r.join("orchestrator/src")), HTTP);
    assert!(bad.is_empty(), "{bad:#?}");
    let deps = dependencies(&r.join("orchestrator/Cargo.toml"));
    for n in HTTP {
        assert!(
            !deps.contains(&n.replace('_', "-")),
            "orchestrator depends on {n}"
        );
    }
    // The rule is a real one: the web layer does name axum.
    assert!(!violations(&rust_files(&r.join("src/web")), HTTP).is_empty());
}

#[test]
fn the_vendor_clients_know_nothing_of_the_database() {
    let r = root();
    let bad = violations(&rust_files(&r.join("integrations/src")), DATABASE);
    assert!(bad.is_empty(), "{bad:#?}");
    let deps = dependencies(&r.join("integrations/Cargo.toml"));
    for n in DATABASE {
        assert!(
            !deps.contains(&n.replace('_', "-")),
            "integrations depends on {n}"
        );
    }
}

#[test]
fn the_web_layer_reaches_the_database_only_through_the_core() {
    let r = root();
    let files = rust_files(&r.join("src/web"));
    let mut bad = violations(&files, DATABASE);
    for f in &files {
        if code(f).contains("store::entity") {
            bad.push(format!("{} names the core's table rows", f.display()));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(violations(&rust_files(&r.join("orchestrator/src/store")), DATABASE).len() > 1);
}

/// The shared ground, and which folders each folder of the core may use
/// (the "May use" of its module doc).
const GROUND: &[&str] = &[
    "store",
    "audit",
    "canonical",
    "ids",
    "clock",
    "error",
    "text",
    "testkit",
];
const FOLDERS: &[(&str, &[&str])] = &[
    ("secrets", &[]),
    ("identity", &["secrets"]),
    ("engine", &["identity", "connect"]),
    ("connect", &["secrets", "engine", "pipeline"]),
    ("pipeline", &["secrets", "engine", "connect"]),
];
/// The top-level modules a source reaches through `crate::` (also inside
/// `use crate::{a, b::c}` groups).
fn crate_uses(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in src.match_indices("crate::") {
        if i > 0 && (src.as_bytes()[i - 1].is_ascii_alphanumeric() || src.as_bytes()[i - 1] == b'_') {
            continue;
        }
        let rest = &src[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at depth-0 commas.
            let (mut depth, mut start) = (0usize, 0usize);
            let mut items = Vec::new();
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[start..j]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[start..j]);
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            for it in items {
                let name: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

#[test]
fn the_core_s_folders_use_only_what_their_docs_allow() {
    let src = root().join("orchestrator/src");
    let folders: BTreeMap<&str, &[&str]> = FOLDERS.iter().copied().collect();
    let mut bad = Vec::new();
    let mut seen_cross = 0;
    for f in rust_files(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let home = first.trim_end_matches(".rs").to_owned();
        if home == "lib" {
            continue;
        }
        let allowed: Vec<&str> = if GROUND.contains(&home.as_str()) {
            GROUND.to_vec()
        } else {
            let Some(a) = folders.get(home.as_str()) else {
                bad.push(format!(
                    "{}: module at the core's root is not shared ground",
                    rel.display()
                ));
                continue;
            };
            GROUND.iter().chain(a.iter()).copied().collect()
        };
        for used in crate_uses(&code(&f)) {
            let folder = used.as_str();
            if folder == home || !folders.contains_key(folder) && !GROUND.contains(&folder) {
                continue; // its own folder, or a re-exported type (crate::Error, crate::Clock)
            }
            seen_cross += 1;
            if !allowed.contains(&folder) {
                bad.push(format!("{}: {home} may not use {folder}", rel.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    // The reader sees the crossings there are (it is not blind).
    assert!(seen_cross > 20, "only {seen_cross} crossings seen");
}

#[test]
fn the_reader_of_crate_paths_reads_groups() {
    let u = crate_uses(
        "use crate::{audit, engine::{cases, gates}, secrets::vault};\nlet x = crate::connect::pollers::run();",
    );
    assert_eq!(
        u,
        ["audit", "connect", "engine", "secrets"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(names("use axum::Json;", "axum"));
    assert!(!names("use vigil_axum::Json;", "axum"));
}
