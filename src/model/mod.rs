//! Networks: their structure (a config that holds every width), their parameters on the host,
//! and their forward pass on a Burn device.

pub mod exec;
pub mod graph;
pub mod layers;
pub mod resnet;
pub mod stored;

use crate::compress::quantize::Quantization;
use crate::tensor::StateDict;
use crate::weights;
use crate::{Error, Result};
pub use graph::{Graph, Op};
pub use resnet::{BasicBlockConfig, ResNetConfig};
pub use stored::ModelCard;

/// A network's structure and its parameters, held on the host.
#[derive(Debug, Clone)]
pub struct Model {
    pub config: ResNetConfig,
    /// Batch norms folded into the convs before them (every quantized model is folded).
    pub folded: bool,
    /// The values the forward pass uses: for quantized tensors, exactly their dequantized
    /// values.
    pub weights: StateDict,
    /// How tensors are stored (int8/int4 values and scales, fp16) and activations quantized.
    pub quant: Quantization,
}

impl Model {
    /// Load from weights-file bytes (safetensors or PyTorch zip). The structure and the
    /// quantization come from the file's modelslim metadata when present, else it is
    /// torchvision's ResNet18; every tensor is then checked against it (missing, extra, wrong
    /// shape).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        if weights::pth::is_zip(bytes) {
            let file = weights::read_weights(bytes)?;
            return Model::new(ResNetConfig::resnet18(1000), file.tensors);
        }
        stored::read_model(bytes)
    }

    /// Check `weights` against `config` and pair them (an unfolded, unquantized network).
    pub fn new(config: ResNetConfig, weights: StateDict) -> Result<Model> {
        config.validate()?;
        check_state_dict(&config.graph(false).param_shapes(), &weights, "ResNet18")?;
        Ok(Model {
            config,
            folded: false,
            weights,
            quant: Quantization::default(),
        })
    }

    /// torchvision's ResNet18 with deterministic random weights (meaningless predictions).
    pub fn seeded_resnet18(seed: u64) -> Model {
        let config = ResNetConfig::resnet18(1000);
        let weights = weights::seeded::seeded_state_dict(&config.graph(false).param_shapes(), seed);
        Model {
            config,
            folded: false,
            weights,
            quant: Quantization::default(),
        }
    }

    /// The network as a graph of operations.
    pub fn graph(&self) -> Graph {
        self.config.graph(self.folded)
    }

    /// Serialise as safetensors: tensors as stored (int8/int4 values plus scales, fp16,
    /// fp32), the structure and the quantization in the metadata.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        stored::write_model(self)
    }

    /// Number of learnable parameters (running statistics excluded, as PyTorch counts).
    pub fn num_params(&self) -> usize {
        self.learnable().map(|t| t.len()).sum()
    }

    /// The learnable tensors: everything but batch-norm running statistics.
    pub fn learnable(&self) -> impl Iterator<Item = &crate::tensor::HostTensor> {
        self.weights
            .iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .map(|(_, t)| t)
    }
}

/// Every expected tensor present with its shape, and nothing else.
pub fn check_state_dict(
    expected: &[(String, Vec<usize>)],
    weights: &StateDict,
    model: &str,
) -> Result<()> {
    for (key, shape) in expected {
        match weights.get(key) {
            None => {
                return Err(Error::MissingKey {
                    key: key.clone(),
                    expected: shape.clone(),
                    model: model.into(),
                });
            }
            Some(t) if &t.shape != shape => {
                return Err(Error::ShapeMismatch {
                    key: key.clone(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
            Some(_) => {}
        }
    }
    if let Some((key, t)) = weights
        .iter()
        .find(|(k, _)| !expected.iter().any(|(e, _)| e == *k))
    {
        return Err(Error::ExtraKey {
            key: key.clone(),
            found: t.shape.clone(),
            model: model.into(),
        });
    }
    Ok(())
}
