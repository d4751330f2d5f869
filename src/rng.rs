//! Random words for algorithm `paraminit-v1`: ChaCha8 keyed by the seed, one stream per tensor,
//! read at arbitrary word positions by seeking.
//!
//! Word position `p` of stream `s` under seed `seed` is word `p % 16` of the ChaCha8 block with
//! 64-bit counter `p / 16`, key `seed_from_u64(seed)` and 64-bit stream id (nonce) `s`, exactly as
//! `rand_chacha::ChaCha8Rng` numbers them (see `docs/determinism.md`, "Key and stream
//! derivation" and "Word positions").

#![allow(clippy::needless_range_loop)] // kernels index fixed-size lanes and words

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// The algorithm version id written into every response.
pub const ALGORITHM_ID: &str = "paraminit-v1";

/// Domain-separation prefix hashed before a stream identity (includes the trailing NUL byte).
pub const STREAM_DOMAIN: &[u8] = b"paraminit-v1 stream\0";

/// Word positions at and above this offset form the auxiliary region of a stream (used for
/// auxiliary draws such as sparse masks); element kernels only use positions below it.
pub const AUX_REGION: u128 = 1 << 64;

/// ChaCha's position space: a 64-bit block counter of 16-word blocks, so positions are taken
/// modulo 2^68 (the same as `ChaCha8Rng::set_word_pos`).
pub const POS_MODULUS: u128 = 1 << 68;

/// Number of words in one ChaCha block.
pub const BLOCK_WORDS: usize = 16;

/// ChaCha blocks computed side by side (one SIMD lane each).
const LANES: usize = 16;
/// Words produced per keystream call (16 ChaCha blocks).
const BUF_WORDS: usize = LANES * BLOCK_WORDS;

