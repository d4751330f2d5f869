//! Timing helpers shared by the bench binaries (included with `#[path]`; not a binary itself).

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// (median, best) wall time of `runs` runs after one warm-up run. The best run is the least
/// disturbed by other load on the machine.
pub fn time_runs(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up (page faults, caches)
    let times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    (median(times), best)
}
