//! Raw tensors' `fills` (constant boxes written after the initializer, as PyTorch's
//! `weight[i].zero_()` / `weight[:, a:b].fill_(v)`) and `int64` raw tensors (integer buffers):
//! the values equal the unfilled tensor with the boxes overwritten, shards and byte ranges see
//! the same values, and bad boxes or non-integer int64 values are refused with their path.

mod support;

use paraminit::error::ErrorCode;
use paraminit::pipeline;
use paraminit::plan::Limits;
use paraminit::spec;
use serde_json::{Value, json};

fn req(fills: Value) -> Value {
    json!({"seed": 9, "tensors": [
        {"name": "w", "shape": [7, 5, 3], "init": {"name": "normal", "std": 0.5}, "fills": fills},
        {"name": "plain", "shape": [7, 5, 3], "init": {"name": "normal", "std": 0.5}}
    ]})
}

/// The unfilled values of `w` (same stream: the identity is the name) with the boxes applied.
fn expected(fills: &[(Vec<(u64, u64)>, f32)]) -> Vec<f32> {
    let shape = [7u64, 5, 3];
    let base = support::values(&support::plan(&req(json!([]))), "w");
    let mut out = base.clone();
    for (i, o) in out.iter_mut().enumerate() {
        let idx = [i as u64 / 15, (i as u64 / 3) % 5, i as u64 % 3];
        for (ranges, v) in fills {
            let inside = (0..3).all(|d| {
                let (a, b) = ranges.get(d).copied().unwrap_or((0, shape[d]));
                a <= idx[d] && idx[d] < b
            });
            if inside {
                *o = *v;
            }
        }
    }
    out
}

#[test]
fn fills_overwrite_exactly_their_boxes_in_order() {
    let fills = json!([
        {"index": [0], "value": 0},
        {"index": [[2, 5], [1, 3]], "value": 0.25},
        {"index": [[0, 7], [0, 5], [2, 3]], "value": -1},
        {"index": [[3, 4], [2, 3]], "value": 7}
    ]);
    let p = support::plan(&req(fills));
    let got = support::values(&p, "w");
    let want = expected(&[
        (vec![(0, 1)], 0.0),
        (vec![(2, 5), (1, 3)], 0.25),
        (vec![(0, 7), (0, 5), (2, 3)], -1.0),
        (vec![(3, 4), (2, 3)], 7.0),
    ]);
    assert_eq!(got, want);
    // Untouched elements are the plain initializer's values of the same stream; the other
    // tensor has no fills.
    assert!(
        got[15..]
            .iter()
            .any(|v| *v != 0.0 && *v != 0.25 && *v != -1.0 && *v != 7.0)
    );
    assert_eq!(
        support::values(&p, "plain"),
        support::values(&support::plan(&req(json!([]))), "plain")
    );
    // The first row is +0.0 exactly.
    assert!(got[..15].iter().enumerate().all(|(i, v)| if i % 3 == 2 {
        *v == -1.0
    } else {
        v.to_bits() == 0
    }));
}

#[test]
fn a_box_over_the_whole_tensor_or_a_scalar() {
    let p = support::plan(&req(json!([{"index": [], "value": 3}])));
    assert!(support::values(&p, "w").iter().all(|v| *v == 3.0));
    let s = support::plan(&json!({"seed": 1, "tensors": [
        {"name": "s", "shape": [], "init": "ones", "fills": [{"index": [], "value": 2}]}]}));
    assert_eq!(support::values(&s, "s"), vec![2.0]);
}

#[test]
fn shards_and_byte_ranges_see_the_filled_values() {
    let fills = json!([{"index": [[1, 6], [2, 4]], "value": 0.5}, {"index": [4], "value": 0}]);
    let full = support::plan(&req(fills.clone()));
    let all = support::values(&full, "w");
    let mut parts = Vec::new();
    for rank in 0..3 {
        let mut r = req(fills.clone());
        r["shard"] = json!({"rank": rank, "world_size": 3, "dim": 1});
        r["only"] = json!(["w"]);
        parts.push(support::values(&support::plan(&r), "w"));
    }
    // Reassemble along axis 1 (sizes 2, 2, 1 of 5).
    let mut joined = Vec::new();
    for row in 0..7 {
        for (rank, part) in parts.iter().enumerate() {
            let len = [2usize, 2, 1][rank];
            joined.extend_from_slice(&part[row * len * 3..(row + 1) * len * 3]);
        }
    }
    assert_eq!(joined, all);
    let whole = support::safetensors_bytes(&full);
    let pieces = support::safetensors_bytes_in_pieces(&full, 13);
    assert_eq!(whole, pieces);
    assert_eq!(
        support::f32s(support::tensor_bytes(&full, &whole, "w")),
        all
    );
}

