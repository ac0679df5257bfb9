//! A network that is its graph: read from a user's ONNX file, stored in a compressed file's
//! metadata with its preprocessing, and rebuilt from there.

use serde::{Deserialize, Serialize};

use super::graph::{Graph, Op, dilated};
use crate::preprocess::Preprocess;
use crate::{Error, Result};

/// The smallest and largest input side accepted.
pub const INPUT_SIDES: std::ops::RangeInclusive<u32> = 16..=1024;

/// A network described by its graph alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNet {
    /// What people call it (the file's name without its extension).
    pub name: String,
    /// The network as read, batch norms unfolded.
    pub graph: Graph,
    /// How photos become its input; the crop is the input's size.
    pub preprocess: Preprocess,
    /// The file fixed the input's size (else it was dynamic and may be chosen).
    #[serde(default)]
    pub fixed_size: bool,
}

impl GraphNet {
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

    /// The output's width: the number of classes, or 1 for a binary classifier's single
    /// logit.
    pub fn output_width(&self) -> usize {
        self.graph.channels()[self.graph.output]
    }
}

/// The shorter side a photo is resized to before an `[height, width]` centre crop: the longer
/// side over 0.875, as ImageNet's 256 for 224.
pub fn default_resize([h, w]: [u32; 2]) -> u32 {
    (h.max(w) as f32 / 0.875).round() as u32
}

/// The name an ONNX file's network has until its file name is known.
pub const UNNAMED: &str = "ONNX model";

/// Preprocessing chosen by the user instead of the file's (or the defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputChoice {
    /// The input's `[height, width]` (only where the file leaves it dynamic).
    pub size: Option<[u32; 2]>,
    /// The shorter side before the centre crop; round(longer input side / 0.875) when the
    /// size changes.
    pub resize: Option<u32>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    /// Feed B, G, R (`Some(true)`) or R, G, B (`Some(false)`).
    pub bgr: Option<bool>,
}

impl InputChoice {
    pub fn is_empty(&self) -> bool {
        *self == InputChoice::default()
    }
}

impl super::Model {
    /// The network named after its file (`stem`) when it was read from ONNX and has no name
    /// yet; anything else as it is.
    pub fn named(mut self, stem: &str) -> super::Model {
        if let super::Arch::Graph(g) = &mut self.arch
            && g.name == UNNAMED
            && !stem.is_empty()
        {
            g.name = stem.chars().take(super::graph_edit::MAX_NAME).collect();
        }
        self
    }

    /// A network read from ONNX whose graph, preprocessing and weights' names are those of
    /// modelslim's own ResNet18 or EfficientNet-Lite0 (their ONNX export, read back) as that
    /// network: its blocks and compressed files are then the ones its PyTorch weights give,
    /// byte for byte. Anything else as it is.
    pub fn into_known(self) -> super::Model {
        let super::Arch::Graph(g) = &self.arch else {
            return self;
        };
        let Ok(known) =
            super::Arch::detect(&self.weights).and_then(|a| a.with_widths_of(&self.weights))
        else {
            return self;
        };
        let theirs = known.graph(false);
        let same_graph = theirs.output == g.graph.output
            && theirs.nodes.len() == g.graph.nodes.len()
            && theirs
                .nodes
                .iter()
                .zip(&g.graph.nodes)
                .all(|(a, b)| a.op == b.op && a.inputs == b.inputs);
        if !same_graph
            || known.preprocess() != g.preprocess
            || self.folded
            || !self.quant.is_empty()
        {
            return self;
        }
        super::Model {
            arch: known,
            ..self
        }
    }

    /// The model fed as `choice` says. Only a network read from ONNX takes a choice:
    /// ResNet18 and EfficientNet-Lite0 were trained with one preprocessing. (By value: a
    /// large model is not copied to change its preprocessing.)
    pub fn with_input(mut self, choice: &InputChoice) -> Result<super::Model> {
        if choice.is_empty() {
            return Ok(self);
        }
        let super::Arch::Graph(g) = &mut self.arch else {
            return Err(Error::Invalid(format!(
                "{} takes its own preprocessing; --input-size, --resize, --mean, --std and --bgr are for networks read from ONNX",
                self.arch.display()
            )));
        };
        let mut net = (**g).clone();
        let p = &mut net.preprocess;
        let [h, w] = p.input_hw().map(|s| s as u32);
        if let Some([ch, cw]) = choice.size
            && [ch, cw] != [h, w]
        {
            if net.fixed_size {
                return Err(Error::Invalid(format!(
                    "{} fixes its input at {h}×{w}; --input-size {ch}x{cw} does not fit it",
                    net.name
                )));
            }
            p.crop = ch;
            p.crop_width = (cw != ch).then_some(cw);
            p.resize = default_resize([ch, cw]);
        }
        if let Some(r) = choice.resize {
            p.resize = r;
        }
        if let Some(m) = choice.mean {
            p.mean = m;
        }
        if let Some(s) = choice.std {
            p.std = s;
        }
        if let Some(b) = choice.bgr {
            p.bgr = b;
        }
        net.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        **g = net;
        Ok(self)
    }
}
