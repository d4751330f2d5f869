//! Every recipe against its formula, tensor by tensor: the expected std and bounds are written
//! out here from the source frameworks' code (Megatron-LM, GPT-NeoX, OLMo, torchtitan, mup,
//! DeepNet), not read back from the plan, and each tensor's values are checked by sample std,
//! range and a Kolmogorov–Smirnov test against the exact target distribution (thresholds that
//! catch a 5% std error: `a_five_percent_error_is_caught`). Also: a recipe on a sharded request
//! equals the slice of the full one, and the recipe is recorded per tensor in the plan.

mod common;
mod support;

use common::stats::{
    ks_critical, ks_statistic, mean, normal_cdf, std_dev, trunc_normal_cdf, trunc_normal_moments,
};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Want {
    Zero,
    One,
    Normal(f64),
    /// σ and absolute bounds (PyTorch `trunc_normal_`: std not corrected).
    Trunc(f64, f64, f64),
}

/// Sample checks of one tensor; `Err` with the reason instead of panicking, so the
/// sensitivity test can assert that a wrong formula fails.
fn check(label: &str, xs: &[f64], want: Want) -> Result<(), String> {
    let n = xs.len();
    let tol = (4.0 / (n as f64).sqrt()).max(0.005);
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    let s = std_dev(xs);
    let m = mean(xs);
    let mut v = xs.to_vec();
    let crit = ks_critical(n, 1e-3);
    match want {
        Want::Zero | Want::One => {
            let c = if matches!(want, Want::Zero) { 0.0 } else { 1.0 };
            if xs.iter().any(|&x| x != c) {
                return Err(format!("{label}: not all {c}"));
            }
        }
        Want::Normal(sd) => {
            if (s / sd - 1.0).abs() > tol {
                return Err(format!("{label}: std {s} vs {sd}"));
            }
            if m.abs() > 5.0 * sd / (n as f64).sqrt() {
                return Err(format!("{label}: mean {m}"));
            }
            let d = ks_statistic(&mut v, |x| normal_cdf(x, 0.0, sd));
            if d > crit {
                return Err(format!("{label}: KS {d} > {crit} vs N(0, {sd})"));
            }
        }
        Want::Trunc(sd, a, b) => {
            if lo < a as f32 as f64 || hi > b as f32 as f64 {
                return Err(format!("{label}: range [{lo}, {hi}] outside [{a}, {b}]"));
            }
            let (_, ts) = trunc_normal_moments(0.0, sd, a, b);
            if (s / ts - 1.0).abs() > tol {
                return Err(format!("{label}: std {s} vs {ts}"));
            }
            let d = ks_statistic(&mut v, |x| trunc_normal_cdf(x, 0.0, sd, a, b));
            if d > crit {
                return Err(format!(
                    "{label}: KS {d} > {crit} vs trunc N(0, {sd}) on [{a}, {b}]"
                ));
            }
        }
    }
    Ok(())
}

const H: u64 = 256;
const I: u64 = 512;
const L: u64 = 3;
const V: u64 = 512;

fn llama(recipe: Value) -> Value {
    json!({
        "seed": 7,
        "hf_config": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                      "hidden_size": H, "intermediate_size": I, "num_hidden_layers": L,
                      "num_attention_heads": 4, "vocab_size": V, "tie_word_embeddings": false},
        "recipe": recipe
    })
}

/// The Llama tensors by kind: (name, kind, layer, fan_in, fan_out).
fn llama_tensors() -> Vec<(String, &'static str, u64, f64, f64)> {
    let (h, i) = (H as f64, I as f64);
    let mut v = vec![
        (
            "model.embed_tokens.weight".to_string(),
            "emb",
            0,
            h,
            V as f64,
        ),
        ("lm_head.weight".to_string(), "head", 0, h, V as f64),
        ("model.norm.weight".to_string(), "norm", 0, h, h),
    ];
    for l in 0..L {
        let p = format!("model.layers.{l}");
        v.push((format!("{p}.self_attn.q_proj.weight"), "q", l, h, h));
        v.push((format!("{p}.self_attn.k_proj.weight"), "k", l, h, h));
        v.push((format!("{p}.self_attn.v_proj.weight"), "v", l, h, h));
        v.push((format!("{p}.self_attn.o_proj.weight"), "o", l, h, h));
        v.push((format!("{p}.mlp.gate_proj.weight"), "gate", l, h, i));
        v.push((format!("{p}.mlp.up_proj.weight"), "up", l, h, i));
        v.push((format!("{p}.mlp.down_proj.weight"), "down", l, i, h));
        v.push((format!("{p}.input_layernorm.weight"), "norm", l, h, h));
    }
    v
}

