//! Single-thread throughput of the element kernels and of raw ChaCha8 words.
//!
//! `cargo run --release --bin bench_kernels [-- LOG2_N RUNS]` (defaults 24 and 5): prints the
//! median and best elements/s (words/s) over RUNS runs of 2^LOG2_N elements, for each kernel.

#[path = "shared/timing.rs"]
mod timing;
use timing::time_runs;

use paraminit::rng::{WordReader, stream_id};
use paraminit::sample::{Kernel, TruncParams, fill};
use std::hint::black_box;

fn report(name: &str, unit: &str, n: usize, (med, best): (f64, f64)) {
    println!(
        "{name:<24} median {:7.1} M {unit}/s   best {:7.1} M {unit}/s",
        n as f64 / med / 1e6,
        n as f64 / best / 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let log2n: u32 = args.get(1).map_or(24, |s| s.parse().expect("LOG2_N"));
    let runs: usize = args.get(2).map_or(5, |s| s.parse().expect("RUNS"));
    let n = 1usize << log2n;
    let mut reader = WordReader::new(42, stream_id("bench/weight"));

    let mut bytes = vec![0u8; 4 * n];
    let t = time_runs(runs, || {
        use rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        rng.fill_bytes(black_box(&mut bytes));
        black_box(&bytes);
    });
    report("chacha8 raw fill_bytes", "words", n, t);

    let mut words = vec![0u32; n];
    let t = time_runs(runs, || {
        reader.fill(0, black_box(&mut words));
        black_box(&words);
    });
    report("chacha8 via WordReader", "words", n, t);

    let mut out = vec![0f32; n];
    let kernels = [
        (
            "uniform",
            Kernel::Uniform {
                low: -0.1,
                scale: 0.2,
            },
        ),
        (
            "normal",
            Kernel::Normal {
                mean: 0.0,
                std: 0.02,
            },
        ),
        (
            "trunc_normal [-2,2]",
            Kernel::TruncNormal(TruncParams::new(0.0, 0.02, -0.04, 0.04)),
        ),
        (
            "trunc_normal [1,4] mir",
            Kernel::TruncNormal(TruncParams::new(0.0, 1.0, 1.0, 4.0)),
        ),
    ];
    for (name, k) in kernels {
        let t = time_runs(runs, || {
            fill(&mut reader, black_box(&k), 0, black_box(&mut out));
            black_box(&out);
        });
        report(name, "elem", n, t);
    }
}
