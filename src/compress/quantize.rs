//! Symmetric weight quantization in the product's own format: integer values plus scales,
//! independent of any backend's internal layout.
//!
//! ONNX `QuantizeLinear` (opset 21): `y = saturate(round(x / y_scale) + y_zero_point)`, rounding
//! to nearest with ties to even; `DequantizeLinear`: `x = (y - x_zero_point) * x_scale`. With
//! per-axis scales `y_scale` has the length of `axis`; with blocked quantization it has the
//! input's shape except `axis`, which becomes `ceil(dim / block_size)`. Symmetric means
//! `zero_point = 0` and the range `[-(2^(b-1) - 1), 2^(b-1) - 1]` (±127, ±7), so that
//! `-x` quantizes to `-q`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::tensor::HostTensor;
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

/// Static quantization of one activation to `u8`, asymmetric (ONNX Runtime's default for
/// activations): `q = saturate(round(x / scale) + zero_point)`.
///
/// The scale is always a power of two. Why: a QDQ graph is discontinuous at every
/// `QuantizeLinear` (a value a hair below a rounding boundary lands one step lower), and two
/// engines that sum a convolution in different orders differ in the last bits of nearly every
/// output. With arbitrary scales those last bits flipped about one activation in 10⁵ at the
/// first quantized layer and a third of them by the last (seeded ResNet18, modelslim against
/// onnxruntime), moving logits by ~1 % of their range. With power-of-two activation scales and
/// weight scales of at most [`EXACT_WEIGHT_SCALE_BITS`] significant bits, every product
/// `(q_x − z)·s_x · q_w·s_w` and every partial sum is an exact f32 (while the integer
/// accumulator stays below 2^19), so the order no longer matters: modelslim, onnxruntime
/// without graph optimizations and onnxruntime's fused integer kernels (whose requantization
/// multiplier `s_x·s_w/s_y` is then exact too) compute the same numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActQuant {
    pub scale: f32,
    pub zero_point: u8,
}

impl ActQuant {
    /// The smallest power-of-two step that covers `[lo, hi]` (widened to include 0, so that
    /// zero is exact).
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = power_of_two_at_least((hi - lo) / 255.0);
        if !(scale.is_finite() && scale > 0.0) {
            return ActQuant {
                scale: 1.0,
                zero_point: 0,
            };
        }
        Self::with_scale(lo, scale)
    }

    /// Step `scale` with zero where `lo` puts it (clamped to the `u8` range).
    fn with_scale(lo: f32, scale: f32) -> Self {
        let zp = (-lo.min(0.0) / scale).round_ties_even().clamp(0.0, 255.0) as u8;
        ActQuant {
            scale,
            zero_point: zp,
        }
    }

    /// Of the power-of-two steps that cover `[lo, hi]` and the two finer ones (which clip the
    /// range's ends), the one with the least squared error on `sample`: rounding a step up to a
    /// power of two costs up to half the resolution, and on a long-tailed activation clipping
    /// the rare largest values costs less than that.
    pub fn fit(lo: f32, hi: f32, sample: &[f32]) -> Self {
        let widest = Self::from_range(lo, hi);
        if sample.is_empty() {
            return widest;
        }
        let error = |q: &ActQuant| -> f64 {
            sample
                .iter()
                .map(|&x| ((q.fake(x) - x) as f64).powi(2))
                .sum()
        };
        let mut best = (error(&widest), widest);
        for shift in [0.5, 0.25] {
            let q = Self::with_scale(lo, widest.scale * shift);
            let e = error(&q);
            if e < best.0 {
                best = (e, q);
            }
        }
        best.1
    }

    /// `DequantizeLinear(QuantizeLinear(x))` on the host.
    pub fn fake(&self, x: f32) -> f32 {
        let zp = self.zero_point as f32;
        (((x / self.scale).round_ties_even() + zp).clamp(0.0, 255.0) - zp) * self.scale
    }
}

/// Significant bits an integer weight scale keeps when the layer's activations are quantized
/// too (see [`ActQuant`]). A product `(q_x − z)·q_w` needs 8 + 7 bits, so with 5-bit scales an
/// accumulator is exact in f32's 24 bits up to 2^19 (8-bit scales left only 2^16, and real
/// accumulators reach 2^17). Rounding a scale up to 5 bits coarsens it by at most 1/16, 3 % on
/// average: on EfficientNet-Lite0 int8 weights + activations it cost no agreement.
pub const EXACT_WEIGHT_SCALE_BITS: u32 = 5;

/// The smallest power of two ≥ `s` (positive, finite `s`; anything else is returned as is).
pub fn power_of_two_at_least(s: f32) -> f32 {
    round_up_to_bits(s, 1)
}