/// The 64-bit ChaCha stream id of a tensor's stream identity: the first 8 bytes, read
/// little-endian, of SHA-256(`"paraminit-v1 stream\0"` ‖ identity as UTF-8).
pub fn stream_id(identity: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(STREAM_DOMAIN);
    h.update(identity.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// Reads ranges of words of one (seed, stream) by seeking. Cheap to clone; reusable across
/// calls (keep one per tensor and worker thread).
///
/// The keystream is computed by this module's own ChaCha8 (16 blocks at a time, vectorized
/// across blocks, dispatched to AVX-512/AVX2 at run time); its words are those of
/// `rand_chacha::ChaCha8Rng` at the same position, which the tests check.
#[derive(Clone)]
pub struct WordReader {
    key: [u32; 8],
    /// Block number of the first block in `buf`, when `buf` holds 16 valid blocks.
    buffered: Option<u64>,
    buf: Box<[u32; BUF_WORDS]>,
    seed: u64,
    stream: u64,
}

impl core::fmt::Debug for WordReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WordReader")
            .field("seed", &self.seed)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl WordReader {
    /// A reader for stream `stream` of the ChaCha8 generator keyed by
    /// `ChaCha8Rng::seed_from_u64(seed)`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let bytes = ChaCha8Rng::seed_from_u64(seed).get_seed();
        let mut key = [0u32; 8];
        for (k, b) in key.iter_mut().zip(bytes.chunks_exact(4)) {
            *k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        WordReader {
            key,
            buffered: None,
            buf: Box::new([0u32; BUF_WORDS]),
            seed,
            stream,
        }
    }

    /// The seed this reader was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The stream id this reader reads.
    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// Fill `out[j]` with word `pos + j` of the stream (positions taken modulo 2^68).
    ///
    /// Seeks; never generates the blocks before the one holding `pos`.
    pub fn fill(&mut self, pos: u128, out: &mut [u32]) {
        let mut pos = pos % POS_MODULUS;
        let mut out = out;
        while !out.is_empty() {
            let block = (pos / BLOCK_WORDS as u128) as u64;
            let within = (pos % BLOCK_WORDS as u128) as usize;
            if within == 0 && out.len() >= BUF_WORDS {
                // 16 whole blocks: straight into the output.
                let (head, rest) = out.split_at_mut(BUF_WORDS);
                let head: &mut [u32; BUF_WORDS] = head.try_into().expect("16 blocks");
                chacha8_blocks(&self.key, self.stream, block, head);
                out = rest;
                pos = (pos + BUF_WORDS as u128) % POS_MODULUS;
                continue;
            }
            // A partial run: through the buffer (reused while reads stay inside it).
            let skip = match self.buffered {
                Some(b) if block.wrapping_sub(b) < LANES as u64 => {
                    block.wrapping_sub(b) as usize * BLOCK_WORDS + within
                }
                _ => {
                    chacha8_blocks(&self.key, self.stream, block, &mut self.buf);
                    self.buffered = Some(block);
                    within
                }
            };
            let n = (BUF_WORDS - skip).min(out.len());
            out[..n].copy_from_slice(&self.buf[skip..skip + n]);
            out = &mut out[n..];
            pos = (pos + n as u128) % POS_MODULUS;
        }
    }
}

/// The ChaCha quarter round on rows a, b, c, d of a word-major state (one lane per block).
#[inline(always)]
fn quarter(x: &mut [[u32; LANES]; 16], a: usize, b: usize, c: usize, d: usize) {
    let (mut va, mut vb, mut vc, mut vd) = (x[a], x[b], x[c], x[d]);
    for l in 0..LANES {
        va[l] = va[l].wrapping_add(vb[l]);
        vd[l] = (vd[l] ^ va[l]).rotate_left(16);
        vc[l] = vc[l].wrapping_add(vd[l]);
        vb[l] = (vb[l] ^ vc[l]).rotate_left(12);
        va[l] = va[l].wrapping_add(vb[l]);
        vd[l] = (vd[l] ^ va[l]).rotate_left(8);
        vc[l] = vc[l].wrapping_add(vd[l]);
        vb[l] = (vb[l] ^ vc[l]).rotate_left(7);
    }
    x[a] = va;
    x[b] = vb;
    x[c] = vc;
    x[d] = vd;
}

/// Blocks `block`, `block + 1`, … `block + 15` (block counter mod 2^64) of ChaCha8 with `key`
/// and 64-bit stream id `stream`, as 256 words in stream order.
#[inline(always)]
fn chacha8_blocks_generic(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; BUF_WORDS]) {
    const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
    let mut init = [[0u32; LANES]; 16];
    for w in 0..4 {
        init[w] = [SIGMA[w]; LANES];
    }
    for w in 0..8 {
        init[4 + w] = [key[w]; LANES];
    }
    for l in 0..LANES {
        let c = block.wrapping_add(l as u64);
        init[12][l] = c as u32;
        init[13][l] = (c >> 32) as u32;
    }
    init[14] = [stream as u32; LANES];
    init[15] = [(stream >> 32) as u32; LANES];
    let mut x = init;
    for _ in 0..4 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for w in 0..16 {
        for l in 0..LANES {
            x[w][l] = x[w][l].wrapping_add(init[w][l]);
        }
    }
    for (l, o) in out.chunks_exact_mut(BLOCK_WORDS).enumerate() {
        for w in 0..16 {
            o[w] = x[w][l];
        }
    }
}

/// `chacha8_blocks_generic` with AVX-512F intrinsics: one zmm register per state word (16
/// blocks across the lanes), then a 16×16 transpose into stream order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chacha8_blocks_avx512(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; BUF_WORDS]) {
    use std::arch::x86_64::*;
    let set = |v: u32| _mm512_set1_epi32(v as i32);
    let mut lo = [0i32; LANES];
    let mut hi = [0i32; LANES];
    for l in 0..LANES {
        let c = block.wrapping_add(l as u64);
        lo[l] = c as u32 as i32;
        hi[l] = (c >> 32) as u32 as i32;
    }
    let lanes = |a: [i32; LANES]| {
        _mm512_setr_epi32(
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13],
            a[14], a[15],
        )
    };
    let init: [__m512i; 16] = [
        set(0x6170_7865),
        set(0x3320_646e),
        set(0x7962_2d32),
        set(0x6b20_6574),
        set(key[0]),
        set(key[1]),
        set(key[2]),
        set(key[3]),
        set(key[4]),
        set(key[5]),
        set(key[6]),
        set(key[7]),
        lanes(lo),
        lanes(hi),
        set(stream as u32),
        set((stream >> 32) as u32),
    ];
    let mut x = init;
    macro_rules! qr {
        ($a:expr, $b:expr, $c:expr, $d:expr) => {
            x[$a] = _mm512_add_epi32(x[$a], x[$b]);
            x[$d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[$d], x[$a]));
            x[$c] = _mm512_add_epi32(x[$c], x[$d]);
            x[$b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[$b], x[$c]));
            x[$a] = _mm512_add_epi32(x[$a], x[$b]);
            x[$d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[$d], x[$a]));
            x[$c] = _mm512_add_epi32(x[$c], x[$d]);
            x[$b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[$b], x[$c]));
        };
    }
    for _ in 0..4 {
        qr!(0, 4, 8, 12);
        qr!(1, 5, 9, 13);
        qr!(2, 6, 10, 14);
        qr!(3, 7, 11, 15);
        qr!(0, 5, 10, 15);
        qr!(1, 6, 11, 12);
        qr!(2, 7, 8, 13);
        qr!(3, 4, 9, 14);
    }
    for w in 0..16 {
        x[w] = _mm512_add_epi32(x[w], init[w]);
    }
    // Transpose: x[w] lane l is word w of block l; block l goes to out[16 l ..].
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(x[2 * i], x[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(x[2 * i], x[2 * i + 1]);
    }
    // u[4i + j], 128-bit lane k = words 4i..4i+3 of block 4k + j.
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for j in 0..4 {
        let (a, b, c, d) = (u[j], u[4 + j], u[8 + j], u[12 + j]);
        let p0 = _mm512_shuffle_i32x4::<0x44>(a, b);
        let p1 = _mm512_shuffle_i32x4::<0xEE>(a, b);
        let p2 = _mm512_shuffle_i32x4::<0x44>(c, d);
        let p3 = _mm512_shuffle_i32x4::<0xEE>(c, d);
        let blocks = [
            _mm512_shuffle_i32x4::<0x88>(p0, p2),
            _mm512_shuffle_i32x4::<0xDD>(p0, p2),
            _mm512_shuffle_i32x4::<0x88>(p1, p3),
            _mm512_shuffle_i32x4::<0xDD>(p1, p3),
        ];
        for (k, v) in blocks.into_iter().enumerate() {
            let b = 4 * k + j;
            let dst: &mut [u32; BLOCK_WORDS] = (&mut out[16 * b..16 * b + 16])
                .try_into()
                .expect("one block");
            // SAFETY: `dst` is 16 writable u32 (64 bytes); storeu has no alignment requirement.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), v) };
        }
    }
}

