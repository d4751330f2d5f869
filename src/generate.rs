//! Values of planned tensors: any element range of any tensor, in its output layout, as f32
//! (the canonical precision). Random tensors are produced by seeking into their stream, so the
//! cost of a range is proportional to its length; whole-tensor initializers are computed once
//! per generator and shared between threads, and only the most recently used ones within
//! `WHOLE_KEPT_ELEMENTS` are kept (a request of a hundred orthogonal tensors must not hold a
//! hundred of them; an evicted one asked for again is recomputed, to the same values).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::init::{Element, ValueSource, WholeTensor};
use crate::plan::{Layout, Plan, TensorPlan};
use crate::rng::WordReader;
use crate::sample;
use crate::structured;

/// Whole-tensor elements (f32) kept at once per generator, least recently used evicted first
/// (the latest one is always kept): two of the largest (`MAX_WHOLE_TENSOR_ELEMENTS`, 64 MiB
/// each), so the tensor being streamed survives a neighbour computed by another thread.
const WHOLE_KEPT_ELEMENTS: u64 = 2 * crate::plan::MAX_WHOLE_TENSOR_ELEMENTS;
/// And at most this many of them, so that the bookkeeping per use stays a short scan (100,000
/// tiny orthogonal tensors would otherwise all fit the element budget).
const WHOLE_KEPT_COUNT: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent across a panic (a slot is set in one assignment).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Output rows handled per pass of a transposed (Keras/Flax) tensor.
const ROW_BATCH: u64 = 256;

/// Generates values for one plan. Cheap to share across threads (`&Generator` is `Sync`).
pub struct Generator {
    plan: Arc<Plan>,
    /// A whole-tensor value, or an empty slice when its computation was cancelled; `None` until
    /// computed or once evicted. A tensor's lock is held while it is computed, so the threads
    /// that need it wait for the one computation.
    whole: Vec<Mutex<Option<Arc<[f32]>>>>,
    /// (index, elements) of the computed whole tensors still kept, least recently used first.
    kept: Mutex<VecDeque<(usize, u64)>>,
    /// Set (by `cancel`) when nobody will read the output any more: whole-tensor computations
    /// stop at their next block and what is generated after that is not the tensor's values.
    cancelled: Arc<AtomicBool>,
}

/// Per-thread working memory, reused across calls.
#[derive(Default)]
pub struct Scratch {
    reader: Option<WordReader>,
    span: Vec<f32>,
    offsets: Vec<u64>,
    generated: u64,
    /// Encoders' staging buffers (values before conversion; bytes of a partial element).
    pub(crate) values: Vec<f32>,
    pub(crate) bytes: Vec<u8>,
}

impl Scratch {
    /// Logical elements generated through this scratch so far (a cost meter: seeking means a
    /// small range of a huge tensor costs about its own length).
    pub fn elements_generated(&self) -> u64 {
        self.generated
    }

    fn reader(&mut self, seed: u64, stream: u64) -> &mut WordReader {
        let stale = match &self.reader {
            Some(r) => r.seed() != seed || r.stream() != stream,
            None => true,
        };
        if stale {
            self.reader = Some(WordReader::new(seed, stream));
        }
        self.reader
            .get_or_insert_with(|| WordReader::new(seed, stream))
    }
}

