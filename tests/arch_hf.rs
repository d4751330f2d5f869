//! `hf_config`: the three fixtures read off transformers 5.24 reproduced exactly (names,
//! shapes, dtypes, file order), each tensor's init rule checked statistically, variants
//! (tied/untied, GQA with one KV head, pad token, Qwen2 biases, GPT-2 `n_inner`, base
//! models), determinism, canonical fixed point and errors.

mod support;

use std::sync::Arc;

use paraminit::plan::Plan;
use paraminit::spec;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../shared/fixtures/hf/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .or_else(|_| std::fs::read_to_string(format!("/work/shared/fixtures/hf/{name}.json")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Checks one tensor against a fixture `init` rule.
fn check_rule(p: &Arc<Plan>, name: &str, init: &Value) {
    let vals = support::values(p, name);
    match init["kind"].as_str().unwrap() {
        "zeros" => assert!(vals.iter().all(|&x| x == 0.0), "{name} not zeros"),
        "ones" => assert!(vals.iter().all(|&x| x == 1.0), "{name} not ones"),
        "normal" => {
            let std = init["std"].as_f64().unwrap();
            let cols = *p.tensors[support::tensor_index(p, name)]
                .shape
                .last()
                .unwrap() as usize;
            let zero_rows: Vec<usize> = init["zero_rows"]
                .as_array()
                .map(|a| a.iter().map(|r| r.as_u64().unwrap() as usize).collect())
                .unwrap_or_default();
            let mut rest = Vec::with_capacity(vals.len());
            for (r, row) in vals.chunks(cols).enumerate() {
                if zero_rows.contains(&r) {
                    assert!(row.iter().all(|&x| x == 0.0), "{name} row {r} not zero");
                } else {
                    assert!(row.iter().all(|&x| x != 0.0), "{name} row {r} has a zero");
                    rest.extend_from_slice(row);
                }
            }
            let (m, s) = support::mean_std(&rest);
            let n = rest.len() as f64;
            // std of the sample std ≈ σ/√(2n); allow 5 of those, at least 3%.
            let tol = (5.0 / (2.0 * n).sqrt()).max(0.03);
            assert!(
                (s / std - 1.0).abs() < tol,
                "{name}: std {s} vs {std} (tol {tol})"
            );
            assert!(m.abs() < 6.0 * std / n.sqrt(), "{name}: mean {m}");
        }
        k => panic!("unknown kind {k}"),
    }
}

fn check_fixture(name: &str) {
    let fx = fixture(name);
    for key in ["config", "config_to_dict"] {
        let p = support::plan(&support::hf_request(&fx[key], 42));
        // Names, shapes and dtypes exactly; order exactly the saved order.
        let got: Vec<&str> = p.tensors.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = fx["saved_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{name} {key}: order");
        let tensors = fx["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), p.tensors.len());
        for t in tensors {
            let tp = &p.tensors[support::tensor_index(&p, t["name"].as_str().unwrap())];
            let shape: Vec<u64> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(tp.shape, shape, "{}", tp.name);
            assert_eq!(tp.dtype.safetensors(), t["dtype"].as_str().unwrap());
            assert_eq!(tp.identity, format!("hf/{}", tp.name));
        }
        assert_eq!(p.total_elements, fx["total_elements"].as_u64().unwrap());
        assert_eq!(p.data_bytes, fx["total_data_bytes"].as_u64().unwrap());
        // Nothing HF leaves out is in the file.
        for ns in fx["not_saved"].as_array().unwrap() {
            let n = ns["name"].as_str().unwrap();
            assert!(
                p.tensors.iter().all(|t| t.name != n),
                "{n} must be left out"
            );
        }
        // __metadata__ carries format: pt.
        let file = support::safetensors_bytes(&p);
        let st = safetensors::SafeTensors::read_metadata(&file).unwrap().1;
        assert_eq!(
            st.metadata()
                .as_ref()
                .unwrap()
                .get("format")
                .map(String::as_str),
            Some("pt")
        );
        if key == "config" {
            for t in tensors {
                check_rule(&p, t["name"].as_str().unwrap(), &t["init"]);
            }
        }
    }
}

#[test]
fn llama_fixture_reproduced() {
    check_fixture("llama_tiny");
}

#[test]
fn gpt2_fixture_reproduced() {
    check_fixture("gpt2_tiny");
}

#[test]
fn bert_fixture_reproduced() {
    check_fixture("bert_tiny");
}

fn names(p: &Plan) -> Vec<String> {
    p.tensors.iter().map(|t| t.name.clone()).collect()
}

fn shape(p: &Plan, n: &str) -> Vec<u64> {
    p.tensors[support::tensor_index(p, n)].shape.clone()
}

fn llama() -> Value {
    fixture("llama_tiny")["config"].clone()
}

#[test]
fn llama_tied_has_no_lm_head() {
    let mut c = llama();
    c["tie_word_embeddings"] = json!(true);
    let p = support::plan(&support::hf_request(&c, 1));
    assert!(!names(&p).contains(&"lm_head.weight".to_string()));
    assert_eq!(p.tensors.len(), 20);
    // Untied (the fixture) has it.
    let p = support::plan(&support::hf_request(&llama(), 1));
    assert_eq!(shape(&p, "lm_head.weight"), [1000, 64]);
}

#[test]
fn llama_gqa_with_one_kv_head_and_defaults() {
    let mut c = llama();
    c["num_key_value_heads"] = json!(1);
    c.as_object_mut().unwrap().remove("head_dim");
    let p = support::plan(&support::hf_request(&c, 1));
    assert_eq!(
        shape(&p, "model.layers.0.self_attn.k_proj.weight"),
        [16, 64]
    );
    assert_eq!(
        shape(&p, "model.layers.1.self_attn.v_proj.weight"),
        [16, 64]
    );
    assert_eq!(
        shape(&p, "model.layers.1.self_attn.q_proj.weight"),
        [64, 64]
    );
    // num_key_value_heads missing → = num_attention_heads (Llama default).
    let mut c = llama();
    c.as_object_mut().unwrap().remove("num_key_value_heads");
    let p = support::plan(&support::hf_request(&c, 1));
    assert_eq!(
        shape(&p, "model.layers.0.self_attn.k_proj.weight"),
        [64, 64]
    );
    // An explicit head_dim that differs from hidden/heads.
    let mut c = llama();
    c["head_dim"] = json!(32);
    let p = support::plan(&support::hf_request(&c, 1));
    assert_eq!(
        shape(&p, "model.layers.0.self_attn.q_proj.weight"),
        [128, 64]
    );
    assert_eq!(
        shape(&p, "model.layers.0.self_attn.o_proj.weight"),
        [64, 128]
    );
}

#[test]
fn llama_pad_token_row_is_zero_and_biases() {
    let mut c = llama();
    c["pad_token_id"] = json!(7);
    c["attention_bias"] = json!(true);
    c["mlp_bias"] = json!(true);
    c["initializer_range"] = json!(0.05);
    let p = support::plan(&support::hf_request(&c, 9));
    let e = support::values(&p, "model.embed_tokens.weight");
    assert!(e[7 * 64..8 * 64].iter().all(|&x| x == 0.0));
    assert!(e[6 * 64..7 * 64].iter().all(|&x| x != 0.0));
    check_rule(
        &p,
        "model.embed_tokens.weight",
        &json!({"kind": "normal", "std": 0.05, "zero_rows": [7]}),
    );
    for b in ["q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"] {
        let n = format!("model.layers.0.self_attn.{b}");
        assert!(support::values(&p, &n).iter().all(|&x| x == 0.0));
    }
    assert_eq!(shape(&p, "model.layers.1.mlp.down_proj.bias"), [64]);
    assert_eq!(shape(&p, "model.layers.1.mlp.gate_proj.bias"), [176]);
}

#[test]
fn qwen2_has_qkv_biases_and_mistral_none() {
    let mut c = llama();
    c["architectures"] = json!(["Qwen2ForCausalLM"]);
    c["model_type"] = json!("qwen2");
    let p = support::plan(&support::hf_request(&c, 1));
    let n = names(&p);
    for b in ["q_proj.bias", "k_proj.bias", "v_proj.bias"] {
        assert!(n.contains(&format!("model.layers.0.self_attn.{b}")), "{b}");
    }
    assert_eq!(shape(&p, "model.layers.0.self_attn.k_proj.bias"), [32]);
    assert!(!n.contains(&"model.layers.0.self_attn.o_proj.bias".to_string()));
    assert!(
        support::values(&p, "model.layers.0.self_attn.q_proj.bias")
            .iter()
            .all(|&x| x == 0.0)
    );

    let mut c = llama();
    c["architectures"] = json!(["MistralForCausalLM"]);
    c["model_type"] = json!("mistral");
    c["attention_bias"] = json!(true); // Mistral has no biases; the key is ignored.
    let p = support::plan(&support::hf_request(&c, 1));
    assert!(names(&p).iter().all(|n| !n.ends_with(".bias")));
    assert_eq!(p.tensors.len(), 21);
}

#[test]
fn base_models_drop_the_prefix_and_head() {
    let mut c = llama();
    c["architectures"] = json!(["LlamaModel"]);
    let p = support::plan(&support::hf_request(&c, 1));
    let n = names(&p);
    assert!(n.contains(&"embed_tokens.weight".to_string()));
    assert!(n.contains(&"norm.weight".to_string()));
    assert!(n.contains(&"layers.1.mlp.up_proj.weight".to_string()));
    assert!(
        !n.iter()
            .any(|x| x.starts_with("model.") || x == "lm_head.weight")
    );

    let mut g = fixture("gpt2_tiny")["config"].clone();
    g["architectures"] = json!(["GPT2Model"]);
    let p = support::plan(&support::hf_request(&g, 1));
    assert_eq!(p.tensors.len(), 2 + 2 * 12 + 2);
    assert!(names(&p).iter().all(|n| !n.starts_with("transformer.")));
    assert_eq!(shape(&p, "h.0.attn.c_attn.weight"), [64, 192]);

    let mut b = fixture("bert_tiny")["config"].clone();
    b["architectures"] = json!(["BertModel"]);
    let p = support::plan(&support::hf_request(&b, 1));
    let n = names(&p);
    assert!(n.contains(&"pooler.dense.weight".to_string()));
    assert!(n.contains(&"pooler.dense.bias".to_string()));
    assert!(
        !n.iter()
            .any(|x| x.starts_with("bert.") || x.starts_with("cls."))
    );
}

#[test]
fn gpt2_n_inner_and_untied_head() {
    let mut g = fixture("gpt2_tiny")["config"].clone();
    g["n_inner"] = json!(100);
    g["n_layer"] = json!(8);
    g["tie_word_embeddings"] = json!(false);
    let p = support::plan(&support::hf_request(&g, 5));
    assert_eq!(shape(&p, "transformer.h.7.mlp.c_fc.weight"), [64, 100]);
    assert_eq!(shape(&p, "transformer.h.7.mlp.c_proj.weight"), [100, 64]);
    assert_eq!(shape(&p, "lm_head.weight"), [1000, 64]);
    let std = 0.02 / (16f64).sqrt();
    check_rule(
        &p,
        "transformer.h.3.mlp.c_proj.weight",
        &json!({"kind": "normal", "std": std}),
    );
    check_rule(
        &p,
        "transformer.h.3.attn.c_proj.weight",
        &json!({"kind": "normal", "std": std}),
    );
    check_rule(
        &p,
        "lm_head.weight",
        &json!({"kind": "normal", "std": 0.02}),
    );
}

#[test]
fn bert_untied_decoder_and_pad_token() {
    let mut b = fixture("bert_tiny")["config"].clone();
    b["tie_word_embeddings"] = json!(false);
    b["pad_token_id"] = json!(3);
    let p = support::plan(&support::hf_request(&b, 5));
    assert_eq!(shape(&p, "cls.predictions.decoder.weight"), [1000, 64]);
    // Untied, save_pretrained writes the decoder bias under its own name too (issue 15:
    // from_pretrained reported it missing); it is zero like cls.predictions.bias.
    assert_eq!(shape(&p, "cls.predictions.decoder.bias"), [1000]);
    assert!(
        support::values(&p, "cls.predictions.decoder.bias")
            .iter()
            .all(|&x| x == 0.0)
    );
    check_rule(
        &p,
        "bert.embeddings.word_embeddings.weight",
        &json!({"kind": "normal", "std": 0.02, "zero_rows": [3]}),
    );
    // pad_token_id: null ⇒ no zero row.
    b["pad_token_id"] = Value::Null;
    let p = support::plan(&support::hf_request(&b, 5));
    let e = support::values(&p, "bert.embeddings.word_embeddings.weight");
    assert!(e.iter().all(|&x| x != 0.0));
}

#[test]
fn model_type_alone_picks_the_automodel_class() {
    // No `architectures`: the class AutoModel.from_config builds, the base model.
    let mut c = llama();
    c.as_object_mut().unwrap().remove("architectures");
    let p = support::plan(&support::hf_request(&c, 1));
    assert!(!names(&p).contains(&"lm_head.weight".to_string()));
    assert_eq!(shape(&p, "embed_tokens.weight"), [1000, 64]);
    let g = json!({"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": 50, "n_positions": 16});
    let p = support::plan(&support::hf_request(&g, 1));
    assert_eq!(shape(&p, "wte.weight"), [50, 32]);
    assert_eq!(shape(&p, "h.0.mlp.c_fc.weight"), [32, 128]);
    let parsed = spec::parse(&support::hf_request(&g, 1)).unwrap();
    assert_eq!(parsed.hf.unwrap().arch.name(), "GPT2Model");
}

#[test]
fn same_config_same_bytes_and_seed_changes_only_random_tensors() {
    for f in ["llama_tiny", "gpt2_tiny", "bert_tiny"] {
        let c = fixture(f)["config"].clone();
        let a = support::plan(&support::hf_request(&c, 11));
        let b = support::plan(&support::hf_request(&c, 11));
        let fa = support::safetensors_bytes(&a);
        assert_eq!(fa, support::safetensors_bytes(&b));
        assert_eq!(fa, support::safetensors_bytes_in_pieces(&a, 777));
        let d = support::plan(&support::hf_request(&c, 12));
        let fd = support::safetensors_bytes(&d);
        for t in &a.tensors {
            let x = support::tensor_bytes(&a, &fa, &t.name);
            let y = support::tensor_bytes(&d, &fd, &t.name);
            let constant = matches!(t.resolved.source, paraminit::init::ValueSource::Constant(_));
            if constant {
                assert_eq!(x, y, "{f} {}: a constant must not change", t.name);
            } else {
                let differ = x.chunks(4).zip(y.chunks(4)).filter(|(p, q)| p != q).count();
                // Every element differs except zeroed pad rows.
                let zr = t.zero_row.map(|_| t.shape[1] as usize).unwrap_or(0);
                assert_eq!(differ, t.numel as usize - zr, "{f} {}", t.name);
            }
        }
    }
}

#[test]
fn dtype_applies_and_canonical_is_a_fixed_point() {
    let mut r = support::hf_request(&fixture("bert_tiny")["config_to_dict"], 3);
    r["dtype"] = json!("bfloat16");
    let p = support::plan(&r);
    assert!(p.tensors.iter().all(|t| t.dtype.safetensors() == "BF16"));
    let parsed = spec::parse(&r).unwrap();
    let c1 = parsed.to_canonical_json();
    let again = spec::parse(&c1).unwrap();
    assert_eq!(again, parsed);
    assert_eq!(again.to_canonical_json(), c1);
    let p2 = support::plan(&c1);
    assert_eq!(
        support::safetensors_bytes(&p),
        support::safetensors_bytes(&p2)
    );
}

fn err(r: &Value) -> (String, Option<String>) {
    let e = spec::parse(r).expect_err("must be rejected");
    (e.code.as_str().to_string(), e.path)
}

#[test]
fn bad_configs_are_422_naming_the_field() {
    let mut c = llama();
    c["num_attention_heads"] = json!(5);
    c.as_object_mut().unwrap().remove("head_dim");
    assert_eq!(
        err(&support::hf_request(&c, 1)),
        (
            "inconsistent_sizes".into(),
            Some("hf_config.num_attention_heads".into())
        )
    );
    let mut c = llama();
    c["num_key_value_heads"] = json!(3);
    assert_eq!(
        err(&support::hf_request(&c, 1)).1.as_deref(),
        Some("hf_config.num_key_value_heads")
    );
    let mut c = llama();
    c["architectures"] = json!(["BartForConditionalGeneration"]);
    assert_eq!(
        err(&support::hf_request(&c, 1)),
        (
            "unsupported_layer_type".into(),
            Some("hf_config.architectures[0]".into())
        )
    );
    let mut c = llama();
    c["model_type"] = json!("gpt2");
    assert_eq!(
        err(&support::hf_request(&c, 1)).1.as_deref(),
        Some("hf_config.model_type")
    );
    let mut c = llama();
    c["hidden_size"] = json!("64");
    assert_eq!(err(&support::hf_request(&c, 1)).0, "invalid_type");
    let mut c = llama();
    c["pad_token_id"] = json!(1000);
    assert_eq!(
        err(&support::hf_request(&c, 1)).1.as_deref(),
        Some("hf_config.pad_token_id")
    );
    let mut g = fixture("gpt2_tiny")["config"].clone();
    g["add_cross_attention"] = json!(true);
    assert_eq!(
        err(&support::hf_request(&g, 1)).1.as_deref(),
        Some("hf_config.add_cross_attention")
    );
    let mut g = fixture("gpt2_tiny")["config"].clone();
    g["n_head"] = json!(5);
    assert_eq!(
        err(&support::hf_request(&g, 1)).1.as_deref(),
        Some("hf_config.n_head")
    );
    assert_eq!(
        err(&json!({"seed": 1, "hf_config": {"hidden_size": 8}}))
            .1
            .as_deref(),
        Some("hf_config.architectures")
    );
    assert_eq!(
        err(&json!({"seed": 1, "framework": "keras", "hf_config": llama()}))
            .1
            .as_deref(),
        Some("framework")
    );
    assert_eq!(
        err(&json!({"seed": 1, "hf_config": llama(), "layers": [{"type": "dense", "in_features": 2, "out_features": 2}]})).1.as_deref(),
        Some("layers")
    );
    assert_eq!(err(&json!({"seed": 1, "hf_config": [1]})).0, "invalid_type");
}

mod common;

#[tokio::test]
async fn served_over_http_as_the_file_save_pretrained_writes() {
    use axum::http::StatusCode;
    let app = common::app();
    let body = support::hf_request(&fixture("gpt2_tiny")["config"], 42).to_string();
    let res = common::send(&app, common::post("/v1/init?format=safetensors", &body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let file = common::body_bytes(res).await;
    let (_, md) = safetensors::SafeTensors::read_metadata(&file).unwrap();
    let names: Vec<String> = md.offset_keys();
    let want: Vec<String> = fixture("gpt2_tiny")["saved_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, want);
    // The same bytes as the core produces.
    assert_eq!(
        file,
        support::safetensors_bytes(&support::plan(&support::hf_request(
            &fixture("gpt2_tiny")["config"],
            42
        )))
    );
    // A bad config is a 422 envelope naming the key.
    let mut c = fixture("gpt2_tiny")["config"].clone();
    c["n_head"] = json!(7);
    let v = common::json_of(
        &app,
        common::post("/v1/init", &support::hf_request(&c, 1).to_string()),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    common::assert_envelope(&v, "inconsistent_sizes", Some("hf_config.n_head"));
}
