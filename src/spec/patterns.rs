//! Glob patterns (`only`, `shard.dims`): one pattern checked and parsed, a list's bounds, and a
//! list compiled into one set that `plan` matches each tensor name against once.

use crate::error::{Result, SpecError};

/// Compiles a glob as `plan` will (`*` and `?` match any character, `.` and `/` included).
/// One glob pattern, parsed (no regex is compiled here; `glob_set` compiles all of a list
/// into one set, fallibly).
pub fn glob(pattern: &str) -> std::result::Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

/// Bounds on `only` and `shard.dims` patterns: each is parsed, and all of a list are compiled
/// into one set matched once per tensor, so the cost is bounded by these.
pub const MAX_PATTERNS: usize = 4096;
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Compiles `patterns` into one set (the fallible build: a pattern whose regex passes the
/// regex size limit is an error, not a panic). `path` is the list's JSON path.
pub fn glob_set<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    path: &str,
) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p).map_err(|e| {
            SpecError::invalid_value(path, format!("not a valid glob pattern: {}", e.kind()))
        })?);
    }
    b.build().map_err(|e| {
        SpecError::invalid_value(
            path,
            format!(
                "the patterns are too complex to compile together: {}",
                e.kind()
            ),
        )
    })
}

pub(super) fn check_glob(pattern: &str, path: &str) -> Result<()> {
    if pattern.is_empty() {
        return Err(SpecError::invalid_value(
            path,
            "a pattern must not be empty",
        ));
    }
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(SpecError::limit_exceeded(
            path,
            format!(
                "a pattern may be at most {MAX_PATTERN_BYTES} bytes; this one has {}",
                pattern.len()
            ),
        ));
    }
    // The error's kind only: its Display repeats the whole pattern.
    glob(pattern).map(|_| ()).map_err(|e| {
        SpecError::invalid_value(path, format!("not a valid glob pattern: {}", e.kind()))
    })
}

pub(super) fn too_many_patterns(n: usize, path: &str) -> Result<()> {
    if n > MAX_PATTERNS {
        return Err(SpecError::limit_exceeded(
            path,
            format!("at most {MAX_PATTERNS} patterns; this list has {n}"),
        ));
    }
    Ok(())
}