#[test]
fn int64_raw_tensors_hold_integers() {
    let p = support::plan(&json!({"seed": 1, "tensors": [
        {"name": "bn.num_batches_tracked", "shape": [], "init": "zeros", "dtype": "int64"},
        {"name": "counts", "shape": [4], "init": {"name": "constant", "value": 3}, "dtype": "int64",
         "fills": [{"index": [[1, 2]], "value": -5}]}]}));
    let file = support::safetensors_bytes(&p);
    let t = &p.tensors[support::tensor_index(&p, "counts")];
    assert_eq!(t.dtype.safetensors(), "I64");
    let bytes = support::tensor_bytes(&p, &file, "counts");
    let vals: Vec<i64> = bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(vals, [3, -5, 3, 3]);
    assert_eq!(
        support::tensor_bytes(&p, &file, "bn.num_batches_tracked"),
        [0u8; 8]
    );
    // The canonical request round-trips.
    let canon = p.request.to_canonical_json();
    assert_eq!(spec::parse(&canon).unwrap(), p.request);
}

fn refused(r: Value) -> (ErrorCode, String) {
    match spec::parse(&r).and_then(|q| pipeline::build(q, &Limits::UNLIMITED)) {
        Ok(_) => panic!("accepted: {r}"),
        Err(e) => (e.code, e.path.unwrap_or_default()),
    }
}

#[test]
fn bad_fills_and_int64_inits_are_refused_with_their_path() {
    let (c, p) = refused(req(json!([{"index": [7], "value": 0}])));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::InvalidValue, "tensors[0].fills[0].index[0]")
    );
    let (c, p) = refused(req(json!([{"index": [[0, 1], [3, 3]], "value": 0}])));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::InvalidValue, "tensors[0].fills[0].index[1]")
    );
    let (c, p) = refused(req(json!([{"index": [0, 0, 0, 0], "value": 0}])));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::InvalidValue, "tensors[0].fills[0].index")
    );
    let (c, p) = refused(req(json!([{"index": [0]}])));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::MissingField, "tensors[0].fills[0].value")
    );
    let (c, p) = refused(req(json!([{"index": [0], "value": 0, "step": 2}])));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::UnknownField, "tensors[0].fills[0].step")
    );
    let (c, p) = refused(json!({"seed": 1, "tensors": [
        {"name": "n", "shape": [], "init": "normal", "dtype": "int64"}]}));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::InitializerMismatch, "tensors[0].dtype")
    );
    let (c, _) = refused(json!({"seed": 1, "tensors": [
        {"name": "n", "shape": [2], "init": {"name": "constant", "value": 0.5}, "dtype": "int64"}]}));
    assert_eq!(c, ErrorCode::InvalidValue);
    let (c, p) = refused(json!({"seed": 1, "tensors": [
        {"name": "n", "shape": [2], "init": "zeros", "dtype": "int64",
         "fills": [{"index": [0], "value": 1.5}]}]}));
    assert_eq!(
        (c, p.as_str()),
        (ErrorCode::InvalidValue, "tensors[0].fills[0].value")
    );
    let (c, p) = refused(json!({"seed": 1, "tensors": [
        {"name": "h", "shape": [2], "init": "zeros", "dtype": "float16",
         "fills": [{"index": [0], "value": 1e6}]}]}));
    assert_eq!((c, p.as_str()), (ErrorCode::InvalidValue, "tensors[0]"));
    // int64 stays a raw-tensor dtype: the request dtype is a float dtype.
    let (c, p) = refused(json!({"seed": 1, "dtype": "int64", "tensors": []}));
    assert_eq!((c, p.as_str()), (ErrorCode::InvalidValue, "dtype"));
}
