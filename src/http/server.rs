//! The server loop: our own accept loop on hyper-util (connection cap with a small overflow
//! served one request each, header and first-byte timeouts), the panic hook, signal handling
//! and graceful shutdown (draining: `/readyz` answers 503 while in-flight responses finish).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{AppState, router};
use crate::config::Config;

/// Binds `config.addr` and serves until SIGTERM or Ctrl-C, then lets in-flight responses
/// finish for up to `PARAMINIT_SHUTDOWN_GRACE_SECS`.
pub async fn serve(config: Config) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {} (PARAMINIT_ADDR): {e}", config.addr),
        )
    })?;
    serve_with_shutdown(listener, config, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves; then stops accepting, waits for in-flight
/// responses up to the grace period, and returns.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    install_panic_hook();
    let state = AppState::new(config);
    let app = router(state.clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, config = ?state.config, "paraminit listening");
    if state.config.api_token.is_none() && !state.config.auth_none {
        tracing::warn!(
            "PARAMINIT_API_TOKEN is not set: every route is open to anyone who can connect (set PARAMINIT_AUTH=none to say this is intended)"
        );
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (builder, overflow_builder) = connection_builders(&state.config);
    let (builder, overflow_builder) = (
        Arc::new((builder, false)),
        Arc::new((overflow_builder, true)),
    );
    let header_timeout = Duration::from_secs(state.config.header_timeout_secs);
    // Open connections are capped; past the cap a few more are served one request each with
    // a short header timeout (so `/healthz` still answers a probe), the rest closed at once.
    let connections = Arc::new(Semaphore::new(state.config.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (permit, b) = match connections.clone().try_acquire_owned() {
                    Ok(p) => (p, builder.clone()),
                    Err(_) => match overflow.clone().try_acquire_owned() {
                        Ok(p) => (p, overflow_builder.clone()),
                        Err(_) => {
                            state.metrics.connection_refused();
                            drop(stream);
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let watcher = graceful.watcher();
                let first_byte = if b.1 { OVERFLOW_HEADER_TIMEOUT.min(header_timeout) } else { header_timeout };
                tokio::spawn(async move {
                    let _permit = permit;
                    // hyper's header timer starts once the protocol is detected, which needs a
                    // first byte: a connection that sends nothing is closed here.
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let conn = b
                        .0
                        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                        .into_owned();
                    // Faults that never reach a handler (a header flood answered 431 by hyper,
                    // a malformed request line, a reset mid-stream) are logged here, once.
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::info!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    state.draining.store(true, Ordering::SeqCst);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight responses; new requests get 503 (readiness probes see it)"
    );
    // During the grace period the listener stays open, so a readiness probe sees `/readyz`
    // answer 503 instead of a refused connection; those connections are served one request
    // each, and every route but the probes answers 503 `shutting_down` (middleware).
    let drain_accept = {
        let app = app.clone();
        let b = overflow_builder.clone();
        async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let b = b.clone();
                tokio::spawn(async move {
                    let conn =
                        b.0.serve_connection_with_upgrades(
                            hyper_util::rt::TokioIo::new(stream),
                            service,
                        )
                        .into_owned();
                    let _ = tokio::time::timeout(OVERFLOW_HEADER_TIMEOUT * 2, conn).await;
                });
            }
        }
    };
    tokio::select! {
        _ = drain_accept => Ok(()),
        _ = graceful.shutdown() => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
        _ = tokio::time::sleep(grace) => {
            let busy = state.config.max_jobs - state.jobs.available_permits();
            tracing::warn!(jobs_cut = busy, "grace period over; closing remaining connections");
            Ok(())
        }
    }
}

/// Connections served past `PARAMINIT_MAX_CONNECTIONS`, one request each.
pub const OVERFLOW_CONNECTIONS: usize = 32;
/// Header timeout of those overflow connections.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection builders: normal connections, and the overflow ones past the cap (HTTP/1
/// only, no keep-alive, a short header timeout). Both have hyper's timer, so the header-read
/// timeout applies: a connection that sends nothing, or one byte a second, is closed after
/// `PARAMINIT_HEADER_TIMEOUT_SECS`, and so is a kept-alive HTTP/1 connection that sends no next
/// request. HTTP/2 connections are pinged and closed when the peer stops answering.
fn connection_builders(
    config: &Config,
) -> (
    hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    let header = Duration::from_secs(config.header_timeout_secs);
    let mut normal = Builder::new(TokioExecutor::new());
    normal
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header);
    normal
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    let mut overflow = Builder::new(TokioExecutor::new()).http1_only();
    overflow
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_HEADER_TIMEOUT.min(header))
        .keep_alive(false);
    (normal, overflow)
}

/// Logs every panic once, as an error event with its location, in the configured log format.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic payload)");
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(panic = msg, %location, "panic");
        }));
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
