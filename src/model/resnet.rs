//! torchvision's ResNet18 (eval mode), with every width held in its config so that a pruned
//! network can be described, saved and loaded.

use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{BatchStats, ConvBn, Linear};
use crate::compress::{Layer, Structure};
use crate::tensor::StateDict;
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
            };
            let second = BasicBlockConfig {
                in_channels: width,
                mid_channels: width,
                out_channels: width,
                stride: 1,
                downsample: false,
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

    /// Check that consecutive layers agree on their widths.
    pub fn validate(&self) -> Result<()> {
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

    /// Every tensor of the torchvision `state_dict` (without `num_batches_tracked`) and its shape.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv = |out: &mut Vec<_>, name: String, o: usize, i: usize, k: usize| {
            out.push((format!("{name}.weight"), vec![o, i, k, k]));
        };
        let bn = |out: &mut Vec<(String, Vec<usize>)>, name: String, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{name}.{p}"), vec![c]));
            }
        };
        conv(&mut out, "conv1".into(), self.stem_channels, 3, 7);
        bn(&mut out, "bn1".into(), self.stem_channels);
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, blk) in stage.iter().enumerate() {
                let p = format!("layer{}.{b}", s + 1);
                conv(
                    &mut out,
                    format!("{p}.conv1"),
                    blk.mid_channels,
                    blk.in_channels,
                    3,
                );
                bn(&mut out, format!("{p}.bn1"), blk.mid_channels);
                conv(
                    &mut out,
                    format!("{p}.conv2"),
                    blk.out_channels,
                    blk.mid_channels,
                    3,
                );
                bn(&mut out, format!("{p}.bn2"), blk.out_channels);
                if blk.downsample {
                    let d = format!("{p}.downsample");
                    conv(
                        &mut out,
                        format!("{d}.0"),
                        blk.out_channels,
                        blk.in_channels,
                        1,
                    );
                    bn(&mut out, format!("{d}.1"), blk.out_channels);
                }
            }
        }
        out.push((
            "fc.weight".into(),
            vec![self.num_classes, self.feature_channels()],
        ));
        out.push(("fc.bias".into(), vec![self.num_classes]));
        out
    }

    /// The channel structure (which axes must be pruned together), from the layer list.
    pub fn structure(&self) -> Structure {
        let mut st = Structure::default();
        let conv = |st: &mut Structure, name: String, bn: String, input: usize, output: usize| {
            st.layers.push(Layer::Conv {
                name,
                bn: Some(bn),
                input,
                output,
                depthwise: false,
            });
        };
        let stem = st.space();
        conv(&mut st, "conv1".into(), "bn1".into(), 0, stem);
        st.protected.push(stem);
        let mut x = stem;
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, blk) in stage.iter().enumerate() {
                let p = format!("layer{}.{b}", s + 1);
                let (mid, out) = (st.space(), st.space());
                conv(&mut st, format!("{p}.conv1"), format!("{p}.bn1"), x, mid);
                conv(&mut st, format!("{p}.conv2"), format!("{p}.bn2"), mid, out);
                let shortcut = if blk.downsample {
                    let d = st.space();
                    conv(
                        &mut st,
                        format!("{p}.downsample.0"),
                        format!("{p}.downsample.1"),
                        x,
                        d,
                    );
                    d
                } else {
                    x
                };
                st.layers.push(Layer::Add {
                    a: out,
                    b: shortcut,
                });
                x = out;
            }
        }
        st.layers.push(Layer::Linear {
            name: "fc".into(),
            input: x,
        });
        st
    }

    /// The same network with every width read from (pruned) weights.
    pub fn with_widths_of(&self, weights: &StateDict) -> Result<Self> {
        let dim = |key: &str, axis: usize| -> Result<usize> {
            weights
                .get(key)
                .and_then(|t| t.shape.get(axis).copied())
                .ok_or_else(|| Error::Structure(format!("'{key}' is missing after pruning")))
        };
        let mut out = self.clone();
        out.stem_channels = dim("conv1.weight", 0)?;
        for (s, stage) in out.stages.iter_mut().enumerate() {
            for (b, blk) in stage.iter_mut().enumerate() {
                let p = format!("layer{}.{b}", s + 1);
                blk.in_channels = dim(&format!("{p}.conv1.weight"), 1)?;
                blk.mid_channels = dim(&format!("{p}.conv1.weight"), 0)?;
                blk.out_channels = dim(&format!("{p}.conv2.weight"), 0)?;
            }
        }
        out.num_classes = dim("fc.weight", 0)?;
        Ok(out)
    }

    /// Multiply-accumulates of one forward pass at `size`×`size` input.
    pub fn macs(&self, size: usize) -> u64 {
        let conv_out =
            |s: usize, k: usize, stride: usize, pad: usize| (s + 2 * pad - k) / stride + 1;
        let mut s = conv_out(size, 7, 2, 3);
        let mut macs = (s * s * self.stem_channels * 3 * 49) as u64;
        s = conv_out(s, 3, 2, 1); // max pool
        for stage in &self.stages {
            for b in stage {
                let so = conv_out(s, 3, b.stride, 1);
                macs += (so * so * b.mid_channels * b.in_channels * 9) as u64;
                macs += (so * so * b.out_channels * b.mid_channels * 9) as u64;
                if b.downsample {
                    macs += (so * so * b.out_channels * b.in_channels) as u64;
                }
                s = so;
            }
        }
        macs + (self.feature_channels() * self.num_classes) as u64
    }
}

struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    fn forward(&self, x: Tensor<4>, mut stats: Option<&mut Vec<BatchStats>>) -> Tensor<4> {
        let h = relu(self.conv1.forward(x.clone(), stats.as_deref_mut()));
        let out = self.conv2.forward(h, stats.as_deref_mut());
        let identity = match &self.downsample {
            Some(d) => d.forward(x, stats),
            None => x,
        };
        relu(out + identity)
    }
}

/// ResNet on a Burn device, ready to run.
pub struct ResNet {
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet {
    /// Upload `weights` (already checked against `config`) to `device`.
    pub fn build(config: &ResNetConfig, weights: &StateDict, device: &Device) -> Result<Self> {
        let stem = ConvBn::load(weights, "conv1", "bn1", 2, 3, device)?;
        let mut blocks = Vec::new();
        for (s, stage) in config.stages.iter().enumerate() {
            for (b, blk) in stage.iter().enumerate() {
                let p = format!("layer{}.{b}", s + 1);
                let conv1 = ConvBn::load(
                    weights,
                    &format!("{p}.conv1"),
                    &format!("{p}.bn1"),
                    blk.stride,
                    1,
                    device,
                )?;
                let conv2 = ConvBn::load(
                    weights,
                    &format!("{p}.conv2"),
                    &format!("{p}.bn2"),
                    1,
                    1,
                    device,
                )?;
                let downsample = if blk.downsample {
                    Some(ConvBn::load(
                        weights,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        blk.stride,
                        0,
                        device,
                    )?)
                } else {
                    None
                };
                blocks.push(BasicBlock {
                    conv1,
                    conv2,
                    downsample,
                });
            }
        }
        let fc = Linear::load(weights, "fc", device)?;
        Ok(Self { stem, blocks, fc })
    }

    /// The feature maps before pooling; see [`ConvBn::forward`] for `stats`.
    fn features(&self, x: Tensor<4>, mut stats: Option<&mut Vec<BatchStats>>) -> Tensor<4> {
        let x = relu(self.stem.forward(x, stats.as_deref_mut()));
        let mut x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        for block in &self.blocks {
            x = block.forward(x, stats.as_deref_mut());
        }
        x
    }

    /// Training-mode pass for batch-norm recalibration: every batch norm normalises with the
    /// batch's statistics (as PyTorch's `train()` does) and records them.
    pub fn batch_statistics(&self, x: Tensor<4>) -> Vec<BatchStats> {
        let mut stats = Vec::new();
        self.features(x, Some(&mut stats));
        stats
    }

    /// `[N, 3, H, W]` normalised images → `[N, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = adaptive_avg_pool2d(self.features(x, None), [1, 1]);
        let [n, c, _, _] = x.dims();
        self.fc.forward(x.reshape([n, c]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet18_matches_torchvision_counts() {
        let c = ResNetConfig::resnet18(1000);
        c.validate().unwrap();
        let shapes = c.param_shapes();
        // torchvision's state_dict has 122 tensors with num_batches_tracked (20 BNs) → 102.
        assert_eq!(shapes.len(), 102);
        let learnable: usize = shapes
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(learnable, 11_689_512);
        // torchvision reports 1.814 GMACs for resnet18 at 224×224.
        assert_eq!(c.macs(224) / 1_000_000, 1814);
        assert!(shapes.contains(&("layer2.0.downsample.0.weight".into(), vec![128, 64, 1, 1])));
    }

    #[test]
    fn inconsistent_widths_are_rejected() {
        let mut c = ResNetConfig::resnet18(1000);
        c.stages[1][1].in_channels = 100;
        assert!(matches!(c.validate(), Err(Error::Structure(_))));
    }
}
