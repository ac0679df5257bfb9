//! Reading and writing weights: safetensors (everywhere), PyTorch `.pth` zip checkpoints, and
//! seeded torchvision-layout weights for tests and the offline demo.

pub mod pickle;
pub mod pth;
pub mod safetensors;
pub mod seeded;

use std::collections::HashMap;

use crate::Result;
use crate::tensor::StateDict;

/// Tensors and string metadata read from a weights file.
pub struct WeightsFile {
    pub tensors: StateDict,
    pub metadata: HashMap<String, String>,
}

/// Read a weights file by its content: a zip archive or a legacy pickle stream is a PyTorch
/// checkpoint, anything else must be safetensors. `num_batches_tracked` counters (training bookkeeping) are dropped.
pub fn read_weights(bytes: &[u8]) -> Result<WeightsFile> {
    let (mut tensors, metadata) = if pth::is_zip(bytes) {
        (pth::read_pth_zip(bytes)?, HashMap::new())
    } else if pth::is_legacy(bytes) {
        (pth::read_pth_legacy(bytes)?, HashMap::new())
    } else {
        safetensors::read_safetensors(bytes)?
    };
    tensors.retain(|k, _| !k.ends_with("num_batches_tracked"));
    Ok(WeightsFile { tensors, metadata })
}
