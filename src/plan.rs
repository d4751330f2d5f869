//! The plan: a validated request turned into the list of tensors in file order, each with its
//! name, shape, dtype, byte range, stream identity, layout and resolved initializer, plus the
//! safetensors header bytes and totals. This file holds the plan's types and the two halves
//! the stages run in: `draft` (expansion, names, the named recipes) and `Drafts::finish`
//! (`only`, `shard`, layout). Between them, a `recipe: adaptive` request is an
//! `Uncalibrated` that gives a provisional plan to measure and takes the measured scales back;
//! the measuring runs above `plan` (`analyze::calibrate`, through `generate`), so the one
//! entry point from a request to its plan is `pipeline::build` and `plan` uses nothing that
//! uses it. Each stage is a file of its own:
//!
//! - `layers` (dense, conv, embedding, norm), `recurrent` and `attention`: layer stacks
//!   into drafts, every tensor through `LayerCtx::push`; `keras`: `keras_model` documents;
//!   `inputs`: raw `tensors` and `hf_config`; all charged to `collect::Collector`, which
//!   refuses the moment a limit is passed;
//! - `naming`: framework layer names and tensor roles;
//! - `recipes`: model-level rewrites (`recipe`, and applying `adaptive`'s measured scales);
//! - `select`: `only` and `shard`;
//! - `layout`: sizes, limits, file order and offsets; `header`: the safetensors header.
//!
//! The framework layer defaults are `init::defaults`. All size arithmetic is checked.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::error::{ErrorCode, Result, SpecError};
use crate::init::Resolved;
use crate::rng::ALGORITHM_ID;
use crate::spec::{DType, Request};

mod attention;
mod collect;
mod header;
mod inputs;
mod keras;
mod layers;
mod layout;
mod naming;
mod recipes;
mod recurrent;
mod select;

use collect::Collector;
pub use collect::{Cancel, CancelOnDrop, RESERVED_NAMES};
pub use header::file_metadata;
pub use select::split_range;

/// The service version written into every file.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The safetensors reference reader refuses headers above this many bytes.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Whole-tensor initializers (orthogonal, delta_orthogonal, sparse) hold the tensor in memory
/// and orthogonal costs O(rows·cols·min(rows, cols)); these bound both.
pub const MAX_WHOLE_TENSOR_ELEMENTS: u64 = 1 << 24;
pub const MAX_ORTHOGONAL_SMALL_DIM: u64 = 4096;

/// Per-request limits, checked before any value is generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_tensors: u64,
    pub max_elements: u64,
    pub max_response_bytes: u64,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        max_tensors: u64::MAX,
        max_elements: u64::MAX,
        max_response_bytes: u64::MAX,
    };
}

/// How the tensor's output layout relates to its logical (PyTorch-layout) element order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Output element i is logical element i.
    Identity,
    /// Output axis k is logical axis `perm[k]`. The last output axis is always logical axis 0.
    Permuted { perm: Vec<usize> },
}

/// A constant over a box of the logical shape: `ranges[d]` is the half-open range of axis d
/// (one per axis).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanFill {
    pub ranges: Vec<(u64, u64)>,
    pub value: f32,
}

/// This rank's part of a tensor-parallel tensor: `shape[dim]` elements starting at `start`
/// along axis `dim` of `full_shape` (output layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub dim: usize,
    pub start: u64,
    pub full_shape: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub dtype: DType,
    /// Shape in the output (framework) layout.
    pub shape: Vec<u64>,
    /// Shape in PyTorch layout; element indices of the random stream count in this order.
    pub logical_shape: Vec<u64>,
    pub layout: Layout,
    pub numel: u64,
    /// Byte range in the safetensors data section (relative to its start).
    pub begin: u64,
    pub end: u64,
    /// The framework-neutral identity the random stream is derived from.
    pub identity: String,
    pub stream: u64,
    pub resolved: Resolved,
    /// Embedding `padding_idx`: this logical row is zero.
    pub zero_row: Option<u64>,
    /// Raw tensors' `fills`, in order, as boxes of the logical shape (applied after `zero_row`).
    pub fills: Vec<PlanFill>,
    /// JSON path of the layer or tensor entry this tensor comes from.
    pub origin: String,
    /// Set when the request shards this tensor; `shape` and `numel` are then the slice's.
    pub slice: Option<Slice>,
}

