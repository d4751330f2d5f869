//! Partial requests (SPEC §2 "Partial requests"): `only` subsets and tensor-parallel shards are
//! bit-identical to the same parts of the full response, and byte ranges of the file are
//! produced by seeking, at a cost proportional to their length.

mod support;

use paraminit::encode::safetensors::read_at;
use paraminit::error::ErrorCode;
use paraminit::generate::{Generator, Scratch};
use paraminit::pipeline;
use paraminit::plan::{Limits, split_range};
use paraminit::spec;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Elements of `full` (row-major `shape`) with index `start..start+len` along `dim`.
fn slice_of(full: &[f32], shape: &[u64], dim: usize, start: u64, len: u64) -> Vec<f32> {
    let inner: u64 = shape[dim + 1..].iter().product();
    let outer: u64 = shape[..dim].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        let base = o * shape[dim] * inner;
        let from = (base + start * inner) as usize;
        out.extend_from_slice(&full[from..from + (len * inner) as usize]);
    }
    out
}

fn model(fw: &str, dtype: &str) -> Value {
    // padding_idx is PyTorch-only (Keras/Flax refuse it: tests/framework_mismatches.rs).
    let mut embedding = json!({"type": "embedding", "num_embeddings": 50, "embedding_dim": 12});
    if fw == "pytorch" {
        embedding["padding_idx"] = json!(3);
    }
    json!({"seed": 77, "framework": fw, "dtype": dtype, "layers": [
        embedding,
        {"type": "dense", "out_features": 30, "kernel_initializer": "he_normal"},
        {"type": "gelu"},
        {"type": "dense", "out_features": 7, "kernel_initializer": {"name": "orthogonal", "gain": 1.5}},
        {"type": "conv1d", "in_channels": 7, "out_channels": 9, "kernel_size": 3, "kernel_initializer": "kaiming_uniform"},
        {"type": "layer_norm"}
    ], "tensors": [
        {"name": "w_sparse", "shape": [11, 13], "init": {"name": "sparse", "sparsity": 0.3}},
        {"name": "t", "shape": [5, 6, 7], "init": {"name": "truncated_normal", "a": -0.5, "b": 2}},
        {"name": "scalar", "shape": [], "init": {"name": "constant", "value": 3}}
    ]})
}

#[test]
fn only_returns_exactly_the_matching_tensors_unchanged() {
    let full = support::plan(&model("pytorch", "float32"));
    let mut req = model("pytorch", "float32");
    req["only"] = json!(["1.*", "t"]);
    let part = support::plan(&req);
    let names: Vec<&str> = part.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["1.bias", "1.weight", "t"]);
    for n in names {
        assert_eq!(support::values(&part, n), support::values(&full, n), "{n}");
    }
    let file = support::safetensors_bytes(&part);
    let full_file = support::safetensors_bytes(&full);
    assert_eq!(
        support::tensor_bytes(&part, &file, "1.weight"),
        support::tensor_bytes(&full, &full_file, "1.weight")
    );
}

