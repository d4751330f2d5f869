//! The `shard` object: this rank's slice of every tensor (`world_size`, `rank`, the default
//! `dim` and the per-pattern `dims`).

use serde_json::Value;

use super::Shard;
use super::fields::{self, Obj, join, wrong_type};
use super::patterns::{MAX_PATTERN_BYTES, check_glob, too_many_patterns};
use crate::error::{Result, SpecError};

fn shard_dim(v: &Value, path: &str) -> Result<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        other => {
            let d = fields::integer(other, path)?;
            if !(-64..64).contains(&d) {
                return Err(SpecError::invalid_value(
                    path,
                    format!("{d} is not a tensor axis"),
                ));
            }
            Ok(Some(d))
        }
    }
}

pub(super) fn parse_shard(v: &Value, path: &str) -> Result<Shard> {
    let o = Obj::new(v, path)?;
    let (ws, _) = o.size_any(&["world_size"])?.ok_or_else(|| {
        SpecError::missing_field(join(path, "world_size"), "a shard needs `world_size`")
    })?;
    let (rank_v, rank_path) = o.require_any(&["rank"], " (0 ≤ rank < world_size)")?;
    let rank = match rank_v {
        Value::Number(n) => n.as_u64().filter(|&r| r < ws).ok_or_else(|| {
            SpecError::invalid_value(
                &rank_path,
                format!("rank must be an integer in [0, {ws}), got {n}"),
            )
        })?,
        other => return Err(wrong_type(&rank_path, "an integer", other)),
    };
    let dim = match o.get_any(&["dim"])? {
        None => Some(0),
        Some((v, p)) => shard_dim(v, &p)?,
    };
    let mut dims = Vec::new();
    if let Some((dv, dp)) = o.get_any(&["dims"])? {
        let m = match dv {
            Value::Object(m) => m,
            other => {
                return Err(wrong_type(
                    &dp,
                    "an object mapping name patterns to an axis or null",
                    other,
                ));
            }
        };
        too_many_patterns(m.len(), &dp)?;
        for (pat, d) in m {
            if pat.len() > MAX_PATTERN_BYTES {
                // Checked before the pattern goes into a path.
                return Err(SpecError::limit_exceeded(
                    dp,
                    format!(
                        "a pattern may be at most {MAX_PATTERN_BYTES} bytes; one has {}",
                        pat.len()
                    ),
                ));
            }
            let pp = format!("{dp}[{}]", serde_json::to_string(pat).unwrap_or_default());
            check_glob(pat, &pp)?;
            dims.push((pat.clone(), shard_dim(d, &pp)?));
        }
    }
    o.finish()?;
    Ok(Shard {
        rank,
        world_size: ws,
        dim,
        dims,
    })
}