impl TensorPlan {
    /// The whole tensor's shape in the output layout (before any sharding).
    pub fn full_shape(&self) -> &[u64] {
        match &self.slice {
            Some(s) => &s.full_shape,
            None => &self.shape,
        }
    }

    /// The slice as JSON (`{"dim", "start", "length", "full_shape"}`), if any.
    pub fn slice_json(&self) -> Option<Value> {
        self.slice.as_ref().map(|s| {
            json!({"dim": s.dim, "start": s.start, "length": self.shape[s.dim], "full_shape": s.full_shape})
        })
    }
}

impl TensorPlan {
    pub fn to_json(&self, data_start: u64) -> Value {
        let mut v = json!({
            "name": self.name,
            "dtype": self.dtype.as_str(),
            "shape": self.shape,
            "elements": self.numel,
            "data_offsets": [self.begin, self.end],
            "file_offsets": [data_start + self.begin, data_start + self.end],
            "stream_identity": self.identity,
            "init": self.resolved.info.to_json(),
            "origin": self.origin,
        });
        if self.logical_shape != self.shape {
            v["pytorch_shape"] = json!(self.logical_shape);
        }
        if let Some(r) = self.zero_row {
            v["zero_row"] = json!(r);
        }
        if !self.fills.is_empty() {
            let fills: Vec<Value> = self
                .fills
                .iter()
                .map(|f| {
                    let idx: Vec<Value> = f.ranges.iter().map(|(a, b)| json!([a, b])).collect();
                    json!({"index": idx, "value": f.value})
                })
                .collect();
            v["fills"] = json!(fills);
        }
        if let Some(sl) = self.slice_json() {
            v["slice"] = sl;
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub request: Request,
    /// Tensors in file order: dtype (safetensors enum order, descending), then name bytes.
    pub tensors: Vec<TensorPlan>,
    /// The 8-byte length prefix plus the space-padded JSON header.
    pub header: Vec<u8>,
    /// The canonical resolved request, compact JSON.
    pub canonical: String,
    pub total_elements: u64,
    pub data_bytes: u64,
    pub file_bytes: u64,
}

/// Output formats; the ETag differs per format because the bytes do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Safetensors,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Safetensors => "safetensors",
        }
    }
}

impl Plan {
    pub fn seed(&self) -> u64 {
        self.request.seed
    }

    pub fn data_start(&self) -> u64 {
        self.header.len() as u64
    }

