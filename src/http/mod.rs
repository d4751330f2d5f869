//! The HTTP edge (SPEC §1, §3, §5, §6) around the synchronous core, one file per job:
//! `routes` (the router and its handlers), `responses` (headers and bodies of a planned
//! request: ETag, 304/412, ranges, content types), `server` (the accept loop, connection
//! limits, timeouts, the panic hook, signals, shutdown), `healthcheck` (the probe client),
//! `state` (what the handlers share); and `errors`, `query`, `negotiate`, `range`, `stream`,
//! `metrics`, `middleware` for the parts every route uses.

pub mod errors;
mod healthcheck;
pub mod metrics;
pub mod middleware;
pub mod negotiate;
pub mod query;
pub mod range;
mod responses;
mod routes;
mod server;
mod state;
pub mod stream;

pub use healthcheck::healthcheck;
pub use routes::{
    EXPLORER_HTML, MAX_GET_SPEC_CHARS, OPENAPI_YAML, ROUTES, router, routes, with_middleware,
};
pub use server::{OVERFLOW_CONNECTIONS, serve, serve_with_shutdown, shutdown_signal};
pub use state::{AppState, RETRY_AFTER_SECS};
