//! The JSON response (SPEC §3) as a forward stream of chunks: the echoed seed, framework and
//! algorithm, then `tensors` as `{name, dtype, shape, init, data}` in file order, `data` flat
//! in row-major order of the tensor's output layout.

use rayon::prelude::*;
use serde_json::json;

use super::numfmt::write_numbers;
use crate::generate::{Generator, Scratch};
use crate::plan::SERVICE_VERSION;
use crate::rng::ALGORITHM_ID;

const STEP_ELEMENTS: usize = 1 << 13;
/// Elements per parallel part when the pool has several threads: each part is generated and
/// formatted on its own, and the parts are concatenated in order (the same bytes).
const PAR_ELEMENTS: usize = 1 << 12;

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
    /// Formatting buffers kept across chunks (one per parallel part; `parts[0]` on one
    /// thread): their pages stay mapped, and each chunk gets exactly the bytes it needs.
    /// Formatting straight into fresh chunks grew them past the allocator's mmap threshold,
    /// and page faults plus reallocation copies took half the time.
    parts: Vec<Vec<u8>>,
    /// Bytes of each part written by the current step.
    lens: Vec<usize>,
}

/// `,`-separated numbers of `values`, the first being element `first` of its tensor (no comma
/// before element 0), into the front of the reused `buf`; returns their length.
fn format_values(
    buf: &mut Vec<u8>,
    dtype: crate::spec::DType,
    values: &[f32],
    first: u64,
) -> usize {
    write_numbers(buf, dtype, values, first > 0)
}

/// Appends `parts[i][..lens[i]]` to `out` in order. With several parts the copies run in
/// parallel into disjoint ranges of `out`'s spare capacity: done serially, this copy was about a
/// tenth of a step's time on two threads and kept JSON from scaling with them.
fn append_parts(out: &mut Vec<u8>, parts: &[Vec<u8>], lens: &[usize]) {
    let total: usize = lens.iter().sum();
    out.reserve(total);
    if parts.len() == 1 {
        out.extend_from_slice(&parts[0][..lens[0]]);
        return;
    }
    let start = out.len();
    let mut rest = &mut out.spare_capacity_mut()[..total];
    let mut dests = Vec::with_capacity(parts.len());
    for &len in lens {
        let (d, r) = rest.split_at_mut(len);
        dests.push(d);
        rest = r;
    }
    dests
        .into_par_iter()
        .zip(parts.par_iter().zip(lens.par_iter()))
        .for_each(|(d, (p, &len))| {
            d.write_copy_of_slice(&p[..len]);
        });
    // SAFETY: the `total` bytes after `start` were all written just above (the destination
    // slices partition exactly that range, and each received a copy of its full length).
    unsafe { out.set_len(start + total) };
}

impl JsonBody {
    pub fn new(generator: Generator, chunk: usize) -> JsonBody {
        JsonBody {
            generator,
            phase: Phase::Prelude,
            chunk: chunk.max(64),
            scratch: Scratch::default(),
            values: Vec::new(),
            parts: Vec::new(),
            lens: Vec::new(),
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
                    let threads = rayon::current_num_threads();
                    let step = if threads > 1 {
                        PAR_ELEMENTS * 4 * threads
                    } else {
                        STEP_ELEMENTS
                    };
                    let n = ((tp.numel - next) as usize).min(step);
                    self.values.resize(n, 0.0);
                    let dtype = tp.dtype;
                    let parts = if threads > 1 && n > PAR_ELEMENTS {
                        let generator = &self.generator;
                        let values = &mut self.values[..n];
                        let parts = n.div_ceil(PAR_ELEMENTS);
                        self.parts.resize_with(parts, Vec::new);
                        self.lens.resize(parts, 0);
                        self.parts[..parts]
                            .par_iter_mut()
                            .zip(self.lens[..parts].par_iter_mut())
                            .zip(values.par_chunks_mut(PAR_ELEMENTS))
                            .enumerate()
                            .for_each_init(Scratch::default, |scratch, (i, ((buf, len), vals))| {
                                let first = next + (i * PAR_ELEMENTS) as u64;
                                generator.fill(tensor, first, vals, scratch);
                                *len = format_values(buf, dtype, vals, first);
                            });
                        parts
                    } else {
                        self.generator
                            .fill(tensor, next, &mut self.values[..n], &mut self.scratch);
                        self.parts.resize_with(1, Vec::new);
                        self.lens.resize(1, 0);
                        self.lens[0] =
                            format_values(&mut self.parts[0], dtype, &self.values[..n], next);
                        1
                    };
                    append_parts(&mut out, &self.parts[..parts], &self.lens[..parts]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn body_with(threads: usize, request: &str) -> Vec<u8> {
        let req = crate::spec::parse_bytes(request.as_bytes()).unwrap();
        let plan = crate::plan::build_uncalibrated(req);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut body = JsonBody::new(Generator::new(Arc::new(plan)), 1 << 16);
        let mut all = Vec::new();
        pool.install(|| {
            while let Some(c) = body.next_chunk() {
                all.extend_from_slice(&c);
            }
        });
        all
    }

    #[test]
    fn parallel_formatting_gives_the_same_bytes() {
        let request = r#"{"seed": 5, "framework": "keras", "layers": [
            {"type": "dense", "in_features": 300, "out_features": 170}],
            "tensors": [
            {"name": "a", "shape": [70001], "init": "normal"},
            {"name": "b", "shape": [40000], "init": "uniform", "dtype": "bfloat16"},
            {"name": "c", "shape": [12345], "init": "zeros", "dtype": "float16"},
            {"name": "d", "shape": [5], "init": "ones"}]}"#;
        let one = body_with(1, request);
        assert!(serde_json::from_slice::<serde_json::Value>(&one).is_ok());
        assert_eq!(one, body_with(2, request));
        assert_eq!(one, body_with(3, request));
    }
}