fn strides(shape: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Writes `value` over the box `ranges` (one half-open range per axis) of a row-major tensor
/// of `shape`, restricted to the elements `start..start + out.len()` held in `out`. The box is
/// a set of contiguous runs, one per index of the axes before `k` (the last axis the box does
/// not cover whole); only the runs of the rows this range touches are visited, so the cost is
/// proportional to `out.len()`.
fn apply_fill(shape: &[u64], ranges: &[(u64, u64)], value: f32, start: u64, out: &mut [f32]) {
    if out.is_empty() {
        return;
    }
    if shape.is_empty() {
        out.fill(value);
        return;
    }
    // k: the innermost axis that the box does not cover whole (or 0 if it covers all).
    let k = (0..shape.len())
        .rev()
        .find(|&d| ranges[d] != (0, shape[d]))
        .unwrap_or(0);
    let inner: u64 = shape[k + 1..].iter().product();
    let row_len = shape[k] * inner;
    let (run0, run1) = (ranges[k].0 * inner, ranges[k].1 * inner);
    let end = start + out.len() as u64;
    let mut row = start / row_len;
    while row * row_len < end {
        // The indices of the axes before k, from the row number.
        let mut rem = row;
        let mut inside = true;
        for d in (0..k).rev() {
            let i = rem % shape[d];
            rem /= shape[d];
            inside &= ranges[d].0 <= i && i < ranges[d].1;
        }
        if inside {
            let (a, b) = (
                (row * row_len + run0).max(start),
                (row * row_len + run1).min(end),
            );
            if a < b {
                out[(a - start) as usize..(b - start) as usize].fill(value);
            }
        }
        row += 1;
    }
}

impl Generator {
    pub fn new(plan: Arc<Plan>) -> Generator {
        let whole = (0..plan.tensors.len()).map(|_| Mutex::new(None)).collect();
        Generator {
            plan,
            whole,
            kept: Mutex::new(VecDeque::new()),
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that cancels this generator's work (shared, so the side that sees the reader
    /// go away can set it while the generator runs on another thread). After it is set, the
    /// values filled are unspecified and must not be delivered: check `is_cancelled`.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// Whether `cancel_flag` has been set.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// `out[j]` = element `start + j` (output layout, row-major) of tensor `t` — of its slice
    /// when the request shards it.
    pub fn fill(&self, t: usize, start: u64, out: &mut [f32], scratch: &mut Scratch) {
        let tp = &self.plan.tensors[t];
        debug_assert!(start + out.len() as u64 <= tp.numel);
        let Some(slice) = &tp.slice else {
            return self.fill_full(t, start, out, scratch);
        };
        // A slice along axis d is a sequence of contiguous runs of the full tensor: for each
        // index over the axes before d, `len·inner` elements starting at `start·inner`.
        let inner: u64 = tp.shape[slice.dim + 1..].iter().product();
        let run = tp.shape[slice.dim] * inner;
        let full_run = slice.full_shape[slice.dim] * inner;
        let mut done = 0usize;
        while done < out.len() {
            let i = start + done as u64;
            let (outer, within) = (i / run, i % run);
            let n = ((run - within) as usize).min(out.len() - done);
            let full_index = outer * full_run + slice.start * inner + within;
            self.fill_full(t, full_index, &mut out[done..done + n], scratch);
            done += n;
        }
    }

    /// Elements of the whole (unsharded) tensor in its output layout.
    fn fill_full(&self, t: usize, start: u64, out: &mut [f32], scratch: &mut Scratch) {
        let tp = &self.plan.tensors[t];
        match &tp.layout {
            Layout::Identity => self.fill_logical(t, start, out, scratch),
            Layout::Permuted { perm } => self.fill_permuted(t, perm, start, out, scratch),
        }
    }

    /// The values of tensor `t`, whose source is `whole`, computed once (until evicted).
    fn whole_tensor(&self, t: usize, whole: &WholeTensor, scratch: &mut Scratch) -> Arc<[f32]> {
        let value = {
            let mut slot = lock(&self.whole[t]);
            if let Some(v) = slot.as_ref() {
                let v = v.clone();
                drop(slot);
                self.touch(t, v.len() as u64);
                return v;
            }
            let tp = &self.plan.tensors[t];
            let reader = scratch.reader(self.plan.seed(), tp.stream);
            let cancel = &self.cancelled;
            let v = match *whole {
                WholeTensor::Orthogonal { gain, rows_axes } => {
                    structured::orthogonal(reader, &tp.logical_shape, rows_axes, gain, cancel)
                }
                WholeTensor::DeltaOrthogonal { scale } => {
                    structured::delta_orthogonal(reader, &tp.logical_shape, scale, cancel)
                }
                WholeTensor::Sparse { sparsity, std } => {
                    Ok(structured::sparse(reader, &tp.logical_shape, sparsity, std))
                }
            };
            // Cancelled: nobody reads the values, so an empty slice stands in for them.
            let value: Arc<[f32]> = v.map(Arc::from).unwrap_or_else(|_| Arc::from(Vec::new()));
            *slot = Some(value.clone());
            value
        };
        self.touch(t, value.len() as u64);
        value
    }

    /// Marks whole tensor `t` (of `len` elements) most recently used and evicts the least
    /// recently used others past `WHOLE_KEPT_ELEMENTS` or `WHOLE_KEPT_COUNT`. Called with no slot lock held, so no
    /// thread ever holds two.
    fn touch(&self, t: usize, len: u64) {
        let mut evicted = Vec::new();
        {
            let mut kept = lock(&self.kept);
            kept.retain(|&(u, _)| u != t);
            kept.push_back((t, len));
            let mut total: u64 = kept.iter().map(|&(_, n)| n).sum();
            while (total > WHOLE_KEPT_ELEMENTS || kept.len() > WHOLE_KEPT_COUNT) && kept.len() > 1 {
                if let Some((u, n)) = kept.pop_front() {
                    total -= n;
                    evicted.push(u);
                }
            }
        }
        for u in evicted {
            *lock(&self.whole[u]) = None;
        }
    }

    /// Elements in PyTorch (logical) order.
    fn fill_logical(&self, t: usize, start: u64, out: &mut [f32], scratch: &mut Scratch) {
        let tp: &TensorPlan = &self.plan.tensors[t];
        scratch.generated += out.len() as u64;
        match &tp.resolved.source {
            ValueSource::Constant(v) => out.fill(*v),
            ValueSource::Random(kernel) => {
                let reader = scratch.reader(self.plan.seed(), tp.stream);
                sample::fill(reader, kernel, start, out);
            }
            ValueSource::Eye { gain } => {
                let cols = tp.logical_shape[1];
                for (j, o) in out.iter_mut().enumerate() {
                    let i = start + j as u64;
                    *o = if i / cols == i % cols { *gain } else { 0.0 };
                }
            }
            ValueSource::Dirac { groups } => {
                let s = &tp.logical_shape;
                let per_group = s[0] / groups;
                let min_dim = per_group.min(s[1]);
                let taps: u64 = s[2..].iter().product();
                let mut centre = 0u64;
                for &k in &s[2..] {
                    centre = centre * k + k / 2;
                }
                for (j, o) in out.iter_mut().enumerate() {
                    let i = start + j as u64;
                    let tap = i % taps;
                    let inp = (i / taps) % s[1];
                    let outc = i / taps / s[1];
                    let d = outc % per_group;
                    *o = if tap == centre && d < min_dim && inp == d {
                        1.0
                    } else {
                        0.0
                    };
                }
            }
            ValueSource::WithConstantRange {
                base,
                start: r0,
                end: r1,
                value,
            } => {
                match base {
                    Element::Random(kernel) => {
                        let reader = scratch.reader(self.plan.seed(), tp.stream);
                        sample::fill(reader, kernel, start, out);
                    }
                    Element::Constant(v) => out.fill(*v),
                }
                let (a, b) = ((*r0).max(start), (*r1).min(start + out.len() as u64));
                if a < b {
                    out[(a - start) as usize..(b - start) as usize].fill(*value);
                }
            }
            ValueSource::Pieces(parts) => {
                let end = start + out.len() as u64;
                for (p0, p1, src) in parts {
                    let (a, b) = ((*p0).max(start), (*p1).min(end));
                    if a >= b {
                        continue;
                    }
                    let dst = &mut out[(a - start) as usize..(b - start) as usize];
                    match src {
                        Element::Random(kernel) => {
                            let reader = scratch.reader(self.plan.seed(), tp.stream);
                            sample::fill(reader, kernel, a, dst);
                        }
                        Element::Constant(v) => dst.fill(*v),
                    }
                }
            }
            ValueSource::Whole(whole) => {
                let w = self.whole_tensor(t, whole, scratch);
                let s = start as usize;
                match w.get(s..s + out.len()) {
                    Some(values) => out.copy_from_slice(values),
                    // The computation was cancelled (see `cancel_flag`).
                    None => out.fill(0.0),
                }
            }
        }
        if let Some(row) = tp.zero_row {
            let row_len: u64 = tp.logical_shape[1..].iter().product();
            let (r0, r1) = (row * row_len, (row + 1) * row_len);
            let (a, b) = (r0.max(start), r1.min(start + out.len() as u64));
            if a < b {
                out[(a - start) as usize..(b - start) as usize].fill(0.0);
            }
        }
        for f in &tp.fills {
            apply_fill(&tp.logical_shape, &f.ranges, f.value, start, out);
        }
    }

    /// A transposed tensor: the last output axis is logical axis 0 (output channels), so every
    /// output row gathers one element from each of the logical rows. A batch of output rows
    /// needs, in every logical row, one contiguous span, generated by seeking.
    fn fill_permuted(
        &self,
        t: usize,
        perm: &[usize],
        start: u64,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        if out.is_empty() {
            return;
        }
        let tp = &self.plan.tensors[t];
        let shape = tp.full_shape();
        let n = shape.len();
        let inner = shape[n - 1];
        let lstrides = strides(&tp.logical_shape);
        let row_stride = lstrides[0];
        let end = start + out.len() as u64;
        let first_row = start / inner;
        let last_row = (end - 1) / inner;
        let mut r0 = first_row;
        let mut span = std::mem::take(&mut scratch.span);
        let mut offsets = std::mem::take(&mut scratch.offsets);
        while r0 <= last_row {
            let r1 = (r0 + ROW_BATCH).min(last_row + 1);
            offsets.clear();
            for r in r0..r1 {
                // Decompose output row r over output axes 0..n-1 and map to a logical offset.
                let mut rem = r;
                let mut off = 0u64;
                for k in (0..n - 1).rev() {
                    let idx = rem % shape[k];
                    rem /= shape[k];
                    off += idx * lstrides[perm[k]];
                }
                offsets.push(off);
            }
            let pmin = *offsets.iter().min().unwrap_or(&0);
            let pmax = *offsets.iter().max().unwrap_or(&0);
            let len = (pmax - pmin + 1) as usize;
            span.resize(len, 0.0);
            for o in 0..inner {
                // Skip logical rows that no wanted element of this batch uses.
                let first_idx = r0 * inner + o;
                let last_idx = (r1 - 1) * inner + o;
                if last_idx < start || first_idx >= end {
                    continue;
                }
                self.fill_logical(t, o * row_stride + pmin, &mut span[..len], scratch);
                for (k, off) in offsets.iter().enumerate() {
                    let idx = (r0 + k as u64) * inner + o;
                    if idx >= start && idx < end {
                        out[(idx - start) as usize] = span[(off - pmin) as usize];
                    }
                }
            }
            r0 = r1;
        }
        scratch.span = span;
        scratch.offsets = offsets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_tensors_are_evicted_and_recomputed_to_the_same_values() {
        // 100 small orthogonal tensors: all fit the element budget, so the count bound evicts.
        let tensors: Vec<serde_json::Value> = (0..100)
            .map(|i| serde_json::json!({"name": format!("q{i}"), "shape": [6, 5], "init": "orthogonal"}))
            .collect();
        let req = crate::spec::parse(&serde_json::json!({"seed": 4, "tensors": tensors})).unwrap();
        let plan = Arc::new(crate::plan::build_uncalibrated(req));
        let g = Generator::new(plan.clone());
        let mut scratch = Scratch::default();
        let mut first = vec![0f32; 30];
        g.fill(0, 0, &mut first, &mut scratch);
        for t in 1..100 {
            let mut v = vec![0f32; 30];
            g.fill(t, 0, &mut v, &mut scratch);
        }
        assert_eq!(lock(&g.kept).len(), WHOLE_KEPT_COUNT);
        assert!(lock(&g.whole[0]).is_none(), "the oldest was evicted");
        let kept = g.whole.iter().filter(|w| lock(w).is_some()).count();
        assert_eq!(kept, WHOLE_KEPT_COUNT);
        let mut again = vec![0f32; 30];
        g.fill(0, 0, &mut again, &mut scratch);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first), bits(&again));
        // A fresh generator agrees too.
        let mut fresh = vec![0f32; 30];
        Generator::new(plan).fill(0, 0, &mut fresh, &mut Scratch::default());
        assert_eq!(bits(&first), bits(&fresh));
    }
}
