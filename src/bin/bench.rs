//! End-to-end throughput of paraminit on this machine.
//!
//! `cargo run --release --bin bench [-- OPTIONS]`
//!
//! For each initializer × dtype × format × thread count it builds a one-tensor request, plans
//! it, and times the whole path: safetensors via `encode::safetensors::read_at_parallel` into a
//! reused buffer (a fresh `Generator` per run, so whole-tensor initializers are recomputed),
//! JSON via `encode::json::JsonBody` chunk by chunk. It prints the median and best of the runs
//! in M elements/s (JSON: M numbers/s, and M numbers per CPU-second of all threads, steadier
//! on a shared machine) and GB/s of output, the machine's memcpy bandwidth as the ceiling, and
//! at the end the JSON goal of issue 17 (normal f32 ≥ 80 M numbers/s on 2 threads, bf16/f16
//! faster than f32).
//!
//! Options:
//!   --log2n N        elements per safetensors run (default 26)
//!   --json-log2n N   elements per JSON run (default 22)
//!   --runs R         timed runs after one warm-up (default 5)
//!   --threads 1,2    thread counts (default 1 and all cores)
//!   --only a,b       only these initializers (uniform, normal, trunc_normal, trunc_normal_002,
//!                    orthogonal, constant)
//!   --formats s,j    safetensors and/or json (default both)
//!   --dtypes f32,..  (default f32,bf16,f16)
//!   --no-ceiling     skip the memcpy ceiling (e.g. when profiling one case)
//!   --tsv            also print one tab-separated line per figure (for scripts/bench_peers.py):
//!                    init, dtype, format, threads, M/s, GB/s, median s, median CPU s

#[path = "shared/timing.rs"]
mod timing;
use timing::{time_runs, time_runs_cpu};

use std::hint::black_box;
use std::sync::Arc;

use paraminit::encode::json::JsonBody;
use paraminit::encode::safetensors::read_at_parallel;
use paraminit::generate::Generator;
use paraminit::plan::{Limits, Plan};
use paraminit::spec;

struct Opts {
    log2n: u32,
    json_log2n: u32,
    runs: usize,
    threads: Vec<usize>,
    only: Option<Vec<String>>,
    formats: Vec<String>,
    dtypes: Vec<String>,
    tsv: bool,
    ceiling: bool,
}

