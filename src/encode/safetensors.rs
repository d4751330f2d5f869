//! The safetensors response as a virtual file: `read_at` produces any byte range of it by
//! seeking into the tensors it covers, so a range costs work proportional to its length.

use rayon::prelude::*;

use super::encode_values;
use crate::generate::{Generator, Scratch};

/// Elements generated per step inside one tensor.
const STEP_ELEMENTS: usize = 1 << 12;
/// Bytes per parallel task when a buffer is split across threads.
const TASK_BYTES: usize = 1 << 18;

/// Fills `buf` with bytes `[offset, offset + buf.len())` of the file. The range must lie within
/// the file (`Plan::file_bytes`).
pub fn read_at(generator: &Generator, offset: u64, buf: &mut [u8], scratch: &mut Scratch) {
    let plan = generator.plan();
    let header = &plan.header;
    let hlen = header.len() as u64;
    let end = offset + buf.len() as u64;
    debug_assert!(end <= plan.file_bytes);
    let mut pos = offset;
    if pos < hlen {
        let n = (hlen.min(end) - pos) as usize;
        buf[..n].copy_from_slice(&header[pos as usize..pos as usize + n]);
        pos += n as u64;
    }
    if pos >= end {
        return;
    }
    // First tensor whose data ends after `pos`.
    let rel = pos - hlen;
    let first = plan.tensors.partition_point(|t| t.end <= rel);
    let mut values = std::mem::take(&mut scratch.values);
    let mut bytes = std::mem::take(&mut scratch.bytes);
    for (ti, t) in plan.tensors.iter().enumerate().skip(first) {
        if pos >= end {
            break;
        }
        let rel = pos - hlen;
        if t.begin == t.end {
            continue;
        }
        let es = t.dtype.size();
        let want_end = (end - hlen).min(t.end);
        // Element range covering the wanted bytes of this tensor.
        let e0 = (rel - t.begin) / es;
        let e1 = (want_end - t.begin).div_ceil(es);
        let mut e = e0;
        while e < e1 {
            let n = ((e1 - e) as usize).min(STEP_ELEMENTS);
            values.resize(n, 0.0);
            generator.fill(ti, e, &mut values[..n], scratch);
            // Bytes [chunk_begin, chunk_end) of the data section hold these elements.
            let chunk_begin = t.begin + e * es;
            let chunk_end = chunk_begin + n as u64 * es;
            let from = (pos - hlen).max(chunk_begin);
            let to = want_end.min(chunk_end);
            let dst = (from + hlen - offset) as usize;
            if from == chunk_begin && to == chunk_end {
                // Whole elements: encode straight into the destination.
                encode_values(
                    t.dtype,
                    &values[..n],
                    &mut buf[dst..dst + (to - from) as usize],
                );
            } else {
                bytes.resize(n * es as usize, 0);
                encode_values(t.dtype, &values[..n], &mut bytes[..n * es as usize]);
                let src = &bytes[(from - chunk_begin) as usize..(to - chunk_begin) as usize];
                buf[dst..dst + src.len()].copy_from_slice(src);
            }
            pos = to + hlen;
            e += n as u64;
        }
    }
    scratch.values = values;
    scratch.bytes = bytes;
}

/// `read_at` split across the current rayon pool; the bytes do not depend on the split.
pub fn read_at_parallel(generator: &Generator, offset: u64, buf: &mut [u8]) {
    prepare_whole_tensors(generator, offset, buf.len() as u64);
    if buf.len() <= TASK_BYTES {
        read_at(generator, offset, buf, &mut Scratch::default());
        return;
    }
    buf.par_chunks_mut(TASK_BYTES).enumerate().for_each_init(
        Scratch::default,
        |scratch, (i, part)| {
            read_at(generator, offset + (i * TASK_BYTES) as u64, part, scratch);
        },
    );
}

/// Computes, on the calling thread, the whole-tensor initializers (orthogonal, …) that the
/// range needs, before the range is split: their own parallel loops then get every thread of
/// the pool, instead of the other threads waiting on the tensor's `OnceLock`.
fn prepare_whole_tensors(generator: &Generator, offset: u64, len: u64) {
    let plan = generator.plan();
    let hlen = plan.header.len() as u64;
    let end = offset + len;
    if end <= hlen {
        return;
    }
    let rel = offset.saturating_sub(hlen);
    let rel_end = end - hlen;
    let first = plan.tensors.partition_point(|t| t.end <= rel);
    let mut scratch = Scratch::default();
    for (ti, t) in plan.tensors.iter().enumerate().skip(first) {
        if t.begin >= rel_end {
            break;
        }
        if t.numel > 0 && t.resolved.source.is_whole_tensor() {
            generator.fill(ti, 0, &mut [0.0], &mut scratch);
        }
    }
}

/// A forward reader over a byte range of the file, in chunks.
pub struct SafetensorsBody {
    generator: Generator,
    pos: u64,
    end: u64,
    chunk: usize,
}

impl SafetensorsBody {
    pub fn new(generator: Generator, start: u64, end: u64, chunk: usize) -> SafetensorsBody {
        SafetensorsBody {
            generator,
            pos: start,
            end,
            chunk: chunk.max(1),
        }
    }

    /// The next chunk, or `None` at the end. Uses the current rayon pool.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        self.next_chunk_into(&mut buf).then_some(buf)
    }

    /// The next chunk written into `buf`, resized to the chunk's length, or `false` at the end
    /// (`buf` untouched). A recycled buffer's old bytes never show: every byte of a chunk is
    /// header or tensor data (the data section has no gaps), and `read_at` writes them all.
    /// Reusing buffers saves zeroing a fresh one per chunk.
    pub fn next_chunk_into(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.pos >= self.end {
            return false;
        }
        let n = (self.end - self.pos).min(self.chunk as u64) as usize;
        buf.resize(n, 0);
        read_at_parallel(&self.generator, self.pos, buf);
        self.pos += n as u64;
        true
    }
}
