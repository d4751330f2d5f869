//! The byte-identity guard: every response of a broad set of requests, pinned by SHA-256.
//!
//! Each `tests/golden/pinned/*.json` file is a request body. It is posted in-process to
//! `POST /v1/plan`, `POST /v1/init?format=json` and `POST /v1/init?format=safetensors`, and the
//! status and the SHA-256 of each response body are compared with the line recorded for it in
//! `tests/golden/pinned/MANIFEST` (`<file> <kind> <status> <sha256>`). `GET /v1/initializers`
//! is pinned as `_catalogue`. The set covers every layer type, every framework, every
//! initializer of the catalogue (with and without parameters, and by alias), the dtypes, every
//! `hf_config` family, `only` and `shard`, `recipe: adaptive` (its scales, and each of its
//! refusals and bounds), and the error envelope (files named `error_*` must fail, all others
//! must succeed). Files named `analyze_*` are also posted to `POST /v1/analyze` (kind
//! `analyze`), which must succeed: the measured pass, its verdict, the `hf_config` forecast
//! (with `only`, of the full model) and the histograms.
//!
//! Unlike `tests/golden.rs` (the data section only, tied to `paraminit-v1`), this pins whole
//! responses: headers of the file, canonical request, plan documents, JSON formatting, error
//! messages. It exists so that a refactor can prove it changed no byte. A change that is meant
//! to change a response (a new plan field, a reworded message, a new algorithm version) is
//! re-recorded deliberately, and the diff of `MANIFEST` shows which responses moved:
//!
//! ```sh
//! PARAMINIT_RECORD_PINNED=1 cargo test --test pinned_outputs
//! git diff tests/golden/pinned/MANIFEST
//! ```
//!
//! To extend the set, add a request file and re-record; the test fails on a file without a
//! manifest line and on a manifest line without a file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use common::*;
use sha2::{Digest, Sha256};

const KINDS: [(&str, &str); 3] = [
    ("plan", "/v1/plan"),
    ("json", "/v1/init?format=json"),
    ("safetensors", "/v1/init?format=safetensors"),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pinned")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `(file, kind)` → `"<status> <sha256>"`, for every request file and kind, in name order.
async fn observe() -> BTreeMap<(String, String), String> {
    let app = app();
    let mut got = BTreeMap::new();
    let res = send(&app, get("/v1/initializers")).await;
    let status = res.status().as_u16();
    let body = body_bytes(res).await;
    got.insert(
        ("_catalogue".to_string(), "get".to_string()),
        format!("{status} {}", sha256_hex(&body)),
    );
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the pinned request set is missing");
    for file in files {
        let text = std::fs::read_to_string(dir().join(&file)).unwrap();
        for (kind, uri) in KINDS {
            let res = send(&app, post(uri, &text)).await;
            let status = res.status();
            let body = body_bytes(res).await;
            if file.starts_with("error_") {
                assert!(
                    status.is_client_error(),
                    "{file} ({kind}) should be rejected, got {status}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{file} ({kind}): {}",
                    String::from_utf8_lossy(&body)
                );
            }
            got.insert(
                (file.clone(), kind.to_string()),
                format!("{} {}", status.as_u16(), sha256_hex(&body)),
            );
        }
        if file.starts_with("analyze_") {
            // The report of the measured pass (its numbers, verdict, forecast and histograms).
            let res = send(&app, post("/v1/analyze", &text)).await;
            let status = res.status();
            let body = body_bytes(res).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{file} (analyze): {}",
                String::from_utf8_lossy(&body)
            );
            got.insert(
                (file.clone(), "analyze".to_string()),
                format!("{} {}", status.as_u16(), sha256_hex(&body)),
            );
        }
    }
    got
}

fn render(got: &BTreeMap<(String, String), String>) -> String {
    let mut out = String::from(
        "# <request file> <kind> <status> <sha256 of the response body>\n\
         # Recorded by `PARAMINIT_RECORD_PINNED=1 cargo test --test pinned_outputs`; see that file.\n",
    );
    for ((file, kind), v) in got {
        out.push_str(&format!("{file} {kind} {v}\n"));
    }
    out
}

fn parse(text: &str) -> BTreeMap<(String, String), String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad manifest line: {l}");
            (
                (f[0].to_string(), f[1].to_string()),
                format!("{} {}", f[2], f[3]),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_pinned_response_is_byte_identical() {
    let got = observe().await;
    let manifest = dir().join("MANIFEST");
    if std::env::var_os("PARAMINIT_RECORD_PINNED").is_some() {
        std::fs::write(&manifest, render(&got)).unwrap();
        eprintln!("recorded {} responses in {}", got.len(), manifest.display());
        return;
    }
    let want = parse(&std::fs::read_to_string(&manifest).expect("tests/golden/pinned/MANIFEST"));
    let mut problems = Vec::new();
    for (key, v) in &got {
        match want.get(key) {
            None => problems.push(format!("{} {}: not in MANIFEST (record it)", key.0, key.1)),
            Some(w) if w != v => problems.push(format!("{} {}: {w} → {v}", key.0, key.1)),
            Some(_) => {}
        }
    }
    for key in want.keys().filter(|k| !got.contains_key(*k)) {
        problems.push(format!(
            "{} {}: in MANIFEST, but no such request",
            key.0, key.1
        ));
    }
    assert!(
        problems.is_empty(),
        "{} of {} pinned responses changed (if deliberate, re-record: \
         PARAMINIT_RECORD_PINNED=1 cargo test --test pinned_outputs):\n{}",
        problems.len(),
        got.len(),
        problems.join("\n")
    );
}