fn parse_opts() -> Opts {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Opts {
        log2n: 26,
        json_log2n: 22,
        runs: 5,
        threads: if cores > 1 { vec![1, cores] } else { vec![1] },
        only: None,
        formats: vec!["safetensors".into(), "json".into()],
        dtypes: vec!["f32".into(), "bf16".into(), "f16".into()],
        tsv: false,
        ceiling: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let list = |s: &str| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .collect::<Vec<_>>()
    };
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--log2n" => o.log2n = val.parse().expect("--log2n N"),
            "--json-log2n" => o.json_log2n = val.parse().expect("--json-log2n N"),
            "--runs" => o.runs = val.parse().expect("--runs R"),
            "--threads" => {
                o.threads = list(&val)
                    .iter()
                    .map(|t| t.parse().expect("--threads 1,2"))
                    .collect()
            }
            "--only" => o.only = Some(list(&val)),
            "--formats" => {
                o.formats = list(&val)
                    .into_iter()
                    .map(|f| match f.as_str() {
                        "s" | "safetensors" => "safetensors".to_string(),
                        "j" | "json" => "json".to_string(),
                        other => panic!("unknown format {other}"),
                    })
                    .collect()
            }
            "--dtypes" => o.dtypes = list(&val),
            "--tsv" => {
                o.tsv = true;
                i += 1;
                continue;
            }
            "--no-ceiling" => {
                o.ceiling = false;
                i += 1;
                continue;
            }
            "-h" | "--help" => {
                println!("see the doc comment of src/bin/bench.rs");
                std::process::exit(0);
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

fn dtype_name(d: &str) -> &'static str {
    match d {
        "f32" => "float32",
        "bf16" => "bfloat16",
        "f16" => "float16",
        "f64" => "float64",
        other => panic!("unknown dtype {other}"),
    }
}

/// (name, shape, init JSON) of each benchmarked initializer for `n` elements.
fn cases(n: u64) -> Vec<(&'static str, Vec<u64>, &'static str)> {
    vec![
        (
            "uniform",
            vec![n],
            r#"{"name":"uniform","low":-0.1,"high":0.1}"#,
        ),
        ("normal", vec![n], r#"{"name":"normal","mean":0,"std":1}"#),
        (
            "trunc_normal",
            vec![n],
            r#"{"name":"truncated_normal","mean":0,"std":1,"a":-2,"b":2}"#,
        ),
        (
            "trunc_normal_002",
            vec![n],
            r#"{"name":"truncated_normal","mean":0,"std":0.02,"a":-2,"b":2}"#,
        ),
        (
            "orthogonal",
            vec![4096, 4096],
            r#"{"name":"orthogonal","gain":1}"#,
        ),
        ("constant", vec![n], r#"{"name":"constant","value":0.5}"#),
    ]
}

fn make_plan(shape: &[u64], init: &str, dtype: &str) -> Arc<Plan> {
    let body = format!(
        r#"{{"seed":42,"dtype":"{}","tensors":[{{"name":"w","shape":{:?},"init":{}}}]}}"#,
        dtype_name(dtype),
        shape,
        init
    );
    let req = spec::parse_bytes(body.as_bytes()).expect("bench request parses");
    Arc::new(paraminit::pipeline::build(req, &Limits::UNLIMITED).expect("bench request plans"))
}

struct Row<'a> {
    init: &'a str,
    dtype: &'a str,
    format: &'a str,
    threads: usize,
    elements: u64,
    bytes: u64,
    t: (f64, f64),
    /// Median CPU seconds of a run (all threads), where readable.
    cpu: Option<f64>,
}

fn report(tsv: bool, r: &Row) {
    let (med, best) = r.t;
    let meps = r.elements as f64 / med / 1e6;
    let gbs = r.bytes as f64 / med / 1e9;
    // JSON figures are numbers printed per second; per CPU-second too, which on a shared
    // machine is steadier than wall time (it leaves out the time spent waiting for a core).
    let (unit, cpu) = if r.format == "json" {
        (
            "M numbers/s",
            r.cpu
                .map(|c| format!(", {:.1} M numbers/CPU-s", r.elements as f64 / c / 1e6))
                .unwrap_or_default(),
        )
    } else {
        ("Melem/s", String::new())
    };
    println!(
        "{:<17} {:<5} {:<11} {} thr  {:>9.1} {unit}  {:>7.3} GB/s   (best {:>8.1}, median {:.4} s{cpu})",
        r.init,
        r.dtype,
        r.format,
        r.threads,
        meps,
        gbs,
        r.elements as f64 / best / 1e6,
        med
    );
    if tsv {
        println!(
            "TSV\t{}\t{}\t{}\t{}\t{:.3}\t{:.4}\t{:.6}\t{:.6}",
            r.init,
            r.dtype,
            r.format,
            r.threads,
            meps,
            gbs,
            med,
            r.cpu.unwrap_or(f64::NAN)
        );
    }
}

/// The issue-17 goal for JSON: at least 80 M f32 numbers/s on 2 threads (normal f32), with
/// bf16/f16 faster than f32.
fn json_summary(rows: &[(String, String, usize, f64)]) {
    let get = |init: &str, dtype: &str, th: usize| {
        rows.iter()
            .find(|r| r.0 == init && r.1 == dtype && r.2 == th)
            .map(|r| r.3)
    };
    for th in rows
        .iter()
        .map(|r| r.2)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let Some(f32_rate) = get("normal", "f32", th) else {
            continue;
        };
        let goal = if th >= 2 {
            format!(
                "  [goal >= 80 M/s on 2 threads: {}]",
                if f32_rate >= 80e6 { "met" } else { "NOT met" }
            )
        } else {
            String::new()
        };
        println!(
            "JSON normal f32 {th} thr: {:.1} M numbers/s{goal}",
            f32_rate / 1e6
        );
        for dt in ["bf16", "f16"] {
            if let Some(x) = get("normal", dt, th) {
                println!(
                    "JSON normal {dt} {th} thr: {:.1} M numbers/s = {:.2}x f32  [faster than f32: {}]",
                    x / 1e6,
                    x / f32_rate,
                    if x > f32_rate { "yes" } else { "NO" }
                );
            }
        }
    }
}

fn memcpy_ceiling(o: &Opts) {
    // 256 MiB, well outside the caches.
    let len = 1usize << 28;
    let src = vec![1u8; len];
    let mut dst = vec![0u8; len];
    for &threads in &o.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let t = time_runs(o.runs, || {
            pool.install(|| {
                use rayon::prelude::*;
                let part = len.div_ceil(threads);
                dst.par_chunks_mut(part)
                    .zip(src.par_chunks(part))
                    .for_each(|(d, s)| d.copy_from_slice(s));
            });
            black_box(&dst);
        });
        println!(
            "memcpy ceiling   {threads} thr  {:>7.3} GB/s copied   (best {:.3} GB/s)",
            len as f64 / t.0 / 1e9,
            len as f64 / t.1 / 1e9
        );
        if o.tsv {
            println!(
                "TSV\tmemcpy\t-\t-\t{threads}\t0\t{:.4}\t{:.6}\tnan",
                len as f64 / t.0 / 1e9,
                t.0
            );
        }
    }
}

