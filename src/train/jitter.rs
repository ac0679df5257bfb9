//! Random views of a photo for distillation: a random resized crop, a mirror image half of the
//! time, and a light change of brightness and contrast. A few hundred photos are few for
//! training; every step then sees views the student has not seen before, and the teacher
//! labels each one, so the student learns the teacher's function rather than its answers on
//! those photos.

use crate::Result;
use crate::compress::calibration::augment::{mirrored, resized_crop};
use crate::preprocess::{Preprocess, image_hw};
use crate::rng::Rng;

/// Crops keep between this share of the photo's area and all of it (torchvision's
/// `RandomResizedCrop` starts at 0.08; fine-tuning from 224 center crops that are already
/// tight needs less zoom).
const MIN_AREA: f64 = 0.35;
/// Brightness and contrast factors are drawn from `1 ± JITTER`.
const JITTER: f64 = 0.2;

/// A random view of `image` (a normalised CHW image of the network's input convention `pre`,
/// its size or another of the same aspect).
pub fn random_view(image: &[f32], pre: &Preprocess, rng: &mut Rng) -> Result<Vec<f32>> {
    let hw = image_hw(image.len(), pre.input_hw())?;
    let (sh, sw) = (hw[0] as f64, hw[1] as f64);
    // The crop's area and aspect are relative to the image's (a square view of a square).
    let area = rng.range(MIN_AREA, 1.0) as f64;
    let ratio = (rng.range((3f64 / 4.0).ln(), (4f64 / 3.0).ln()) as f64).exp();
    let w = (area * ratio).sqrt().min(1.0) * sw;
    let h = (area / ratio).sqrt().min(1.0) * sh;
    let x0 = rng.range(0.0, sw - w) as f64;
    let y0 = rng.range(0.0, sh - h) as f64;
    let mut out = resized_crop(image, hw, (x0 as f32, y0 as f32), (w as f32, h as f32));
    if rng.uniform() < 0.5 {
        out = mirrored(&out, hw[1]);
    }
    let brightness = rng.range(1.0 - JITTER, 1.0 + JITTER);
    let contrast = rng.range(1.0 - JITTER, 1.0 + JITTER);
    let plane = hw[0] * hw[1];
    for (c, values) in out.chunks_exact_mut(plane).enumerate() {
        // In pixels p (0–1): p·b, then (p − mean(p))·c + mean(p). With x = (p − μ)/σ that is
        // x·b + μ(b − 1)/σ, and contrast about the channel's own mean.
        let shift = pre.mean[c] * (brightness - 1.0) / pre.std[c];
        let mean = values.iter().sum::<f32>() / plane as f32 * brightness + shift;
        for v in values.iter_mut() {
            let bright = *v * brightness + shift;
            *v = (bright - mean) * contrast + mean;
        }
    }
    Ok(out)
}

/// `a ← λ·a + (1 − λ)·b` for two views of the same shape (mixup).
pub fn mix(a: &mut [f32], b: &[f32], lambda: f32) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = lambda * *x + (1.0 - lambda) * y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_random_but_repeat_for_a_seed_and_keep_the_shape() {
        let side = 16;
        let image: Vec<f32> = (0..3 * side * side).map(|i| (i % 7) as f32 * 0.1).collect();
        let pre = Preprocess::LITE;
        let a = random_view(&image, &pre, &mut Rng::new(1)).unwrap();
        let b = random_view(&image, &pre, &mut Rng::new(1)).unwrap();
        let c = random_view(&image, &pre, &mut Rng::new(2)).unwrap();
        assert_eq!(a.len(), image.len());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| v.is_finite()));
    }
}
