//! Service settings (SPEC §6). Every setting is an environment variable; the defaults let one
//! request stream a 70B-parameter bf16 model (140 GB) on a small machine.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PARAMINIT_ADDR` | `0.0.0.0:8080` | bind address |
//! | `PARAMINIT_MAX_BODY_BYTES` | 8 MiB | largest request body |
//! | `PARAMINIT_MAX_TENSORS` | 100000 | tensors per request |
//! | `PARAMINIT_MAX_ELEMENTS` | 10^12 | elements per request |
//! | `PARAMINIT_MAX_RESPONSE_BYTES` | 2^41 (2 TiB) | safetensors bytes per request |
//! | `PARAMINIT_MAX_JOBS` | 2 × cores | concurrent generations; more get 503 + `Retry-After` |
//! | `PARAMINIT_THREADS` | all cores | generation threads (one rayon pool shared by all jobs) |
//! | `PARAMINIT_LOG_FORMAT` | `text` | `text` or `json` |
//! | `PARAMINIT_API_TOKEN` | unset | one or more comma-separated tokens; if set, every route but `/healthz` and `/readyz` needs `Authorization: Bearer <token>` |
//! | `PARAMINIT_METRICS_PUBLIC` | `false` | with tokens set, leave `/metrics` open too |
//! | `PARAMINIT_BODY_TIMEOUT_SECS` | 30 | a request body must arrive within this time (else 408) |
//! | `PARAMINIT_IDLE_TIMEOUT_SECS` | 60 | a client that reads nothing of its response for this long is cut off and its slot freed |
//! | `PARAMINIT_SHUTDOWN_GRACE_SECS` | 30 | how long in-flight responses may run after SIGTERM/Ctrl-C |
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
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
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
        }
    }
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    name: &str,
    raw: &str,
) -> Result<T, String> {
    match raw.trim().parse::<T>() {
        Ok(v) if v > T::default() => Ok(v),
        _ => Err(format!("{name}={raw:?}: expected a positive integer")),
    }
}

impl Config {
    /// Reads the environment; an unparsable value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like `from_env`, with the variables taken from `get` (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mut c = Config::default();
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("PARAMINIT_ADDR") {
            c.addr = v.trim().to_string();
        }
        if let Some(v) = var("PARAMINIT_MAX_BODY_BYTES") {
            c.max_body_bytes = positive("PARAMINIT_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_TENSORS") {
            c.max_tensors = positive("PARAMINIT_MAX_TENSORS", &v)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_ELEMENTS") {
            c.max_elements = positive("PARAMINIT_MAX_ELEMENTS", &v)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_RESPONSE_BYTES") {
            c.max_response_bytes = positive("PARAMINIT_MAX_RESPONSE_BYTES", &v)?;
        }
        if let Some(v) = var("PARAMINIT_MAX_JOBS") {
            c.max_jobs = positive("PARAMINIT_MAX_JOBS", &v)?;
        }
        if let Some(v) = var("PARAMINIT_THREADS") {
            c.threads = positive("PARAMINIT_THREADS", &v)?;
        }
        if let Some(v) = var("PARAMINIT_LOG_FORMAT") {
            c.log_format = match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("PARAMINIT_LOG_FORMAT={v:?}: use text or json")),
            };
        }
        c.api_token =
            var("PARAMINIT_API_TOKEN").filter(|t| t.split(',').any(|x| !x.trim().is_empty()));
        if let Some(v) = var("PARAMINIT_METRICS_PUBLIC") {
            c.metrics_public = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                _ => return Err(format!("PARAMINIT_METRICS_PUBLIC={v:?}: use true or false")),
            };
        }
        for (name, slot) in [
            ("PARAMINIT_BODY_TIMEOUT_SECS", &mut c.body_timeout_secs),
            ("PARAMINIT_IDLE_TIMEOUT_SECS", &mut c.idle_timeout_secs),
        ] {
            if let Some(v) = var(name) {
                *slot = positive(name, &v)?;
            }
        }
        if let Some(v) = var("PARAMINIT_SHUTDOWN_GRACE_SECS") {
            c.shutdown_grace_secs = v.trim().parse().map_err(|_| {
                format!("PARAMINIT_SHUTDOWN_GRACE_SECS={v:?}: expected a number of seconds")
            })?;
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
    fn bad_values_name_the_variable() {
        let e = from(&[("PARAMINIT_MAX_JOBS", "0")]).unwrap_err();
        assert!(e.contains("PARAMINIT_MAX_JOBS"), "{e}");
        let e = from(&[("PARAMINIT_THREADS", "many")]).unwrap_err();
        assert!(e.contains("PARAMINIT_THREADS"), "{e}");
        let e = from(&[("PARAMINIT_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(e.contains("PARAMINIT_LOG_FORMAT"), "{e}");
    }
}
