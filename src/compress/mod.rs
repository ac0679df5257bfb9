//! Compression: channel groups from the network's structure, structured pruning.
//! (Quantization, unstructured sparsity and export are the next steps of the engine.)

pub mod groups;
pub mod prune;

use crate::Result;
use crate::model::Model;
pub use groups::{Group, Layer, Member, Structure};
pub use prune::{Importance, PruneOptions, prune_channels};

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
}
