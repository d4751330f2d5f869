//! Single-thread throughput of the element kernels and of raw ChaCha8 words.
//!
//! `cargo run --release --bin bench_kernels [-- LOG2_N RUNS]` (defaults 24 and 5): prints the
//! median elements/s (words/s) over RUNS runs of 2^LOG2_N elements, for each kernel.

use paraminit::rng::{WordReader, stream_id};
use paraminit::sample::{Kernel, TruncParams, fill};
use std::hint::black_box;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time_runs(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up (page faults, caches)
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let log2n: u32 = args.get(1).map_or(24, |s| s.parse().expect("LOG2_N"));
    let runs: usize = args.get(2).map_or(5, |s| s.parse().expect("RUNS"));
    let n = 1usize << log2n;
    let mut reader = WordReader::new(42, stream_id("bench/weight"));

    let mut words = vec![0u32; n];
    let t = time_runs(runs, || {
        reader.fill(0, black_box(&mut words));
        black_box(&words);
    });
    println!(
        "chacha8 words           {:8.1} M words/s",
        n as f64 / t / 1e6
    );

    let mut bytes = vec![0u8; 4 * n];
    let t = time_runs(runs, || {
        use rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        rng.fill_bytes(black_box(&mut bytes));
        black_box(&bytes);
    });
    println!(
        "chacha8 raw fill_bytes  {:8.1} M words/s",
        n as f64 / t / 1e6
    );

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
        println!("{name:<23} {:8.1} M elem/s", n as f64 / t / 1e6);
    }
}
