//! Run-time SIMD dispatch, in one place: which instruction sets the hot loops may use (the CPU's
//! features, capped by one process-wide test switch), and `multiversion!`, which compiles a
//! loop for the baseline target, AVX2 and AVX-512F and picks one per call. The keystream
//! (`rng`), the element kernels (`sample`) and the QR (`structured`) all dispatch through here,
//! so a test that lowers the cap exercises every portable fallback. A leaf: it depends on
//! nothing else in the crate.
//!
//! Every level gives the same bits (only IEEE-754 basic operations and exact fused
//! multiply-adds are used, see docs/determinism.md); the switch exists so that tests can prove
//! it on a machine that has the wider units.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};

/// 0 = baseline target only, 1 = up to AVX2, 2 = up to AVX-512F (the default).
static LIMIT: AtomicU8 = AtomicU8::new(2);

/// Serializes `with_limit` callers, so that two tests switching levels do not interleave.
static SWITCH: Mutex<()> = Mutex::new(());

/// Caps the instruction sets every SIMD path may use: 0 = baseline target only, 1 = up to
/// AVX2, 2 = up to AVX-512F (the default). Process-global; prefer `with_limit` in tests.
#[doc(hidden)]
pub fn set_limit(level: u8) {
    LIMIT.store(level, Ordering::Relaxed);
}

/// The current cap set by `set_limit`.
#[inline(always)]
pub fn limit() -> u8 {
    LIMIT.load(Ordering::Relaxed)
}

/// Runs `f` with the cap at `level`, then restores the default (2). Calls are serialized.
#[doc(hidden)]
pub fn with_limit<R>(level: u8, f: impl FnOnce() -> R) -> R {
    let _guard = SWITCH.lock().unwrap_or_else(PoisonError::into_inner);
    set_limit(level);
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            set_limit(2);
        }
    }
    let _restore = Restore;
    f()
}

/// Whether AVX-512F code may run: the CPU has it and the cap allows it.
#[inline(always)]
pub fn avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        limit() >= 2 && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AVX2 code may run: the CPU has it and the cap allows it.
#[inline(always)]
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        limit() >= 1 && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compiles a loop for the baseline target and for AVX2 and AVX-512F, and picks one at run time
/// (`avx512f()`, then `avx2()`, else the baseline). Only IEEE-754 basic operations are used in
/// the loops, so every version gives the same bits (Rust never contracts to FMA;
/// `tests/sample_stats.rs` and `structured::tests` cross-check the levels).
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        #[inline(never)]
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    generic($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $crate::simd::avx512f() {
                    // SAFETY: the CPU supports AVX-512F (checked by `simd::avx512f`).
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::simd::avx2() {
                    // SAFETY: the CPU supports AVX2 (checked by `simd::avx2`).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;
