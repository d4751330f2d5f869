//! Issue 11, item 7: generated requests with huge multipliers (layer stacks, recurrent stacks,
//! `hf_config` models, `analyze` and `adaptive` models, whole-tensor initializers) sent to the
//! real binary started under an address-space cap (`prlimit --as`, 3 GiB), so that a runaway
//! allocation aborts the server and fails the test instead of swapping the machine. Each must
//! be answered 4xx within a second, the server must stay alive, and its peak RSS (VmHWM) must
//! stay far below the cap. The requests come from a small seeded PRNG (deterministic, so a
//! failure names a reproducible case).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CAP_BYTES: u64 = 3 << 30;
/// Peak RSS allowed for the whole run (the idle server is ~40 MB).
const MAX_HWM_KB: u64 = 512 * 1024;
const CASES: usize = 240;

/// xorshift64*: a few lines, deterministic, good enough to spread the multipliers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Log-uniform in [lo, hi]: huge multipliers of every magnitude.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((a + u * (b - a)).exp() as u64).clamp(lo, hi)
    }
    fn coin(&mut self) -> bool {
        self.next() >> 63 == 1
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// One generated request that must be refused by construction: (route, body, what it is).
fn case(rng: &mut Rng) -> (&'static str, Value) {
    let gen_route = *rng.pick(&["/v1/plan", "/v1/init", "/v1/init?format=json"]);
    match rng.next() % 8 {
        // Dense/conv stacks whose weights pass 10^12 elements (PARAMINIT_MAX_ELEMENTS).
        0 => {
            let (i, o) = (
                rng.between(2_000_000, 1 << 30),
                rng.between(1_000_000, 1 << 30),
            );
            let depth = rng.between(1, 50);
            let mut layers = vec![json!({"type": "dense", "in_features": i, "out_features": o})];
            for _ in 1..depth {
                layers.push(json!({"type": "dense", "out_features": o}));
            }
            (gen_route, json!({"seed": 1, "layers": layers}))
        }
        1 => {
            let c = rng.between(1_000_000, 1 << 28);
            let k = rng.between(1, 64);
            (
                gen_route,
                json!({"seed": 1, "framework": *rng.pick(&["pytorch", "keras", "flax"]), "layers": [
                {"type": "conv2d", "in_channels": c, "out_channels": c, "kernel_size": [k, k]}]}),
            )
        }
        // Recurrent stacks: too many layers (tensors) or too wide (elements).
        2 => {
            let ty = *rng.pick(&["lstm", "gru", "rnn"]);
            let body = if rng.coin() {
                json!({"type": ty, "input_size": 4, "hidden_size": 4, "num_layers": rng.between(200_000, 4_000_000_000), "bidirectional": rng.coin()})
            } else {
                json!({"type": ty, "input_size": 1, "hidden_size": rng.between(1_000_000, 1 << 31), "num_layers": rng.between(1, 1000)})
            };
            (gen_route, json!({"seed": 1, "layers": [body]}))
        }
        // Hugging Face configs: a loop of layers past the tensor limit, or an embedding past
        // the element limit.
        3 => {
            let layers = rng.between(100_000, 4_000_000_000);
            let vocab = rng.between(20_000_000_000, 1 << 50);
            let big_loop = rng.coin();
            let cfg = match rng.next() % 3 {
                0 => {
                    json!({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": if big_loop { layers } else { 2 }, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": if big_loop { 100 } else { vocab }})
                }
                1 => {
                    json!({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": if big_loop { layers } else { 2 }, "vocab_size": if big_loop { 100 } else { vocab }, "n_positions": 16})
                }
                _ => {
                    json!({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": if big_loop { layers } else { 2 }, "vocab_size": if big_loop { 100 } else { vocab }, "max_position_embeddings": 16})
                }
            };
            (gen_route, json!({"seed": 1, "hf_config": cfg}))
        }
        // analyze: weights past its own bound (2^24 elements held), within the request limits.
        4 => {
            let w = rng.between(4200, 1_000_000);
            let depth = rng.between(1, 8);
            let mut layers = vec![
                json!({"type": "dense", "in_features": w, "out_features": w, "activation": "relu"}),
            ];
            for _ in 1..depth {
                layers.push(json!({"type": "dense", "out_features": w, "activation": "relu"}));
            }
            ("/v1/analyze", json!({"seed": 1, "layers": layers}))
        }
        // adaptive: inside the work bound, past the activation bound.
        5 => {
            let o = rng.between(70_000, 1 << 23);
            (
                "/v1/plan",
                json!({"seed": 1, "recipe": "adaptive", "layers": [{"type": "dense", "in_features": 1, "out_features": o}]}),
            )
        }
        // Whole-tensor initializers past their bounds (2^24 elements; orthogonal's small side
        // 4096).
        6 => {
            let shape = if rng.coin() {
                json!([1, rng.between((1 << 24) + 1, 1 << 40)])
            } else {
                let s = rng.between(4097, 1 << 20);
                json!([s, s])
            };
            let init = *rng.pick(&["orthogonal", "sparse", "delta_orthogonal"]);
            let shape = if init == "delta_orthogonal" {
                json!([shape[1], shape[1], 1])
            } else {
                shape
            };
            (
                gen_route,
                json!({"seed": 1, "tensors": [{"name": "w", "shape": shape, "init": init}]}),
            )
        }
        // Embeddings past the element limit, and mixtures of experts past the tensor limit.
        _ => {
            if rng.coin() {
                let (n, d) = (
                    rng.between(2_000_000, 1 << 40),
                    rng.between(1_000_000, 1 << 30),
                );
                (
                    gen_route,
                    json!({"seed": 1, "layers": [{"type": "embedding", "num_embeddings": n, "embedding_dim": d}]}),
                )
            } else {
                let experts = rng.between(100_000, 4_000_000_000);
                (
                    gen_route,
                    json!({"seed": 1, "hf_config": {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100, "num_local_experts": experts}}),
                )
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Status code and body of one request (`Connection: close`, read to the end).
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A refusal may come before the whole body is read; the server then closes.
    let _ = s.write_all(body);
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.chars().take(300).collect())
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn huge_multipliers_are_refused_by_a_capped_server() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = Server(
        Command::new("prlimit")
            .arg(format!("--as={CAP_BYTES}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_paraminit"))
            .arg("serve")
            .env("PARAMINIT_ADDR", addr.to_string())
            .env("PARAMINIT_THREADS", "2")
            .env("PARAMINIT_MAX_JOBS", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prlimit (util-linux) and the paraminit binary"),
    );
    let pid = server.0.id();
    let t = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        assert!(server.0.try_wait().unwrap().is_none(), "server exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(request(addr, "GET", "/healthz", b"").0, 200);
    // The cap is really on the server process (prlimit execs it: same pid).
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .unwrap();
    assert!(line.contains(&CAP_BYTES.to_string()), "{line}");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut slowest = Duration::ZERO;
    for i in 0..CASES {
        let (route, body) = case(&mut rng);
        let bytes = serde_json::to_vec(&body).unwrap();
        let what = || {
            let s = String::from_utf8_lossy(&bytes);
            s.chars().take(300).collect::<String>()
        };
        let t = Instant::now();
        let (code, answer) = request(addr, "POST", route, &bytes);
        let took = t.elapsed();
        slowest = slowest.max(took);
        assert!(
            (400..500).contains(&code),
            "case {i}: {route} answered {code} ({answer}) to {}",
            what()
        );
        assert!(
            took < Duration::from_secs(1),
            "case {i}: {route} took {took:?} for {}",
            what()
        );
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "case {i}: the server died on {}",
            what()
        );
    }
    assert_eq!(request(addr, "GET", "/healthz", b"").0, 200);
    let hwm = vm_hwm_kb(pid);
    eprintln!("{CASES} cases, slowest answer {slowest:?}, peak RSS {hwm} kB");
    assert!(hwm < MAX_HWM_KB, "peak RSS {hwm} kB");
    drop(server);
}
