//! torchvision's ResNet18 (eval mode): the builder of its graph, used when its weights are
//! read. The config holds every width; files compressed before networks were stored as graphs
//! store it, and are read into the same graph.

use serde::{Deserialize, Serialize};

use super::graph::{Graph, Op};
use crate::{Error, Result};

/// One basic block: `conv1` (3×3, `stride`) `in → mid`, `conv2` (3×3) `mid → out`, plus the
/// shortcut (identity, or a 1×1 `downsample` conv + BN when the shape changes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BasicBlockConfig {
    pub in_channels: usize,
    pub mid_channels: usize,
    pub out_channels: usize,
    pub stride: usize,
    pub downsample: bool,
    /// Removed: the block computes its shortcut, the identity (only a block that keeps its
    /// input's shape can be dropped). Its widths then follow the stream it sits on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

/// The whole network's structure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResNetConfig {
    /// Output width of the 7×7 stem conv.
    pub stem_channels: usize,
    /// `layer1` … `layer4`, each a list of blocks.
    pub stages: Vec<Vec<BasicBlockConfig>>,
    /// Classifier outputs.
    pub num_classes: usize,
}

impl ResNetConfig {
    /// torchvision's `resnet18`: widths 64, 128, 256, 512, two blocks per stage.
    pub fn resnet18(num_classes: usize) -> Self {
        let mut stages = Vec::new();
        let mut in_ch = 64;
        for (i, width) in [64usize, 128, 256, 512].into_iter().enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let first = BasicBlockConfig {
                in_channels: in_ch,
                mid_channels: width,
                out_channels: width,
                stride,
                downsample: stride != 1 || in_ch != width,
                dropped: false,
            };
            let second = BasicBlockConfig {
                in_channels: width,
                mid_channels: width,
                out_channels: width,
                stride: 1,
                downsample: false,
                dropped: false,
            };
            stages.push(vec![first, second]);
            in_ch = width;
        }
        Self {
            stem_channels: 64,
            stages,
            num_classes,
        }
    }

    /// Width of the features the classifier reads.
    pub fn feature_channels(&self) -> usize {
        self.stages
            .last()
            .and_then(|s| s.last())
            .map(|b| b.out_channels)
            .unwrap_or(self.stem_channels)
    }

    /// Only widths may differ from `reference` (see `EfficientNetConfig::check_against`).
    fn check_against(&self, reference: &ResNetConfig) -> Result<()> {
        let bad = |what: String| Err(Error::Structure(format!("{what}: not a ResNet18")));
        let shape = |c: &ResNetConfig| c.stages.iter().map(Vec::len).collect::<Vec<_>>();
        if shape(self) != shape(reference) {
            return bad(format!("blocks per stage {:?}", shape(self)));
        }
        if self.stem_channels > reference.stem_channels {
            return bad("a stem wider than the original".into());
        }
        let blocks = self
            .stages
            .iter()
            .flatten()
            .zip(reference.stages.iter().flatten());
        for (i, (b, r)) in blocks.enumerate() {
            let name = format!("layer{}.{}", i / 2 + 1, i % 2);
            if (b.stride, b.downsample) != (r.stride, r.downsample) {
                return bad(format!(
                    "{name} has stride {}, expected {}",
                    b.stride, r.stride
                ));
            }
            if b.mid_channels > r.mid_channels || b.out_channels > r.out_channels {
                return bad(format!("{name} is wider than the original"));
            }
            if b.dropped && r.downsample {
                return bad(format!("{name} changes shape and cannot be dropped"));
            }
        }
        Ok(())
    }

    /// Check that consecutive layers agree on their widths.
    pub fn validate(&self) -> Result<()> {
        self.check_against(&ResNetConfig::resnet18(self.num_classes))?;
        let mut ch = self.stem_channels;
        if ch == 0 || self.num_classes == 0 {
            return Err(Error::Structure("a layer has zero channels".into()));
        }
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let name = format!("layer{}.{b}", s + 1);
                if block.in_channels != ch {
                    return Err(Error::Structure(format!(
                        "{name} reads {} channels but receives {ch}",
                        block.in_channels
                    )));
                }
                if block.mid_channels == 0 || block.out_channels == 0 || block.stride == 0 {
                    return Err(Error::Structure(format!(
                        "{name} has a zero width or stride"
                    )));
                }
                if !block.downsample
                    && (block.stride != 1 || block.in_channels != block.out_channels)
                {
                    return Err(Error::Structure(format!(
                        "{name} changes shape without a downsample shortcut"
                    )));
                }
                ch = block.out_channels;
            }
        }
        Ok(())
    }

    /// The network: its graph with torchvision's tensor names, fed as torchvision's ImageNet
    /// models are.
    pub fn net(&self) -> super::Arch {
        super::Arch {
            name: "ResNet18".into(),
            graph: self.graph(false),
            preprocess: crate::preprocess::Preprocess::IMAGENET,
            fixed_size: true,
        }
    }

    /// The network as a graph. `folded`: every batch norm is folded into the conv before it
    /// (convs with a bias, no batch-norm nodes), the form quantized models take.
    pub fn graph(&self, folded: bool) -> Graph {
        let mut g = Graph::new();
        // conv + batch norm with torchvision's names, symmetric padding, BN eps 1e-5.
        let conv_bn = |g: &mut Graph,
                       x: usize,
                       conv: &str,
                       bn: &str,
                       io: (usize, usize),
                       k: usize,
                       stride: usize,
                       pad: usize| {
            g.conv_bn(x, conv, bn, io, k, stride, [pad; 4], 1, 1e-5, folded)
        };
        let x = conv_bn(&mut g, 0, "conv1", "bn1", (3, self.stem_channels), 7, 2, 3);
        let x = g.push(Op::Relu, &[x], "relu");
        let mut x = g.push(
            Op::MaxPool {
                kernel: [3; 2],
                stride: [2; 2],
                pads: [1; 4],
            },
            &[x],
            "maxpool",
        );
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, blk) in stage.iter().enumerate() {
                // A dropped block is its shortcut: x + 0, and x is already a ReLU's output.
                if blk.dropped {
                    continue;
                }
                let p = format!("layer{}.{b}", s + 1);
                let h = conv_bn(
                    &mut g,
                    x,
                    &format!("{p}.conv1"),
                    &format!("{p}.bn1"),
                    (blk.in_channels, blk.mid_channels),
                    3,
                    blk.stride,
                    1,
                );
                let h = g.push(Op::Relu, &[h], format!("{p}.relu1"));
                let out = conv_bn(
                    &mut g,
                    h,
                    &format!("{p}.conv2"),
                    &format!("{p}.bn2"),
                    (blk.mid_channels, blk.out_channels),
                    3,
                    1,
                    1,
                );
                let shortcut = if blk.downsample {
                    conv_bn(
                        &mut g,
                        x,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        (blk.in_channels, blk.out_channels),
                        1,
                        blk.stride,
                        0,
                    )
                } else {
                    x
                };
                let sum = g.push(Op::Add, &[out, shortcut], format!("{p}.add"));
                x = g.push(Op::Relu, &[sum], format!("{p}.relu2"));
            }
        }
        let pooled = g.push(Op::GlobalAvgPool, &[x], "avgpool");
        g.push(
            Op::Linear {
                name: "fc".into(),
                in_features: self.feature_channels(),
                out_features: self.num_classes,
            },
            &[pooled],
            "logits",
        );
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet18_matches_torchvision_counts() {
        let c = ResNetConfig::resnet18(1000);
        c.validate().unwrap();
        let g = c.graph(false);
        let shapes = g.param_shapes();
        // torchvision's state_dict has 122 tensors with num_batches_tracked (20 BNs) → 102.
        assert_eq!(shapes.len(), 102);
        let learnable: usize = shapes
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(learnable, 11_689_512);
        // torchvision reports 1.814 GMACs for resnet18 at 224×224.
        assert_eq!(g.macs([224; 2]) / 1_000_000, 1814);
        // Folding removes the batch norms (4 tensors each) and gives every conv a bias.
        assert_eq!(c.graph(true).param_shapes().len(), 102 - 20 * 4 + 20);
        assert!(shapes.contains(&("layer2.0.downsample.0.weight".into(), vec![128, 64, 1, 1])));
    }

    #[test]
    fn inconsistent_widths_are_rejected() {
        let mut c = ResNetConfig::resnet18(1000);
        c.stages[1][1].in_channels = 100;
        assert!(matches!(c.validate(), Err(Error::Structure(_))));
    }
}