fn main() {
    let o = parse_opts();
    println!(
        "paraminit bench: 2^{} elements per safetensors run, 2^{} per JSON run, {} runs (median), threads {:?}, {} cores",
        o.log2n,
        o.json_log2n,
        o.runs,
        o.threads,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if o.ceiling {
        memcpy_ceiling(&o);
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut json_rows = Vec::new();
    for format in &o.formats {
        let n = 1u64
            << if format == "json" {
                o.json_log2n
            } else {
                o.log2n
            };
        for (name, shape, init) in cases(n) {
            if let Some(only) = &o.only
                && !only.iter().any(|x| x == name)
            {
                continue;
            }
            for dtype in &o.dtypes {
                // Orthogonal: the QR dominates and is the same for every dtype and format.
                if name == "orthogonal" && (dtype != "f32" || format == "json") {
                    continue;
                }
                let plan = make_plan(&shape, init, dtype);
                let elements = plan.total_elements;
                let data_start = plan.data_start();
                let data_bytes = plan.file_bytes - data_start;
                let runs = if name == "orthogonal" {
                    o.runs.min(3)
                } else {
                    o.runs
                };
                for &threads in &o.threads {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .expect("thread pool");
                    let (t, bytes) = if format == "safetensors" {
                        buf.resize(data_bytes as usize, 0);
                        let t = time_runs_cpu(runs, || {
                            let g = Generator::new(plan.clone());
                            pool.install(|| read_at_parallel(&g, data_start, &mut buf));
                            black_box(&buf);
                        });
                        (t, data_bytes)
                    } else {
                        let mut bytes = 0u64;
                        let t = time_runs_cpu(runs, || {
                            let mut body = JsonBody::new(Generator::new(plan.clone()), 1 << 16);
                            bytes = 0;
                            pool.install(|| {
                                while let Some(c) = body.next_chunk() {
                                    bytes += c.len() as u64;
                                    black_box(&c);
                                }
                            });
                        });
                        (t, bytes)
                    };
                    if format == "json" {
                        json_rows.push((
                            name.to_string(),
                            dtype.clone(),
                            threads,
                            elements as f64 / t.0,
                        ));
                    }
                    report(
                        o.tsv,
                        &Row {
                            init: name,
                            dtype,
                            format,
                            threads,
                            elements,
                            bytes,
                            t: (t.0, t.1),
                            cpu: t.2,
                        },
                    );
                }
            }
        }
    }
    json_summary(&json_rows);
}
