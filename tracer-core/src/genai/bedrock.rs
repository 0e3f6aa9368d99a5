//! (in progress)

use super::common::RequestCtx;
use super::detect::Detected;

pub fn detect(_req: &RequestCtx<'_>) -> Option<Detected> {
    None
}
