//! The determinism contract (SPEC §4): identical bytes for identical requests, independence
//! from chunk size, thread count, request order and other tensors; seeking equals slicing;
//! narrow dtypes are the f32 values rounded; JSON equals safetensors; Keras/Flax kernels are the
//! PyTorch weights with axes permuted.

mod support;

use std::sync::Arc;

use paraminit::encode::safetensors::read_at_parallel;
use paraminit::generate::{Generator, Scratch};
use serde_json::{Value, json};

fn mixed_request(seed: u64) -> Value {
    json!({
        "seed": seed,
        "layers": [
            {"type": "conv2d", "in_channels": 3, "out_channels": 16, "kernel_size": 3, "kernel_initializer": "he_normal"},
            {"type": "batch_norm"},
            {"type": "relu"},
            {"type": "dense", "in_features": 16, "out_features": 300, "kernel_initializer": {"name": "truncated_normal", "std": 0.02}},
            {"type": "layer_norm"},
            {"type": "embedding", "num_embeddings": 100, "embedding_dim": 33, "padding_idx": 0}
        ],
        "tensors": [
            {"name": "u", "shape": [1001], "init": {"name": "uniform", "low": -1, "high": 1}},
            {"name": "h", "shape": [37, 41], "init": "xavier_normal", "dtype": "bfloat16"},
            {"name": "o", "shape": [24, 40], "init": "orthogonal", "dtype": "float16"},
            {"name": "s", "shape": [30, 20], "init": {"name": "sparse", "sparsity": 0.3}, "dtype": "float64"}
        ]
    })
}

#[test]
fn same_request_same_bytes_and_chunking_does_not_matter() {
    let p = support::plan(&mixed_request(7));
    let a = support::safetensors_bytes(&p);
    let b = support::safetensors_bytes(&support::plan(&mixed_request(7)));
    assert_eq!(a, b);
    for piece in [1, 3, 7, 64, 1000, 4093, 1 << 16] {
        assert_eq!(
            support::safetensors_bytes_in_pieces(&p, piece),
            a,
            "piece size {piece}"
        );
    }
    let c = support::safetensors_bytes(&support::plan(&mixed_request(8)));
    assert_ne!(a[p.data_start() as usize..], c[p.data_start() as usize..]);
    // JSON chunking.
    let j = support::json_body(&p, 1 << 20);
    for chunk in [64, 1000, 77777] {
        assert_eq!(support::json_body(&p, chunk), j, "json chunk {chunk}");
    }
}

#[test]
fn a_recycled_chunk_buffer_leaves_no_old_bytes() {
    // The server reuses chunk buffers; every byte of a chunk must be rewritten. Buffers start
    // dirty (0xA5) and larger than a chunk; chunk sizes that split headers, tensors and the
    // final short chunk.
    use paraminit::encode::safetensors::SafetensorsBody;
    let p = support::plan(&mixed_request(7));
    let whole = support::safetensors_bytes(&p);
    for chunk in [5, 777, 4096, 65_537] {
        let mut body = SafetensorsBody::new(Generator::new(p.clone()), 0, p.file_bytes, chunk);
        let mut bufs = [vec![0xA5u8; chunk + 13], vec![0x5Au8; 3]];
        let mut out = Vec::new();
        let mut i = 0;
        while body.next_chunk_into(&mut bufs[i % 2]) {
            out.extend_from_slice(&bufs[i % 2]);
            bufs[i % 2].fill(0xA5);
            i += 1;
        }
        assert!(out == whole, "chunk {chunk}");
    }
}

#[test]
fn thread_count_does_not_matter() {
    let p = support::plan(&json!({"seed": 3, "tensors": [
        {"name": "n", "shape": [3, 700_001], "init": "normal"},
        {"name": "t", "shape": [1_000_003], "init": {"name": "truncated_normal", "a": -1, "b": 0.5}, "dtype": "bfloat16"},
    ]}));
    let reference = support::safetensors_bytes_in_pieces(&p, 1 << 20);
    for threads in [1, 2, 3, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut buf = vec![0u8; p.file_bytes as usize];
        pool.install(|| read_at_parallel(&Generator::new(p.clone()), 0, &mut buf));
        assert!(buf == reference, "{threads} threads");
    }
}

