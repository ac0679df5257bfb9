//! Activations quantized to `u8` with power-of-two steps.

use serde::{Deserialize, Serialize};

use super::power_of_two_at_least;

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
    /// The step of a gate's values in `[0, 1)` (a sigmoid's or hard sigmoid's output): 1/256
    /// from zero, as TFLite's int8 `LOGISTIC` requires of its output.
    pub const UNIT: ActQuant = ActQuant {
        scale: 1.0 / 256.0,
        zero_point: 0,
    };

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

    /// Step `scale` with zero where `lo` puts it, on the nearest even level (clamped to the
    /// `u8` range).
    ///
    /// Why even: ONNX's `QuantizeLinear` rounds `x / s` half to even and then adds the zero
    /// point; ONNX Runtime's fused `QLinearAdd` adds the zero point first and rounds the sum.
    /// Where the add's inputs have a finer step than its output, halves are common (half of
    /// EfficientNet-Lite0's first residual sum), and with an odd zero point the two orders round
    /// them to neighbouring levels — every photo's logits moved, 2 of 250 top-1s. Adding an even
    /// integer keeps a half's parity, so both orders agree; the cost is at most one step of the
    /// range at its ends.
    fn with_scale(lo: f32, scale: f32) -> Self {
        let zp = ((-lo.min(0.0) / scale / 2.0).round_ties_even() * 2.0).clamp(0.0, 254.0) as u8;
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

    /// The same range's low end at the coarser step `scale` (no change when `scale` is not
    /// coarser).
    pub fn coarsened(self, scale: f32) -> Self {
        if scale > self.scale {
            Self::with_scale(-(self.zero_point as f32) * self.scale, scale)
        } else {
            self
        }
    }

    /// `DequantizeLinear(QuantizeLinear(x))` on the host.
    pub fn fake(&self, x: f32) -> f32 {
        let zp = self.zero_point as f32;
        (((x / self.scale).round_ties_even() + zp).clamp(0.0, 255.0) - zp) * self.scale
    }
}
