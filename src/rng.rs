//! Random words for algorithm `paraminit-v1`: ChaCha8 keyed by the seed, one stream per tensor,
//! read at arbitrary word positions by seeking.
//!
//! Word position `p` of stream `s` under seed `seed` is word `p % 16` of the ChaCha8 block with
//! 64-bit counter `p / 16`, key `seed_from_u64(seed)` and 64-bit stream id (nonce) `s`, exactly as
//! `rand_chacha::ChaCha8Rng` numbers them (see `docs/determinism.md`, "Key and stream
//! derivation" and "Word positions").

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
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

/// Words moved per `fill_bytes` call through the reader's byte buffer (16 ChaCha blocks).
const BUF_WORDS: usize = 256;

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
#[derive(Clone)]
pub struct WordReader {
    rng: ChaCha8Rng,
    /// The word position the generator will produce next (mod 2^68), if known. Avoids a
    /// re-seek (and the regeneration of a partial block) when reads are contiguous.
    next: Option<u128>,
    buf: Box<[u8; BUF_WORDS * 4]>,
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
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Stream first, then position: the order that behaves the same in every ChaCha crate.
        rng.set_stream(stream);
        rng.set_word_pos(0);
        WordReader {
            rng,
            next: Some(0),
            buf: Box::new([0u8; BUF_WORDS * 4]),
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
    /// Seeks with `set_word_pos`; never generates the words before `pos`.
    pub fn fill(&mut self, pos: u128, out: &mut [u32]) {
        if out.is_empty() {
            return;
        }
        let pos = pos % POS_MODULUS;
        if self.next != Some(pos) {
            self.rng.set_word_pos(pos);
        }
        for chunk in out.chunks_mut(BUF_WORDS) {
            let bytes = &mut self.buf[..chunk.len() * 4];
            self.rng.fill_bytes(bytes);
            for (w, b) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        self.next = Some((pos + out.len() as u128) % POS_MODULUS);
    }
}

/// Words `[pos, pos + out.len())` of stream `stream` under `seed` (one-shot convenience for
/// auxiliary draws, e.g. at `AUX_REGION + offset`). Prefer a reused `WordReader` in loops.
pub fn fill_words_at(seed: u64, stream: u64, pos: u128, out: &mut [u32]) {
    WordReader::new(seed, stream).fill(pos, out);
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.rng.get_seed(), key);
        assert_eq!(r.rng.get_stream(), 9);
    }
}
