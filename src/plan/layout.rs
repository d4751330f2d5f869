//! Layout: sizes the drafts, checks the per-tensor and request limits (whole-tensor size,
//! dtype range, elements, response bytes), orders them as safetensors does (dtype rank, then
//! name bytes) and gives each its byte range.

use super::header::safetensors_header;
use super::{Draft, Limits, MAX_ORTHOGONAL_SMALL_DIM, MAX_WHOLE_TENSOR_ELEMENTS, Plan, TensorPlan};
use crate::error::{Result, SpecError};
use crate::init::{ValueSource, WholeTensor};
use crate::rng::stream_id;
use crate::spec::Request;
use crate::terms::DType;

pub(super) fn checked_numel(shape: &[u64], path: &str) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            SpecError::size_overflow(
                path,
                format!("the element count of shape {shape:?} overflows 64 bits"),
            )
        })
}

/// The largest absolute value a source can produce (Box–Muller with 24-bit inputs never
/// exceeds |z| = √(2·24·ln 2) < 5.8).
pub(super) fn max_abs(src: &ValueSource) -> f64 {
    use crate::sample::Kernel;
    match src {
        ValueSource::Constant(v) => v.abs() as f64,
        ValueSource::Random(Kernel::Uniform { low, scale }) => {
            (*low as f64).abs().max((*low as f64 + *scale as f64).abs())
        }
        ValueSource::Random(Kernel::Normal { mean, std }) => {
            (*mean as f64).abs() + 5.8 * (*std as f64).abs()
        }
        ValueSource::Random(Kernel::TruncNormal(t)) => (t.a as f64).abs().max((t.b as f64).abs()),
        ValueSource::Eye { gain } => gain.abs() as f64,
        ValueSource::Dirac { .. } => 1.0,
        ValueSource::Whole(WholeTensor::Orthogonal { gain, .. }) => gain.abs(),
        ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale }) => scale.abs(),
        ValueSource::Whole(WholeTensor::Sparse { std, .. }) => 5.8 * (*std as f64).abs(),
        ValueSource::WithConstantRange { base, value, .. } => {
            max_abs(&(*base).into()).max(value.abs() as f64)
        }
        ValueSource::Pieces(parts) => parts
            .iter()
            .map(|p| max_abs(&p.2.into()))
            .fold(0.0, f64::max),
    }
}

pub(super) fn dtype_max(d: DType) -> f64 {
    match d {
        DType::F16 => 65504.0,
        DType::BF16 | DType::F32 | DType::F64 => f32::MAX as f64 * (1.0 - 1e-7),
        DType::I64 => f64::MAX,
    }
}

/// Sizes, orders and lays out the tensors, and checks the request limits.
pub(super) fn finish(req: Request, drafts: Vec<Draft>, limits: &Limits) -> Result<Plan> {
    let mut total_elements: u64 = 0;
    let mut sized = Vec::with_capacity(drafts.len());
    for d in drafts {
        let numel = checked_numel(&d.shape, &d.origin)?;
        let bytes = numel.checked_mul(d.dtype.size()).ok_or_else(|| {
            SpecError::size_overflow(
                d.origin.clone(),
                format!("tensor `{}` has more bytes than 64 bits count", d.name),
            )
        })?;
        total_elements = total_elements.checked_add(numel).ok_or_else(|| {
            SpecError::size_overflow("", "the total element count overflows 64 bits")
        })?;
        let full_numel = match &d.slice {
            Some(sl) => checked_numel(&sl.full_shape, &d.origin)?,
            None => numel,
        };
        if let ValueSource::Whole(whole) = &d.resolved.source {
            let logical = &d.logical_shape;
            let rows_axes = match *whole {
                WholeTensor::Orthogonal { rows_axes, .. } => {
                    rows_axes.clamp(1, logical.len().max(1))
                }
                _ => 1,
            };
            let rows = logical[..rows_axes.min(logical.len())]
                .iter()
                .fold(1u64, |a, &x| a.saturating_mul(x));
            let small = rows.min(full_numel / rows.max(1));
            if full_numel > MAX_WHOLE_TENSOR_ELEMENTS
                || (matches!(whole, WholeTensor::Orthogonal { .. })
                    && small > MAX_ORTHOGONAL_SMALL_DIM)
            {
                return Err(SpecError::limit_exceeded(
                    d.origin.clone(),
                    format!(
                        "`{}` needs the whole tensor in memory; it is limited to {MAX_WHOLE_TENSOR_ELEMENTS} elements (and orthogonal to a smaller side of {MAX_ORTHOGONAL_SMALL_DIM}), this tensor has {full_numel}",
                        d.resolved.info.spec.name()
                    ),
                ));
            }
        }
        let m = d.fills.iter().fold(max_abs(&d.resolved.source), |m, f| {
            m.max(f.value.abs() as f64)
        });
        if m > dtype_max(d.dtype) {
            return Err(SpecError::invalid_value(
                d.origin.clone(),
                format!(
                    "values of `{}` reach about {m:e}, beyond the largest finite {} ({:e})",
                    d.name,
                    d.dtype.as_str(),
                    dtype_max(d.dtype)
                ),
            ));
        }
        sized.push((d, numel, bytes));
    }
    if total_elements > limits.max_elements {
        return Err(SpecError::limit_exceeded(
            "",
            format!(
                "the request has {total_elements} elements; the limit is {} (PARAMINIT_MAX_ELEMENTS)",
                limits.max_elements
            ),
        ));
    }

    sized.sort_by(|(a, ..), (b, ..)| {
        b.dtype
            .safetensors_rank()
            .cmp(&a.dtype.safetensors_rank())
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });

    let mut offset: u64 = 0;
    let mut tensors = Vec::with_capacity(sized.len());
    for (d, numel, bytes) in sized {
        let begin = offset;
        offset = offset.checked_add(bytes).ok_or_else(|| {
            SpecError::size_overflow("", "the total byte count overflows 64 bits")
        })?;
        tensors.push(TensorPlan {
            stream: stream_id(&d.identity),
            name: d.name,
            dtype: d.dtype,
            shape: d.shape,
            logical_shape: d.logical_shape,
            layout: d.layout,
            numel,
            begin,
            end: offset,
            identity: d.identity,
            resolved: d.resolved,
            zero_row: d.zero_row,
            fills: d.fills,
            origin: d.origin,
            slice: d.slice,
        });
    }
    let data_bytes = offset;
    let canonical = req.to_canonical_json().to_string();
    let header = safetensors_header(&req, &canonical, &tensors)?;
    let file_bytes = (header.len() as u64)
        .checked_add(data_bytes)
        .ok_or_else(|| SpecError::size_overflow("", "the file size overflows 64 bits"))?;
    if file_bytes > limits.max_response_bytes {
        return Err(SpecError::limit_exceeded(
            "",
            format!(
                "the response would be {file_bytes} bytes; the limit is {} (PARAMINIT_MAX_RESPONSE_BYTES)",
                limits.max_response_bytes
            ),
        ));
    }
    Ok(Plan {
        request: req,
        tensors,
        header,
        canonical,
        total_elements,
        data_bytes,
        file_bytes,
    })
}
