//! paraminit: deterministic, framework-exact neural-network parameter initialization.
//!
//! The crate is a synchronous core (`spec` → `plan` → `generate` → `encode`) wrapped by a thin
//! asynchronous HTTP edge (`http`) and a command line (`cli`, driven by the thin `main.rs`).
//! The core never sees tokio. One request walks through it like this: `spec::parse` validates
//! the JSON into a typed `Request` (initializers through `init::catalogue` into the typed
//! `init::Init`, `hf_config` through `hf`); `plan::build` expands it into named tensors with
//! shapes, layouts, stream identities and initializers resolved to sampler constants by
//! `init::resolve`, selects and shards them,
//! and lays out the safetensors header; `generate::Generator` produces any element range of any
//! tensor (keystream from `rng`, element kernels from `sample`, whole-tensor QR/sparse from
//! `structured`); `encode` turns that into the safetensors virtual file or the JSON stream;
//! `http` streams it out.
//!
//! # Layout
//!
//! Each module, what it owns, and what it uses inside the crate. Arrows point from user to
//! used; "leaf" means it uses nothing else of the crate.
//!
//! | module | owns | uses |
//! |---|---|---|
//! | `error` | `SpecError` and the stable `ErrorCode`s of the core | leaf |
//! | `simd` | the SIMD level (CPU features capped by one test switch) and `multiversion!` | leaf |
//! | `math` | branch-free f32 `ln`, `sincos_2pi`, `erfinv_factor` (the bit-exact transforms) | leaf |
//! | `rng` | ChaCha8 keystream: seed → key, identity → stream id, words at any position | `simd` |
//! | `sample` | element kernels (uniform, Box–Muller normal, truncated normal) over stream words | `rng`, `math`, `simd` |
//! | `structured` | whole-tensor initializers: blocked Householder QR (orthogonal, delta-orthogonal), sparse | `rng`, `sample`, `simd` |
//! | `spec` | the request model: parse and validate JSON into `Request`, its canonical JSON; `spec::fields` is the JSON-path toolkit | `error`, `init::catalogue`, `hf` |
//! | `init` | the initializer catalogue (`init::catalogue`: names, aliases, parameters, defaults), the typed initializer `init::Init` it parses into (which fans a variant reads, whole-tensor or not), fan rules, `auto`, resolution to sampler constants (`ValueSource`, `WholeTensor`, `Element`) | `error`, `sample`, `spec` |
//! | `hf` | Hugging Face `config.json` → the tensors `save_pretrained` writes and their `_init_weights` rule | `error`, `spec::fields` |
//! | `plan` | request → tensors in file order: naming, layer defaults, layouts, `only`/`shard`, offsets, safetensors header, ETag, `Format` (`plan::arch`: recurrent and attention layers) | `error`, `init`, `rng`, `sample`, `spec`, `hf` |
//! | `generate` | values of any element range of any planned tensor, in its output layout | `plan`, `init`, `rng`, `sample`, `structured` |
//! | `encode` | the safetensors virtual file (`read_at`), the JSON body stream, dtype rounding, shortest number formatting | `generate`, `plan`, `init`, `rng`, `spec` |
//! | `analyze` | the signal-propagation report (`/v1/analyze`) | `generate`, `init`, `plan`, `rng`, `sample`, `spec` |
//! | `config` | service settings from `PARAMINIT_*` environment variables | `plan` (limits) |
//! | `cli` | the command line: `serve`, `generate`, `plan`, `analyze`, `healthcheck` | `analyze`, `encode`, `error`, `generate`, `plan`, `spec` |
//! | `http` | the async edge: routes, negotiation, ranges, streaming bridge, error envelope, metrics, middleware, the accept loop, signals, the healthcheck client | `analyze`, `config`, `encode`, `error`, `generate`, `init`, `plan`, `spec` |
//!
//! Dependencies point down this table (a module uses only modules listed above it), except
//! two known two-way pairs that remain: `spec` ↔ `init` (the request parser reads
//! initializers through `init::catalogue`, which uses `spec::fields`; `init` also names
//! `spec::Framework`/`Activation`) and `spec` ↔ `hf` (`spec` parses `hf_config` through `hf`,
//! which uses `spec::fields`). Both go away when the shared leaf types (framework, activation,
//! JSON paths) move to a leaf module (issue 14, item 1).
//!
//! `docs/determinism.md` specifies every output byte; `tests/pinned_outputs.rs` proves a
//! refactor changed none.

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
pub mod recipe;
pub mod rng;
pub mod sample;
pub mod simd;
pub mod spec;
pub mod structured;
