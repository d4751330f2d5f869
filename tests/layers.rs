//! Layer tensors: names, shapes and layouts per framework, size inference, the safetensors
//! output read back by the `safetensors` crate, exact structured initializers and the
//! canonical request.

mod support;

use paraminit::spec;
use safetensors::SafeTensors;
use serde_json::{Value, json};

fn names_shapes(p: &paraminit::plan::Plan) -> Vec<(String, Vec<u64>, &'static str)> {
    let mut v: Vec<_> = p
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.dtype.safetensors()))
        .collect();
    v.sort();
    v
}

fn cnn(fw: &str) -> Value {
    // padding_idx is PyTorch-only (Keras/Flax refuse it: tests/framework_mismatches.rs).
    let mut embedding = json!({"type": "embedding", "input_dim": 50, "output_dim": 10});
    if fw == "pytorch" {
        embedding["padding_idx"] = json!(-1);
    }
    json!({"seed": 1, "framework": fw, "layers": [
        {"type": "conv2d", "input_shape": [28, 28, 1], "filters": 8, "kernel_size": 3},
        {"type": "batch_norm"},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 16, "kernel_size": [3, 3], "groups": 2, "bias": false},
        {"type": "dense", "units": 10},
        {"type": "layer_norm"},
        {"type": "rms_norm"},
        {"type": "dropout", "p": 0.1},
        embedding,
    ]})
}

#[test]
fn pytorch_names_follow_nn_sequential_positions() {
    let p = support::plan(&cnn("pytorch"));
    let s = |n: &str, shape: &[u64], d: &'static str| (n.to_string(), shape.to_vec(), d);
    let mut want = vec![
        s("0.weight", &[8, 1, 3, 3], "F32"),
        s("0.bias", &[8], "F32"),
        s("1.weight", &[8], "F32"),
        s("1.bias", &[8], "F32"),
        s("1.running_mean", &[8], "F32"),
        s("1.running_var", &[8], "F32"),
        s("1.num_batches_tracked", &[], "I64"),
        s("3.weight", &[16, 4, 3, 3], "F32"),
        s("4.weight", &[10, 16], "F32"),
        s("4.bias", &[10], "F32"),
        s("5.weight", &[10], "F32"),
        s("5.bias", &[10], "F32"),
        s("6.weight", &[10], "F32"),
        s("8.weight", &[50, 10], "F32"),
    ];
    want.sort();
    assert_eq!(names_shapes(&p), want);
    // I64 sorts first in the file (safetensors order: dtype descending, then name).
    assert_eq!(p.tensors[0].name, "1.num_batches_tracked");
    // padding_idx -1 is the last row, and it is zero.
    let e = support::values(&p, "8.weight");
    assert!(e[49 * 10..].iter().all(|&x| x == 0.0));
    assert!(e[48 * 10..49 * 10].iter().all(|&x| x != 0.0));
}

#[test]
fn keras_and_flax_names_and_layouts() {
    let k = support::plan(&cnn("keras"));
    let s = |n: &str, shape: &[u64]| (n.to_string(), shape.to_vec(), "F32");
    let mut want = vec![
        s("conv2d/kernel", &[3, 3, 1, 8]),
        s("conv2d/bias", &[8]),
        s("batch_normalization/gamma", &[8]),
        s("batch_normalization/beta", &[8]),
        s("batch_normalization/moving_mean", &[8]),
        s("batch_normalization/moving_variance", &[8]),
        s("conv2d_1/kernel", &[3, 3, 4, 16]),
        s("dense/kernel", &[16, 10]),
        s("dense/bias", &[10]),
        s("layer_normalization/gamma", &[10]),
        s("layer_normalization/beta", &[10]),
        s("rms_normalization/scale", &[10]),
        s("embedding/embeddings", &[50, 10]),
    ];
    want.sort();
    assert_eq!(names_shapes(&k), want);

    let f = support::plan(&cnn("flax"));
    let mut want = vec![
        s("params/Conv_0/kernel", &[3, 3, 1, 8]),
        s("params/Conv_0/bias", &[8]),
        s("params/BatchNorm_0/scale", &[8]),
        s("params/BatchNorm_0/bias", &[8]),
        s("batch_stats/BatchNorm_0/mean", &[8]),
        s("batch_stats/BatchNorm_0/var", &[8]),
        s("params/Conv_1/kernel", &[3, 3, 4, 16]),
        s("params/Dense_0/kernel", &[16, 10]),
        s("params/Dense_0/bias", &[10]),
        s("params/LayerNorm_0/scale", &[10]),
        s("params/LayerNorm_0/bias", &[10]),
        s("params/RMSNorm_0/scale", &[10]),
        s("params/Embed_0/embedding", &[50, 10]),
    ];
    want.sort();
    assert_eq!(names_shapes(&f), want);
}

