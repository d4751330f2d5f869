//! Service settings (SPEC §6). Every setting is an environment variable; the defaults let one
//! request stream a 70B-parameter bf16 model (140 GB) on a small machine.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PARAMINIT_ADDR` | `0.0.0.0:8080` | bind address |
//! | `PARAMINIT_MAX_BODY_BYTES` | 8 MiB | largest request body (at most 1 GiB) |
//! | `PARAMINIT_MAX_TENSORS` | 100000 | tensors per request |
//! | `PARAMINIT_MAX_ELEMENTS` | 10^12 | elements per request |
//! | `PARAMINIT_MAX_RESPONSE_BYTES` | 2^41 (2 TiB) | safetensors bytes per request |
//! | `PARAMINIT_MAX_JOBS` | 2 × cores | concurrent generations; more get 503 + `Retry-After` |
//! | `PARAMINIT_THREADS` | all cores | generation threads (one rayon pool shared by all jobs), at most 1024 |
//! | `PARAMINIT_LOG_FORMAT` | `text` | `text` or `json` |
//! | `PARAMINIT_API_TOKEN` | unset | one or more comma-separated tokens; if set, every route but `/healthz` and `/readyz` needs `Authorization: Bearer <token>` |
//! | `PARAMINIT_METRICS_PUBLIC` | `false` | with tokens set, leave `/metrics` open too |
//! | `PARAMINIT_BODY_TIMEOUT_SECS` | 30 | a request body must arrive within this time (else 408) |
//! | `PARAMINIT_IDLE_TIMEOUT_SECS` | 60 | a client that reads nothing of its response for this long is cut off and its slot freed |
//! | `PARAMINIT_SHUTDOWN_GRACE_SECS` | 30 | how long in-flight responses may run after SIGTERM/Ctrl-C |
//! | `PARAMINIT_AUTH` | `token` if tokens are set | `none` starts an open service on purpose; a set but empty `PARAMINIT_API_TOKEN` is refused without it |
//! | `PARAMINIT_MAX_CONNECTIONS` | 1024 | open client connections; past it a few more are served one request each, then refused |
//! | `PARAMINIT_HEADER_TIMEOUT_SECS` | 10 | a request head (and, on a kept-alive HTTP/1 connection, the next one) must arrive within this time |
//! | `PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT` | 4 × max body | request-body bytes being received at once over all connections; past it 503 |
//!
//! Every variable is validated at start: a value that does not parse, is out of range or is
//! empty stops the service with a message naming the variable; none is replaced by a default.
//! | `RUST_LOG` | `info` | tracing filter |

use std::fmt;

use crate::plan::Limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub addr: String,
    pub max_body_bytes: usize,
    pub max_tensors: u64,
    pub max_elements: u64,
    pub max_response_bytes: u64,
    pub max_jobs: usize,
    pub threads: usize,
    pub log_format: LogFormat,
    /// One or more bearer tokens (comma-separated in `PARAMINIT_API_TOKEN`).
    pub api_token: Option<String>,
    /// `/metrics` stays open when tokens are required (`PARAMINIT_METRICS_PUBLIC=true`).
    pub metrics_public: bool,
    pub shutdown_grace_secs: u64,
    /// A request body must arrive within this many seconds (408 otherwise).
    pub body_timeout_secs: u64,
    /// A client that reads nothing of its response for this many seconds is cut off.
    pub idle_timeout_secs: u64,
    /// `PARAMINIT_AUTH=none`: no tokens, on purpose.
    pub auth_none: bool,
    pub max_connections: usize,
    /// A request head must arrive within this many seconds (also bounds idle keep-alive).
    pub header_timeout_secs: u64,
    /// Request-body bytes being received at once, over all connections.
    pub max_body_bytes_in_flight: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_tensors", &self.max_tensors)
            .field("max_elements", &self.max_elements)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_jobs", &self.max_jobs)
            .field("threads", &self.threads)
            .field("log_format", &self.log_format)
            .field("api_token", &self.api_token.as_ref().map(|_| "<set>"))
            .field("auth_none", &self.auth_none)
            .field("metrics_public", &self.metrics_public)
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("max_body_bytes_in_flight", &self.max_body_bytes_in_flight)
            .finish()
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "0.0.0.0:8080".into(),
            max_body_bytes: 8 << 20,
            max_tensors: 100_000,
            max_elements: 1_000_000_000_000,
            max_response_bytes: 1 << 41,
            max_jobs: 2 * cores(),
            threads: cores(),
            log_format: LogFormat::Text,
            api_token: None,
            metrics_public: false,
            shutdown_grace_secs: 30,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            auth_none: false,
            max_connections: 1024,
            header_timeout_secs: 10,
            max_body_bytes_in_flight: 4 * (8 << 20),
        }
    }
}

