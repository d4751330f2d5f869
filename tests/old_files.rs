//! Files written before initializer names became framework-scoped (issue 13; fixtures written
//! by the binary of commit 4cfefe0, tests/fixtures/old_files): posting the canonical request a
//! file stores (`paraminit.request`) reproduces that file byte for byte. The service version in
//! the metadata is the only field allowed to differ.

mod support;

use serde_json::Value;

fn header(bytes: &[u8]) -> (usize, Value) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (8 + n, serde_json::from_slice(&bytes[8..8 + n]).unwrap())
}

fn dir() -> String {
    format!("{}/tests/fixtures/old_files", env!("CARGO_MANIFEST_DIR"))
}

const FILES: &[&str] = &["keras_names", "flax_names", "pytorch_names"];

#[test]
fn stored_requests_of_old_files_reproduce_them_byte_for_byte() {
    for f in FILES {
        let old = std::fs::read(format!("{}/{f}.safetensors", dir())).unwrap();
        let (_, h) = header(&old);
        let stored: Value =
            serde_json::from_str(h["__metadata__"]["paraminit.request"].as_str().unwrap()).unwrap();
        let plan = support::plan(&stored);
        let new = support::safetensors_bytes(&plan);
        let (_, nh) = header(&new);
        let old_version = h["__metadata__"]["paraminit.version"].as_str().unwrap();
        let new_version = nh["__metadata__"]["paraminit.version"].as_str().unwrap();
        if old_version == new_version {
            assert!(old == new, "{f}: the file differs");
        } else {
            // Same header but for the version, same data.
            let mut h2 = nh.clone();
            h2["__metadata__"]["paraminit.version"] = Value::String(old_version.into());
            h2["__metadata__"]["paraminit.request"] =
                h["__metadata__"]["paraminit.request"].clone();
            assert_eq!(h2, h, "{f}: header");
            let (a, b) = (header(&old).0, header(&new).0);
            assert!(old[a..] == new[b..], "{f}: data differs");
        }
    }
}

#[test]
fn the_original_keras_and_flax_requests_now_mean_the_frameworks_names() {
    // The requests those files were made from used "uniform"/"normal"/"truncated_normal",
    // which under keras and flax now mean the framework's own initializers: the answer differs
    // from the old file (listed in CHANGELOG.md), while the stored request above reproduces it.
    for f in ["keras_names", "flax_names"] {
        let old = std::fs::read(format!("{}/{f}.safetensors", dir())).unwrap();
        let req: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{}/{f}.json", dir())).unwrap())
                .unwrap();
        let new = support::safetensors_bytes(&support::plan(&req));
        assert!(old[header(&old).0..] != new[header(&new).0..], "{f}");
    }
    // Under pytorch nothing changed: the original request gives the old data.
    let old = std::fs::read(format!("{}/pytorch_names.safetensors", dir())).unwrap();
    let req: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/pytorch_names.json", dir())).unwrap(),
    )
    .unwrap();
    let new = support::safetensors_bytes(&support::plan(&req));
    assert!(old[header(&old).0..] == new[header(&new).0..]);
}
