//! Compression to a budget, chosen automatically: the most faithful model whose ONNX file,
//! MACs or measured latency fits what the user gives, on the user's own photos. Per-layer
//! costs are measured ([`layer_costs`]), allocated under the budget ([`allocation`]), and the
//! few plans that come out are built and measured whole on photos held back from every fitting
//! step ([`search`]); the per-layer result is read back from the model kept ([`LayerPlan`]).

pub mod allocation;
mod budget;
pub mod layer_costs;
mod runtime;
mod search;

use serde::Serialize;

pub use budget::{Budget, DeployFormat};
pub use layer_costs::CostCache;
pub use runtime::{RuntimePick, Timed, runtime_pick};
pub use search::{AutoOptions, COST_PHOTOS, Candidate, Search, TfliteMeasure, search};

use crate::model::Model;

/// How one conv or linear layer ended up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerPlan {
    pub layer: String,
    /// `fp32`, `fp16`, `int8`, `int4`, or `dropped` with its block.
    pub precision: String,
    /// Which weights share a scale (`channel`, `tensor`, `group:N`), for integer layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    /// Output channels kept, of `channels_before`.
    pub kept_channels: usize,
    pub channels_before: usize,
    pub dropped: bool,
}

/// Every conv and linear layer of `original`, as `compressed` stores it.
pub fn layer_plan(original: &Model, compressed: &Model) -> Vec<LayerPlan> {
    crate::compress::layer_report(original, compressed)
        .into_iter()
        .map(|s| {
            let key = format!("{}.weight", s.layer);
            let int = compressed.quant.int.get(&key);
            let precision = match int {
                Some(q) => format!("int{}", q.bits),
                None if s.dropped => "dropped".into(),
                None if compressed.quant.f16.contains(&key) => "fp16".into(),
                None => "fp32".into(),
            };
            LayerPlan {
                precision,
                granularity: int.map(|q| q.granularity.to_string()),
                kept_channels: s.width_after,
                channels_before: s.width_before,
                dropped: s.dropped,
                layer: s.layer,
            }
        })
        .collect()
}
