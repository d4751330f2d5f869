//! paraminit: deterministic, framework-exact neural-network parameter initialization.
//!
//! The crate is a synchronous core (`spec` → `plan` → `encode`, with `init`, `rng`, `math` and
//! `sample` producing the values) wrapped by a thin asynchronous HTTP edge (`http`) and a
//! command line (`cli`). The core never sees tokio.

pub mod analyze;
pub mod cli;
pub mod config;
pub mod encode;
pub mod error;
pub mod generate;
pub mod hf;
pub mod http;
pub mod init;
pub mod keras;
pub mod math;
pub mod plan;
pub mod rng;
pub mod sample;
pub mod spec;
pub mod structured;