/// A positive integer no larger than `max`.
fn positive<T: std::str::FromStr + PartialOrd + Default + fmt::Display + Copy>(
    name: &str,
    raw: &str,
    max: T,
) -> Result<T, String> {
    match raw.trim().parse::<T>() {
        Ok(v) if v > T::default() && v <= max => Ok(v),
        _ => Err(format!(
            "{name}={raw:?}: expected a positive integer, at most {max}"
        )),
    }
}

fn boolean(name: &str, raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{name}={raw:?}: use true/false (also 1/0, yes/no, on/off)"
        )),
    }
}

/// `host:port` with a port number and a host that is an IP address or a DNS name; checked
/// here so a typo names the variable instead of failing later at bind.
fn address(raw: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("PARAMINIT_ADDR={raw:?}: {why} (expected host:port, e.g. 0.0.0.0:8080)")
    };
    let a = raw.trim();
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(a.to_string());
    }
    let (host, port) = a.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    port.parse::<u16>().map_err(|_| bad("not a port number"))?;
    let dns = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !dns {
        return Err(bad("not an IP address or host name"));
    }
    Ok(a.to_string())
}

/// Generation threads: `PARAMINIT_THREADS` validated like every other variable (the CLI uses
/// this too, so the variable is read one way only), else all cores.
pub fn threads_from(get: impl Fn(&str) -> Option<String>) -> Result<usize, String> {
    match get("PARAMINIT_THREADS") {
        None => Ok(cores()),
        Some(v) => positive("PARAMINIT_THREADS", &v, MAX_THREADS),
    }
}

/// Upper bounds of the settings that size something per unit (threads are OS threads with
/// their own stacks; a body is held whole while parsed).
pub const MAX_THREADS: usize = 1024;
pub const MAX_BODY_BYTES: usize = 1 << 30;

