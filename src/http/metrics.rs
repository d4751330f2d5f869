//! Prometheus metrics (SPEC §1 `/metrics`). Each router owns its own recorder, so several
//! routers in one process (tests) never share or fight over a global recorder. No label
//! carries a seed or anything else taken from the request body.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub const REQUESTS: &str = "paraminit_http_requests_total";
pub const RESPONSE_BYTES: &str = "paraminit_http_response_bytes_total";
pub const REQUEST_DURATION: &str = "paraminit_http_request_duration_seconds";
pub const GENERATED_BYTES: &str = "paraminit_generated_bytes_total";
pub const GENERATED_ELEMENTS: &str = "paraminit_generated_elements_total";
pub const GENERATION_DURATION: &str = "paraminit_generation_duration_seconds";
pub const JOBS_IN_FLIGHT: &str = "paraminit_jobs_in_flight";
pub const JOBS_MAX: &str = "paraminit_jobs_max";
pub const JOBS_REJECTED: &str = "paraminit_jobs_rejected_total";
pub const CONNECTIONS_REFUSED: &str = "paraminit_connections_refused_total";

/// The `method` label: one of a fixed set.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        _ => "other",
    }
}

/// The `route` label: a path of the route table, else `unmatched`.
pub fn route_label(route: &str) -> &'static str {
    super::ROUTES
        .iter()
        .map(|(_, p)| *p)
        .find(|p| *p == route)
        .unwrap_or("unmatched")
}

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn new(max_jobs: usize) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .expect("non-empty bucket list")
            .build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            recorder: Arc::new(recorder),
            handle,
        };
        m.with(|| {
            gauge!(JOBS_IN_FLIGHT).set(0.0);
            gauge!(JOBS_MAX).set(max_jobs as f64);
            counter!(JOBS_REJECTED).absolute(0);
            counter!(CONNECTIONS_REFUSED).absolute(0);
        });
        m
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        with_local_recorder(&*self.recorder, f)
    }

    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Labels come from fixed sets only: the method from GET/HEAD/POST/other, the route from
    /// the route table (else `unmatched`), the status from the 3-digit codes. Anything taken
    /// from the request as is would let a client mint series without bound.
    pub fn request(&self, method: &str, route: &str, status: u16, bytes: u64, duration: Duration) {
        let method = method_label(method);
        let route = route_label(route);
        let status = status.min(999).to_string();
        self.with(|| {
            counter!(REQUESTS, "method" => method, "route" => route, "status" => status)
                .increment(1);
            counter!(RESPONSE_BYTES, "route" => route).increment(bytes);
            histogram!(REQUEST_DURATION, "route" => route).record(duration.as_secs_f64());
        });
    }

    /// A connection closed at once because the connection cap and its overflow were full.
    pub fn connection_refused(&self) {
        self.with(|| counter!(CONNECTIONS_REFUSED).increment(1));
    }

    pub fn job_started(&self) {
        self.with(|| gauge!(JOBS_IN_FLIGHT).increment(1.0));
    }

    pub fn job_finished(&self) {
        self.with(|| gauge!(JOBS_IN_FLIGHT).decrement(1.0));
    }

    pub fn job_rejected(&self) {
        self.with(|| counter!(JOBS_REJECTED).increment(1));
    }

    /// One generation ended: `outcome` is `complete` or `aborted` (client gone).
    pub fn generation(
        &self,
        format: &'static str,
        outcome: &'static str,
        bytes: u64,
        elements: u64,
        duration: Duration,
    ) {
        self.with(|| {
            counter!(GENERATED_BYTES, "format" => format).increment(bytes);
            counter!(GENERATED_ELEMENTS, "format" => format).increment(elements);
            histogram!(GENERATION_DURATION, "format" => format, "outcome" => outcome)
                .record(duration.as_secs_f64());
        });
    }
}
