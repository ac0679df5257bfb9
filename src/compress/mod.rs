//! Compression: channel groups from the network's structure, structured pruning, magnitude
//! sparsity, batch-norm recalibration, the weight quantizer, and the metrics that say what it
//! bought. (Quantized files, the fake-quant forward and ONNX export are the engine's next steps.)

pub mod groups;
pub mod metrics;
pub mod prune;
pub mod quantize;
pub mod recalibrate;
pub mod sparsity;

use crate::Result;
use crate::model::Model;
pub use groups::{Group, Layer, Member, Structure};
pub use metrics::{FileSize, Metrics};
pub use prune::{Importance, PruneOptions, prune_channels};
pub use recalibrate::recalibrate_bn;
pub use sparsity::{SparsityOptions, magnitude_prune};

impl Model {
    /// The channel groups of this network.
    pub fn channel_groups(&self) -> Vec<Group> {
        self.config.structure().groups()
    }

    /// A structurally pruned copy: fewer channels, widths read back from the pruned tensors.
    pub fn pruned(&self, opts: &PruneOptions) -> Result<Model> {
        let weights = prune_channels(self, &self.channel_groups(), opts)?;
        let config = self.config.with_widths_of(&weights)?;
        Model::new(config, weights)
    }

    /// A copy with the smallest weights zeroed (same shapes).
    pub fn sparsified(&self, opts: &SparsityOptions) -> Result<Model> {
        Ok(Model {
            config: self.config.clone(),
            weights: magnitude_prune(self, opts)?,
        })
    }
}
