//! The one place a plan's tensors are created. Every producer (layers, raw tensors,
//! `hf_config`, and any input added later) hands its tensors to a [`Collector`], which charges
//! the tensor count and the element count the moment each tensor is produced and refuses as
//! soon as a limit is passed, so no producer can build an unbounded list first and be checked
//! after. Producers whose loops multiply (stacked recurrent layers, Hugging Face layer loops)
//! call [`Collector::reserve`] with their tensor count in closed form before the loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::layout::checked_numel;
use super::{Draft, Limits};
use crate::error::{ErrorCode, Result, SpecError};

/// Set by the HTTP edge when the client that asked for a plan has gone away; plan building
/// stops at the next tensor.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Cancels on drop: held by the future that waits for a plan, so dropping that future (the
/// client disconnected) stops the blocking work it started.
pub struct CancelOnDrop(pub Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The names the safetensors format reserves for itself: a tensor of that name would make a
/// file with two `__metadata__` keys, which readers reject or misread.
pub const RESERVED_NAMES: &[&str] = &["__metadata__"];

pub(super) struct Collector {
    drafts: Vec<Draft>,
    limits: Limits,
    elements: u64,
    cancel: Cancel,
}

impl Collector {
    pub(super) fn new(limits: &Limits, cancel: &Cancel) -> Collector {
        Collector {
            drafts: Vec::new(),
            limits: *limits,
            elements: 0,
            cancel: cancel.clone(),
        }
    }

    fn tensor_limit(&self, count: u64, path: &str) -> SpecError {
        SpecError::limit_exceeded(
            path,
            format!(
                "the request has at least {count} tensors; the limit is {} (PARAMINIT_MAX_TENSORS)",
                self.limits.max_tensors
            ),
        )
    }

    /// Closed-form check before a loop that will produce `count` more tensors.
    pub(super) fn reserve(&self, count: u64, path: &str) -> Result<()> {
        let total = (self.drafts.len() as u64).saturating_add(count);
        if total > self.limits.max_tensors {
            return Err(self.tensor_limit(total, path));
        }
        Ok(())
    }

    /// Adds one tensor: charges it against the tensor and element limits (elements of the whole
    /// tensor, before `only` and `shard`), refuses reserved names.
    pub(super) fn push(&mut self, d: Draft) -> Result<()> {
        if self.cancel.is_cancelled() {
            // Nobody reads this: the client has gone.
            return Err(SpecError::limit_exceeded(
                "",
                "cancelled: the client went away",
            ));
        }
        if RESERVED_NAMES.contains(&d.name.as_str()) {
            return Err(SpecError::new(
                ErrorCode::ReservedName,
                d.name_path.clone(),
                format!(
                    "`{}` is reserved by the safetensors format for the file's metadata; a tensor of that name would make a file with two `__metadata__` keys",
                    d.name
                ),
            ));
        }
        let count = self.drafts.len() as u64 + 1;
        if count > self.limits.max_tensors {
            return Err(self.tensor_limit(count, &d.origin));
        }
        let numel = checked_numel(&d.shape, &d.origin)?;
        self.elements = self.elements.checked_add(numel).ok_or_else(|| {
            SpecError::size_overflow(
                d.origin.clone(),
                "the total element count overflows 64 bits",
            )
        })?;
        if self.elements > self.limits.max_elements {
            return Err(SpecError::limit_exceeded(
                d.origin.clone(),
                format!(
                    "the request has at least {} elements (up to tensor `{}`); the limit is {} (PARAMINIT_MAX_ELEMENTS)",
                    self.elements, d.name, self.limits.max_elements
                ),
            ));
        }
        self.drafts.push(d);
        Ok(())
    }

    /// The tensor added last (to set an embedding's `padding_idx` row).
    pub(super) fn last_mut(&mut self) -> Option<&mut Draft> {
        self.drafts.last_mut()
    }

    pub(super) fn into_drafts(self) -> Vec<Draft> {
        self.drafts
    }
}
