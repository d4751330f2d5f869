//! The `healthcheck` client: `GET /healthz` over a plain blocking socket, for the container
//! `HEALTHCHECK` (no async runtime, no HTTP client dependency).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The address to probe for a bind address: an unspecified host (`0.0.0.0`, `[::]`) becomes
/// the loopback address.
fn probe_addr(addr: &str) -> Result<SocketAddr, String> {
    let mut a = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))?;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(a)
}

/// `GET /healthz` on the local service with a plain blocking socket (for the Docker
/// `HEALTHCHECK`: `paraminit healthcheck`). Ok when it answers 200 within a few seconds.
pub fn healthcheck(addr: &str) -> Result<(), String> {
    let a = probe_addr(addr)?;
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&a, timeout).map_err(|e| format!("connect {a}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nUser-Agent: paraminit-healthcheck\r\n\r\n"
    )
    .map_err(|e| format!("write to {a}: {e}"))?;
    let mut buf = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read from {a}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let status_line = text.lines().next().unwrap_or("");
    if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!("{a} answered {status_line:?}"))
    }
}
