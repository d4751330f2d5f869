//! The honest signal report (issue 16): no verdict when nothing is analysable, a verdict that
//! says which layers it covers, and the mean-field residual-stream forecast for hf_config
//! transformers, checked against the formulas written out here.

mod support;

use paraminit::analyze::analyze;
use serde_json::{Value, json};

fn run(req: &Value) -> Value {
    analyze(support::plan(req), 64).expect("analyze")
}

#[test]
fn nothing_analysable_has_no_verdict() {
    let r = run(&json!({"seed": 1, "layers": [
        {"type": "embedding", "num_embeddings": 10, "embedding_dim": 8},
        {"type": "layer_norm", "normalized_shape": 8}
    ]}));
    assert!(r["verdict"].is_null(), "{r}");
    assert_eq!(r["covers"]["basis"], "none");
    assert!(r["verdict_note"].as_str().unwrap().contains("no verdict"));
    assert!(r.get("forecast").is_none());
}

#[test]
fn a_partial_verdict_says_what_it_covers() {
    let r = run(&json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 16, "out_features": 16, "activation": "relu", "kernel_initializer": "kaiming_normal"},
        {"type": "lstm", "hidden_size": 16},
        {"type": "dense", "out_features": 4}
    ]}));
    assert_eq!(r["verdict"], "stable");
    assert_eq!(r["covers"]["basis"], "measured");
    assert_eq!(r["covers"]["complete"], false);
    assert_eq!(r["covers"]["of_layers"], 3);
    let note = r["verdict_note"].as_str().unwrap();
    assert!(
        note.contains("only layers") && note.contains("of 3"),
        "{note}"
    );
    // A fully analysed stack has a complete verdict and no note.
    let full = run(&json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 16, "out_features": 16, "activation": "relu", "kernel_initializer": "kaiming_normal"},
        {"type": "dense", "out_features": 4}
    ]}));
    assert_eq!(full["covers"]["complete"], true);
    assert_eq!(full["covers"]["layers"], json!([0, 1]));
    assert!(full["verdict_note"].is_null());
}

fn llama(layers: u64, recipe: Value) -> Value {
    json!({"seed": 0, "hf_config": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000},
        "recipe": recipe})
}

/// E[f(z)²], z ~ N(0, q), by the trapezoid rule on ±10σ (independent of the service's Simpson).
fn e2(q: f64, f: impl Fn(f64) -> f64) -> f64 {
    let s = q.sqrt();
    let n = 20000;
    let h = 20.0 / n as f64;
    (0..=n)
        .map(|i| {
            let t = -10.0 + i as f64 * h;
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            w * f(s * t).powi(2) * (-0.5 * t * t).exp()
        })
        .sum::<f64>()
        * h
        / (2.0 * std::f64::consts::PI).sqrt()
}