impl Config {
    /// Reads the environment; an invalid value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like `from_env`, with the variables taken from `get` (for tests). A variable that is set
    /// is validated even when empty: an empty value is an error, not "unset".
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mut c = Config::default();
        let var = |k: &str| get(k);
        if let Some(v) = var("PARAMINIT_ADDR") {
            c.addr = address(&v)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_BODY_BYTES") {
            c.max_body_bytes = positive("PARAMINIT_MAX_BODY_BYTES", &v, MAX_BODY_BYTES)?;
        }
        c.max_body_bytes_in_flight = 4 * c.max_body_bytes;
        if let Some(v) = var("PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT") {
            let n = positive("PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT", &v, 1usize << 40)?;
            if n < c.max_body_bytes {
                return Err(format!(
                    "PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT={v:?}: must be at least PARAMINIT_MAX_BODY_BYTES ({})",
                    c.max_body_bytes
                ));
            }
            c.max_body_bytes_in_flight = n;
        }
        if let Some(v) = var("PARAMINIT_MAX_TENSORS") {
            c.max_tensors = positive("PARAMINIT_MAX_TENSORS", &v, u64::MAX)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_ELEMENTS") {
            c.max_elements = positive("PARAMINIT_MAX_ELEMENTS", &v, u64::MAX)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_RESPONSE_BYTES") {
            c.max_response_bytes = positive("PARAMINIT_MAX_RESPONSE_BYTES", &v, u64::MAX)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_JOBS") {
            c.max_jobs = positive("PARAMINIT_MAX_JOBS", &v, 1 << 16)?;
        }
        c.threads = threads_from(&get)?;
        if let Some(v) = var("PARAMINIT_MAX_CONNECTIONS") {
            c.max_connections = positive("PARAMINIT_MAX_CONNECTIONS", &v, 1 << 20)?;
        }
        if let Some(v) = var("PARAMINIT_LOG_FORMAT") {
            c.log_format = match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("PARAMINIT_LOG_FORMAT={v:?}: use text or json")),
            };
        }
        let auth = match var("PARAMINIT_AUTH") {
            None => None,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "none" => Some(false),
                "token" => Some(true),
                _ => return Err(format!("PARAMINIT_AUTH={v:?}: use token or none")),
            },
        };
        if let Some(t) = var("PARAMINIT_API_TOKEN") {
            let parts: Vec<&str> = t.split(',').map(str::trim).collect();
            if parts.iter().all(|p| p.is_empty()) {
                // Set but empty (`""`, `","`): almost certainly a missing secret, not a wish for
                // an open service.
                if auth != Some(false) {
                    return Err(format!(
                        "PARAMINIT_API_TOKEN={t:?} holds no token; set a token, or PARAMINIT_AUTH=none to run without authentication on purpose"
                    ));
                }
            } else if parts.iter().any(|p| p.is_empty()) {
                return Err("PARAMINIT_API_TOKEN: an empty token between commas".into());
            } else if auth == Some(false) {
                return Err(
                    "PARAMINIT_AUTH=none contradicts the tokens in PARAMINIT_API_TOKEN".into(),
                );
            } else {
                c.api_token = Some(t);
            }
        }
        if auth == Some(true) && c.api_token.is_none() {
            return Err("PARAMINIT_AUTH=token needs PARAMINIT_API_TOKEN".into());
        }
        c.auth_none = auth == Some(false);
        if let Some(v) = var("PARAMINIT_METRICS_PUBLIC") {
            c.metrics_public = boolean("PARAMINIT_METRICS_PUBLIC", &v)?;
        }
        for (name, slot) in [
            ("PARAMINIT_BODY_TIMEOUT_SECS", &mut c.body_timeout_secs),
            ("PARAMINIT_IDLE_TIMEOUT_SECS", &mut c.idle_timeout_secs),
            ("PARAMINIT_HEADER_TIMEOUT_SECS", &mut c.header_timeout_secs),
        ] {
            if let Some(v) = var(name) {
                *slot = positive(name, &v, 86_400)?;
            }
        }
        if let Some(v) = var("PARAMINIT_SHUTDOWN_GRACE_SECS") {
            c.shutdown_grace_secs = match v.trim().parse::<u64>() {
                Ok(n) if n <= 86_400 => n,
                _ => {
                    return Err(format!(
                        "PARAMINIT_SHUTDOWN_GRACE_SECS={v:?}: expected a number of seconds, at most 86400"
                    ));
                }
            };
        }
        Ok(c)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_tensors: self.max_tensors,
            max_elements: self.max_elements,
            max_response_bytes: self.max_response_bytes,
        }
    }
}

