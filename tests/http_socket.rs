//! Real-socket tests: a several-hundred-MB stream with an exact Content-Length, a client that
//! disconnects, and graceful shutdown with an in-flight stream.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use paraminit::config::Config;
use paraminit::http::{AppState, router};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

async fn start(config: Config) -> (SocketAddr, AppState) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(config);
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> hyper::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    sender.send_request(req).await.unwrap()
}

fn content_length(res: &hyper::Response<Incoming>) -> u64 {
    res.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads the whole body, hashing it; returns (bytes, hash).
async fn drain(res: hyper::Response<Incoming>) -> (u64, Vec<u8>) {
    let mut body = res.into_body();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            n += d.len() as u64;
            h.update(&d);
        }
    }
    (n, h.finalize().to_vec())
}

/// The same file produced directly by the core, hashed.
fn direct_hash(req: &str) -> (u64, Vec<u8>) {
    let request = paraminit::spec::parse_bytes(req.as_bytes()).unwrap();
    let plan = paraminit::pipeline::build(request, &paraminit::plan::Limits::UNLIMITED).unwrap();
    let len = plan.file_bytes;
    let generator = paraminit::generate::Generator::new(Arc::new(plan));
    let mut body = paraminit::encode::safetensors::SafetensorsBody::new(generator, 0, len, 1 << 20);
    let mut h = Sha256::new();
    let mut n = 0;
    while let Some(c) = body.next_chunk() {
        n += c.len() as u64;
        h.update(&c);
    }
    (n, h.finalize().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_stream_has_exact_length_and_bytes() {
    let (addr, _) = start(test_config()).await;
    // 100M f32 normal values: 400 MB.
    let req = raw_request(100_000_000, r#"{"name": "normal", "std": 0.02}"#);
    let direct = {
        let req = req.clone();
        tokio::task::spawn_blocking(move || direct_hash(&req))
    };
    let t0 = Instant::now();
    let res = request(addr, "POST", "/v1/init?format=safetensors", &req).await;
    assert_eq!(res.status(), 200);
    let announced = content_length(&res);
    assert!(announced > 400_000_000);
    let (got, hash) = drain(res).await;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "streamed {got} bytes in {secs:.2} s ({:.2} GB/s)",
        got as f64 / secs / 1e9
    );
    assert_eq!(got, announced);
    let (dn, dh) = direct.await.unwrap();
    assert_eq!(dn, got);
    assert_eq!(dh, hash, "socket bytes differ from SafetensorsBody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_frees_the_slot() {
    let (addr, state) = start(Config {
        max_jobs: 1,
        ..test_config()
    })
    .await;
    let req = raw_request(500_000_000, "\"zeros\"");
    let res = request(addr, "POST", "/v1/init?format=safetensors", &req).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert_eq!(state.jobs.available_permits(), 0);
    let busy = request(addr, "POST", "/v1/init", SEED_MLP).await;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    drop(body); // closes the connection
    let t0 = Instant::now();
    loop {
        let res = request(addr, "GET", "/metrics", "").await;
        let (_, text) = {
            let b = res.into_body().collect().await.unwrap().to_bytes();
            ((), String::from_utf8(b.to_vec()).unwrap())
        };
        if gauge_value(&text, "paraminit_jobs_in_flight") == Some(0.0) {
            assert!(text.contains("outcome=\"aborted\""), "{text}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "slot still held:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ok = request(addr, "POST", "/v1/init", SEED_MLP).await;
    assert_eq!(ok.status(), 200);
    drain(ok).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_stream_finish() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(paraminit::http::serve_with_shutdown(
        listener,
        test_config(),
        async move {
            let _ = rx.await;
        },
    ));
    // 200 MB of zeros.
    let req = raw_request(50_000_000, "\"zeros\"");
    let res = request(addr, "POST", "/v1/init?format=safetensors", &req).await;
    assert_eq!(res.status(), 200);
    let announced = content_length(&res);
    let mut body = res.into_body();
    let mut got = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
        .len() as u64;
    tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While the stream goes on, new connections are still accepted so that probes see the
    // drain: `/readyz` and work routes answer 503 `shutting_down`, `/healthz` stays 200.
    let ready = request(addr, "GET", "/readyz", "").await;
    assert_eq!(ready.status(), 503);
    let work = request(addr, "POST", "/v1/plan", &req).await;
    assert_eq!(work.status(), 503);
    let work = work.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&work).contains("shutting_down"),
        "{work:?}"
    );
    assert_eq!(request(addr, "GET", "/healthz", "").await.status(), 200);
    assert!(!server.is_finished());
    while let Some(frame) = body.frame().await {
        got += frame
            .unwrap()
            .into_data()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
    }
    assert_eq!(got, announced);
    let r = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server did not stop after its last response");
    r.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_cuts_a_stalled_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(paraminit::http::serve_with_shutdown(
        listener,
        Config {
            shutdown_grace_secs: 1,
            ..test_config()
        },
        async move {
            let _ = rx.await;
        },
    ));
    let req = raw_request(500_000_000, "\"zeros\"");
    let res = request(addr, "POST", "/v1/init?format=safetensors", &req).await;
    assert_eq!(res.status(), 200);
    // Never read the body: the stream stalls.
    let t0 = Instant::now();
    tx.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("deadline not enforced");
    r.unwrap().unwrap();
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    drop(res);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_probes_the_service() {
    let (addr, _) = start(test_config()).await;
    let a = addr.to_string();
    tokio::task::spawn_blocking(move || paraminit::http::healthcheck(&a))
        .await
        .unwrap()
        .unwrap();
    let port = addr.port();
    let wildcard = format!("0.0.0.0:{port}");
    tokio::task::spawn_blocking(move || paraminit::http::healthcheck(&wildcard))
        .await
        .unwrap()
        .unwrap();
    // Nothing listens on a fresh port.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = free.local_addr().unwrap().to_string();
    drop(free);
    let r = tokio::task::spawn_blocking(move || paraminit::http::healthcheck(&dead))
        .await
        .unwrap();
    assert!(r.is_err());
}
