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

/// CPU time of all threads of this process so far, in seconds (Linux: the run time in ns of
/// each task in `/proc/self/task/*/schedstat`); `None` where that is not readable. On a
/// machine shared with other work, wall time also counts the time the threads waited for a
/// core; CPU time does not (it still includes slowdowns from sharing caches and cores).
pub fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

/// Like `time_runs`, plus the median CPU seconds (all threads) of a run, when readable.
#[allow(dead_code)] // used by `bench`, not by `bench_kernels`
pub fn time_runs_cpu(runs: usize, mut f: impl FnMut()) -> (f64, f64, Option<f64>) {
    let mut cpu = Vec::new();
    let (med, best) = time_runs(runs, || {
        let c0 = cpu_seconds();
        f();
        if let (Some(a), Some(b)) = (c0, cpu_seconds()) {
            cpu.push(b - a);
        }
    });
    // The warm-up run is the first one measured; leave it out.
    let cpu = (cpu.len() > 1).then(|| median(cpu[1..].to_vec()));
    (med, best, cpu)
}