/// The smallest f32 ≥ `s` with at most `bits` significant bits (positive, finite, normal `s`;
/// anything else is returned as is).
pub fn round_up_to_bits(s: f32, bits: u32) -> f32 {
    if !(s.is_normal() && s > 0.0) || bits == 0 || bits >= 24 {
        return s;
    }
    // An f32 has 24 significant bits; clear the low ones and, if any was set, add one unit of
    // the last kept bit (a carry into the exponent gives the next power of two, as it should).
    let mask = (1u32 << (24 - bits)) - 1;
    let b = s.to_bits();
    if b & mask == 0 {
        s
    } else {
        f32::from_bits((b & !mask) + mask + 1)
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
}

impl Quantization {
    /// Nothing quantized.
    pub fn is_empty(&self) -> bool {
        self.int.is_empty() && self.f16.is_empty() && self.activations.is_empty()
    }
}

/// A quantized tensor: `values[i] * scale(i)` approximates the original.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    pub shape: Vec<usize>,
    pub bits: u32,
    pub granularity: Granularity,
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
    /// The scales' shape, as ONNX `DequantizeLinear` expects it.
    pub scale_shape: Vec<usize>,
}

/// The largest magnitude a symmetric `bits`-bit integer holds.
pub fn qmax(bits: u32) -> i32 {
    (1 << (bits - 1)) - 1
}

/// Which scale serves element `i`, for each granularity.
fn scale_index(shape: &[usize], g: Granularity, i: usize) -> usize {
    match g {
        Granularity::PerTensor => 0,
        Granularity::PerChannel => i / shape[1..].iter().product::<usize>().max(1),
        Granularity::Group(n) => {
            let inner: usize = shape[2..].iter().product();
            let (o, rest) = (i / (shape[1] * inner), i % (shape[1] * inner));
            let (c, pos) = (rest / inner, rest % inner);
            let blocks = shape[1].div_ceil(n);
            (o * blocks + c / n) * inner + pos
        }
    }
}

/// The shape of the scales for a tensor of `shape`.
pub fn scale_shape(shape: &[usize], g: Granularity) -> Vec<usize> {
    match g {
        Granularity::PerTensor => vec![],
        Granularity::PerChannel => vec![shape[0]],
        Granularity::Group(n) => {
            let mut s = shape.to_vec();
            s[1] = shape[1].div_ceil(n);
            s
        }
    }
}

/// Quantize `t` symmetrically to `bits` (2..=8) with the given granularity.
pub fn quantize(t: &HostTensor, bits: u32, g: Granularity) -> Result<QuantizedTensor> {
    quantize_with_scale_bits(t, bits, g, None)
}

/// [`quantize`] with every scale rounded up to at most `scale_bits` significant bits (see
/// [`EXACT_WEIGHT_SCALE_BITS`]).
pub fn quantize_with_scale_bits(
    t: &HostTensor,
    bits: u32,
    g: Granularity,
    scale_bits: Option<u32>,
) -> Result<QuantizedTensor> {
    if !(2..=8).contains(&bits) {
        return Err(Error::Invalid(format!(
            "{bits}-bit integers are not supported"
        )));
    }
    match g {
        Granularity::PerChannel if t.shape.is_empty() => {
            return Err(Error::Invalid(
                "per-channel quantization needs an axis 0".into(),
            ));
        }
        Granularity::Group(n) if n == 0 || t.shape.len() < 2 => {
            return Err(Error::Invalid(
                "group quantization needs a group size ≥ 1 and an input axis".into(),
            ));
        }
        _ => {}
    }
    let sshape = scale_shape(&t.shape, g);
    let mut maxabs = vec![0f32; sshape.iter().product::<usize>().max(1)];
    for (i, v) in t.data.iter().enumerate() {
        let s = &mut maxabs[scale_index(&t.shape, g, i)];
        *s = s.max(v.abs());
    }
    let q = qmax(bits) as f32;
    // A block of zeros gets scale 1 (ONNX scales must be positive); its values stay 0.
    let scales: Vec<f32> = maxabs
        .iter()
        .map(|&m| if m > 0.0 { m / q } else { 1.0 })
        .map(|s| scale_bits.map_or(s, |b| round_up_to_bits(s, b)))
        .collect();
    let values = t
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = scales[scale_index(&t.shape, g, i)];
            (v / s).round_ties_even().clamp(-q, q) as i8
        })
        .collect();
    Ok(QuantizedTensor {
        shape: t.shape.clone(),
        bits,
        granularity: g,
        values,
        scales,
        scale_shape: sshape,
    })
}

impl QuantizedTensor {
    /// `values × scales` as f32: exactly what `DequantizeLinear` computes.
    pub fn dequantize(&self) -> HostTensor {
        let data = self
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * self.scales[scale_index(&self.shape, self.granularity, i)])
            .collect();
        HostTensor::new(self.shape.clone(), data)
    }

    /// The scale that serves element `i`.
    pub fn scale_of(&self, i: usize) -> f32 {
        self.scales[scale_index(&self.shape, self.granularity, i)]
    }
}

/// Round every value to IEEE half precision and back (what an fp16 file stores).
pub fn round_to_f16(t: &HostTensor) -> HostTensor {
    let data = t
        .data
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    HostTensor::new(t.shape.clone(), data)
}
