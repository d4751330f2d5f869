//! `only` (glob selection of tensors) and `shard` (this rank's slice of each tensor along its
//! axis, the most specific `shard.dims` pattern winning).

use super::{Draft, Slice};
use crate::error::{ErrorCode, Result, SpecError};
use crate::spec::Request;
use crate::terms::fields::index;

/// `only`: keeps the tensors whose name matches one of the patterns; a pattern that matches
/// nothing is an error (it is almost certainly a typo).
pub(super) fn select(req: &Request, drafts: Vec<Draft>) -> Result<Vec<Draft>> {
    let Some(patterns) = &req.only else {
        return Ok(drafts);
    };
    // One compiled set, matched once per tensor: O(tensors) set lookups, not
    // O(tensors × patterns) regex runs.
    let set = crate::spec::glob_set(patterns.iter().map(String::as_str), "only")?;
    let mut used = vec![false; patterns.len()];
    let mut hits = Vec::new();
    let kept: Vec<Draft> = drafts
        .into_iter()
        .filter(|d| {
            set.matches_into(&d.name, &mut hits);
            for &i in &hits {
                used[i] = true;
            }
            !hits.is_empty()
        })
        .collect();
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(SpecError::new(
            ErrorCode::NoMatch,
            index("only", i),
            format!(
                "`{}` matches no tensor of this request (POST /v1/plan lists them)",
                patterns[i]
            ),
        ));
    }
    Ok(kept)
}

/// Splits `size` like `numpy.array_split`: the first `size % n` parts get one more.
pub fn split_range(size: u64, world_size: u64, rank: u64) -> (u64, u64) {
    let (base, rem) = (size / world_size, size % world_size);
    let start = rank * base + rank.min(rem);
    let len = base + u64::from(rank < rem);
    (start, len)
}

/// `shard`: replaces each tensor's shape by this rank's slice along its axis.
pub(super) fn shard(req: &Request, mut drafts: Vec<Draft>) -> Result<Vec<Draft>> {
    let Some(sh) = &req.shard else {
        return Ok(drafts);
    };
    let rules: Vec<(&str, Option<i64>, String)> = sh
        .dims
        .iter()
        .map(|(p, d)| {
            let path = format!(
                "shard.dims[{}]",
                serde_json::to_string(p).unwrap_or_default()
            );
            (p.as_str(), *d, path)
        })
        .collect();
    let set = crate::spec::glob_set(rules.iter().map(|r| r.0), "shard.dims")?;
    let mut hits = Vec::new();
    for d in &mut drafts {
        // The most specific matching pattern wins: an exact name, else the longest pattern;
        // ties go to the first in byte order.
        let literal = |p: &str| !p.contains(['*', '?', '[', '{', '\\']);
        set.matches_into(&d.name, &mut hits);
        let rule = hits.iter().map(|&i| &rules[i]).max_by(|a, b| {
            (literal(a.0), a.0.len())
                .cmp(&(literal(b.0), b.0.len()))
                .then_with(|| b.0.cmp(a.0))
        });
        let (axis, path) = match rule {
            Some((_, axis, path)) => (*axis, path.clone()),
            None => (sh.dim, "shard.dim".to_string()),
        };
        let Some(axis) = axis else { continue };
        let rank = d.shape.len() as i64;
        if rank == 0 {
            continue; // scalars are always replicated
        }
        let a = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&a) {
            return Err(SpecError::invalid_value(
                path,
                format!(
                    "tensor `{}` has shape {:?}, which has no axis {axis}; map it in `shard.dims` (null replicates it)",
                    d.name, d.shape
                ),
            ));
        }
        let a = a as usize;
        let (start, len) = split_range(d.shape[a], sh.world_size, sh.rank);
        let full_shape = d.shape.clone();
        d.shape[a] = len;
        d.slice = Some(Slice {
            dim: a,
            start,
            full_shape,
        });
    }
    Ok(drafts)
}
