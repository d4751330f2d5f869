//! The one entry point from a validated request to its [`Plan`]: `plan`'s two halves with the
//! adaptive recipe's calibration between them. The calibration is a measured forward pass over
//! a provisional plan through `generate` (`analyze::calibrate`), so it cannot live in `plan`
//! without a dependency cycle; this module sits above `plan`, `generate` and `analyze`, and
//! every caller that turns a request into a plan (the HTTP routes, the CLI, the bench, the
//! tests) goes through it, so `recipe: adaptive` is handled in exactly one place.

use std::sync::Arc;

use crate::error::Result;
use crate::plan::{self, Cancel, Drafted, Limits, Plan};
use crate::spec::Request;

/// The plan of `req` under `limits`.
pub fn build(req: Request, limits: &Limits) -> Result<Plan> {
    build_cancellable(req, limits, &Cancel::new())
}

/// Like [`build`]; stops at the next tensor once `cancel` is set (the client went away).
///
/// The stages run in this order, each refusing with its own error before the next starts:
/// expansion (limits charged per tensor), duplicate names, the named recipes; for `adaptive`,
/// the provisional plan's layout and limits, then the calibration's refusals and bounds, then
/// the scales; `only`, `shard`, and the final layout and limits.
pub fn build_cancellable(req: Request, limits: &Limits, cancel: &Cancel) -> Result<Plan> {
    match plan::draft(req, limits, cancel)? {
        Drafted::Ready(drafts) => drafts.finish(),
        Drafted::Uncalibrated(u) => {
            let provisional = Arc::new(u.provisional()?);
            let scales = crate::analyze::calibrate(provisional, u.request())?;
            u.calibrated(scales)?.finish()
        }
    }
}
