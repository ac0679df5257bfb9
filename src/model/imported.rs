//! A network read from a user's ONNX file: named after the file, recognised when it is
//! modelslim's own ResNet18 or EfficientNet-Lite0 export read back, and fed as the user says.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
        if self.arch.name == UNNAMED && !stem.is_empty() {
            self.arch.name = stem.chars().take(super::graph_edit::MAX_NAME).collect();
        }
        self
    }

    /// A network read from ONNX whose graph, preprocessing and weights' names are those of
    /// modelslim's own ResNet18 or EfficientNet-Lite0 (their ONNX export, read back) as the
    /// network their builder makes: its name and value names, and so its compressed files,
    /// are then the ones its PyTorch weights give, byte for byte. Anything else as it is.
    pub fn into_known(self) -> super::Model {
        let g = &self.arch;
        let Ok(known) =
            super::Arch::detect(&self.weights).and_then(|a| a.with_widths_of(&self.weights))
        else {
            return self;
        };
        let theirs = &known.graph;
        let same_graph = theirs.output == g.graph.output
            && theirs.nodes.len() == g.graph.nodes.len()
            && theirs
                .nodes
                .iter()
                .zip(&g.graph.nodes)
                .all(|(a, b)| a.op == b.op && a.inputs == b.inputs);
        if !same_graph || known.preprocess != g.preprocess || self.folded || !self.quant.is_empty()
        {
            return self;
        }
        super::Model {
            arch: known,
            ..self
        }
    }

    /// The model fed as `choice` says: a fine-tuned network may have been trained with
    /// other statistics; the input's size changes only where it is not fixed. (By value: a
    /// large model is not copied to change its preprocessing.)
    pub fn with_input(mut self, choice: &InputChoice) -> Result<super::Model> {
        if choice.is_empty() {
            return Ok(self);
        }
        let mut net = self.arch.clone();
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
        self.arch = net;
        Ok(self)
    }
}
