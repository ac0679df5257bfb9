//! EfficientNet-Lite0 (the `efficientnet_pytorch` layout with lukemelas' key names, Lite
//! variant): inverted-residual blocks with depthwise convs, no squeeze-excitation, ReLU6,
//! TF-"same" padding computed for a 224×224 input (as `Conv2dStaticSamePadding` does), batch
//! norm eps 1e-3. The builder of its graph, used when its weights are read; the config (every
//! width) is also what files compressed before networks were stored as graphs hold.

use serde::{Deserialize, Serialize};

use super::graph::{Graph, Op};
use crate::{Error, Result};

/// One inverted-residual block: optional 1×1 expansion `in → mid`, depthwise `k×k` conv
/// (`stride`), 1×1 projection `mid → out`, and a residual add when the block keeps its shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MbBlockConfig {
    pub in_channels: usize,
    pub mid_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// An `_expand_conv` exists (expansion ratio ≠ 1).
    pub expand: bool,
    /// The input is added to the output (stride 1 and the same width in the original).
    pub residual: bool,
    /// Removed: the block computes its skip, the identity (only a residual block can be
    /// dropped). Its widths then follow the stream it sits on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

/// The whole network's structure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EfficientNetConfig {
    pub stem_channels: usize,
    pub blocks: Vec<MbBlockConfig>,
    pub head_channels: usize,
    pub num_classes: usize,
    /// The input size the static "same" padding is computed for.
    pub image_size: usize,
}

/// TF "same" padding for one conv: `(before, after)` for input size `x`.
fn same_pad(x: usize, k: usize, s: usize) -> (usize, usize, usize) {
    let out = x.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(x);
    (total / 2, total - total / 2, out)
}

