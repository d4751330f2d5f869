//! paraminit: deterministic, framework-exact neural-network parameter initialization.
//!
//! The crate is a synchronous core (`spec` → `plan` → `generate` → `encode`) wrapped by a thin
//! asynchronous HTTP edge (`http`) and a command line (`cli`, driven by the thin `main.rs`).
//! The core never sees tokio. One request walks through it like this: `spec::parse` validates
//! the JSON into a typed `Request` (initializers through `init::catalogue` into the typed
//! `init::Init`, `hf_config` through `hf`); `pipeline::build` plans it: `plan::draft` expands it
//! into named tensors with shapes, layouts, stream identities and initializers resolved to
//! sampler constants by `init::resolve` (for `recipe: adaptive`, `analyze::calibrate` then
//! measures a provisional plan and `plan` applies the scales), and `Drafts::finish` selects and
//! shards them and lays out the safetensors header; `generate::Generator` produces any element
//! range of any tensor (keystream from `rng`, element kernels from `sample`, whole-tensor
//! QR/sparse from `structured`); `encode` turns that into the safetensors virtual file or the
//! JSON stream; `http` streams it out.
//!
//! # Layout
//!
//! Each module, what it owns, and what it uses inside the crate. Arrows point from user to
//! used; "leaf" means it uses nothing else of the crate.
//!
//! | module | owns | uses |
//! |---|---|---|
//! | `error` | the one error model: every stable `ErrorCode` (content and HTTP edge) with its status, `SpecError`, the one envelope renderer | leaf |
//! | `terms` | the shared vocabulary: `Framework`, `DType`, `Activation`, and `terms::fields` (typed JSON access with JSON paths); `spec` re-exports all of it at its old paths | `error` |
//! | `simd` | the SIMD level (CPU features capped by one test switch) and `multiversion!` | leaf |
//! | `math` | branch-free f32 `ln`, `sincos_2pi`, `erfinv_factor` (the bit-exact transforms) | leaf |
//! | `rng` | ChaCha8 keystream: seed → key, identity → stream id, words at any position | `simd` |
//! | `sample` | element kernels (uniform, Box–Muller normal, truncated normal) over stream words | `rng`, `math`, `simd` |
//! | `structured` | whole-tensor initializers: blocked Householder QR (orthogonal, delta-orthogonal; `structured.rs`), `sparse` (its own file) | `rng`, `sample`, `simd` |
//! | `init` | the initializer catalogue (`init::catalogue`: names, aliases, parameters, defaults), each framework's layer defaults (`init::defaults`), the typed initializer `init::Init` it parses into (which fans a variant reads, whole-tensor or not), framework-scoped names (`init::scoped`), fan rules, `auto`, resolution to sampler constants (`ValueSource`, `WholeTensor`, `Element`) | `error`, `terms`, `sample` |
//! | `keras` | `keras_model`: a Keras 3 `model.to_json()` → its weights, names and initializers, a file per job: `entry` (a layer's config, typed), `walk` (Sequential/Functional scopes, dispatch, wrappers), `layers` (dense, einsum, conv, embedding, norm), `recurrent`, `attention`, `parameter_free` (shapes of weightless layers), `shapes` (Keras shape arithmetic); `mod.rs` has the types, the class lists and `parse` (Keras initializer classes → catalogue entries are `init::keras`, re-exported here as `keras::initializers`) | `error`, `terms`, `init` |
//! | `hf` | Hugging Face `config.json` → the tensors `save_pretrained` writes and their `_init_weights` rule: `architectures` (families, heads, the class table), `config` (lenient typed key access), `tensors` (shared expansion helpers), a file per family (`llama`, `neox`, `gpt2`, `bert`, `distilbert`, `t5`, `vit`); `mod.rs` has the types, `parse` (class choice, family dispatch) and the canonical form | `error`, `terms` |
//! | `recipe` | deep-network initialization recipes (`"recipe"`), applied to resolved initializers, a file per job: `parse` (the `"recipe"` name or object), `roles` (`Role`, `Target`, `ModelDims`; an HF tensor name's role, block and fans), `rules` (`rule_for`: each recipe's rule per role, with its sources), `apply` (`apply_one`, `scale_resolved`); `mod.rs` has `Recipe`, `NeoxMethod` and the canonical form | `error`, `terms`, `init`, `sample` |
//! | `spec` | the request model: parse and validate JSON into `Request`, its canonical JSON, a file per job: `json` (the body, duplicate keys refused), `layers` and `arch_layers` (the `layers` list), `raw_tensors` (`tensors`, fills), `patterns` (`only`/`shard.dims` globs, their bounds), `shard`; `mod.rs` has the types, `parse` and the canonical form | `error`, `terms`, `init`, `hf`, `keras`, `recipe` |
//! | `plan` | request → tensors in file order, one file per stage: `layers` (dense, conv, embedding, norm; `LayerCtx::push`, the one way a layer adds a tensor), `recurrent`, `attention`, `keras` (`keras_model` weights), `inputs` (raw tensors, `hf_config`), `collect` (limits charged as tensors are made), `naming`, `recipes`, `select` (`only`/`shard`), `layout` (limits, order, offsets), `header` (safetensors header); `plan.rs` has the types, ETag, `Format` and the two halves the stages run in, `draft` and `Drafts::finish`, with `Uncalibrated` between them for `recipe: adaptive` (a provisional plan out, measured `Scale`s in) | `error`, `terms`, `init`, `rng`, `sample`, `spec`, `hf`, `keras`, `recipe` |
//! | `generate` | values of any element range of any planned tensor, in its output layout | `plan`, `init`, `rng`, `sample`, `spec`, `structured` |
//! | `encode` | the safetensors virtual file (`read_at`), the JSON body stream, dtype rounding, shortest number formatting | `generate`, `plan`, `rng`, `simd`, `spec` |
//! | `analyze` | the signal-propagation report (`/v1/analyze`) and the adaptive recipe's calibration (`calibrate`), sharing one measured pass, a file per job: `report` (`analyze`: bounds, forward and backward passes, verdict), `pass` (the shared measured pass: stages, inputs, the W·x summation, logical values, seeded batches), `mean_field` (activations, derivatives, the Gaussian expectation), `adaptive` (`calibrate`), `forecast` (the `hf_config` residual-stream forecast); `analyze.rs` has the limits, `forecast` and the histograms | `error`, `generate`, `hf`, `init`, `plan`, `recipe`, `rng`, `sample`, `spec` |
//! | `pipeline` | the one entry point from a request to its plan (`build`, `build_cancellable`): `plan::draft`, the adaptive calibration when the recipe asks for it, `Drafts::finish` | `analyze`, `error`, `plan`, `spec` |
//! | `config` | service settings from `PARAMINIT_*` environment variables | `plan` (limits) |
//! | `cli` | the command line: `serve`, `generate`, `plan`, `analyze`, `healthcheck` | `analyze`, `config`, `encode`, `error`, `generate`, `pipeline`, `plan`, `spec` (`main.rs` calls `http::serve` and `http::healthcheck`) |
//! | `http` | the async edge, a file per job: `routes` (router, handlers), `responses` (ETag, 304/412, ranges, content headers), `server` (accept loop, connection limits, timeouts, panic hook, signals, shutdown), `healthcheck` (probe client), `state`, `errors` (`ApiError`: a `SpecError` plus status and headers; the common errors' constructors; the body extractor), `query` (`Query`-extracted parameters), `negotiate`, `range`, `stream`, `metrics`, `middleware` | `analyze`, `config`, `encode`, `error`, `generate`, `init`, `pipeline`, `plan`, `spec` |
//!
//! Dependencies point down this table: a module uses only modules listed above it, so no two
//! modules depend on each other, directly or around a longer cycle (test code included). The
//! adaptive recipe, which needs a measured pass through `generate` in the middle of planning,
//! is why `pipeline` exists: `plan` offers the stages, `analyze` measures, and `pipeline`, above
//! both, runs them in order. `analyze`'s forecast plans an `hf_config` request's full model
//! through `plan`'s stages directly (an adaptive `hf_config` request is refused, so that plan
//! never needs the calibration). `tests/layout_map.rs` checks this table against the code:
//! every row's "uses" is exactly the `crate::` paths of that module, all listed above it.
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
pub mod pipeline;
pub mod plan;
pub mod recipe;
pub mod rng;
pub mod sample;
pub mod simd;
pub mod spec;
pub mod structured;
pub mod terms;