    /// Strong ETag: SHA-256 over the algorithm id, the service version (it is written into
    /// the file), the format and the canonical request.
    pub fn etag(&self, format: Format) -> String {
        let mut h = Sha256::new();
        h.update(ALGORITHM_ID.as_bytes());
        h.update(b"\n");
        h.update(SERVICE_VERSION.as_bytes());
        h.update(b"\n");
        h.update(format.as_str().as_bytes());
        h.update(b"\n");
        h.update(self.canonical.as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }

    /// The `/v1/plan` document.
    pub fn to_json(&self) -> Value {
        let ds = self.data_start();
        json!({
            "seed": crate::spec::seed_json(self.request.seed),
            "framework": self.request.framework.as_str(),
            "algorithm": ALGORITHM_ID,
            "service_version": SERVICE_VERSION,
            "tensors": self.tensors.iter().map(|t| t.to_json(ds)).collect::<Vec<_>>(),
            "totals": self.totals_json(),
            "etag": self.etags_json(),
            "request": self.request.to_canonical_json(),
        })
    }

    /// `serde_json::to_vec(&self.to_json())`, byte for byte, without holding the document's
    /// value tree: one tensor's object at a time. The tree cost ~4 KB a tensor on top of the
    /// plan (a plan at the tensor limit peaked at 796 MB, of which the tree was most of the
    /// difference to `/v1/init`'s 377 MB). The keys are written in the order `serde_json`'s
    /// sorted map writes them.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, key: &str, value: &Value) {
            out.push(if out.is_empty() { b'{' } else { b',' });
            out.extend_from_slice(Value::from(key).to_string().as_bytes());
            out.push(b':');
            // Writing a `Value` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, value);
        }
        let ds = self.data_start();
        let mut out = Vec::with_capacity(1024 + self.canonical.len() + self.tensors.len() * 512);
        put(&mut out, "algorithm", &json!(ALGORITHM_ID));
        put(&mut out, "etag", &self.etags_json());
        put(
            &mut out,
            "framework",
            &json!(self.request.framework.as_str()),
        );
        put(&mut out, "request", &self.request.to_canonical_json());
        put(&mut out, "seed", &crate::spec::seed_json(self.request.seed));
        put(&mut out, "service_version", &json!(SERVICE_VERSION));
        out.extend_from_slice(b",\"tensors\":[");
        for (i, t) in self.tensors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, &t.to_json(ds));
        }
        out.push(b']');
        put(&mut out, "totals", &self.totals_json());
        out.push(b'}');
        out
    }

    fn totals_json(&self) -> Value {
        json!({
            "tensors": self.tensors.len(),
            "parameters": self.total_elements,
            "data_bytes": self.data_bytes,
            "header_bytes": self.data_start(),
            "safetensors_bytes": self.file_bytes,
        })
    }

    fn etags_json(&self) -> Value {
        json!({ "json": self.etag(Format::Json), "safetensors": self.etag(Format::Safetensors) })
    }
}

/// A tensor before it has a place in the file.
#[derive(Clone)]
struct Draft {
    name: String,
    name_path: String,
    dtype: DType,
    shape: Vec<u64>,
    logical_shape: Vec<u64>,
    layout: Layout,
    identity: String,
    resolved: Resolved,
    zero_row: Option<u64>,
    fills: Vec<PlanFill>,
    origin: String,
    slice: Option<Slice>,
}

/// A named scale factor for one tensor, with the note the plan records for it
/// (`init.recipe`): what the adaptive calibration measures, applied by
/// [`Uncalibrated::calibrated`].
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub tensor: String,
    pub factor: f64,
    pub note: Value,
}

/// A request expanded into its tensors, names checked and the named recipes applied, before
/// `only`, `shard` and the layout. `plan` offers the stages and does not run the adaptive
/// calibration itself: that is a measured pass through `generate` (`analyze::calibrate`),
/// which sits above `plan`, so the whole pipeline is `pipeline::build`. The two variants make
/// an adaptive request impossible to finish without passing through its calibration.
pub enum Drafted {
    /// Nothing left to calibrate: [`Drafts::finish`] makes the plan.
    Ready(Drafts),
    /// `recipe: adaptive`: measure [`Uncalibrated::provisional`], then
    /// [`Uncalibrated::calibrated`] with the scales.
    Uncalibrated(Uncalibrated),
}

/// The whole model's tensors of one request, ready for `only`, `shard` and the layout.
pub struct Drafts {
    req: Request,
    drafts: Vec<Draft>,
    limits: Limits,
}

/// The tensors of a `recipe: adaptive` request, unscaled.
pub struct Uncalibrated(Drafts);

