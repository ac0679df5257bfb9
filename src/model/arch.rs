//! A network is data: its graph ([`Graph`]), its name and its preprocessing. Everything that
//! depends on the network (parameters, widths, MACs, blocks, the forward pass, both exports)
//! is read from the graph.

use serde::{Deserialize, Serialize};

use super::graph::{self, Graph, Op, dilated};
use super::{EfficientNetConfig, ResNetConfig};
use crate::preprocess::Preprocess;
use crate::tensor::StateDict;
use crate::{Error, Result};

/// The smallest and largest input side accepted.
pub const INPUT_SIDES: std::ops::RangeInclusive<u32> = 16..=1024;

/// A network: its graph, what people call it and how photos become its input. ResNet18 and
/// EfficientNet-Lite0 are built here from their configs ([`ResNetConfig::graph`],
/// [`EfficientNetConfig::graph`]) when their PyTorch or safetensors weights are read; an ONNX
/// file's network is read from its graph. A compressed file stores it in its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// What people call it: `ResNet18`, `EfficientNet-Lite0`, or an ONNX file's name without
    /// its extension.
    pub name: String,
    /// The network, batch norms unfolded.
    pub graph: Graph,
    /// How photos become its input; the crop is the input's size.
    pub preprocess: Preprocess,
    /// The input's size is fixed (by the ONNX file, or by the weights' training); else it
    /// was dynamic and may be chosen.
    #[serde(default)]
    pub fixed_size: bool,
}

impl Arch {
    /// Check everything a file could have got wrong.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.len() > super::graph_edit::MAX_NAME {
            return Err(Error::Structure(
                "the network's name is empty or too long".into(),
            ));
        }
        self.graph.validate()?;
        let p = &self.preprocess;
        let (h, w) = (p.crop, p.crop_width.unwrap_or(p.crop));
        let (short, long) = (h.min(w), h.max(w));
        if !INPUT_SIDES.contains(&h)
            || !INPUT_SIDES.contains(&w)
            || p.resize < short
            || p.resize > 4 * long
        {
            return Err(Error::Structure(format!(
                "input {h}×{w} after resizing to {}: each side must be {} to {} and the resize between the shorter side and 4 times the longer",
                p.resize,
                INPUT_SIDES.start(),
                INPUT_SIDES.end()
            )));
        }
        if p.mean.iter().chain(&p.std).any(|v| !v.is_finite()) || p.std.iter().any(|&s| s <= 0.0) {
            return Err(Error::Structure(format!(
                "mean {:?} and std {:?}: every value must be finite and each std positive",
                p.mean, p.std
            )));
        }
        self.check_sizes()
    }

    /// No window larger than what it slides over.
    fn check_sizes(&self) -> Result<()> {
        let [ih, iw] = self.preprocess.input_hw();
        let sizes = self.graph.spatial_sizes([ih, iw]);
        for n in &self.graph.nodes {
            // A pooled value is a 1×1 image.
            let [h, w] = sizes[n.inputs[0]].map(|s| s.max(1));
            let (kernel, pads) = match &n.op {
                Op::Conv {
                    kernel,
                    pads,
                    dilation,
                    ..
                } => (dilated(*kernel, *dilation), pads),
                Op::MaxPool { kernel, pads, .. } | Op::AvgPool { kernel, pads, .. } => {
                    (*kernel, pads)
                }
                Op::BatchNorm { .. }
                | Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::GlobalAvgPool
                | Op::Concat
                | Op::Channels { .. }
                | Op::ChannelShuffle { .. }
                | Op::Flatten { .. }
                | Op::Linear { .. } => continue,
            };
            if kernel[0] > h + pads[0] + pads[2] || kernel[1] > w + pads[1] + pads[3] {
                return Err(Error::Structure(format!(
                    "{} slides a {}×{} window over {h}×{w} values: the input ({ih}×{iw}) is too small for this network",
                    crate::error::quoted(&self.graph.values[n.output]),
                    kernel[0],
                    kernel[1]
                )));
            }
        }
        Ok(())
    }
}

/// What a compressed file's metadata calls a network stored as its graph.
pub const STORED_AS: &str = "graph";