impl EfficientNetConfig {
    /// EfficientNet-Lite0: stem 32, head 1280, the B0 block table
    /// (expansion, kernel, stride, out, repeats).
    pub fn lite0(num_classes: usize) -> Self {
        let table = [
            (1, 3, 1, 16, 1),
            (6, 3, 2, 24, 2),
            (6, 5, 2, 40, 2),
            (6, 3, 2, 80, 3),
            (6, 5, 1, 112, 3),
            (6, 5, 2, 192, 4),
            (6, 3, 1, 320, 1),
        ];
        let mut blocks = Vec::new();
        let mut c = 32;
        for (e, k, s, out, n) in table {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                blocks.push(MbBlockConfig {
                    in_channels: c,
                    mid_channels: c * e,
                    out_channels: out,
                    kernel: k,
                    stride,
                    expand: e != 1,
                    residual: stride == 1 && c == out,
                    dropped: false,
                });
                c = out;
            }
        }
        EfficientNetConfig {
            stem_channels: 32,
            blocks,
            head_channels: 1280,
            num_classes,
            image_size: 224,
        }
    }

    /// Check that consecutive layers agree on their widths.
    pub fn validate(&self) -> Result<()> {
        self.check_against(&EfficientNetConfig::lite0(self.num_classes))?;
        let mut c = self.stem_channels;
        if c == 0 || self.head_channels == 0 || self.num_classes == 0 {
            return Err(Error::Structure("a layer has zero channels".into()));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if b.in_channels != c {
                return Err(Error::Structure(format!(
                    "_blocks.{i} reads {} channels but receives {c}",
                    b.in_channels
                )));
            }
            if b.mid_channels == 0 || b.out_channels == 0 || b.stride == 0 || b.kernel == 0 {
                return Err(Error::Structure(format!("_blocks.{i} has a zero width")));
            }
            if !b.expand && b.mid_channels != b.in_channels {
                return Err(Error::Structure(format!(
                    "_blocks.{i} has no expansion but changes width"
                )));
            }
            if b.residual && (b.stride != 1 || b.in_channels != b.out_channels) {
                return Err(Error::Structure(format!(
                    "_blocks.{i} adds its input but changes shape"
                )));
            }
            c = b.out_channels;
        }
        Ok(())
    }

    /// Only widths may differ from `reference` (pruning removes channels, it adds none and
    /// changes no stride or kernel): a file's metadata that says otherwise is damaged, and a
    /// changed stride would change every prediction without a word.
    fn check_against(&self, reference: &EfficientNetConfig) -> Result<()> {
        let bad = |what: String| {
            Err(Error::Structure(format!(
                "{what}: not an EfficientNet-Lite0"
            )))
        };
        if self.blocks.len() != reference.blocks.len() {
            return bad(format!(
                "{} blocks instead of {}",
                self.blocks.len(),
                reference.blocks.len()
            ));
        }
        if self.image_size != reference.image_size {
            return bad(format!("input size {}", self.image_size));
        }
        if self.stem_channels > reference.stem_channels
            || self.head_channels > reference.head_channels
        {
            return bad("a layer wider than the original".into());
        }
        for (i, (b, r)) in self.blocks.iter().zip(&reference.blocks).enumerate() {
            if (b.kernel, b.stride, b.expand, b.residual)
                != (r.kernel, r.stride, r.expand, r.residual)
            {
                return bad(format!(
                    "_blocks.{i} has kernel {} and stride {}, expected {} and {}",
                    b.kernel, b.stride, r.kernel, r.stride
                ));
            }
            if b.mid_channels > r.mid_channels || b.out_channels > r.out_channels {
                return bad(format!("_blocks.{i} is wider than the original"));
            }
            if b.dropped && !r.residual {
                return bad(format!("_blocks.{i} changes shape and cannot be dropped"));
            }
        }
        Ok(())
    }

    /// The network: its graph with lukemelas' tensor names, fed as EfficientNet-Lite was
    /// trained (`(x − 127) / 128`).
    pub fn net(&self) -> super::Arch {
        super::Arch {
            name: "EfficientNet-Lite0".into(),
            graph: self.graph(false),
            preprocess: crate::preprocess::Preprocess::LITE,
            fixed_size: true,
        }
    }

    /// The network as a graph (see `ResNetConfig::graph` for `folded`).
    pub fn graph(&self, folded: bool) -> Graph {
        let mut g = Graph::new();
        // conv + batch norm with lukemelas' names, TF-"same" padding for an input of `size`,
        // BN eps 1e-3.
        let conv = |g: &mut Graph,
                    x: usize,
                    name: &str,
                    bn: &str,
                    io: (usize, usize),
                    k: usize,
                    stride: usize,
                    size: usize,
                    groups: usize| {
            let (before, after, _) = same_pad(size, k, stride);
            let pads = [before, before, after, after];
            g.conv_bn(x, name, bn, io, k, stride, pads, groups, 1e-3, folded)
        };
        let relu6 = |g: &mut Graph, x: usize, name: String| g.push(Op::Relu6, &[x], name);
        let mut size = self.image_size;
        let x = conv(
            &mut g,
            0,
            "_conv_stem",
            "_bn0",
            (3, self.stem_channels),
            3,
            2,
            size,
            1,
        );
        size = same_pad(size, 3, 2).2;
        let mut x = relu6(&mut g, x, "_stem_relu6".into());
        for (i, b) in self.blocks.iter().enumerate() {
            // A dropped block is its skip (x + 0); it has stride 1, so the size stays.
            if b.dropped {
                continue;
            }
            let p = format!("_blocks.{i}");
            let input = x;
            let mut h = x;
            if b.expand {
                h = conv(
                    &mut g,
                    h,
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    (b.in_channels, b.mid_channels),
                    1,
                    1,
                    size,
                    1,
                );
                h = relu6(&mut g, h, format!("{p}._expand_relu6"));
            }
            h = conv(
                &mut g,
                h,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                (b.mid_channels, b.mid_channels),
                b.kernel,
                b.stride,
                size,
                b.mid_channels,
            );
            size = same_pad(size, b.kernel, b.stride).2;
            h = relu6(&mut g, h, format!("{p}._depthwise_relu6"));
            h = conv(
                &mut g,
                h,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                (b.mid_channels, b.out_channels),
                1,
                1,
                size,
                1,
            );
            x = if b.residual {
                g.push(Op::Add, &[h, input], format!("{p}.add"))
            } else {
                h
            };
        }
        let last = self
            .blocks
            .last()
            .map(|b| b.out_channels)
            .unwrap_or(self.stem_channels);
        let h = conv(
            &mut g,
            x,
            "_conv_head",
            "_bn1",
            (last, self.head_channels),
            1,
            1,
            size,
            1,
        );
        let h = relu6(&mut g, h, "_head_relu6".into());
        let pooled = g.push(Op::GlobalAvgPool, &[h], "avgpool");
        g.push(
            Op::Linear {
                name: "_fc".into(),
                in_features: self.head_channels,
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
    fn lite0_matches_the_published_shapes() {
        let c = EfficientNetConfig::lite0(1000);
        c.validate().unwrap();
        assert_eq!(c.blocks.len(), 16);
        let shapes = c.graph(false).param_shapes();
        // 296 tensors in the checkpoint, 49 of them num_batches_tracked.
        assert_eq!(shapes.len(), 296 - 49);
        let params: usize = shapes
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 4_652_008);
        assert!(shapes.contains(&(
            "_blocks.3._depthwise_conv.weight".into(),
            vec![144, 1, 5, 5]
        )));
        // TF "same": a stride-2 3×3 conv on 224 pads 0 before and 1 after.
        assert_eq!(same_pad(224, 3, 2), (0, 1, 112));
        assert_eq!(same_pad(56, 5, 2), (1, 2, 28));
    }
}