#[test]
fn named_layers_share_streams_across_frameworks() {
    let req = |fw: &str| json!({"seed": 3, "framework": fw, "layers": [{"type": "dense", "name": "fc1", "in_features": 5, "out_features": 4, "kernel_initializer": "lecun_uniform"}]});
    let p = support::plan(&req("pytorch"));
    let k = support::plan(&req("keras"));
    assert_eq!(
        p.tensors
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["fc1.bias", "fc1.weight"]
    );
    assert!(k.tensors.iter().any(|t| t.name == "fc1/kernel"));
    let w = support::values(&p, "fc1.weight");
    let kk = support::values(&k, "fc1/kernel");
    for o in 0..4 {
        for i in 0..5 {
            assert_eq!(kk[i * 4 + o], w[o * 5 + i]);
        }
    }
}

#[test]
fn safetensors_crate_reads_every_file() {
    for fw in ["pytorch", "keras", "flax"] {
        for dtype in ["float32", "bfloat16", "float16", "float64"] {
            let mut req = cnn(fw);
            req["dtype"] = json!(dtype);
            req["tensors"] = json!([{"name": "extra/é \"quoted\"", "shape": [], "init": {"name": "constant", "value": 0.25}}]);
            let p = support::plan(&req);
            let file = support::safetensors_bytes(&p);
            assert_eq!(file.len() as u64, p.file_bytes);
            assert_eq!((p.data_start() - 8) % 8, 0);
            let st =
                SafeTensors::deserialize(&file).unwrap_or_else(|e| panic!("{fw} {dtype}: {e}"));
            assert_eq!(st.len(), p.tensors.len());
            for t in &p.tensors {
                let view = st.tensor(&t.name).unwrap();
                assert_eq!(
                    view.shape(),
                    t.shape
                        .iter()
                        .map(|&d| d as usize)
                        .collect::<Vec<_>>()
                        .as_slice()
                );
                assert_eq!(format!("{:?}", view.dtype()), t.dtype.safetensors());
                assert_eq!(view.data(), support::tensor_bytes(&p, &file, &t.name));
            }
            let (_, meta) = SafeTensors::read_metadata(&file).unwrap();
            let md = meta.metadata().clone().unwrap();
            assert_eq!(md["format"], "pt");
            assert_eq!(md["paraminit.algorithm"], "paraminit-v1");
            assert_eq!(md["paraminit.seed"], "1");
            // Reposting the canonical request reproduces the file byte for byte.
            let canonical: Value = serde_json::from_str(&md["paraminit.request"]).unwrap();
            let again = support::plan(&canonical);
            assert_eq!(
                support::safetensors_bytes(&again),
                file,
                "{fw} {dtype} canonical repost"
            );
        }
    }
}

#[test]
fn canonical_request_is_a_fixed_point() {
    let r = spec::parse(&cnn("keras")).unwrap();
    let c1 = r.to_canonical_json();
    let r2 = spec::parse(&c1).unwrap();
    assert_eq!(r2, r);
    assert_eq!(r2.to_canonical_json(), c1);
    // Large seeds survive as strings.
    let big = spec::parse(&json!({"seed": "18446744073709551615", "layers": []})).unwrap();
    assert_eq!(big.seed, u64::MAX);
    assert_eq!(
        big.to_canonical_json()["seed"],
        json!("18446744073709551615")
    );
    assert_eq!(
        spec::parse(&json!({"seed": 18446744073709551615u64}))
            .unwrap()
            .seed,
        u64::MAX
    );
}

