//! The `//! # Layout` map of `src/lib.rs` is true: for every top-level module, the modules it
//! uses (every `crate::x` path in its files, test code included, comments and string literals
//! not) are exactly its row's "uses" column, and all of them are listed above it, so the crate
//! has no two-way (or longer) module dependency. A new `use crate::…` that breaks the order,
//! or a map row that drifts from the code, fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `text` with comments removed and string and char literals emptied, so only code remains.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map(|e| e + 2).unwrap_or(rest.len());
        } else if (rest.starts_with("r\"") || rest.starts_with("r#"))
            && !(i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string r#…#"…"#…#: ends at the quote followed by as many hashes.
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 1 + hashes + 1;
            i += body
                + rest[body..]
                    .find(&close)
                    .map(|e| e + close.len())
                    .unwrap_or(0);
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '"'); otherwise a lifetime or label.
            let lit = if rest[1..].starts_with('\\') {
                rest[2..].find('\'').map(|e| e + 3)
            } else {
                let c = rest[1..].chars().next().map(char::len_utf8).unwrap_or(0);
                (rest[1 + c..].starts_with('\'')).then_some(c + 2)
            };
            match lit {
                Some(n) => {
                    i += n;
                    out.push_str("' '");
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The first path segment of every `crate::…` in `code` (a `crate::{a, b::c}` group gives each
/// of its top-level names).
fn crate_uses(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let Some(rest) = code[at + 5..].trim_start().strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        used.insert(ident(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        used.insert(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(ident(rest));
        }
    }
    used.remove("");
    used
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module → the crate modules its files use (itself excluded).
fn actual() -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        if ["lib", "main", "bin"].contains(&name.as_str()) || mods.contains_key(&name) {
            continue;
        }
        let mut files = Vec::new();
        let file = src().join(format!("{name}.rs"));
        if file.is_file() {
            files.push(file);
        }
        if src().join(&name).is_dir() {
            rust_files(&src().join(&name), &mut files);
        }
        let mut used = BTreeSet::new();
        for f in files {
            used.extend(crate_uses(&code_only(&std::fs::read_to_string(f).unwrap())));
        }
        used.remove(&name);
        mods.insert(name, used);
    }
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    for used in mods.values_mut() {
        used.retain(|u| names.contains(u));
    }
    mods
}

/// The map's rows in order: (module, its "uses" column; parenthesised notes left out).
fn map_rows() -> Vec<(String, BTreeSet<String>)> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut rows = Vec::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! | `") else {
            continue;
        };
        let module: String = row.chars().take_while(|&c| c != '`').collect();
        let uses = row.trim_end().trim_end_matches('|').trim_end();
        let uses = &uses[uses.rfind(" | ").expect("a three-column row") + 3..];
        let mut plain = String::new();
        let mut depth = 0usize;
        for c in uses.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let names = plain
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        rows.push((module, names));
    }
    rows
}

#[test]
fn the_layout_map_is_the_module_graph_and_it_points_one_way() {
    let actual = actual();
    let rows = map_rows();
    let listed: Vec<&str> = rows.iter().map(|(m, _)| m.as_str()).collect();
    let mut problems = Vec::new();
    for m in actual.keys() {
        if !listed.contains(&m.as_str()) {
            problems.push(format!("`{m}` is not in the layout map"));
        }
    }
    for (k, (m, column)) in rows.iter().enumerate() {
        let Some(used) = actual.get(m) else {
            problems.push(format!(
                "the map lists `{m}`, which is not a module of src/"
            ));
            continue;
        };
        if used != column {
            problems.push(format!("`{m}` uses {used:?}; its row says {column:?}"));
        }
        for u in used {
            if !listed[..k].contains(&u.as_str()) {
                problems.push(format!("`{m}` uses `{u}`, which is not listed above it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The scanner sees code only: paths in comments and strings do not count, groups and nested
/// groups do, and a path that merely ends in `crate` is not one.
#[test]
fn the_scanner_reads_code_not_text() {
    let code = code_only(
        r##"use crate::{a, b::{c, d}, e as f};
        // crate::comment
        /* crate::block */
        let s = "crate::string \" crate::escaped";
        let r = r#"crate::raw " still raw"#;
        let q = '"'; let t: &'static str = ""; x = crate::g::h();
        mycrate::i; $crate::j;"##,
    );
    let got: Vec<String> = crate_uses(&code).into_iter().collect();
    assert_eq!(got, ["a", "b", "e", "g"]);
}