#[test]
fn shards_reassemble_into_the_full_tensors() {
    for fw in ["pytorch", "keras", "flax"] {
        for dtype in ["float32", "bfloat16"] {
            let full = support::plan(&model(fw, dtype));
            let full_file = support::safetensors_bytes(&full);
            for world in [1u64, 2, 3, 4, 7] {
                for dim in [0i64, -1] {
                    let mut parts: Vec<Vec<u8>> = vec![Vec::new(); full.tensors.len()];
                    for rank in 0..world {
                        let mut req = model(fw, dtype);
                        req["shard"] = json!({"rank": rank, "world_size": world, "dim": dim});
                        let p = support::plan(&req);
                        let file = support::safetensors_bytes(&p);
                        for (i, t) in full.tensors.iter().enumerate() {
                            let st = &p.tensors[support::tensor_index(&p, &t.name)];
                            // Fans come from the full tensor, so the resolved initializer is identical.
                            assert_eq!(st.resolved, t.resolved, "{} init", t.name);
                            let values = support::values(&p, &t.name);
                            let full_values = support::values(&full, &t.name);
                            if t.shape.is_empty() {
                                assert_eq!(values, full_values);
                                continue;
                            }
                            let d = if dim < 0 { t.shape.len() - 1 } else { 0 };
                            let (start, len) = split_range(t.shape[d], world, rank);
                            assert_eq!(st.shape[d], len);
                            assert_eq!(
                                values,
                                slice_of(&full_values, &t.shape, d, start, len),
                                "{fw} {} rank {rank}/{world} dim {dim}",
                                t.name
                            );
                            if d == 0 {
                                parts[i]
                                    .extend_from_slice(support::tensor_bytes(&p, &file, &t.name));
                            }
                        }
                    }
                    if dim == 0 {
                        for (i, t) in full.tensors.iter().enumerate() {
                            if !t.shape.is_empty() {
                                assert_eq!(
                                    parts[i],
                                    support::tensor_bytes(&full, &full_file, &t.name),
                                    "{fw} {} reassembled",
                                    t.name
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn dims_map_replicates_and_overrides_with_the_longest_pattern() {
    let mut req = model("pytorch", "float32");
    req["shard"] = json!({"rank": 1, "world_size": 2, "dim": 0, "dims": {"*.bias": null, "*": 0, "3.weight": 1, "t": -1}});
    let p = support::plan(&req);
    let shape = |n: &str| p.tensors[support::tensor_index(&p, n)].shape.clone();
    assert_eq!(shape("1.bias"), vec![30]); // replicated
    assert_eq!(shape("1.weight"), vec![15, 12]);
    assert_eq!(shape("3.weight"), vec![7, 15]); // row-parallel: split the input axis
    assert_eq!(shape("t"), vec![5, 6, 3]); // 7 = 4 + 3: rank 1 gets 3
    let sl = p.tensors[support::tensor_index(&p, "t")]
        .slice
        .clone()
        .unwrap();
    assert_eq!((sl.dim, sl.start, sl.full_shape), (2, 4, vec![5, 6, 7]));
    // The file describes its slices.
    let file = support::safetensors_bytes(&p);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&file).unwrap();
    let slices: Value =
        serde_json::from_str(&meta.metadata().clone().unwrap()["paraminit.slices"]).unwrap();
    assert_eq!(
        slices["t"],
        json!({"dim": 2, "start": 4, "length": 3, "full_shape": [5, 6, 7]})
    );
    assert!(slices.get("1.bias").is_none());
    // The canonical request carries the shard, so reposting it reproduces the shard file.
    let canonical: Value =
        serde_json::from_str(&meta.metadata().clone().unwrap()["paraminit.request"]).unwrap();
    assert_eq!(support::safetensors_bytes(&support::plan(&canonical)), file);
    // And the JSON body says the same.
    let body: Value = serde_json::from_slice(&support::json_body(&p, 1 << 16)).unwrap();
    let t = body["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t")
        .unwrap();
    assert_eq!(t["slice"]["full_shape"], json!([5, 6, 7]));
}

#[test]
fn partial_request_errors() {
    let err = |extra: Value| {
        let mut req = model("pytorch", "float32");
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        let e = spec::parse(&req)
            .and_then(|r| pipeline::build(r, &Limits::UNLIMITED))
            .unwrap_err();
        (e.code, e.path)
    };
    assert_eq!(
        err(json!({"only": ["1.*", "nope*"]})),
        (ErrorCode::NoMatch, Some("only[1]".into()))
    );
    assert_eq!(err(json!({"only": []})).0, ErrorCode::InvalidValue);
    assert_eq!(err(json!({"only": "t"})).0, ErrorCode::InvalidType);
    assert_eq!(
        err(json!({"shard": {"rank": 2, "world_size": 2}})),
        (ErrorCode::InvalidValue, Some("shard.rank".into()))
    );
    assert_eq!(
        err(json!({"shard": {"rank": 0}})),
        (ErrorCode::MissingField, Some("shard.world_size".into()))
    );
    assert_eq!(
        err(json!({"shard": {"rank": 0, "world_size": 2, "dim": 2}})),
        (ErrorCode::InvalidValue, Some("shard.dim".into()))
    );
    assert_eq!(
        err(json!({"shard": {"rank": 0, "world_size": 2, "dims": {"1.bias": 1}}})),
        (
            ErrorCode::InvalidValue,
            Some("shard.dims[\"1.bias\"]".into())
        )
    );
    assert_eq!(
        err(json!({"shard": {"rank": 0, "world_size": 2, "colour": 1}})).0,
        ErrorCode::UnknownField
    );
}

#[test]
fn a_small_range_deep_in_a_huge_tensor_costs_only_its_length() {
    // 2^36 bf16 elements: a 128 GiB file. Read 64 KiB near its end.
    let p = support::plan(&json!({"seed": 5, "dtype": "bfloat16", "tensors": [
        {"name": "huge", "shape": [1u64 << 18, 1u64 << 18], "init": "normal"}]}));
    let g = Generator::new(p.clone());
    let mut scratch = Scratch::default();
    let mut buf = vec![0u8; 64 << 10];
    let offset = p.file_bytes - (1 << 20);
    read_at(&g, offset, &mut buf, &mut scratch);
    assert!(
        scratch.elements_generated() <= (32 << 10) + 2,
        "generated {}",
        scratch.elements_generated()
    );
    // The bytes are those of the elements at that position.
    let first = (offset - p.data_start()) / 2;
    let mut v = vec![0f32; 32 << 10];
    g.fill(0, first, &mut v, &mut Scratch::default());
    for (i, x) in v.iter().enumerate() {
        assert_eq!(
            &buf[2 * i..2 * i + 2],
            &half::bf16::from_f32(*x).to_bits().to_le_bytes()
        );
    }
    // A shard of it is also cheap: rank 3 of 4 along the last axis, first 1000 elements.
    let ps = support::plan(
        &json!({"seed": 5, "dtype": "bfloat16", "shard": {"rank": 3, "world_size": 4, "dim": 1}, "tensors": [
        {"name": "huge", "shape": [1u64 << 18, 1u64 << 18], "init": "normal"}]}),
    );
    let gs = Generator::new(ps.clone());
    let mut s2 = Scratch::default();
    let mut w = vec![0f32; 1000];
    gs.fill(0, (1 << 34) - 1000, &mut w, &mut s2);
    assert_eq!(s2.elements_generated(), 1000);
}

fn arb_init() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("normal")),
        Just(json!("he_uniform")),
        Just(json!({"name": "truncated_normal", "std": 0.3, "a": -0.2, "b": 0.9})),
        Just(json!("glorot_normal")),
        Just(json!("orthogonal")),
        Just(json!({"name": "constant", "value": -1.25})),
        Just(json!("eye")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    /// Random tensors, shards and byte ranges: every part equals the same part of the full
    /// response, for every initializer and dtype.
    #[test]
    fn random_parts_equal_slices_of_the_whole(
        shape in prop::collection::vec(1u64..9, 2..4),
        init in arb_init(),
        dtype in prop_oneof![Just("float32"), Just("bfloat16"), Just("float16"), Just("float64")],
        fw in prop_oneof![Just("pytorch"), Just("keras"), Just("flax")],
        world in 1u64..6,
        rank_seed in any::<u64>(),
        dim_seed in any::<usize>(),
        ranges in prop::collection::vec((any::<u64>(), 0u64..300), 1..4),
    ) {
        let init = if init == json!("eye") && shape.len() != 2 { json!("normal") } else { init };
        let layer_in = shape[shape.len() - 1];
        let base = json!({"seed": 3, "framework": fw, "dtype": dtype,
            "layers": [{"type": "dense", "in_features": layer_in, "out_features": shape[0] + 2, "kernel_initializer": init.clone()}],
            "tensors": [{"name": "x", "shape": shape, "init": init}]});
        let full = support::plan(&base);
        let file = support::safetensors_bytes(&full);
        // Byte ranges of the full file, produced by seeking.
        let g = Generator::new(full.clone());
        for (a, len) in ranges {
            let a = a % file.len() as u64;
            let b = (a + len).min(file.len() as u64);
            let mut buf = vec![0u8; (b - a) as usize];
            read_at(&g, a, &mut buf, &mut Scratch::default());
            prop_assert_eq!(&buf[..], &file[a as usize..b as usize]);
        }
        // A random shard of every tensor.
        let rank = rank_seed % world;
        let mut req = base.clone();
        req["shard"] = json!({"rank": rank, "world_size": world, "dim": 0, "dims": {"x": (dim_seed % shape.len()) as i64}});
        let part = support::plan(&req);
        for t in &full.tensors {
            let st = &part.tensors[support::tensor_index(&part, &t.name)];
            let d = st.slice.as_ref().map(|s| s.dim).unwrap_or(0);
            let (start, len) = split_range(t.shape[d], world, rank);
            let want = slice_of(&support::values(&full, &t.name), &t.shape, d, start, len);
            prop_assert_eq!(support::values(&part, &t.name), want);
        }
    }
}