/// The expected distribution of each Llama tensor under each recipe, from the sources.
fn expected(recipe: &str, kind: &str, layer: u64, fan_in: f64, fan_out: f64) -> Want {
    let (h, n) = (H as f64, L as f64);
    let l1 = (layer + 1) as f64;
    let out = matches!(kind, "o" | "down");
    if kind == "norm" {
        return Want::One;
    }
    let t3 = |s: f64| Want::Trunc(s, -3.0 * s, 3.0 * s);
    match recipe {
        // megatron/core/utils.py: init_method_normal(σ), scaled_init_method_normal(σ, L)
        "megatron_scaled" => Want::Normal(if out { 0.02 / (2.0 * n).sqrt() } else { 0.02 }),
        // gpt-neox init_functions.py: small_init √(2/(5d)), wang_init 2/(L·√d)
        "gpt_neox" => Want::Normal(if out {
            2.0 / n / h.sqrt()
        } else {
            (2.0 / (5.0 * h)).sqrt()
        }),
        // OLMo: 1/√d_in, outputs 1/√(2·d_in·(layer+1)), embeddings and head 1/√d_model, ±3σ
        "olmo_mitchell" => match kind {
            "emb" | "head" => t3(1.0 / h.sqrt()),
            _ if out => t3(1.0 / (2.0 * fan_in * l1).sqrt()),
            _ => t3(1.0 / fan_in.sqrt()),
        },
        "olmo_full_megatron" => match kind {
            "head" => t3(1.0 / h.sqrt()),
            _ if out => t3(0.02 / (2.0 * n).sqrt()),
            _ => t3(0.02),
        },
        // torchtitan llama3: wq/wk/wv/w1 trunc(0.02, ±2), wo/w2/w3 trunc(0.02/√(2(l+1)), ±2)
        "torchtitan" => match kind {
            "emb" => Want::Normal(1.0),
            "head" => t3(1.0 / h.sqrt()),
            "o" | "down" | "up" => Want::Trunc(0.02 / (2.0 * l1).sqrt(), -2.0, 2.0),
            _ => Want::Trunc(0.02, -2.0, 2.0),
        },
        // μP with base width 64: width_mult 4; hidden matrices N(0, 0.02/√4), zero query and readout
        "mup" => match kind {
            "emb" => Want::Normal(0.02),
            "head" | "q" => Want::Zero,
            _ => Want::Normal(0.02 / 2.0),
        },
        // DeepNet: β = (8N)^(-1/4); xavier_normal gain β on FFN, v, o; gain 1 on q, k
        "deepnet" => {
            let x = (2.0 / (fan_in + fan_out)).sqrt();
            match kind {
                "emb" | "head" => Want::Normal(0.02),
                "q" | "k" => Want::Normal(x),
                _ => Want::Normal((8.0 * n).powf(-0.25) * x),
            }
        }
        _ => unreachable!(),
    }
}

fn recipe_value(name: &str) -> Value {
    match name {
        "mup" => json!({"name": "mup", "base_width": 64}),
        n => json!(n),
    }
}

const RECIPES: &[&str] = &[
    "megatron_scaled",
    "gpt_neox",
    "olmo_mitchell",
    "olmo_full_megatron",
    "torchtitan",
    "mup",
    "deepnet",
];

