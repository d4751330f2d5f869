//! The state every handler and middleware of one router shares: settings, the generation
//! pool, the semaphores that bound concurrent work, metrics and the draining flag.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::Semaphore;

use super::errors::{self, ApiError};
use super::metrics;
use crate::config::Config;

/// Seconds a client is asked to wait when every job slot is busy.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Shared state of one router.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Arc<rayon::ThreadPool>,
    pub jobs: Arc<Semaphore>,
    /// Plan building (all four planning routes) runs under these permits, off the async
    /// workers; past them a request gets 503 + `Retry-After` like a generation would.
    pub planners: Arc<Semaphore>,
    /// Request-body bytes being received at once (`PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT`).
    pub body_bytes: Arc<Semaphore>,
    pub metrics: metrics::Metrics,
    /// Set once shutdown has begun; `/readyz` then answers 503.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(config: Config) -> AppState {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("paraminit-gen-{i}"))
            .build()
            .expect("cannot start the generation threads");
        AppState {
            jobs: Arc::new(Semaphore::new(config.max_jobs.max(1))),
            planners: Arc::new(Semaphore::new(config.max_jobs.max(1))),
            body_bytes: Arc::new(Semaphore::new(
                config
                    .max_body_bytes_in_flight
                    .clamp(1, Semaphore::MAX_PERMITS),
            )),
            metrics: metrics::Metrics::new(config.max_jobs.max(1)),
            pool: Arc::new(pool),
            config: Arc::new(config),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The 503 of a full semaphore (`what`: the slots that are all busy), counted.
    pub(super) fn all_busy(&self, what: &str) -> ApiError {
        self.metrics.job_rejected();
        errors::busy(format!(
            "all {} {what} slots are busy (PARAMINIT_MAX_JOBS); retry in {RETRY_AFTER_SECS} s",
            self.config.max_jobs
        ))
    }
}
