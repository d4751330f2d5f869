//! `hf_config` for every supported class against fixtures read off transformers 5.24
//! (`tests/fixtures/hf_families.json`, written by `scripts/hf_fixtures.py`): names, shapes,
//! dtypes and file order exactly; constants exactly; padding rows exactly; every random
//! tensor's std within five standard errors of the class's own initialization (pooled over 8
//! torch seeds). Then the config semantics of issue 15: the config's dtype as the default,
//! no `architectures` → the AutoModel class, `num_labels`/`id2label`, the bare-config 422.

mod support;

use paraminit::pipeline;
use paraminit::spec;
use serde_json::{Value, json};

fn fixtures() -> Value {
    let path = format!(
        "{}/tests/fixtures/hf_families.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn every_class_reproduces_transformers() {
    let fx = fixtures();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    let mut classes = std::collections::BTreeSet::new();
    for case in cases {
        let class = case["class"].as_str().unwrap();
        classes.insert(class.to_string());
        let p = support::plan(&support::hf_request(&case["config"], 7));
        let want: Vec<&str> = case["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let got: Vec<&str> = p.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(got, want, "{class}: names/order");
        for t in case["tensors"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            let tp = &p.tensors[support::tensor_index(&p, name)];
            let shape: Vec<u64> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(tp.shape, shape, "{class} {name}: shape");
            assert_eq!(
                tp.dtype.safetensors(),
                t["dtype"].as_str().unwrap(),
                "{class} {name}"
            );
            let vals = support::values(&p, name);
            let init = &t["init"];
            if let Some(c) = init["const"].as_f64() {
                assert!(
                    vals.iter().all(|&x| x == c as f32),
                    "{class} {name}: not the constant {c}"
                );
                continue;
            }
            let zero_rows: Vec<usize> = init["zero_rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_u64().unwrap() as usize)
                .collect();
            let cols = if shape.len() == 2 {
                shape[1] as usize
            } else {
                vals.len()
            };
            let mut rest = Vec::with_capacity(vals.len());
            for (r, row) in vals.chunks(cols).enumerate() {
                let zero = row.iter().all(|&x| x == 0.0);
                assert_eq!(
                    zero,
                    zero_rows.contains(&r),
                    "{class} {name}: row {r} zero = {zero}"
                );
                if !zero {
                    rest.extend_from_slice(row);
                }
            }
            let hf_std = init["std"].as_f64().unwrap();
            let hf_n = init["n"].as_f64().unwrap();
            let s = support::mean_std(&rest).1;
            let se = (1.0 / (2.0 * hf_n) + 1.0 / (2.0 * rest.len() as f64)).sqrt();
            assert!(
                (s / hf_std - 1.0).abs() < 5.0 * se,
                "{class} {name}: std {s} vs transformers {hf_std} (5 se = {})",
                5.0 * se
            );
        }
    }
    // Every class of the table is covered by a fixture.
    for (name, ..) in paraminit::hf::ARCHITECTURES {
        assert!(classes.contains(*name), "no fixture for {name}");
    }
}

fn fixture_config(class: &str) -> Value {
    fixtures()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == class)
        .unwrap()["config"]
        .clone()
}

fn err(r: &Value) -> (String, Option<String>, String) {
    let e = spec::parse(r).expect_err("must be rejected");
    (
        e.code.as_str().to_string(),
        e.path.clone(),
        e.message.clone(),
    )
}

#[test]
fn config_dtype_is_the_default_and_the_request_dtype_wins() {
    let mut c = fixture_config("Qwen3ForCausalLM");
    c["dtype"] = json!("bfloat16");
    let p = support::plan(&support::hf_request(&c, 1));
    assert!(p.tensors.iter().all(|t| t.dtype.safetensors() == "BF16"));
    // transformers 4.x spelling.
    c.as_object_mut().unwrap().remove("dtype");
    c["torch_dtype"] = json!("float16");
    let p = support::plan(&support::hf_request(&c, 1));
    assert!(p.tensors.iter().all(|t| t.dtype.safetensors() == "F16"));
    // Both: `dtype` wins, as in PretrainedConfig.__init__.
    c["dtype"] = json!("bfloat16");
    let p = support::plan(&support::hf_request(&c, 1));
    assert!(p.tensors.iter().all(|t| t.dtype.safetensors() == "BF16"));
    // The request's dtype wins over the config's.
    let mut r = support::hf_request(&c, 1);
    r["dtype"] = json!("float32");
    let p = support::plan(&r);
    assert!(p.tensors.iter().all(|t| t.dtype.safetensors() == "F32"));
    // The canonical request is a fixed point and keeps the config's dtype.
    let parsed = spec::parse(&support::hf_request(&c, 1)).unwrap();
    let again = spec::parse(&parsed.to_canonical_json()).unwrap();
    assert_eq!(again, parsed);
    // Not a weight dtype.
    c["dtype"] = json!("int8");
    let (code, path, _) = err(&support::hf_request(&c, 1));
    assert_eq!(
        (code.as_str(), path.as_deref()),
        ("invalid_value", Some("hf_config.dtype"))
    );
}

#[test]
fn no_architectures_builds_the_automodel_class() {
    for (model_type, class) in [
        ("qwen3", "Qwen3Model"),
        ("gemma3_text", "Gemma3TextModel"),
        ("mixtral", "MixtralModel"),
        ("t5", "T5Model"),
        ("vit", "ViTModel"),
        ("bert", "BertModel"),
        ("roberta", "RobertaModel"),
        ("distilbert", "DistilBertModel"),
        ("gpt_neox", "GPTNeoXModel"),
    ] {
        let mut c = fixture_config(class);
        c.as_object_mut().unwrap().remove("architectures");
        assert_eq!(c["model_type"], model_type);
        let parsed = spec::parse(&support::hf_request(&c, 1)).unwrap();
        assert_eq!(parsed.hf.unwrap().arch.name(), class);
    }
}

#[test]
fn num_labels_comes_from_id2label_or_num_labels() {
    let mut c = fixture_config("BertForSequenceClassification");
    assert_eq!(c["id2label"].as_object().unwrap().len(), 3);
    let p = support::plan(&support::hf_request(&c, 1));
    assert_eq!(
        p.tensors[support::tensor_index(&p, "classifier.weight")].shape,
        [3, 32]
    );
    c.as_object_mut().unwrap().remove("id2label");
    c["num_labels"] = json!(5);
    let p = support::plan(&support::hf_request(&c, 1));
    assert_eq!(
        p.tensors[support::tensor_index(&p, "classifier.bias")].shape,
        [5]
    );
    // Neither: transformers' default of 2.
    c.as_object_mut().unwrap().remove("num_labels");
    let p = support::plan(&support::hf_request(&c, 1));
    assert_eq!(
        p.tensors[support::tensor_index(&p, "classifier.bias")].shape,
        [2]
    );
    // Both, disagreeing.
    c["num_labels"] = json!(4);
    c["id2label"] = json!({"0": "a", "1": "b"});
    let (code, path, _) = err(&support::hf_request(&c, 1));
    assert_eq!(
        (code.as_str(), path.as_deref()),
        ("conflicting_fields", Some("hf_config.num_labels"))
    );
    // DistilBertForQuestionAnswering requires 2 (modeling_distilbert.py raises otherwise).
    let mut d = fixture_config("DistilBertForQuestionAnswering");
    d.as_object_mut().unwrap().remove("id2label");
    d["num_labels"] = json!(3);
    assert_eq!(
        err(&support::hf_request(&d, 1)).1.as_deref(),
        Some("hf_config.num_labels")
    );
}

#[test]
fn a_bare_config_body_gets_the_wrapped_form() {
    let c = fixture_config("GemmaForCausalLM");
    let (code, path, message) = err(&c);
    assert_eq!(
        (code.as_str(), path.as_deref()),
        ("missing_field", Some("seed"))
    );
    assert!(message.contains("\"hf_config\""), "{message}");
    // A body without seed that is not a config keeps the plain message.
    let (_, _, message) = err(&json!({"layers": []}));
    assert!(!message.contains("hf_config"), "{message}");
}

#[test]
fn unsupported_switches_are_422_naming_the_key() {
    let mut d = fixture_config("DistilBertModel");
    d["sinusoidal_pos_embds"] = json!(true);
    assert_eq!(
        err(&support::hf_request(&d, 1)).1.as_deref(),
        Some("hf_config.sinusoidal_pos_embds")
    );
    let mut t = fixture_config("T5Model");
    t["feed_forward_proj"] = json!("gated-gelu-x");
    assert_eq!(
        err(&support::hf_request(&t, 1)).1.as_deref(),
        Some("hf_config.feed_forward_proj")
    );
    let mut v = fixture_config("ViTModel");
    v["patch_size"] = json!(32);
    assert_eq!(
        err(&support::hf_request(&v, 1)).1.as_deref(),
        Some("hf_config.patch_size")
    );
    // transformers itself fails here (trunc_normal_ with std 0).
    let mut v = fixture_config("ViTModel");
    v["initializer_range"] = json!(0.0);
    assert_eq!(
        err(&support::hf_request(&v, 1)).1.as_deref(),
        Some("hf_config.initializer_range")
    );
    // Phi-3's default pad_token_id (32000) is outside a small vocabulary, as in transformers.
    let mut p = fixture_config("Phi3Model");
    p.as_object_mut().unwrap().remove("pad_token_id");
    assert_eq!(
        err(&support::hf_request(&p, 1)).1.as_deref(),
        Some("hf_config.pad_token_id")
    );
}

#[test]
fn tensor_count_is_the_closed_form_of_the_tensor_list() {
    for case in fixtures()["cases"].as_array().unwrap() {
        let class = case["class"].as_str().unwrap();
        let m = spec::parse(&support::hf_request(&case["config"], 1))
            .unwrap()
            .hf
            .unwrap();
        assert_eq!(
            m.tensor_count().0,
            m.tensors().len() as u64,
            "{class} {}",
            case["config"]
        );
    }
    // Variants the fixtures do not cover: sparse steps with dense layers, all-dense MoE.
    let mut q = fixture_config("Qwen2MoeForCausalLM");
    for (step, only) in [(2, json!([0, 1, 1, 7])), (1, json!([0, 1])), (3, json!([]))] {
        q["num_hidden_layers"] = json!(5);
        q["decoder_sparse_step"] = json!(step);
        q["mlp_only_layers"] = only;
        let m = spec::parse(&support::hf_request(&q, 1))
            .unwrap()
            .hf
            .unwrap();
        assert_eq!(m.tensor_count().0, m.tensors().len() as u64, "{q}");
    }
}

#[test]
fn a_huge_expert_or_layer_count_is_refused_before_any_tensor_is_built() {
    use paraminit::plan::Limits;
    let limits = Limits {
        max_tensors: 100_000,
        max_elements: 1 << 40,
        max_response_bytes: 1 << 50,
    };
    let mut m = fixture_config("MixtralForCausalLM");
    m["num_local_experts"] = json!(1u64 << 40);
    let e =
        pipeline::build(spec::parse(&support::hf_request(&m, 1)).unwrap(), &limits).unwrap_err();
    assert_eq!(e.code.as_str(), "limit_exceeded");
    assert_eq!(e.path.as_deref(), Some("hf_config.num_local_experts"));
    let mut t = fixture_config("T5Model");
    t["num_layers"] = json!(1u64 << 40);
    let e =
        pipeline::build(spec::parse(&support::hf_request(&t, 1)).unwrap(), &limits).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("hf_config.num_layers"));
}

mod common;

#[tokio::test]
async fn served_over_http_in_the_configs_dtype() {
    use axum::http::StatusCode;
    let app = common::app();
    let mut c = fixture_config("Gemma3ForCausalLM");
    c["dtype"] = json!("bfloat16");
    let body = support::hf_request(&c, 42).to_string();
    let res = common::send(&app, common::post("/v1/init?format=safetensors", &body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let file = common::body_bytes(res).await;
    let (_, md) = safetensors::SafeTensors::read_metadata(&file).unwrap();
    let tensors = md.tensors();
    assert!(!tensors.is_empty());
    assert!(
        tensors
            .values()
            .all(|t| t.dtype == safetensors::Dtype::BF16)
    );
    assert_eq!(
        file,
        support::safetensors_bytes(&support::plan(&support::hf_request(&c, 42)))
    );
    // The bare config as the whole body: a 422 envelope pointing at the wrapped form.
    let v = common::json_of(
        &app,
        common::post("/v1/init", &c.to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    common::assert_envelope(&v, "missing_field", Some("seed"));
}

#[test]
fn canonical_form_is_a_fixed_point_for_every_class() {
    for case in fixtures()["cases"].as_array().unwrap() {
        let class = case["class"].as_str().unwrap();
        let parsed = spec::parse(&support::hf_request(&case["config"], 3)).unwrap();
        let c1 = parsed.to_canonical_json();
        let again = spec::parse(&c1).unwrap_or_else(|e| panic!("{class}: {e}"));
        assert_eq!(again, parsed, "{class}");
        assert_eq!(again.to_canonical_json(), c1, "{class}");
    }
}

#[test]
fn huge_sizes_in_any_family_are_refused_not_panics() {
    use paraminit::plan::Limits;
    let limits = Limits {
        max_tensors: 10_000,
        max_elements: 1 << 32,
        max_response_bytes: 1 << 36,
    };
    let keys = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "moe_intermediate_size",
        "shared_expert_intermediate_size",
        "n_embd",
        "n_inner",
        "dim",
        "hidden_dim",
        "d_model",
        "d_kv",
        "d_ff",
        "num_heads",
        "relative_attention_num_buckets",
        "image_size",
        "max_position_embeddings",
        "n_positions",
        "num_labels",
        "pooler_output_size",
    ];
    for case in fixtures()["cases"].as_array().unwrap() {
        let class = case["class"].as_str().unwrap();
        for key in keys {
            if case["config"].get(key).is_none() {
                continue;
            }
            let mut c = case["config"].clone();
            c[key] = json!(1u64 << 40);
            if key == "num_labels" {
                c.as_object_mut().unwrap().remove("id2label");
            }
            // A 422 at parse (inconsistent sizes) or a limit at planning, never a panic; or,
            // for a key the class does not read (max_position_embeddings of a rotary model),
            // the unchanged plan.
            if let Ok(r) = spec::parse(&support::hf_request(&c, 1)) {
                match pipeline::build(r, &limits) {
                    Err(e) => assert!(
                        matches!(e.code.as_str(), "limit_exceeded" | "size_overflow"),
                        "{class} {key}: {e}"
                    ),
                    Ok(p) => {
                        let base = support::plan(&support::hf_request(&case["config"], 1));
                        let shapes = |p: &paraminit::plan::Plan| {
                            p.tensors
                                .iter()
                                .map(|t| (t.name.clone(), t.shape.clone()))
                                .collect::<Vec<_>>()
                        };
                        assert_eq!(shapes(&p), shapes(&base), "{class} {key}: accepted");
                    }
                }
            }
        }
    }
}