impl Arch {
    /// The unpruned network of that name (`resnet18`, `efficientnet-lite0`), built for its
    /// PyTorch weights.
    pub fn by_name(name: &str) -> Result<Arch> {
        match name {
            "resnet18" => Ok(ResNetConfig::resnet18(1000).net()),
            "efficientnet-lite0" => Ok(EfficientNetConfig::lite0(1000).net()),
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

    /// Whether `other` is the same network, perhaps with other widths or blocks.
    pub fn same_network(&self, other: &Arch) -> bool {
        self.name == other.name
    }

    /// The start of a file name for this network: its name in lower case with only letters,
    /// digits, `-`, `_` and `.` kept (`resnet18`, `efficientnet-lite0`).
    pub fn file_stem(&self) -> String {
        let s: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c.to_ascii_lowercase()
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

    /// The name people read.
    pub fn display(&self) -> &str {
        &self.name
    }

    /// The graph; `folded`: every batch norm folded into the conv before it.
    pub fn graph(&self, folded: bool) -> Graph {
        if folded {
            self.graph.folded()
        } else {
            self.graph.clone()
        }
    }

    /// The same network with every width read from (pruned) weights.
    pub fn with_widths_of(&self, weights: &StateDict) -> Result<Arch> {
        Ok(Arch {
            graph: self.graph.with_widths_of(weights)?,
            ..self.clone()
        })
    }

    /// The blocks that can be dropped, in order: residual blocks, whose add reads the block's
    /// input beside a branch computed from it alone ([`Graph::residual_blocks`]).
    pub fn blocks(&self) -> Vec<String> {
        self.graph
            .residual_blocks()
            .into_iter()
            .map(|(name, _, _)| name)
            .collect()
    }

    /// The same network without the blocks `names` (each becomes its shortcut), or why one
    /// cannot be dropped.
    pub fn with_blocks_dropped(&self, names: &[String]) -> Result<Arch> {
        let mut out = self.clone();
        for name in names {
            let blocks = out.graph.residual_blocks();
            let Some((_, add, shortcut)) = blocks.iter().find(|(b, _, _)| b == name) else {
                let droppable: Vec<&str> = blocks.iter().map(|(b, _, _)| b.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "{} has no block named '{name}' that can be dropped (a residual block that keeps its input's shape); blocks that can: {}",
                    self.name,
                    droppable.join(", ")
                )));
            };
            out.graph = out.graph.without_block(*add, *shortcut);
        }
        Ok(out)
    }

    /// How photos become this network's input.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    /// The input's `[height, width]` in pixels.
    pub fn input_size(&self) -> graph::Hw {
        self.preprocess.input_hw()
    }

    /// The output's width: the number of classes, or 1 for a binary classifier's single
    /// logit.
    pub fn output_width(&self) -> usize {
        self.graph.channels()[self.graph.output]
    }

    /// The classes people name: the output's width, 2 for a single logit (negative,
    /// positive; see [`crate::predict::class_logits`]).
    pub fn num_classes(&self) -> usize {
        self.output_width().max(2)
    }

    /// The network as JSON, for a file's metadata (stored as [`STORED_AS`]).
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The network a file's metadata stores as `stored_as`: its graph, or, in files written
    /// before networks were stored as graphs, the config of ResNet18 or EfficientNet-Lite0,
    /// built into its graph.
    pub fn from_json(stored_as: &str, config: serde_json::Value) -> Result<Arch> {
        let bad =
            |e: serde_json::Error| Error::Structure(format!("unreadable {stored_as} config: {e}"));
        match stored_as {
            STORED_AS => serde_json::from_value(config).map_err(bad),
            "resnet18" => {
                let c: ResNetConfig = serde_json::from_value(config).map_err(bad)?;
                c.validate()?;
                Ok(c.net())
            }
            "efficientnet-lite0" => {
                let c: EfficientNetConfig = serde_json::from_value(config).map_err(bad)?;
                c.validate()?;
                Ok(c.net())
            }
            other => Err(Error::Structure(format!(
                "architecture '{other}' is not supported by this version"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocks a built network can drop are found in its graph: exactly the blocks its
    /// config calls residual, under the config's names.
    #[test]
    fn the_builders_droppable_blocks_are_the_residual_blocks_of_their_graphs() {
        let r = ResNetConfig::resnet18(1000);
        let expect: Vec<String> = r
            .stages
            .iter()
            .enumerate()
            .flat_map(|(s, stage)| {
                stage
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| !b.downsample)
                    .map(move |(i, _)| format!("layer{}.{i}", s + 1))
            })
            .collect();
        assert_eq!(r.net().blocks(), expect);
        let e = EfficientNetConfig::lite0(1000);
        let expect: Vec<String> = (e.blocks.iter().enumerate())
            .filter(|(_, b)| b.residual)
            .map(|(i, _)| format!("_blocks.{i}"))
            .collect();
        assert_eq!(expect.len(), 9);
        assert_eq!(e.net().blocks(), expect);
    }

    /// Dropping blocks one at a time leaves the others their names (`layer1.1` stays
    /// `layer1.1` once `layer1.0` is gone, though no other layer then starts with
    /// `layer1.`), and gives the graph an older file's config with those blocks dropped
    /// builds.
    #[test]
    fn dropped_blocks_leave_the_others_their_names_and_match_an_older_files_config() {
        let net = Arch::by_name("resnet18").unwrap();
        let mut dropped = net.clone();
        for name in net.blocks() {
            dropped = dropped.with_blocks_dropped(&[name]).unwrap();
        }
        assert!(dropped.blocks().is_empty());
        let mut c = ResNetConfig::resnet18(1000);
        for b in c.stages.iter_mut().flatten().filter(|b| !b.downsample) {
            b.dropped = true;
        }
        let old = Arch::from_json("resnet18", serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(old.graph, dropped.graph);
        let e = net.with_blocks_dropped(&["layer2.0".into()]).unwrap_err();
        assert!(
            e.to_string().contains("layer1.0, layer1.1, layer2.1"),
            "{e}"
        );
    }

    #[test]
    fn a_network_stored_as_its_graph_reads_back_the_same() {
        for name in ["resnet18", "efficientnet-lite0"] {
            let net = Arch::by_name(name).unwrap();
            assert_eq!(net.file_stem(), name);
            let back = Arch::from_json(STORED_AS, net.config_json()).unwrap();
            assert_eq!(back, net);
            back.validate().unwrap();
        }
    }
}
