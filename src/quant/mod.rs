//! The quantization scheme, shared by the model (which stores and runs it), compression (which
//! chooses it) and the ONNX export (which writes it). It depends on nothing above `tensor`.
//!
//! ONNX `QuantizeLinear` (opset 21): `y = saturate(round(x / y_scale) + y_zero_point)`, rounding
//! to nearest with ties to even; `DequantizeLinear`: `x = (y - x_zero_point) * x_scale`. With
//! per-axis scales `y_scale` has the length of `axis`; with blocked quantization it has the
//! input's shape except `axis`, which becomes `ceil(dim / block_size)`.

mod activation;
mod scale_grid;
mod weights;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use activation::ActQuant;
pub use scale_grid::{EXACT_WEIGHT_SCALE_BITS, power_of_two_at_least, round_up_to_bits};
pub use weights::{
    QuantizedTensor, bias_scales, qmax, quantize, quantize_with_scale_bits, round_to_f16,
    scale_shape,
};

use crate::{Error, Result};

/// Which elements share one scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One scale for the whole tensor.
    PerTensor,
    /// One scale per output channel (axis 0).
    PerChannel,
    /// One scale per block of `n` consecutive input channels (axis 1), per output channel and
    /// kernel position: ONNX blocked quantization along axis 1.
    Group(usize),
}

impl std::str::FromStr for Granularity {
    type Err = Error;

    /// `channel`, `tensor` or `group:N`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "channel" => Ok(Granularity::PerChannel),
            "tensor" => Ok(Granularity::PerTensor),
            _ => match s.strip_prefix("group:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Granularity::Group(n)),
                _ => Err(Error::Invalid(format!(
                    "granularity '{s}' is not one of channel, tensor, group:N (N ≥ 1)"
                ))),
            },
        }
    }
}

impl std::fmt::Display for Granularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Granularity::PerChannel => write!(f, "channel"),
            Granularity::PerTensor => write!(f, "tensor"),
            Granularity::Group(n) => write!(f, "group:{n}"),
        }
    }
}

/// The precision one layer's weights are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F16,
    Int8,
    Int4,
}

impl std::str::FromStr for Precision {
    type Err = Error;

    /// `none` (or `fp32`), `fp16`, `int8`, `int4`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "fp32" | "f32" => Ok(Precision::F32),
            "fp16" | "f16" => Ok(Precision::F16),
            "int8" => Ok(Precision::Int8),
            "int4" => Ok(Precision::Int4),
            other => Err(Error::Invalid(format!(
                "quantization '{other}' is not one of none, int8, int4, fp16"
            ))),
        }
    }
}

impl Precision {
    /// Integer bits, for the integer precisions.
    pub fn bits(self) -> Option<u32> {
        match self {
            Precision::Int8 => Some(8),
            Precision::Int4 => Some(4),
            _ => None,
        }
    }

    /// The next higher precision (for the first and last layers).
    pub fn higher(self) -> Self {
        match self {
            Precision::Int4 => Precision::Int8,
            _ => Precision::F32,
        }
    }

    /// A short name for file names and tables.
    pub fn label(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::F16 => "fp16",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
        }
    }
}

/// How a model's tensors are stored and its activations quantized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quantization {
    /// Integer-quantized tensors: the source of truth for their dequantized `weights`.
    pub int: BTreeMap<String, QuantizedTensor>,
    /// Tensors stored in half precision.
    pub f16: BTreeSet<String>,
    /// Activations quantized to `u8`, by value name.
    pub activations: BTreeMap<String, ActQuant>,
    /// The `u8` step of the logits where activations are quantized: a full-integer file
    /// (TFLite) must write them as integers, so modelslim's forward pass and the ONNX file
    /// round them to the same step, and two classes closer than it tie alike everywhere (the
    /// first class wins). Set, with `activations`, by activation calibration.
    pub logits: Option<ActQuant>,
    /// Weights whose zeros are pruned weights (magnitude or SparseGPT sparsity), not values
    /// that happened to round to zero: training keeps them at zero.
    pub sparse: BTreeSet<String>,
}

impl Quantization {
    /// The step of the gate of a hard swish (`clamp(x/6 + 1/2, 0, 1)`) or a SiLU
    /// (`sigmoid(x)`) when its input `x` is a quantized activation: 1/256 from zero
    /// ([`ActQuant::UNIT`]), so that the output `x · gate` is a product of two quantized
    /// values, as an integer engine computes it (TFLite's own int8 `HARD_SWISH` works in 16-bit
    /// fixed point and lands up to a step away from the float function on each value; 18 of
    /// them in a row moved a text-line classifier's logits by a tenth of their span). `None`:
    /// the gate stays float.
    pub fn gate_step(&self, input: &str) -> Option<ActQuant> {
        self.activations
            .contains_key(input)
            .then_some(ActQuant::UNIT)
    }

    /// Nothing quantized.
    pub fn is_empty(&self) -> bool {
        self.int.is_empty() && self.f16.is_empty() && self.activations.is_empty()
    }
}

impl Quantization {
    /// A one-line description (`int8 per-channel weights, u8 activations`).
    pub fn describe(&self) -> String {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for q in self.int.values() {
            *kinds
                .entry(format!("int{} {}", q.bits, q.granularity))
                .or_default() += 1;
        }
        // Layers, as Auto's candidates count them: an integer entry is a layer's weight, an
        // fp16 layer has its weight and its bias in `f16`.
        let layer = |n: &String| n.rsplit_once('.').map_or(n.clone(), |(l, _)| l.to_string());
        let mut parts: Vec<String> = kinds
            .into_iter()
            .map(|(k, n)| format!("{n} layers {k}"))
            .collect();
        if !self.f16.is_empty() {
            let layers: BTreeSet<String> = self.f16.iter().map(layer).collect();
            parts.push(format!("{} layers fp16", layers.len()));
        }
        if !self.activations.is_empty() {
            parts.push(format!("{} activations u8", self.activations.len()));
        }
        if parts.is_empty() {
            "fp32".into()
        } else {
            parts.join(", ")
        }
    }
}
