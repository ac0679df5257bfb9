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
    read_weights_inspected(bytes, &mut |_| Ok(()))
}

/// [`read_weights`], with a PyTorch checkpoint's declared names and shapes shown to `inspect`
/// before any of its storage is read (`num_batches_tracked` left out): a file it refuses costs
/// its `data.pkl` alone, whatever its storages declare. A safetensors file's header is its
/// index, and its bytes are in memory already; it is read as it is.
pub fn read_weights_inspected(
    bytes: &[u8],
    inspect: &mut dyn FnMut(&pth::DeclaredShapes) -> Result<()>,
) -> Result<WeightsFile> {
    let mut relevant = |shapes: &pth::DeclaredShapes| {
        let kept: Vec<_> = shapes
            .iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .cloned()
            .collect();
        inspect(&kept)
    };
    let (mut tensors, metadata) = if pth::is_zip(bytes) {
        (
            pth::read_pth_zip_inspected(bytes, &mut relevant)?,
            HashMap::new(),
        )
    } else if pth::is_legacy(bytes) {
        (
            pth::read_pth_legacy_inspected(bytes, &mut relevant)?,
            HashMap::new(),
        )
    } else {
        safetensors::read_safetensors(bytes)?
    };
    tensors.retain(|k, _| !k.ends_with("num_batches_tracked"));
    Ok(WeightsFile { tensors, metadata })
}
