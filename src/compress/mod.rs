//! Compression: channel groups from the network's structure, structured pruning, magnitude
//! sparsity, batch-norm recalibration, the weight quantizer, and the metrics that say what it
//! bought, quantization of whole models with calibrated activations.

pub mod groups;
pub mod metrics;
pub mod pipeline;
pub mod prune;
pub mod qmodel;
pub mod quantize;
pub mod recalibrate;
pub mod sparsity;

use crate::Result;
use crate::model::Model;
pub use groups::{Group, Layer, Member, Structure};
pub use metrics::{FileSize, LayerStat, Metrics, layer_report};
pub use pipeline::{Agreement, CompressOptions, Progress, Sensitivity, agreement, compress};
pub use prune::{Importance, PruneOptions, prune_channels};
pub use qmodel::{Calibration, QuantOptions};
pub use quantize::{ActQuant, Granularity, Precision, Quantization};
pub use recalibrate::recalibrate_bn;
pub use sparsity::{SparsityOptions, magnitude_prune};

impl Model {
    /// The channel groups of this network.
    pub fn channel_groups(&self) -> Vec<Group> {
        self.graph().structure().groups()
    }

    /// A structurally pruned copy: fewer channels, widths read back from the pruned tensors.
    pub fn pruned(&self, opts: &PruneOptions) -> Result<Model> {
        self.refuse_if_quantized("prune")?;
        let weights = prune_channels(self, &self.channel_groups(), opts)?;
        let arch = self.arch.with_widths_of(&weights)?;
        Model::new(arch, weights)
    }

    /// A copy with the smallest weights zeroed (same shapes).
    pub fn sparsified(&self, opts: &SparsityOptions) -> Result<Model> {
        self.refuse_if_quantized("sparsify")?;
        Ok(Model {
            weights: magnitude_prune(self, opts)?,
            ..self.clone()
        })
    }

    /// Pruning works on the float network; a quantized file must be compressed from its
    /// original.
    fn refuse_if_quantized(&self, what: &str) -> Result<()> {
        if self.folded || !self.quant.is_empty() {
            return Err(crate::Error::Invalid(format!(
                "this model is already quantized: {what} the original instead"
            )));
        }
        Ok(())
    }
}