#[test]
fn a_tensor_does_not_depend_on_the_others_or_their_order() {
    let alone = support::plan(
        &json!({"seed": 11, "tensors": [{"name": "x", "shape": [50, 60], "init": "he_uniform"}]}),
    );
    let among = support::plan(&json!({"seed": 11, "tensors": [
        {"name": "a", "shape": [999], "init": "normal"},
        {"name": "x", "shape": [50, 60], "init": "he_uniform"},
        {"name": "z", "shape": [5, 5], "init": "orthogonal"},
    ]}));
    let reversed = support::plan(&json!({"seed": 11, "tensors": [
        {"name": "z", "shape": [5, 5], "init": "orthogonal"},
        {"name": "x", "shape": [50, 60], "init": "he_uniform"},
        {"name": "a", "shape": [999], "init": "normal"},
    ]}));
    let v = support::values(&alone, "x");
    assert_eq!(support::values(&among, "x"), v);
    assert_eq!(support::values(&reversed, "x"), v);
    // And the bytes in the files are the same.
    let fa = support::safetensors_bytes(&alone);
    let fr = support::safetensors_bytes(&reversed);
    assert_eq!(
        support::tensor_bytes(&alone, &fa, "x"),
        support::tensor_bytes(&reversed, &fr, "x")
    );
    // Layer tensors: the same layer at the same position, different neighbours after it.
    let l1 = support::plan(
        &json!({"seed": 4, "layers": [{"type": "dense", "in_features": 8, "out_features": 9}]}),
    );
    let l2 = support::plan(
        &json!({"seed": 4, "layers": [{"type": "dense", "in_features": 8, "out_features": 9}, {"type": "dense", "out_features": 3}]}),
    );
    assert_eq!(
        support::values(&l1, "0.weight"),
        support::values(&l2, "0.weight")
    );
}

#[test]
fn seeking_equals_slicing() {
    let p = support::plan(&mixed_request(21));
    let g = Generator::new(p.clone());
    for (t, tp) in p.tensors.iter().enumerate() {
        let mut whole = vec![0f32; tp.numel as usize];
        g.fill(t, 0, &mut whole, &mut Scratch::default());
        let n = tp.numel;
        for (a, b) in [
            (0, n),
            (1, n),
            (n / 3, n / 2 + 1),
            (n - 1, n),
            (n / 2, n / 2 + 1),
        ] {
            if a >= b {
                continue;
            }
            let mut part = vec![0f32; (b - a) as usize];
            g.fill(t, a, &mut part, &mut Scratch::default());
            assert_eq!(
                part,
                whole[a as usize..b as usize],
                "{} [{a}, {b})",
                tp.name
            );
        }
    }
    // Byte ranges of the file.
    let file = support::safetensors_bytes(&p);
    let len = file.len() as u64;
    for (a, b) in [
        (0, 8),
        (5, 1300),
        (len / 2 - 3, len / 2 + 5),
        (len - 1, len),
        (1234, len),
    ] {
        let mut buf = vec![0u8; (b - a) as usize];
        paraminit::encode::safetensors::read_at(&g, a, &mut buf, &mut Scratch::default());
        assert_eq!(buf, file[a as usize..b as usize], "bytes [{a}, {b})");
    }
}

#[test]
fn seeking_deep_into_a_huge_tensor_is_cheap_and_consistent() {
    // 2^40 elements: generating the prefix would take hours; a seek is immediate.
    let p = support::plan(
        &json!({"seed": 1, "tensors": [{"name": "big", "shape": [1u64 << 20, 1u64 << 20], "init": "normal"}]}),
    );
    let g = Generator::new(p.clone());
    let start = (1u64 << 40) - 1000;
    let mut tail = vec![0f32; 1000];
    g.fill(0, start, &mut tail, &mut Scratch::default());
    let mut inner = vec![0f32; 10];
    g.fill(0, start + 501, &mut inner, &mut Scratch::default());
    assert_eq!(inner, tail[501..511]);
    assert!(tail.iter().all(|x| x.is_finite()) && tail.iter().any(|&x| x != 0.0));
}

fn with_dtype(dtype: &str) -> Arc<paraminit::plan::Plan> {
    support::plan(&json!({"seed": 99, "dtype": dtype, "layers": [
        {"type": "dense", "in_features": 64, "out_features": 128, "kernel_initializer": "he_normal"},
        {"type": "embedding", "num_embeddings": 300, "embedding_dim": 16}
    ], "tensors": [{"name": "w", "shape": [40000], "init": {"name": "normal", "std": 3.0}}]}))
}

#[test]
fn narrow_dtypes_are_the_f32_values_rounded_and_f64_widens() {
    let p32 = with_dtype("float32");
    let f32file = support::safetensors_bytes(&p32);
    for (dtype, size) in [("bfloat16", 2), ("float16", 2), ("float64", 8)] {
        let p = with_dtype(dtype);
        let file = support::safetensors_bytes(&p);
        for t in &p.tensors {
            let base = support::f32s(support::tensor_bytes(&p32, &f32file, &t.name));
            let got = support::tensor_bytes(&p, &file, &t.name);
            assert_eq!(got.len(), base.len() * size);
            for (i, v) in base.iter().enumerate() {
                let b = &got[i * size..(i + 1) * size];
                match dtype {
                    "bfloat16" => assert_eq!(
                        u16::from_le_bytes([b[0], b[1]]),
                        half::bf16::from_f32(*v).to_bits()
                    ),
                    "float16" => assert_eq!(
                        u16::from_le_bytes([b[0], b[1]]),
                        half::f16::from_f32(*v).to_bits()
                    ),
                    _ => assert_eq!(f64::from_le_bytes(b.try_into().unwrap()), *v as f64),
                }
            }
        }
    }
}

