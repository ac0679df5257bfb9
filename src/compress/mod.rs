//! Compression, by concept: [`plan`] (the settings people choose and the steps they become),
//! [`prune`] (channels, sparsity, refitting), [`quantize`] (weights: rounding, GPTQ, bias
//! correction), [`calibration`] (what is measured on photos: activation ranges, batch-norm
//! statistics, layer-input statistics), the [`pipeline`] that runs a plan, and the measures of
//! what it bought ([`metrics`], [`agreement`], [`sensitivity`]). It builds on `model` (networks, channel groups) and `quant`
//! (the quantization scheme); neither of those imports anything from here.

pub mod agreement;
pub mod auto;
pub mod calibration;
pub mod linalg;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod prune;
pub mod quantize;
pub mod sensitivity;

use crate::Result;
use crate::model::Model;
pub use crate::model::channels::{Group, Layer, Member, Structure};
pub use crate::quant::{ActQuant, Granularity, Precision, Quantization};
pub use agreement::{Agreement, agreement, logits_of};
pub use calibration::activation_ranges::Calibration;
pub use calibration::augment::Augment;
pub use calibration::batch_norm::recalibrate_bn;
pub use metrics::{FileSize, LayerStat, Metrics, Ratios, layer_report};
pub use pipeline::{CompressOptions, Shape, compress};
pub use plan::{
    Action, CalibrationNeed, Photos, Plan, Preset, Purpose, SETTINGS, Settings, presets,
};
pub use progress::{Progress, announce, report};
pub use prune::blocks::{BlockDrop, DroppedBlock};
pub use prune::importance::{ChannelImportance, Importance};
pub use prune::sparsity::{SparsityOptions, magnitude_prune};
pub use prune::{
    KeptChannels, PruneOptions, PruneScope, prune_channels, prune_channels_by, prune_channels_kept,
};
pub use quantize::gptq::GptqOptions;
pub use quantize::{QuantMethod, QuantOptions};
pub use sensitivity::{Sensitivity, sensitivity};

impl Model {
    /// The channel groups of this network.
    pub fn channel_groups(&self) -> Vec<Group> {
        self.graph().structure().groups()
    }

    /// A structurally pruned copy: fewer channels, widths read back from the pruned tensors.
    pub fn pruned(&self, opts: &PruneOptions) -> Result<Model> {
        Ok(self.pruned_by(opts, opts.importance.criterion()?)?.0)
    }

    /// [`Model::pruned`] with channels ranked by `criterion`, and which channels each tensor
    /// kept (what reconstruction needs).
    pub fn pruned_by(
        &self,
        opts: &PruneOptions,
        criterion: &dyn ChannelImportance,
    ) -> Result<(Model, KeptChannels)> {
        self.refuse_if_quantized("prune")?;
        let (weights, kept) = prune_channels_kept(self, &self.channel_groups(), opts, criterion)?;
        let mut arch = self.arch.with_widths_of(&weights)?;
        arch.graph = arch.graph.with_slices_kept(&self.arch.graph, |conv| {
            kept.get(&Member::whole(format!("{conv}.weight"), 0))
                .cloned()
        })?;
        Ok((Model::new(arch, weights)?, kept))
    }

    /// A copy with the smallest weights zeroed (same shapes).
    pub fn sparsified(&self, opts: &SparsityOptions) -> Result<Model> {
        self.refuse_if_quantized("sparsify")?;
        Ok(Model {
            weights: magnitude_prune(self, opts)?,
            ..self.clone()
        }
        .with_sparse_marked())
    }
}
