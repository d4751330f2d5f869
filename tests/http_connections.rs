//! Connection-level bounds (issue 11): hyper's timer with a header-read timeout closes a
//! connection that sends nothing, or one byte a second, and an idle kept-alive one; the
//! connection cap closes the excess at once while `/healthz` still answers on the overflow;
//! metric labels come from fixed sets; request-body bytes in flight are bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use paraminit::config::Config;

/// Blocks until the server closes `s` (read returns 0 or an error); the time it took.
fn time_to_close(mut s: TcpStream, limit: Duration) -> Duration {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return t.elapsed(),
            Ok(_) => {}
        }
    }
}

fn config(header_timeout_secs: u64, max_connections: usize) -> Config {
    Config {
        header_timeout_secs,
        max_connections,
        ..test_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_are_closed() {
    let addr = serve_on_loopback(config(1, 64)).await;
    tokio::task::spawn_blocking(move || {
        // Sends nothing.
        let s = TcpStream::connect(addr).unwrap();
        let d = time_to_close(s, Duration::from_secs(10));
        assert!(
            d < Duration::from_secs(5),
            "silent connection open for {d:?}"
        );
        // One byte every 300 ms keeps no request head alive past the timeout.
        let mut s = TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
        for b in head {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            if t.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        let d = time_to_close(s, Duration::from_secs(10)) + t.elapsed();
        assert!(d < Duration::from_secs(8), "trickling head kept open {d:?}");
        // A kept-alive connection that sends no next request is closed too.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let d = time_to_close(s, Duration::from_secs(10));
        assert!(d < Duration::from_secs(5), "idle keep-alive open for {d:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_healthz_still_answers() {
    let addr = serve_on_loopback(config(30, 2)).await;
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        // The third connection is an overflow one: served once, then closed.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        // Past the overflow too: closed at once, nothing served.
        let overflow: Vec<TcpStream> = (0..paraminit::http::OVERFLOW_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let s = TcpStream::connect(addr).unwrap();
        let d = time_to_close(s, Duration::from_secs(5));
        assert!(d < Duration::from_secs(2), "{d:?}");
        drop(overflow);
        drop(held);
        // Freed: a normal connection is served again.
        std::thread::sleep(Duration::from_millis(300));
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn metric_labels_come_from_fixed_sets() {
    let (app, _) = app_with(Config {
        api_token: Some("t".into()),
        metrics_public: true,
        ..test_config()
    });
    for i in 0..300 {
        let method = format!("X{}{}", "M".repeat(i % 40), i);
        let req = Request::builder()
            .method(method.as_str())
            .uri(format!("/v1/no-such-route-{i}"))
            .body(Body::empty())
            .unwrap();
        let _ = send(&app, req).await;
    }
    let text = String::from_utf8(body_bytes(send(&app, get("/metrics")).await).await).unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("paraminit_http_requests_total{"))
        .collect();
    assert!(series.len() <= 4, "{series:#?}");
    assert!(
        series
            .iter()
            .any(|l| l.contains("method=\"other\"") && l.contains("route=\"unmatched\"")),
        "{series:#?}"
    );
    assert!(!text.contains("XMM"));
}

/// A body that announces its length and then never sends it.
struct Stalled;
impl http_body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_being_received_are_bounded() {
    let (app, _) = app_with(Config {
        max_body_bytes: 1000,
        max_body_bytes_in_flight: 2000,
        body_timeout_secs: 30,
        ..test_config()
    });
    let stalled = || {
        Request::post("/v1/plan")
            .header("content-type", "application/json")
            .header("content-length", "1000")
            .body(Body::new(Stalled))
            .unwrap()
    };
    let a = tokio::spawn(send_owned(app.clone(), stalled()));
    let b = tokio::spawn(send_owned(app.clone(), stalled()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = send(&app, stalled()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT")
    );
    // The two stalled bodies reserve all 2000 bytes; once one goes away, a request is
    // served again.
    a.abort();
    let _ = a.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    json_of(&app, post("/v1/plan", SEED_MLP), StatusCode::OK).await;
    b.abort();
}

async fn send_owned(app: axum::Router, req: Request<Body>) -> StatusCode {
    send(&app, req).await.status()
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_during_the_grace_period() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(paraminit::http::serve_with_shutdown(
        listener,
        Config {
            shutdown_grace_secs: 5,
            ..test_config()
        },
        async move {
            let _ = rx.await;
        },
    ));
    let texts = tokio::task::spawn_blocking(move || {
        // An in-flight stream that is never read keeps the grace period running.
        let mut held = TcpStream::connect(addr).unwrap();
        let body = raw_request(100_000_000, "\"normal\"");
        write!(held, "POST /v1/init?format=safetensors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(http_get(addr, "/readyz").starts_with("HTTP/1.1 200"));
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let r = (http_get(addr, "/readyz"), http_get(addr, "/v1/initializers"), http_get(addr, "/healthz"));
        drop(held);
        r
    })
    .await
    .unwrap();
    assert!(
        texts.0.starts_with("HTTP/1.1 503") && texts.0.contains("shutting_down"),
        "{}",
        texts.0
    );
    assert!(
        texts.1.starts_with("HTTP/1.1 503") && texts.1.contains("shutting_down"),
        "{}",
        texts.1
    );
    assert!(texts.2.starts_with("HTTP/1.1 200"), "{}", texts.2);
    // The process side: serve returns within the grace period.
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn spec_is_percent_decoded() {
    use base64::Engine;
    let app = app();
    let padded = base64::engine::general_purpose::URL_SAFE
        .encode(r#"{"seed": 1, "tensors": [{"name": "a", "shape": [2], "init": "ones"}]}"#);
    let escaped: String = padded.bytes().map(|b| format!("%{b:02X}")).collect();
    let a = body_bytes(send(&app, get(&format!("/v1/init?spec={padded}"))).await).await;
    let b = body_bytes(send(&app, get(&format!("/v1/init?spec={escaped}"))).await).await;
    assert_eq!(a, b);
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["tensors"][0]["data"], serde_json::json!([1.0, 1.0]));
    let v = json_of(&app, get("/v1/init?spec=%G1"), StatusCode::BAD_REQUEST).await;
    assert_envelope(&v, "invalid_query", Some("?spec"));
}

/// `format=` and `batch=` go through the same percent-decoding as `spec=`; repeated and unknown
/// parameters keep their rules (format: last wins, every value checked; unknown: ignored).
#[tokio::test]
async fn format_and_batch_are_percent_decoded() {
    let app = app();
    let body = r#"{"seed": 1, "tensors": [{"name": "a", "shape": [2], "init": "ones"}]}"#;
    let plain = send(&app, post("/v1/init?format=safetensors", body)).await;
    assert_eq!(plain.status(), StatusCode::OK);
    let plain = body_bytes(plain).await;
    let escaped = send(&app, post("/v1/init?format=%73afetensors&x=%ZZ", body)).await;
    assert_eq!(
        escaped.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(body_bytes(escaped).await, plain);
    let last = send(&app, post("/v1/init?format=json&format=safetensors", body)).await;
    assert_eq!(body_bytes(last).await, plain);
    let v = json_of(
        &app,
        post("/v1/init?format=xml&format=json", body),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_envelope(&v, "invalid_query", Some("?format"));
    assert_eq!(
        v["error"]["message"],
        "unknown format \"xml\"; use json or safetensors"
    );
    let v = json_of(
        &app,
        post("/v1/analyze?batch=%36%34", SEED_MLP),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["batch_size"], 64);
    let v = json_of(
        &app,
        post("/v1/analyze?batch=%30", SEED_MLP),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_envelope(&v, "invalid_query", Some("?batch"));
}

/// A body at the size limit takes a second or more to parse and validate; that runs off the
/// async workers, so `/healthz` answers meanwhile even on a runtime of one worker thread (on
/// which a parse on the worker would hold it for the whole parse).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_big_body_is_parsed_off_the_async_workers() {
    let addr = serve_on_loopback(test_config()).await;
    tokio::task::spawn_blocking(move || {
        // 90,000 valid tensors, then one with an unknown initializer: the whole body is parsed
        // and validated, and the answer is a 422, so no plan is built.
        let mut body = String::from(r#"{"seed":1,"tensors":["#);
        for i in 0..90_000 {
            body.push_str(&format!(
                r#"{{"name":"block.{i:06}.weight","shape":[1],"init":{{"name":"normal","std":0.02}}}},"#
            ));
        }
        body.push_str(r#"{"name":"last","shape":[1],"init":"no_such_initializer"}]}"#);
        assert!(body.len() < 8 << 20, "{} bytes", body.len());
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let big = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            write!(
                s,
                "POST /v1/plan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            s.write_all(body.as_bytes()).unwrap();
            let sent = Instant::now();
            sent_tx.send(()).unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            (text, sent.elapsed())
        });
        sent_rx.recv().unwrap();
        let t = Instant::now();
        let health = http_get(addr, "/healthz");
        let health_latency = t.elapsed();
        let (text, parse) = big.join().unwrap();
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(text.starts_with("HTTP/1.1 422"), "{}", &text[..text.len().min(300)]);
        assert!(
            health_latency * 2 < parse,
            "/healthz took {health_latency:?} while the body took {parse:?} to parse"
        );
    })
    .await
    .unwrap();
}