/// Expands the request into the whole model's tensors, charging the limits as each is made;
/// stops at the next tensor once `cancel` is set (the client went away).
pub fn draft(req: Request, limits: &Limits, cancel: &Cancel) -> Result<Drafted> {
    let mut collector = Collector::new(limits, cancel);
    layers::layer_drafts(&req, &mut collector)?;
    inputs::hf_drafts(&req, &mut collector)?;
    keras::keras_drafts(&req, &mut collector)?;
    inputs::raw_drafts(&req, &mut collector)?;
    let mut drafts = collector.into_drafts();

    let mut seen: HashMap<&str, &str> = HashMap::new();
    for d in &drafts {
        if let Some(first) = seen.insert(&d.name, &d.origin) {
            return Err(SpecError::new(
                ErrorCode::DuplicateName,
                d.name_path.clone(),
                format!("tensor name `{}` is already used by {first}", d.name),
            ));
        }
    }

    recipes::apply_recipe(&req, &mut drafts)?;
    let adaptive = matches!(&req.recipe, Some(crate::recipe::Recipe::Adaptive { .. }));
    let d = Drafts {
        req,
        drafts,
        limits: *limits,
    };
    Ok(if adaptive {
        Drafted::Uncalibrated(Uncalibrated(d))
    } else {
        Drafted::Ready(d)
    })
}

impl Drafts {
    /// `only`, `shard`, then sizes, limits, file order, offsets and the header.
    pub fn finish(self) -> Result<Plan> {
        let drafts = select::select(&self.req, self.drafts)?;
        let drafts = select::shard(&self.req, drafts)?;
        layout::finish(self.req, drafts, &self.limits)
    }
}

impl Uncalibrated {
    /// The request, with its `recipe` (the calibration's parameters).
    pub fn request(&self) -> &Request {
        &self.0.req
    }

    /// The plan the calibration measures: the whole model's unscaled tensors, without
    /// `recipe`, `only` and `shard`, under the request's limits.
    pub fn provisional(&self) -> Result<Plan> {
        let mut provisional = self.0.req.clone();
        provisional.recipe = None;
        provisional.only = None;
        provisional.shard = None;
        layout::finish(provisional, self.0.drafts.clone(), &self.0.limits)
    }

    /// Applies the measured scales (each recorded as the tensor's `init.recipe`).
    pub fn calibrated(self, scales: Vec<Scale>) -> Result<Drafts> {
        let mut d = self.0;
        recipes::apply_scales(&mut d.drafts, scales)?;
        Ok(d)
    }
}

/// The plan of a request without `recipe: adaptive`, for the unit tests of the modules below
/// `pipeline` (which they cannot call without a dependency cycle).
#[cfg(test)]
pub(crate) fn build_uncalibrated(req: Request) -> Plan {
    match draft(req, &Limits::UNLIMITED, &Cancel::new()).expect("the test request plans") {
        Drafted::Ready(d) => d.finish().expect("the test request lays out"),
        Drafted::Uncalibrated(_) => panic!("an adaptive request plans through pipeline::build"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `to_json_bytes` is the serialized `to_json` for plans with every optional tensor field
    /// (fills, zero rows, PyTorch shapes, slices) and a u64 seed past 2^53.
    #[test]
    fn json_bytes_equal_the_serialized_document() {
        for body in [
            r#"{"seed":1,"tensors":[{"name":"a","shape":[2],"init":"zeros"}]}"#,
            r#"{"seed":18446744073709551615,"framework":"keras","layers":[{"type":"dense","in_features":4,"out_features":3},{"type":"lstm","input_size":3,"hidden_size":2}]}"#,
            r#"{"seed":7,"layers":[{"type":"embedding","num_embeddings":5,"embedding_dim":3,"padding_idx":0},{"type":"conv2d","in_channels":3,"out_channels":2,"kernel_size":3}],"shard":{"world_size":2,"rank":1,"dim":0}}"#,
            r#"{"seed":3,"tensors":[{"name":"w","shape":[4,4],"init":"normal","fills":[{"index":[[0,1]],"value":0.5}]}]}"#,
        ] {
            let req = crate::spec::parse_bytes(body.as_bytes()).unwrap();
            let plan = build_uncalibrated(req);
            assert_eq!(
                String::from_utf8(plan.to_json_bytes()).unwrap(),
                serde_json::to_string(&plan.to_json()).unwrap(),
                "{body}"
            );
        }
    }
}