#[test]
fn json_numbers_equal_safetensors_values() {
    for dtype in ["float32", "bfloat16", "float16", "float64"] {
        let p = with_dtype(dtype);
        let file = support::safetensors_bytes(&p);
        let body: Value =
            serde_json::from_slice(&support::json_body(&p, 4096)).expect("valid JSON");
        assert_eq!(body["seed"], json!(99));
        assert_eq!(body["algorithm"], json!("paraminit-v1"));
        let tensors = body["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), p.tensors.len());
        for (jt, tp) in tensors.iter().zip(&p.tensors) {
            assert_eq!(jt["name"], json!(tp.name));
            assert_eq!(jt["shape"], json!(tp.shape));
            let data = jt["data"].as_array().unwrap();
            assert_eq!(data.len() as u64, tp.numel);
            let bytes = support::tensor_bytes(&p, &file, &tp.name);
            let es = tp.dtype.size() as usize;
            for (i, x) in data.iter().enumerate() {
                let x = x.as_f64().unwrap();
                let b = &bytes[i * es..(i + 1) * es];
                let ok = match dtype {
                    "float32" => (x as f32).to_le_bytes() == b,
                    "float64" => x.to_le_bytes() == b,
                    "bfloat16" => half::bf16::from_f64(x).to_bits().to_le_bytes() == b,
                    _ => half::f16::from_f64(x).to_bits().to_le_bytes() == b,
                };
                assert!(ok, "{dtype} {} [{i}] = {x}", tp.name);
            }
        }
    }
}

#[test]
fn keras_and_flax_kernels_are_the_pytorch_weights_permuted() {
    let req = |fw: &str| {
        json!({"seed": 2024, "framework": fw, "layers": [
            {"type": "dense", "in_features": 70, "out_features": 6, "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"},
            {"type": "conv2d", "in_channels": 6, "out_channels": 8, "kernel_size": [3, 5], "kernel_initializer": "he_normal", "bias_initializer": "zeros"},
            {"type": "conv1d", "in_channels": 8, "out_channels": 4, "kernel_size": 3, "groups": 2, "kernel_initializer": "orthogonal", "bias": false},
            {"type": "dense", "in_features": 4, "out_features": 4, "kernel_initializer": "identity", "bias": false},
        ]})
    };
    let pt = support::plan(&req("pytorch"));
    for (fw, names) in [
        (
            "keras",
            [
                "dense/kernel",
                "conv2d/kernel",
                "conv1d/kernel",
                "dense_1/kernel",
            ],
        ),
        (
            "flax",
            [
                "params/Dense_0/kernel",
                "params/Conv_0/kernel",
                "params/Conv_1/kernel",
                "params/Dense_1/kernel",
            ],
        ),
    ] {
        let other = support::plan(&req(fw));
        // Dense: [in, out] = transpose of [out, in].
        let w = support::values(&pt, "0.weight");
        let k = support::values(&other, names[0]);
        for o in 0..6 {
            for i in 0..70 {
                assert_eq!(k[i * 6 + o], w[o * 70 + i], "{fw} dense ({i},{o})");
            }
        }
        // Conv2d: [*k, in, out] from [out, in, kh, kw].
        let w = support::values(&pt, "1.weight");
        let k = support::values(&other, names[1]);
        for o in 0..8 {
            for i in 0..6 {
                for y in 0..3 {
                    for x in 0..5 {
                        assert_eq!(
                            k[((y * 5 + x) * 6 + i) * 8 + o],
                            w[((o * 6 + i) * 3 + y) * 5 + x],
                            "{fw} conv2d"
                        );
                    }
                }
            }
        }
        // Grouped conv1d with orthogonal (whole-tensor): [k, in/g, out] from [out, in/g, k].
        let w = support::values(&pt, "2.weight");
        let k = support::values(&other, names[2]);
        for o in 0..4 {
            for i in 0..4 {
                for t in 0..3 {
                    assert_eq!(
                        k[(t * 4 + i) * 4 + o],
                        w[(o * 4 + i) * 3 + t],
                        "{fw} conv1d"
                    );
                }
            }
        }
        assert_eq!(
            support::values(&other, names[3]),
            support::values(&pt, "3.weight")
        );
        // Fans agree too.
        let fi = |p: &paraminit::plan::Plan, n: &str| {
            p.tensors[support::tensor_index(p, n)].resolved.info.fan_in
        };
        assert_eq!(fi(&other, names[1]), fi(&pt, "1.weight"));
    }
}
