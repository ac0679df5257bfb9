//! Networks: their structure (a config that holds every width), their parameters on the host,
//! and their forward pass on a Burn device.

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
pub use efficientnet::{EfficientNetConfig, MbBlockConfig};
pub use graph::{Graph, Op};
pub use imported::GraphNet;
pub use resnet::{BasicBlockConfig, ResNetConfig};
pub use stored::FileMetadata;

/// One block of a network: its name (the prefix of its tensors' names), whether it keeps its
/// input's shape — a residual block with an identity shortcut, which can be dropped — and
/// whether it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    pub name: String,
    pub droppable: bool,
    pub dropped: bool,
}

/// The networks modelslim knows, each with every width in its config, and networks that
/// are their graph (read from ONNX).
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    ResNet18(ResNetConfig),
    EfficientNetLite0(EfficientNetConfig),
    Graph(Box<GraphNet>),
}

impl Arch {
    /// The short name used in files and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Arch::ResNet18(_) => "resnet18",
            Arch::EfficientNetLite0(_) => "efficientnet-lite0",
            Arch::Graph(_) => "graph",
        }
    }

    /// Whether `other` is the same network (perhaps with other widths): the same builder, or
    /// graphs of the same name.
    pub fn same_network(&self, other: &Arch) -> bool {
        self.name() == other.name() && self.display() == other.display()
    }

    /// The start of a file name for this network: `resnet18`, `efficientnet-lite0`, or a
    /// graph's name with only letters, digits, `-`, `_` and `.` kept.
    pub fn file_stem(&self) -> String {
        match self {
            Arch::Graph(g) => {
                let s: String = g
                    .name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                if s.trim_matches(['-', '.']).is_empty() {
                    "model".into()
                } else {
                    s
                }
            }
            _ => self.name().into(),
        }
    }

    /// The name people read.
    pub fn display(&self) -> &str {
        match self {
            Arch::ResNet18(_) => "ResNet18",
            Arch::EfficientNetLite0(_) => "EfficientNet-Lite0",
            Arch::Graph(g) => &g.name,
        }
    }

    /// The unpruned network of that name (`resnet18`, `efficientnet-lite0`).
    pub fn by_name(name: &str) -> Result<Arch> {
        match name {
            "resnet18" => Ok(Arch::ResNet18(ResNetConfig::resnet18(1000))),
            "efficientnet-lite0" => Ok(Arch::EfficientNetLite0(EfficientNetConfig::lite0(1000))),
            other => Err(Error::Invalid(format!(
                "unknown model '{other}'; use resnet18 or efficientnet-lite0"
            ))),
        }
    }

    /// Guess the network from a state dict's keys (torchvision's or lukemelas' names).
    pub fn detect(weights: &StateDict) -> Result<Arch> {
        Arch::detect_names(|k| weights.contains_key(k))
    }

    /// [`Arch::detect`] from which tensor names a file has.
    pub fn detect_names(has: impl Fn(&str) -> bool) -> Result<Arch> {
        if has("_conv_stem.weight") {
            Arch::by_name("efficientnet-lite0")
        } else if has("conv1.weight") && has("fc.weight") {
            Arch::by_name("resnet18")
        } else {
            Err(Error::Structure(
                "these weights are neither torchvision's ResNet18 nor EfficientNet-Lite0 (no conv1.weight or _conv_stem.weight)".into(),
            ))
        }
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            Arch::ResNet18(c) => c.validate(),
            Arch::EfficientNetLite0(c) => c.validate(),
            Arch::Graph(g) => g.validate(),
        }
    }

    pub fn graph(&self, folded: bool) -> Graph {
        match self {
            Arch::ResNet18(c) => c.graph(folded),
            Arch::EfficientNetLite0(c) => c.graph(folded),
            Arch::Graph(g) if folded => g.graph.folded(),
            Arch::Graph(g) => g.graph.clone(),
        }
    }

    /// The same network with every width read from (pruned) weights.
    pub fn with_widths_of(&self, weights: &StateDict) -> Result<Arch> {
        Ok(match self {
            Arch::ResNet18(c) => Arch::ResNet18(c.with_widths_of(weights)?),
            Arch::EfficientNetLite0(c) => Arch::EfficientNetLite0(c.with_widths_of(weights)?),
            Arch::Graph(g) => Arch::Graph(Box::new(GraphNet {
                graph: g.graph.with_widths_of(weights)?,
                ..(**g).clone()
            })),
        })
    }

    /// Every block, in order.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        match self {
            Arch::ResNet18(c) => c.blocks(),
            Arch::EfficientNetLite0(c) => c.blocks(),
            Arch::Graph(g) => g
                .graph
                .residual_blocks()
                .into_iter()
                .map(|(name, _, _)| BlockInfo {
                    name,
                    droppable: true,
                    dropped: false,
                })
                .collect(),
        }
    }

    /// The same network with the blocks `names` dropped too, or why one cannot be.
    pub fn with_blocks_dropped(&self, names: &[String]) -> Result<Arch> {
        let blocks = self.blocks();
        let mut out = self.clone();
        for name in names {
            let Some(i) = blocks.iter().position(|b| &b.name == name) else {
                let droppable: Vec<&str> = blocks
                    .iter()
                    .filter(|b| b.droppable && !b.dropped)
                    .map(|b| b.name.as_str())
                    .collect();
                return Err(Error::Invalid(format!(
                    "{} has no block named '{name}'; blocks that can be dropped: {}",
                    self.display(),
                    droppable.join(", ")
                )));
            };
            if !blocks[i].droppable {
                return Err(Error::Invalid(format!(
                    "{name} changes its input's shape and cannot be dropped"
                )));
            }
            match &mut out {
                Arch::ResNet18(c) => {
                    if let Some(b) = c.stages.iter_mut().flatten().nth(i) {
                        b.dropped = true;
                    }
                }
                Arch::EfficientNetLite0(c) => c.blocks[i].dropped = true,
                // A graph loses the block's nodes; its add reads the shortcut.
                Arch::Graph(g) => {
                    if let Some((_, add, shortcut)) = g
                        .graph
                        .residual_blocks()
                        .into_iter()
                        .find(|(b, _, _)| b == name)
                    {
                        g.graph = g.graph.without_block(add, shortcut);
                    }
                }
            }
        }
        Ok(out)
    }

    /// How photos become this network's input.
    pub fn preprocess(&self) -> Preprocess {
        match self {
            Arch::ResNet18(_) => Preprocess::IMAGENET,
            Arch::EfficientNetLite0(_) => Preprocess::LITE,
            Arch::Graph(g) => g.preprocess,
        }
    }

    /// The input's `[height, width]` in pixels.
    pub fn input_size(&self) -> graph::Hw {
        self.preprocess().input_hw()
    }

    /// The output's width: the number of classes, or 1 for a binary classifier's single
    /// logit.
    pub fn output_width(&self) -> usize {
        match self {
            Arch::ResNet18(c) => c.num_classes,
            Arch::EfficientNetLite0(c) => c.num_classes,
            Arch::Graph(g) => g.output_width(),
        }
    }

    /// The classes people name: the output's width, 2 for a single logit (negative,
    /// positive; see [`crate::predict::class_logits`]).
    pub fn num_classes(&self) -> usize {
        self.output_width().max(2)
    }

    /// The config as JSON, for the file's metadata.
    pub fn config_json(&self) -> serde_json::Value {
        match self {
            Arch::ResNet18(c) => serde_json::to_value(c),
            Arch::EfficientNetLite0(c) => serde_json::to_value(c),
            Arch::Graph(g) => serde_json::to_value(g),
        }
        .unwrap_or_default()
    }

    /// The config of network `name` from its JSON.
    pub fn from_json(name: &str, config: serde_json::Value) -> Result<Arch> {
        let bad = |e: serde_json::Error| Error::Structure(format!("unreadable {name} config: {e}"));
        match name {
            "resnet18" => Ok(Arch::ResNet18(serde_json::from_value(config).map_err(bad)?)),
            "efficientnet-lite0" => Ok(Arch::EfficientNetLite0(
                serde_json::from_value(config).map_err(bad)?,
            )),
            "graph" => Ok(Arch::Graph(Box::new(
                serde_json::from_value(config).map_err(bad)?,
            ))),
            other => Err(Error::Structure(format!(
                "architecture '{other}' is not supported by this version"
            ))),
        }
    }
}

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
            && m.arch.name() != name
        {
            return Err(Error::Structure(format!(
                "the file holds {}, not {name}",
                m.arch.name()
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
        let config = ResNetConfig::resnet18(1000);
        let weights = weights::seeded::seeded_state_dict(&config.graph(false).param_shapes(), seed);
        Model {
            arch: Arch::ResNet18(config),
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

    /// ResNet18's config, when this is a ResNet18.
    pub fn resnet(&self) -> Option<&ResNetConfig> {
        match &self.arch {
            Arch::ResNet18(c) => Some(c),
            _ => None,
        }
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