#[test]
fn structured_initializers_are_exact() {
    let p = support::plan(&json!({"seed": 8, "tensors": [
        {"name": "eye", "shape": [4, 6], "init": {"name": "eye"}},
        {"name": "id", "shape": [5, 3], "init": {"name": "identity", "gain": 2.5}},
        {"name": "dirac", "shape": [6, 2, 3, 3], "init": {"name": "dirac", "groups": 2}},
        {"name": "orth_wide", "shape": [30, 50], "init": {"name": "orthogonal", "gain": 2.0}},
        {"name": "orth_tall", "shape": [40, 3, 4], "init": "orthogonal"},
        {"name": "delta", "shape": [8, 4, 3], "init": "delta_orthogonal"},
        {"name": "sparse", "shape": [50, 40], "init": {"name": "sparse", "sparsity": 0.1, "std": 0.5}},
    ]}));
    let eye = support::values(&p, "eye");
    for r in 0..4 {
        for c in 0..6 {
            assert_eq!(eye[r * 6 + c], if r == c { 1.0 } else { 0.0 });
        }
    }
    let id = support::values(&p, "id");
    for r in 0..5 {
        for c in 0..3 {
            assert_eq!(id[r * 3 + c], if r == c { 2.5 } else { 0.0 });
        }
    }
    // dirac_: out 6 in 2 groups 2 ⇒ 3 per group, min_dim 2.
    let d = support::values(&p, "dirac");
    let mut ones = vec![];
    for (i, &v) in d.iter().enumerate() {
        if v != 0.0 {
            assert_eq!(v, 1.0);
            ones.push((i / 18, (i / 9) % 2, i % 9));
        }
    }
    assert_eq!(ones, vec![(0, 0, 4), (1, 1, 4), (3, 0, 4), (4, 1, 4)]);

    let gram = |w: &[f32], rows: usize, cols: usize, by_rows: bool| -> f64 {
        // max |G - g²I| where G = W Wᵀ (by_rows) or Wᵀ W
        let n = if by_rows { rows } else { cols };
        let mut worst: f64 = 0.0;
        for i in 0..n {
            for j in 0..n {
                let mut s = 0f64;
                for k in 0..(if by_rows { cols } else { rows }) {
                    let (a, b) = if by_rows {
                        (w[i * cols + k], w[j * cols + k])
                    } else {
                        (w[k * cols + i], w[k * cols + j])
                    };
                    s += a as f64 * b as f64;
                }
                worst = worst.max((s - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        worst
    };
    let ow: Vec<f32> = support::values(&p, "orth_wide")
        .iter()
        .map(|x| x / 2.0)
        .collect();
    assert!(gram(&ow, 30, 50, true) < 1e-5);
    assert!(gram(&support::values(&p, "orth_tall"), 40, 12, false) < 1e-5);
    // delta_orthogonal: only the centre tap ((3-1)//2 = 1), and that slice [8,4] has orthonormal columns.
    let dv = support::values(&p, "delta");
    let mut centre = vec![0f32; 32];
    for o in 0..8 {
        for i in 0..4 {
            for t in 0..3 {
                let v = dv[(o * 4 + i) * 3 + t];
                if t == 1 {
                    centre[o * 4 + i] = v;
                } else {
                    assert_eq!(v, 0.0);
                }
            }
        }
    }
    assert!(gram(&centre, 8, 4, false) < 1e-5);
    // sparse_: exactly ceil(0.1·50) = 5 zeros per column.
    let sp = support::values(&p, "sparse");
    for c in 0..40 {
        assert_eq!(
            (0..50).filter(|r| sp[r * 40 + c] == 0.0).count(),
            5,
            "column {c}"
        );
    }
}

/// A standalone `identity` (or `none`) activation's canonical form reposts: it is written
/// `identity`, not `linear` (which, as a layer type, is a dense layer). The reposted canonical
/// request gives the same canonical bytes and ETags.
#[test]
fn standalone_identity_activation_reposts() {
    use paraminit::plan::Format;
    for spelling in ["identity", "none"] {
        for fw in ["pytorch", "keras", "flax"] {
            let req = json!({"seed": 2, "framework": fw, "layers": [
                {"type": "dense", "in_features": 4, "out_features": 3},
                {"type": spelling},
                {"type": "dense", "out_features": 2, "kernel_initializer": "auto"}]});
            let first = support::plan(&req);
            let canonical: Value = serde_json::from_str(&first.canonical).unwrap();
            assert_eq!(canonical["layers"][1], json!({"type": "identity"}));
            let second = support::plan(&canonical);
            assert_eq!(first.canonical, second.canonical, "{fw} {spelling}");
            for f in [Format::Json, Format::Safetensors] {
                assert_eq!(first.etag(f), second.etag(f));
            }
            assert_eq!(
                support::safetensors_bytes(&first),
                support::safetensors_bytes(&second)
            );
        }
    }
}