#[test]
fn every_recipe_matches_its_formula_on_a_llama() {
    for r in RECIPES {
        let plan = support::plan(&llama(recipe_value(r)));
        let pj = plan.to_json();
        for (name, kind, layer, fi, fo) in llama_tensors() {
            let xs: Vec<f64> = support::values(&plan, &name)
                .into_iter()
                .map(f64::from)
                .collect();
            let want = expected(r, kind, layer, fi, fo);
            check(&format!("{r} {name}"), &xs, want).unwrap_or_else(|e| panic!("{e}"));
            // The plan says which recipe rule chose it (norms and embeddings a recipe leaves
            // alone carry none).
            let t = pj["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name.as_str())
                .unwrap();
            let rec = &t["init"]["recipe"];
            let kept = kind == "norm"
                || (*r == "mup" && kind == "emb")
                || (*r == "deepnet" && matches!(kind, "emb" | "head"));
            if kept {
                assert!(rec.is_null(), "{r} {name} keeps its init: {t}");
            } else {
                assert_eq!(rec["name"], *r, "{r} {name}: {t}");
                assert!(rec["rule"].as_str().unwrap().len() > 10);
            }
        }
    }
}

#[test]
fn a_five_percent_error_is_caught() {
    let plan = support::plan(&llama(json!("megatron_scaled")));
    let xs: Vec<f64> = support::values(&plan, "model.layers.0.self_attn.o_proj.weight")
        .into_iter()
        .map(f64::from)
        .collect();
    let s = 0.02 / (2.0 * L as f64).sqrt();
    assert!(check("right", &xs, Want::Normal(s)).is_ok());
    assert!(check("5% high", &xs, Want::Normal(s * 1.05)).is_err());
    assert!(check("5% low", &xs, Want::Normal(s * 0.95)).is_err());
    // An untruncated normal is told apart from a ±2σ-truncated one with the same σ.
    assert!(check("truncated", &xs, Want::Trunc(s, -2.0 * s, 2.0 * s)).is_err());
    // And the unscaled σ (a recipe that forgot the depth) fails.
    assert!(check("unscaled", &xs, Want::Normal(0.02)).is_err());
}

#[test]
fn gpt2_and_bert_output_projections_are_found() {
    let gpt2 = json!({"seed": 3, "hf_config": {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "n_embd": 128, "n_layer": 4, "n_head": 4, "vocab_size": 300, "n_positions": 64},
        "recipe": "megatron_scaled"});
    let plan = support::plan(&gpt2);
    for (name, sd) in [
        ("transformer.h.1.attn.c_proj.weight", 0.02 / 8f64.sqrt()),
        ("transformer.h.1.mlp.c_proj.weight", 0.02 / 8f64.sqrt()),
        ("transformer.h.1.attn.c_attn.weight", 0.02),
        ("transformer.h.1.mlp.c_fc.weight", 0.02),
        ("transformer.wte.weight", 0.02),
    ] {
        let xs: Vec<f64> = support::values(&plan, name)
            .into_iter()
            .map(f64::from)
            .collect();
        check(name, &xs, Want::Normal(sd)).unwrap_or_else(|e| panic!("{e}"));
    }
    // OLMo mitchell reads GPT-2's Conv1D [in, out]: mlp.c_proj has d_in = 4·n_embd.
    let mut m = gpt2.clone();
    m["recipe"] = json!("olmo_mitchell");
    let plan = support::plan(&m);
    let xs: Vec<f64> = support::values(&plan, "transformer.h.2.mlp.c_proj.weight")
        .into_iter()
        .map(f64::from)
        .collect();
    let s = 1.0 / (2.0 * 512.0 * 3.0f64).sqrt();
    check("mitchell c_proj", &xs, Want::Trunc(s, -3.0 * s, 3.0 * s))
        .unwrap_or_else(|e| panic!("{e}"));
    let bert = json!({"seed": 3, "hf_config": {"architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
        "vocab_size": 300, "max_position_embeddings": 64}, "recipe": "megatron_scaled"});
    let plan = support::plan(&bert);
    for (name, sd) in [
        ("encoder.layer.1.attention.output.dense.weight", 0.01),
        ("encoder.layer.1.output.dense.weight", 0.01),
        ("encoder.layer.1.intermediate.dense.weight", 0.02),
        ("encoder.layer.1.attention.self.query.weight", 0.02),
    ] {
        let xs: Vec<f64> = support::values(&plan, name)
            .into_iter()
            .map(f64::from)
            .collect();
        check(name, &xs, Want::Normal(sd)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn recipes_on_a_layer_stack() {
    // 3 weight layers: first (input), hidden, readout; plus an attention layer in between.
    let stack = |recipe: Value| {
        json!({"seed": 11, "layers": [
            {"type": "dense", "name": "inp", "in_features": 64, "out_features": 256, "activation": "relu"},
            {"type": "multihead_attention", "name": "attn", "num_heads": 4},
            {"type": "dense", "name": "hid", "out_features": 256, "activation": "relu"},
            {"type": "dense", "name": "out", "out_features": 128}
        ], "recipe": recipe})
    };
    // μP, base width 64 ⇒ width_mult 4: hidden matrices keep their (PyTorch default) init / 2;
    // the input layer keeps its init; the readout and the query rows of in_proj start at 0.
    let plan = support::plan(&stack(json!({"name": "mup", "base_width": 64})));
    let base = support::plan(&stack(Value::Null));
    let hid: Vec<f32> = support::values(&plan, "hid.weight");
    let hid0: Vec<f32> = support::values(&base, "hid.weight");
    assert!(
        hid.iter()
            .zip(&hid0)
            .all(|(a, b)| (*a as f64 - *b as f64 * 0.5).abs() <= 1e-7 * b.abs() as f64 + 1e-9)
    );
    assert_eq!(
        support::values(&plan, "inp.weight"),
        support::values(&base, "inp.weight")
    );
    assert!(
        support::values(&plan, "out.weight")
            .iter()
            .all(|&x| x == 0.0)
    );
    let qkv = support::values(&plan, "attn.in_proj_weight");
    let e = 256 * 256;
    assert!(qkv[..e].iter().all(|&x| x == 0.0));
    assert!(qkv[e..].iter().all(|&x| x != 0.0));
    // Megatron on a stack: depth = 4 weight layers; the attention out_proj is the output projection.
    let plan = support::plan(&stack(json!("megatron_scaled")));
    let xs: Vec<f64> = support::values(&plan, "attn.out_proj.weight")
        .into_iter()
        .map(f64::from)
        .collect();
    check("stack out_proj", &xs, Want::Normal(0.02 / 8f64.sqrt()))
        .unwrap_or_else(|e| panic!("{e}"));
    let xs: Vec<f64> = support::values(&plan, "hid.weight")
        .into_iter()
        .map(f64::from)
        .collect();
    check("stack hid", &xs, Want::Normal(0.02)).unwrap_or_else(|e| panic!("{e}"));
    assert!(support::values(&plan, "hid.bias").iter().all(|&x| x == 0.0));
    // DeepNet refuses a packed in_proj (it needs different gains for q/k and v).
    let r = paraminit::spec::parse(&stack(json!("deepnet"))).unwrap();
    let e = paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("recipe"));
}

#[test]
fn a_sharded_recipe_is_the_slice_of_the_full_one() {
    for r in ["olmo_mitchell", "torchtitan", "mup"] {
        let full = support::plan(&llama(recipe_value(r)));
        for rank in 0..3u64 {
            let mut req = llama(recipe_value(r));
            req["shard"] = json!({"rank": rank, "world_size": 3, "dim": 0});
            let part = support::plan(&req);
            for name in [
                "model.layers.2.mlp.down_proj.weight",
                "model.layers.1.self_attn.q_proj.weight",
                "lm_head.weight",
            ] {
                let t = &part.tensors[support::tensor_index(&part, name)];
                let sl = t.slice.as_ref().unwrap();
                let cols = t.shape[1] as usize;
                let fv = support::values(&full, name);
                let want =
                    &fv[sl.start as usize * cols..(sl.start as usize + t.shape[0] as usize) * cols];
                assert_eq!(support::values(&part, name), want, "{r} rank {rank} {name}");
            }
        }
    }
}

#[test]
fn recipe_errors_and_canonical_form() {
    let bad = |recipe: Value| {
        let e = paraminit::spec::parse(&llama(recipe)).unwrap_err();
        (e.code.as_str().to_string(), e.path.unwrap_or_default())
    };
    assert_eq!(
        bad(json!("nope")),
        ("invalid_value".into(), "recipe.name".into())
    );
    assert_eq!(
        bad(json!({"name": "mup"})),
        ("missing_field".into(), "recipe.base_width".into())
    );
    assert_eq!(
        bad(json!({"name": "megatron_scaled", "sigma": -1})),
        ("invalid_value".into(), "recipe.sigma".into())
    );
    assert_eq!(
        bad(json!({"name": "megatron_scaled", "depth": 1})),
        ("unknown_field".into(), "recipe.depth".into())
    );
    // GPT-2 packs q/k/v column-wise: μP's query_zero_init cannot be applied and says so.
    let gpt2 = json!({"seed": 3, "hf_config": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4,
        "vocab_size": 100, "n_positions": 16}, "recipe": {"name": "mup", "base_width": 32}});
    let r = paraminit::spec::parse(&gpt2).unwrap();
    let e = paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("recipe.query_zero_init"));
    // The canonical request holds every parameter and parses back to the same request.
    let plan = support::plan(&llama(json!("gpt_neox")));
    let canon = plan.request.to_canonical_json();
    assert_eq!(
        canon["recipe"],
        json!({"name": "gpt_neox", "init_method": "small_init", "output_layer_init_method": "wang_init", "sigma": 0.02, "num_layers": null})
    );
    assert_eq!(paraminit::spec::parse(&canon).unwrap(), plan.request);
    // A recipe changes the ETag; no recipe leaves the request (and golden files) as before.
    let plain = support::plan(&llama(Value::Null));
    assert_ne!(
        plain.etag(paraminit::plan::Format::Json),
        plan.etag(paraminit::plan::Format::Json)
    );
    assert!(plain.request.to_canonical_json().get("recipe").is_none());
}
