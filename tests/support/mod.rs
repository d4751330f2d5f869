//! Helpers for the core tests: plan a request, read values of a tensor, read whole files.
#![allow(dead_code)]

use std::sync::Arc;

use paraminit::encode::json::JsonBody;
use paraminit::encode::safetensors::{SafetensorsBody, read_at};
use paraminit::generate::{Generator, Scratch};
use paraminit::pipeline;
use paraminit::plan::{Limits, Plan};
use paraminit::spec;
use serde_json::{Value, json};

pub fn plan(req: &Value) -> Arc<Plan> {
    let r = spec::parse(req).unwrap_or_else(|e| panic!("request rejected: {e}"));
    Arc::new(
        pipeline::build(r, &Limits::UNLIMITED).unwrap_or_else(|e| panic!("plan rejected: {e}")),
    )
}

pub fn tensor_index(plan: &Plan, name: &str) -> usize {
    plan.tensors
        .iter()
        .position(|t| t.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no tensor {name}; have {:?}",
                plan.tensors.iter().map(|t| &t.name).collect::<Vec<_>>()
            )
        })
}

/// All values (output layout) of tensor `name`, as f32.
pub fn values(plan: &Arc<Plan>, name: &str) -> Vec<f32> {
    let t = tensor_index(plan, name);
    let g = Generator::new(plan.clone());
    let mut out = vec![0f32; plan.tensors[t].numel as usize];
    g.fill(t, 0, &mut out, &mut Scratch::default());
    out
}

pub fn safetensors_bytes(plan: &Arc<Plan>) -> Vec<u8> {
    let mut body = SafetensorsBody::new(Generator::new(plan.clone()), 0, plan.file_bytes, 1 << 20);
    let mut out = Vec::with_capacity(plan.file_bytes as usize);
    while let Some(c) = body.next_chunk() {
        out.extend_from_slice(&c);
    }
    out
}

/// The file read in pieces of `piece` bytes, each with a fresh scratch (serial).
pub fn safetensors_bytes_in_pieces(plan: &Arc<Plan>, piece: usize) -> Vec<u8> {
    let g = Generator::new(plan.clone());
    let mut out = vec![0u8; plan.file_bytes as usize];
    for (i, part) in out.chunks_mut(piece).enumerate() {
        read_at(&g, (i * piece) as u64, part, &mut Scratch::default());
    }
    out
}

pub fn json_body(plan: &Arc<Plan>, chunk: usize) -> Vec<u8> {
    let mut body = JsonBody::new(Generator::new(plan.clone()), chunk);
    let mut out = Vec::new();
    while let Some(c) = body.next_chunk() {
        out.extend_from_slice(&c);
    }
    out
}

/// Bytes of tensor `name` inside a safetensors file.
pub fn tensor_bytes<'a>(plan: &Plan, file: &'a [u8], name: &str) -> &'a [u8] {
    let t = &plan.tensors[tensor_index(plan, name)];
    let ds = plan.data_start() as usize;
    &file[ds + t.begin as usize..ds + t.end as usize]
}

pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The values as f64, for the statistics in `common::stats`.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// A request for a Hugging Face `config.json`.
pub fn hf_request(config: &Value, seed: u64) -> Value {
    json!({"seed": seed, "hf_config": config})
}

/// Mean and population standard deviation, in f64.
pub fn mean_std(xs: &[f32]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let v = xs.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, v.sqrt())
}
