//! Networks: their structure (a graph, [`Arch`]), their parameters on the host, and their
//! forward pass on a Burn device.

pub mod arch;
pub mod channels;
mod cpu_kernels;
pub mod efficientnet;
pub mod exec;
pub mod graph;
pub mod graph_edit;
pub mod imported;
pub mod layers;
pub mod onnx;
pub mod resnet;
pub mod stored;

use std::sync::Arc;

use crate::preprocess::Preprocess;
use crate::quant::Quantization;
use crate::tensor::StateDict;
use crate::weights;
use crate::{Error, Result};
pub use arch::Arch;
pub use efficientnet::{EfficientNetConfig, MbBlockConfig};
pub use graph::{Graph, Op};
pub use resnet::{BasicBlockConfig, ResNetConfig};
pub use stored::FileMetadata;

/// A network's structure and its parameters, held on the host.
#[derive(Debug, Clone)]
pub struct Model {
    pub arch: Arch,
    /// Batch norms folded into the convs before them (every quantized model is folded).
    pub folded: bool,
    /// The values the forward pass uses: for quantized tensors, exactly their dequantized
    /// values.
    pub weights: StateDict,
    /// How tensors are stored (int8/int4 values and scales, fp16) and activations quantized.
    pub quant: Quantization,
    /// The class names, one per class, when they are not ImageNet's (stored in the file).
    pub labels: Option<Arc<Vec<String>>>,
}

impl Model {
    /// Load from weights-file bytes (safetensors, PyTorch zip or ONNX). The structure and
    /// the quantization come from the file's modelslim metadata when present, from the graph
    /// of an ONNX file, else it is torchvision's ResNet18; every tensor is then checked
    /// against it (missing, extra, wrong shape).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::from_bytes_as(bytes, None)
    }

    /// Like [`Model::from_bytes`], for network `model` (`resnet18`, `efficientnet-lite0`)
    /// when given; else detected from the keys.
    pub fn from_bytes_as(bytes: &[u8], model: Option<&str>) -> Result<Model> {
        if weights::pth::is_zip(bytes) || weights::pth::is_legacy(bytes) {
            // The network and every shape are checked on what data.pkl declares, before a
            // storage is inflated: a file of other tensors is refused at the cost of its index.
            let mut arch = None;
            let file = weights::read_weights_inspected(bytes, &mut |shapes| {
                let a = match model {
                    Some(name) => Arch::by_name(name)?,
                    None => Arch::detect_names(|k| shapes.iter().any(|(n, _)| n == k))?,
                };
                check_shapes(&a.graph(false).param_shapes(), shapes, a.display())?;
                arch = Some(a);
                Ok(())
            })?;
            let arch =
                arch.ok_or_else(|| Error::Structure("the checkpoint holds no tensors".into()))?;
            return Model::new(arch, file.tensors);
        }
        if onnx::looks_like_onnx(bytes) {
            return match model {
                None | Some("graph") => {
                    onnx::read_onnx(bytes, imported::UNNAMED, None).map(Model::into_known)
                }
                Some(name) => Err(Error::Invalid(format!(
                    "an ONNX file is its own network; leave out --model {name}"
                ))),
            };
        }
        let m = stored::read_model(bytes, model)?;
        if let Some(name) = model
            && m.arch.file_stem() != name
        {
            return Err(Error::Structure(format!(
                "the file holds {}, not {name}",
                m.arch.display()
            )));
        }
        Ok(m)
    }

    /// Check `weights` against `arch` and pair them (an unfolded, unquantized network).
    pub fn new(arch: Arch, weights: StateDict) -> Result<Model> {
        arch.validate()?;
        check_state_dict(&arch.graph(false).param_shapes(), &weights, arch.display())?;
        Ok(Model {
            arch,
            folded: false,
            weights,
            quant: Quantization::default(),
            labels: None,
        })
    }

    /// torchvision's ResNet18 with deterministic random weights (meaningless predictions).
    pub fn seeded_resnet18(seed: u64) -> Model {
        let arch = ResNetConfig::resnet18(1000).net();
        let weights = weights::seeded::seeded_state_dict(&arch.graph(false).param_shapes(), seed);
        Model {
            arch,
            folded: false,
            weights,
            quant: Quantization::default(),
            labels: None,
        }
    }

    /// A copy without the blocks `names`: each becomes its shortcut, its tensors leave the
    /// file. Works on the float network, like pruning.
    pub fn with_blocks_dropped(&self, names: &[String]) -> Result<Model> {
        self.refuse_if_quantized("drop blocks of")?;
        let arch = self.arch.with_blocks_dropped(names)?;
        let keep: std::collections::BTreeSet<String> = arch
            .graph(false)
            .param_shapes()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let weights = self
            .weights
            .iter()
            .filter(|(k, _)| keep.contains(*k))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        Ok(Model {
            labels: self.labels.clone(),
            ..Model::new(arch, weights)?
        })
    }

    /// Pruning, sparsity and block dropping work on the float network; a quantized file must
    /// be compressed from its original.
    pub(crate) fn refuse_if_quantized(&self, what: &str) -> Result<()> {
        if self.folded || !self.quant.is_empty() {
            return Err(Error::Invalid(format!(
                "this model is already quantized: {what} the original instead"
            )));
        }
        Ok(())
    }

    /// The network as a graph of operations.
    pub fn graph(&self) -> Graph {
        self.arch.graph(self.folded)
    }

    /// How photos become this network's input.
    pub fn preprocess(&self) -> Preprocess {
        self.arch.preprocess()
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
    let found: Vec<(String, Vec<usize>)> = weights
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    check_shapes(expected, &found, model)?;
    for (key, _) in expected {
        if let Some(i) = weights
            .get(key)
            .and_then(|t| t.data.iter().position(|v| !v.is_finite()))
        {
            return Err(Error::NotFinite {
                key: key.clone(),
                index: i,
            });
        }
    }
    Ok(())
}

/// Every expected name present in `found` with its shape, and nothing else.
fn check_shapes(
    expected: &[(String, Vec<usize>)],
    found: &[(String, Vec<usize>)],
    model: &str,
) -> Result<()> {
    let shape_of = |key: &str| found.iter().find(|(k, _)| k == key).map(|(_, s)| s);
    for (key, shape) in expected {
        match shape_of(key) {
            None => {
                return Err(Error::MissingKey {
                    key: key.clone(),
                    expected: shape.clone(),
                    model: model.into(),
                });
            }
            Some(s) if s != shape => {
                return Err(Error::ShapeMismatch {
                    key: key.clone(),
                    expected: shape.clone(),
                    found: s.clone(),
                });
            }
            Some(_) => {}
        }
    }
    if let Some((key, s)) = found
        .iter()
        .find(|(k, _)| !expected.iter().any(|(e, _)| e == k))
    {
        return Err(Error::ExtraKey {
            key: key.clone(),
            found: s.clone(),
            model: model.into(),
        });
    }
    Ok(())
}
