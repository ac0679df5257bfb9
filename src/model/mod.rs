//! Networks: their structure (a config that holds every width), their parameters on the host,
//! and their forward pass on a Burn device.

pub mod layers;
pub mod resnet;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tensor::StateDict;
use crate::weights::{self, safetensors::METADATA_KEY};
use crate::{Error, Result};
pub use resnet::{BasicBlockConfig, ResNet, ResNetConfig};

/// What a modelslim file says about itself in its safetensors metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    /// The architecture family (`resnet18`).
    pub architecture: String,
    /// Every layer's width: enough to rebuild a pruned network.
    pub config: ResNetConfig,
}

/// A network's structure and its parameters, held on the host.
#[derive(Debug, Clone)]
pub struct Model {
    pub config: ResNetConfig,
    pub weights: StateDict,
}

impl Model {
    /// Load from weights-file bytes (safetensors or PyTorch zip). The structure comes from the
    /// file's modelslim metadata when present, else it is torchvision's ResNet18; every tensor
    /// is then checked against it (missing, extra, wrong shape).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let file = weights::read_weights(bytes)?;
        let config =
            config_from_metadata(&file.metadata)?.unwrap_or_else(|| ResNetConfig::resnet18(1000));
        Model::new(config, file.tensors)
    }

    /// Check `weights` against `config` and pair them.
    pub fn new(config: ResNetConfig, weights: StateDict) -> Result<Model> {
        config.validate()?;
        check_state_dict(&config.param_shapes(), &weights, "ResNet18")?;
        Ok(Model { config, weights })
    }

    /// torchvision's ResNet18 with deterministic random weights (meaningless predictions).
    pub fn seeded_resnet18(seed: u64) -> Model {
        let config = ResNetConfig::resnet18(1000);
        let weights = weights::seeded::seeded_state_dict(&config.param_shapes(), seed);
        Model { config, weights }
    }

    /// Serialise as safetensors with the structure in the metadata.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let card = ModelCard {
            architecture: "resnet18".into(),
            config: self.config.clone(),
        };
        let json = serde_json::to_string(&card).map_err(|e| Error::Invalid(e.to_string()))?;
        let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
        weights::safetensors::write_safetensors(&self.weights, metadata)
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

fn config_from_metadata(metadata: &HashMap<String, String>) -> Result<Option<ResNetConfig>> {
    let Some(json) = metadata.get(METADATA_KEY) else {
        return Ok(None);
    };
    let card: ModelCard = serde_json::from_str(json)
        .map_err(|e| Error::Structure(format!("unreadable modelslim metadata: {e}")))?;
    if card.architecture != "resnet18" {
        return Err(Error::Structure(format!(
            "architecture '{}' is not supported by this version",
            card.architecture
        )));
    }
    Ok(Some(card.config))
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