/// `chacha8_blocks_generic` as AVX-512F intrinsics, or compiled for AVX2 or the baseline, picked at run time
/// (integer operations only: every build gives the same words).
#[inline(never)]
fn chacha8_blocks(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; BUF_WORDS]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; BUF_WORDS]) {
            chacha8_blocks_generic(key, stream, block, out)
        }
        if crate::simd::avx512f() {
            // SAFETY: the CPU supports AVX-512F (checked by `simd::avx512f`).
            return unsafe { chacha8_blocks_avx512(key, stream, block, out) };
        }
        if crate::simd::avx2() {
            // SAFETY: the CPU supports AVX2 (checked by `simd::avx2`).
            return unsafe { avx2(key, stream, block, out) };
        }
    }
    chacha8_blocks_generic(key, stream, block, out)
}

/// Words `[pos, pos + out.len())` of stream `stream` under `seed` (one-shot convenience for
/// auxiliary draws, e.g. at `AUX_REGION + offset`). Prefer a reused `WordReader` in loops.
pub fn fill_words_at(seed: u64, stream: u64, pos: u128, out: &mut [u32]) {
    WordReader::new(seed, stream).fill(pos, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    /// Reference: generate sequentially from position 0 with plain next_u32.
    fn sequential(seed: u64, stream: u64, n: usize) -> Vec<u32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        (0..n).map(|_| rng.next_u32()).collect()
    }

    #[test]
    fn stream_id_is_sha256_prefix_le() {
        // SHA-256("paraminit-v1 stream\0tensor/w") computed independently.
        let mut h = Sha256::new();
        h.update(b"paraminit-v1 stream\x00tensor/w");
        let d = h.finalize();
        let want = u64::from_le_bytes(d[..8].try_into().unwrap());
        assert_eq!(stream_id("tensor/w"), want);
        assert_ne!(stream_id("a"), stream_id("b"));
        assert_ne!(stream_id(""), stream_id("\0"));
    }

    #[test]
    fn fill_equals_sequential_generation_for_every_offset_and_length() {
        let s = stream_id("x");
        let all = sequential(7, s, 700);
        let mut r = WordReader::new(7, s);
        for start in [0usize, 1, 5, 15, 16, 17, 31, 63, 64, 65, 100, 255, 256, 257] {
            for len in [0usize, 1, 2, 15, 16, 17, 64, 255, 256, 257, 300] {
                let mut out = vec![0u32; len];
                r.fill(start as u128, &mut out);
                assert_eq!(out, &all[start..start + len], "start {start} len {len}");
            }
        }
    }

    #[test]
    fn contiguous_reads_equal_one_read() {
        let mut r = WordReader::new(1, 2);
        let mut one = vec![0u32; 1000];
        r.fill(12345, &mut one);
        let mut parts = vec![0u32; 1000];
        let mut p = 0;
        for len in [1usize, 3, 16, 200, 500, 280] {
            r.fill(12345 + p as u128, &mut parts[p..p + len]);
            p += len;
        }
        assert_eq!(p, 1000);
        assert_eq!(one, parts);
    }

    #[test]
    fn positions_at_and_above_2_64_and_wraparound() {
        let mut r = WordReader::new(3, 4);
        let mut a = [0u32; 40];
        r.fill(AUX_REGION + 5, &mut a);
        // Compare with direct rand_chacha seeking.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        rng.set_stream(4);
        rng.set_word_pos(AUX_REGION + 5);
        let b: Vec<u32> = (0..40).map(|_| rng.next_u32()).collect();
        assert_eq!(&a[..], &b[..]);
        // The region differs from the start of the stream.
        let mut c = [0u32; 40];
        r.fill(5, &mut c);
        assert_ne!(a, c);
        // Positions are mod 2^68.
        let mut d = [0u32; 40];
        r.fill(POS_MODULUS + 5, &mut d);
        assert_eq!(c, d);
        // A read crossing the 2^68 wrap continues at position 0.
        let mut e = [0u32; 20];
        r.fill(POS_MODULUS - 10, &mut e);
        let mut f = [0u32; 10];
        r.fill(0, &mut f);
        assert_eq!(&e[10..], &f[..]);
        let mut g = [0u32; 40];
        fill_words_at(3, 4, AUX_REGION + 5, &mut g);
        assert_eq!(a, g);
    }

    #[test]
    fn key_is_seed_from_u64_pcg32_expansion() {
        // rand_core's documented PCG32 expansion, written out independently.
        fn pcg32(state: &mut u64) -> [u8; 4] {
            const MUL: u64 = 0x5851_F42D_4C95_7F2D;
            const INC: u64 = 0xA176_54E4_6FBE_17F3;
            *state = state.wrapping_mul(MUL).wrapping_add(INC);
            let st = *state;
            let xorshifted = (((st >> 18) ^ st) >> 27) as u32;
            let rot = (st >> 59) as u32;
            xorshifted.rotate_right(rot).to_le_bytes()
        }
        let mut state = 42u64;
        let mut key = [0u8; 32];
        for c in key.chunks_exact_mut(4) {
            c.copy_from_slice(&pcg32(&mut state));
        }
        let a = ChaCha8Rng::seed_from_u64(42).get_seed();
        assert_eq!(a, key);
        let r = WordReader::new(42, 9);
        let mut words = [0u32; 8];
        for (w, b) in words.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes(b.try_into().unwrap());
        }
        assert_eq!(r.key, words);
        assert_eq!(r.stream(), 9);
    }

    #[test]
    fn every_simd_level_and_block_counter_carry_match_rand_chacha() {
        // Block counters around the 32-bit carry and the 64-bit wrap, at every SIMD level.
        for level in [0u8, 1, 2] {
            crate::simd::with_limit(level, || {
                for block in [0u64, 3, (1 << 32) - 5, u64::MAX - 7] {
                    let pos = block as u128 * 16 + 3;
                    let mut r = WordReader::new(11, 0xdead_beef_0123_4567);
                    let mut got = vec![0u32; 600];
                    r.fill(pos, &mut got);
                    let mut rng = ChaCha8Rng::seed_from_u64(11);
                    rng.set_stream(0xdead_beef_0123_4567);
                    rng.set_word_pos(pos);
                    let want: Vec<u32> = (0..600).map(|_| rng.next_u32()).collect();
                    assert_eq!(got, want, "level {level} block {block}");
                }
            });
        }
    }
}
