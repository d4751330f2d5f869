//! The JSON response (SPEC §3) as a forward stream of chunks: the echoed seed, framework and
//! algorithm, then `tensors` as `{name, dtype, shape, init, data}` in file order, `data` flat
//! in row-major order of the tensor's output layout.

use serde_json::json;

use super::numfmt::push_number;
use crate::generate::{Generator, Scratch};
use crate::plan::SERVICE_VERSION;
use crate::rng::ALGORITHM_ID;

const STEP_ELEMENTS: usize = 1 << 13;

enum Phase {
    Prelude,
    TensorHead(usize),
    Data { tensor: usize, next: u64 },
    Done,
}

pub struct JsonBody {
    generator: Generator,
    phase: Phase,
    chunk: usize,
    scratch: Scratch,
    values: Vec<f32>,
    ryu: ryu::Buffer,
}

impl JsonBody {
    pub fn new(generator: Generator, chunk: usize) -> JsonBody {
        JsonBody {
            generator,
            phase: Phase::Prelude,
            chunk: chunk.max(64),
            scratch: Scratch::default(),
            values: Vec::new(),
            ryu: ryu::Buffer::new(),
        }
    }

    /// The next chunk of about `chunk` bytes, or `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if matches!(self.phase, Phase::Done) {
            return None;
        }
        let mut out = Vec::with_capacity(self.chunk + 64);
        while out.len() < self.chunk {
            let plan = self.generator.plan();
            match self.phase {
                Phase::Prelude => {
                    let head = format!(
                        "{{\"seed\":{},\"framework\":{},\"algorithm\":{},\"service_version\":{},\"tensors\":[",
                        crate::spec::seed_json(plan.seed()),
                        json!(plan.request.framework.as_str()),
                        json!(ALGORITHM_ID),
                        json!(SERVICE_VERSION),
                    );
                    out.extend_from_slice(head.as_bytes());
                    self.phase = if plan.tensors.is_empty() {
                        Phase::Done
                    } else {
                        Phase::TensorHead(0)
                    };
                    if plan.tensors.is_empty() {
                        out.extend_from_slice(b"]}\n");
                        break;
                    }
                }
                Phase::TensorHead(t) => {
                    let tp = &plan.tensors[t];
                    if t > 0 {
                        out.push(b',');
                    }
                    out.push(b'\n');
                    let head = format!(
                        "{{\"name\":{},\"dtype\":{},\"shape\":{},\"init\":{},{}\"data\":[",
                        json!(tp.name),
                        json!(tp.dtype.as_str()),
                        json!(tp.shape),
                        tp.resolved.info.to_json(),
                        tp.slice_json()
                            .map(|s| format!("\"slice\":{s},"))
                            .unwrap_or_default(),
                    );
                    out.extend_from_slice(head.as_bytes());
                    self.phase = Phase::Data { tensor: t, next: 0 };
                }
                Phase::Data { tensor, next } => {
                    let tp = &plan.tensors[tensor];
                    if next >= tp.numel {
                        out.extend_from_slice(b"]}");
                        if tensor + 1 < plan.tensors.len() {
                            self.phase = Phase::TensorHead(tensor + 1);
                        } else {
                            out.extend_from_slice(b"\n]}\n");
                            self.phase = Phase::Done;
                            break;
                        }
                        continue;
                    }
                    let n = ((tp.numel - next) as usize).min(STEP_ELEMENTS);
                    self.values.resize(n, 0.0);
                    self.generator
                        .fill(tensor, next, &mut self.values[..n], &mut self.scratch);
                    let dtype = tp.dtype;
                    for (j, v) in self.values[..n].iter().enumerate() {
                        if next + j as u64 > 0 {
                            out.push(b',');
                        }
                        push_number(&mut out, dtype, *v, &mut self.ryu);
                    }
                    self.phase = Phase::Data {
                        tensor,
                        next: next + n as u64,
                    };
                }
                Phase::Done => break,
            }
        }
        Some(out)
    }
}
