//! Compression: structured pruning along the network's channel groups, magnitude sparsity,
//! batch-norm recalibration, quantization of whole models with calibrated activations, and the
//! metrics that say what it bought. It builds on `model` (networks, channel groups) and `quant`
//! (the quantization scheme); neither of those imports anything from here.

pub mod augment;
pub mod bias_correction;
pub mod calibrate;
pub mod calibrated_weights;
pub mod fold;
pub mod gptq;
pub mod importance;
pub mod layerwise;
pub mod linalg;
pub mod measured_importance;
pub mod metrics;
pub mod passes;
pub mod pipeline;
pub mod prune;
pub mod quantize_weights;
pub mod recalibrate;
pub mod reconstruct;
pub mod settings;
pub mod sparsegpt;
pub mod sparsity;
pub mod statistics;

use crate::Result;
use crate::model::Model;
pub use crate::model::channels::{Group, Layer, Member, Structure};
pub use crate::quant::{ActQuant, Granularity, Precision, Quantization};
pub use augment::Augment;
pub use calibrate::Calibration;
pub use gptq::GptqOptions;
pub use importance::{ChannelImportance, Importance};
pub use metrics::{FileSize, LayerStat, Metrics, Ratios, layer_report};
pub use pipeline::{
    Agreement, CompressOptions, Progress, Sensitivity, agreement, compress, report,
};
pub use prune::{
    KeptChannels, PruneOptions, PruneScope, prune_channels, prune_channels_by, prune_channels_kept,
};
pub use quantize_weights::{QuantMethod, QuantOptions};
pub use recalibrate::recalibrate_bn;
pub use settings::{CalibrationNeed, LIMITS, Limit, Preset, Settings, presets};
pub use sparsity::{SparsityOptions, magnitude_prune};

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
        let arch = self.arch.with_widths_of(&weights)?;
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

    /// Pruning works on the float network; a quantized file must be compressed from its
    /// original.
    pub(crate) fn refuse_if_quantized(&self, what: &str) -> Result<()> {
        if self.folded || !self.quant.is_empty() {
            return Err(crate::Error::Invalid(format!(
                "this model is already quantized: {what} the original instead"
            )));
        }
        Ok(())
    }
}