/// Installs the global tracing subscriber: text or JSON lines on stderr, filtered by
/// `RUST_LOG` (default `info`). Calling it twice is harmless (the second call does nothing).
pub fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_allow_a_70b_bf16_model() {
        let c = from(&[]).unwrap();
        assert_eq!(c.addr, "0.0.0.0:8080");
        assert!(c.max_elements >= 70_000_000_000);
        assert!(c.max_response_bytes >= 140_000_000_000);
        assert!(c.max_jobs >= 2 && c.threads >= 1);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.api_token, None);
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("PARAMINIT_ADDR", "127.0.0.1:9"),
            ("PARAMINIT_MAX_BODY_BYTES", "10"),
            ("PARAMINIT_MAX_TENSORS", "11"),
            ("PARAMINIT_MAX_ELEMENTS", "12"),
            ("PARAMINIT_MAX_RESPONSE_BYTES", "13"),
            ("PARAMINIT_MAX_JOBS", "3"),
            ("PARAMINIT_THREADS", "4"),
            ("PARAMINIT_LOG_FORMAT", "JSON"),
            ("PARAMINIT_API_TOKEN", "s3cret"),
            ("PARAMINIT_SHUTDOWN_GRACE_SECS", "0"),
        ])
        .unwrap();
        assert_eq!(c.addr, "127.0.0.1:9");
        assert_eq!(
            (c.max_body_bytes, c.max_tensors, c.max_elements),
            (10, 11, 12)
        );
        assert_eq!((c.max_response_bytes, c.max_jobs, c.threads), (13, 3, 4));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.api_token.as_deref(), Some("s3cret"));
        assert_eq!(c.shutdown_grace_secs, 0);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn every_invalid_value_stops_the_service_naming_its_variable() {
        for (k, v) in [
            ("PARAMINIT_MAX_JOBS", "0"),
            ("PARAMINIT_MAX_JOBS", "abc"),
            ("PARAMINIT_MAX_JOBS", ""),
            ("PARAMINIT_THREADS", "100000"),
            ("PARAMINIT_THREADS", "-1"),
            ("PARAMINIT_ADDR", "garbage"),
            ("PARAMINIT_ADDR", "host:99999"),
            ("PARAMINIT_ADDR", ""),
            ("PARAMINIT_MAX_BODY_BYTES", "2000000000"),
            ("PARAMINIT_MAX_CONNECTIONS", "0"),
            ("PARAMINIT_HEADER_TIMEOUT_SECS", "x"),
            ("PARAMINIT_IDLE_TIMEOUT_SECS", ""),
            ("PARAMINIT_SHUTDOWN_GRACE_SECS", "-3"),
            ("PARAMINIT_METRICS_PUBLIC", "maybe"),
            ("PARAMINIT_LOG_FORMAT", ""),
            ("PARAMINIT_AUTH", "open"),
            ("PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT", "10"),
        ] {
            let e = from(&[(k, v)]).unwrap_err();
            assert!(e.contains(k), "{k}={v:?}: {e}");
        }
        for ok in [
            "0.0.0.0:8080",
            "[::]:80",
            "localhost:9",
            "my-host.example:8080",
        ] {
            assert_eq!(from(&[("PARAMINIT_ADDR", ok)]).unwrap().addr, ok);
        }
    }

    #[test]
    fn booleans_take_on_and_off() {
        for (v, b) in [
            ("on", true),
            ("ON", true),
            ("yes", true),
            ("1", true),
            ("off", false),
            ("no", false),
        ] {
            assert_eq!(
                from(&[("PARAMINIT_METRICS_PUBLIC", v)])
                    .unwrap()
                    .metrics_public,
                b,
                "{v}"
            );
        }
    }

    #[test]
    fn an_empty_token_refuses_to_start_unless_auth_is_none() {
        for t in ["", ",", " , "] {
            let e = from(&[("PARAMINIT_API_TOKEN", t)]).unwrap_err();
            assert!(
                e.contains("PARAMINIT_API_TOKEN") && e.contains("PARAMINIT_AUTH=none"),
                "{e}"
            );
            let c = from(&[("PARAMINIT_API_TOKEN", t), ("PARAMINIT_AUTH", "none")]).unwrap();
            assert_eq!(c.api_token, None);
            assert!(c.auth_none);
        }
        assert!(from(&[("PARAMINIT_API_TOKEN", "a,,b")]).is_err());
        assert!(from(&[("PARAMINIT_API_TOKEN", "a"), ("PARAMINIT_AUTH", "none")]).is_err());
        assert!(from(&[("PARAMINIT_AUTH", "token")]).is_err());
        assert_eq!(
            from(&[("PARAMINIT_API_TOKEN", "a,b")])
                .unwrap()
                .api_token
                .as_deref(),
            Some("a,b")
        );
    }

    #[test]
    fn the_startup_line_shows_every_setting_but_the_token() {
        let c = from(&[("PARAMINIT_API_TOKEN", "s3cret")]).unwrap();
        let d = format!("{c:?}");
        for f in [
            "body_timeout_secs",
            "idle_timeout_secs",
            "header_timeout_secs",
            "max_connections",
            "shutdown_grace_secs",
        ] {
            assert!(d.contains(f), "{d}");
        }
        assert!(!d.contains("s3cret"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = from(&[("PARAMINIT_MAX_JOBS", "0")]).unwrap_err();
        assert!(e.contains("PARAMINIT_MAX_JOBS"), "{e}");
        let e = from(&[("PARAMINIT_THREADS", "many")]).unwrap_err();
        assert!(e.contains("PARAMINIT_THREADS"), "{e}");
        let e = from(&[("PARAMINIT_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(e.contains("PARAMINIT_LOG_FORMAT"), "{e}");
    }
}