#[test]
fn llama_forecast_matches_the_mean_field_formulas() {
    let r = run(&llama(4, json!("megatron_scaled")));
    let f = &r["forecast"];
    assert_eq!(r["verdict"], f["verdict"]);
    assert_eq!(r["covers"]["basis"], "forecast");
    let layers = f["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4);
    // Megatron: σ = 0.02 everywhere, o_proj and down_proj σ/√8.
    let (d, i, qw) = (256.0, 512.0, 256.0);
    let s2 = 0.02f64 * 0.02;
    let so2 = s2 / 8.0;
    let q0 = s2;
    let fa = d * s2 * qw * so2;
    let qg = d * s2;
    let silu = |z: f64| z / (1.0 + (-z).exp());
    let fm = i * so2 * d * s2 * e2(qg, silu);
    let want_q1 = q0 + fa + fm;
    let got = layers[0]["residual_variance"].as_f64().unwrap();
    assert!((got / want_q1 - 1.0).abs() < 1e-4, "q1 {got} vs {want_q1}");
    let a0 = layers[0]["attention_branch_variance"].as_f64().unwrap();
    assert!((a0 / fa - 1.0).abs() < 1e-5, "attention {a0} vs {fa}");
    // The stream grows by the same branch variances every block (same σ in every block).
    let q4 = layers[3]["residual_variance"].as_f64().unwrap();
    assert!((q4 - (q0 + 4.0 * (fa + fm))).abs() < 1e-4 * q4);
    // Gradient: 1 at the top, growing toward the bottom.
    let g: Vec<f64> = layers
        .iter()
        .map(|l| l["gradient_variance"].as_f64().unwrap())
        .collect();
    assert!(g.windows(2).all(|w| w[0] > w[1]), "{g:?}");
    // The logits: d·σ_head².
    let logit = f["logit_std"].as_f64().unwrap();
    assert!((logit - (d * s2).sqrt()).abs() < 1e-6);
}

#[test]
fn truncation_and_zero_readout_enter_the_forecast() {
    // OLMo mitchell: truncated at ±3σ; the second moment is the truncated one (0.9733·σ²).
    let r = run(&llama(2, json!("olmo_mitchell")));
    let f = &r["forecast"];
    let emb = f["embedding_variance"].as_f64().unwrap();
    let want = (1.0 / 256.0) * 0.973_336_924_662_541_5;
    assert!((emb / want - 1.0).abs() < 1e-5, "{emb} vs {want}");
    // μP's zero readout: logits 0 at init.
    let r = run(&llama(2, json!({"name": "mup", "base_width": 64})));
    assert_eq!(r["forecast"]["logit_std"], 0.0);
}

#[test]
fn forecast_of_a_subset_is_the_full_models() {
    let full = run(&llama(3, json!("torchtitan")));
    let mut req = llama(3, json!("torchtitan"));
    req["only"] = json!(["model.layers.0.*"]);
    let part = run(&req);
    assert_eq!(full["forecast"], part["forecast"]);
    // `/v1/analyze` refuses `shard` as a whole (its measured pass needs whole weights).
    req["shard"] = json!({"rank": 1, "world_size": 2});
    let e = analyze(support::plan(&req), 64).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("shard"));
}

#[test]
fn recipes_compare_on_a_32_layer_llama() {
    let big = |recipe: Value| {
        let r = run(
            &json!({"seed": 0, "hf_config": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
            "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32000},
            "recipe": recipe}),
        );
        r["forecast"].clone()
    };
    let hf = big(Value::Null);
    let megatron = big(json!("megatron_scaled"));
    let titan = big(json!("torchtitan"));
    let ratio = |f: &Value| f["gradient_std_ratio_first_to_last"].as_f64().unwrap();
    let fin = |f: &Value| f["final_residual_std"].as_f64().unwrap();
    // Depth-scaled output projections keep the stream smaller than HF's unscaled N(0, 0.02).
    assert!(
        fin(&megatron) < fin(&hf) / 5.0,
        "{} vs {}",
        fin(&megatron),
        fin(&hf)
    );
    // torchtitan's N(0, 1) embeddings keep the gradient across blocks within 10×.
    assert!(
        ratio(&titan) < 10.0 && ratio(&hf) > 100.0,
        "{} {}",
        ratio(&titan),
        ratio(&hf)
    );
    assert_eq!(hf["verdict"], "exploding");
    assert_eq!(titan["verdict"], "stable");
}

#[test]
fn gpt2_and_bert_forecasts() {
    let g = run(
        &json!({"seed": 0, "hf_config": {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 128, "n_layer": 6, "n_head": 4,
        "vocab_size": 100, "n_positions": 32}}),
    );
    let f = &g["forecast"];
    assert_eq!(f["layers"].as_array().unwrap().len(), 6);
    // Tied head: the logits use wte (σ = 0.02).
    assert!((f["logit_std"].as_f64().unwrap() - (128.0f64 * 4e-4).sqrt()).abs() < 1e-6);
    // wte + wpe.
    assert!((f["embedding_variance"].as_f64().unwrap() - 8e-4).abs() < 1e-9);
    let b = run(
        &json!({"seed": 0, "hf_config": {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 128, "num_hidden_layers": 3,
        "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 100, "max_position_embeddings": 32}}),
    );
    let f = &b["forecast"];
    assert!(f["model"].as_str().unwrap().contains("post-LN"));
    for l in f["layers"].as_array().unwrap() {
        assert_eq!(l["residual_variance"], 1.0);
    }
}
