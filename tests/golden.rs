//! Golden vectors: the exact data bytes of small fixed requests, pinned. A change here changes
//! output bits for `paraminit-v1`, which is a breaking change (SPEC §4.4): it needs a new
//! algorithm version, never an edit of these hashes. The data section is hashed (not the
//! header, which carries the service version).

mod support;

use sha2::{Digest, Sha256};

fn data_hash(path: &str) -> (String, Vec<u32>) {
    let text = std::fs::read_to_string(path).unwrap();
    let req: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = support::plan(&req);
    let file = support::safetensors_bytes(&p);
    let data = &file[p.data_start() as usize..];
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let first: Vec<u32> = data
        .chunks_exact(4)
        .take(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (hex, first)
}

#[test]
fn golden_vectors_are_unchanged() {
    let cases = [
        (
            "examples/seed_mlp.json",
            "a24cff7d289b218780055489850706212c0407041ab11b6b4c1a6fffd9af9f58",
            [3175159152, 3182664440, 1025012586, 3154018400],
        ),
        (
            "tests/golden/mlp_keras.json",
            "62f5b58bddf658e4118078dd233dd64cc12d2f9c689f01cb6bd07fddf27208a1",
            [0, 0, 0, 0],
        ),
        (
            "tests/golden/mlp_flax.json",
            "91c115881e5177b7382cf4d84c2720821d8b46671ca3f9e5c4419219c48e4c99",
            [1056964608, 1056964608, 1056964608, 1056964608],
        ),
        (
            "tests/golden/mixed.json",
            "071d997d31e88bb612ea12d032e5cbbf439c59f1afcf28d2c75adb6651fb9939",
            [0, 0, 3221225472, 1069613478],
        ),
        (
            "tests/golden/arch.json",
            "1de7484f411f589ba44b9c0ad7dc04daffb6dc5f0bb737b828ff2e142576b5e9",
            [1052740666, 1040604656, 1044380408, 1053797308],
        ),
        (
            "tests/golden/hf_llama_tiny.json",
            "756f340f5c6785adae0ac4db5d46be2bbc7a4751c458834224dc3f49b3463805",
            [998226868, 3157376188, 3168812234, 3139779523],
        ),
    ];
    let got: Vec<_> = cases.iter().map(|(path, ..)| data_hash(path)).collect();
    for ((path, ..), (h, f)) in cases.iter().zip(&got) {
        println!("(\"{path}\", \"{h}\", {f:?}),");
    }
    for ((path, hash, first), (h, f)) in cases.iter().zip(&got) {
        assert_eq!(h, hash, "{path}");
        assert_eq!(f.as_slice(), first.as_slice(), "{path}");
    }
}
