//! Symmetric weight quantization in the product's own format: integer values plus scales,
//! independent of any backend's internal layout. Symmetric means `zero_point = 0` and the
//! range `[-(2^(b-1) - 1), 2^(b-1) - 1]` (±127, ±7), so that `-x` quantizes to `-q`.

use super::{ActQuant, Granularity, round_up_to_bits};
use crate::tensor::HostTensor;
use crate::{Error, Result};

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

impl Granularity {
    /// Why this granularity cannot serve a tensor of `shape`, if it cannot: channels need a
    /// first axis, groups an input axis and a group size of at least one.
    pub fn check_for(self, shape: &[usize]) -> std::result::Result<(), String> {
        match self {
            Granularity::PerTensor => Ok(()),
            Granularity::PerChannel if shape.is_empty() => {
                Err("per-channel scales on a tensor without axes".into())
            }
            Granularity::Group(0) => Err("groups of 0 inputs".into()),
            Granularity::Group(_) if shape.len() < 2 => {
                Err(format!("groups of inputs on a tensor of shape {shape:?}"))
            }
            _ => Ok(()),
        }
    }
}

/// The shape of the scales for a tensor of `shape` (see [`Granularity::check_for`]).
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
    g.check_for(&t.shape).map_err(Error::Invalid)?;
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

    /// Raise scale `k` to `scale` (no change unless it is coarser), rounding the integers it
    /// serves to the new step: they stand for the same weights, at the coarser resolution.
    pub fn coarsen(&mut self, k: usize, scale: f32) {
        let old = self.scales[k];
        if scale.partial_cmp(&old) != Some(std::cmp::Ordering::Greater) {
            return;
        }
        let q = qmax(self.bits) as f32;
        for i in 0..self.values.len() {
            if scale_index(&self.shape, self.granularity, i) == k {
                let v = self.values[i] as f32 * old;
                self.values[i] = (v / scale).round_ties_even().clamp(-q, q) as i8;
            }
        }
        self.scales[k] = scale;
    }

    /// Which of `scales` serves element `i`.
    pub fn scale_index_of(&self, i: usize) -> usize {
        scale_index(&self.shape, self.granularity, i)
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

/// The int32 bias scales of a layer: input scale × each output channel's weight scale.
pub fn bias_scales(weight: &QuantizedTensor, input: &ActQuant) -> Vec<f32> {
    let out = weight.shape[0];
    (0..out)
        .map(|c| {
            let ws = match weight.granularity {
                Granularity::PerTensor => weight.scales[0],
                _ => weight.scales[c.min(weight.scales.len() - 1)],
            };
            input.scale * ws
        })
        .collect()
}
