//! More calibration inputs from the same photos: mirrored and cropped copies, for the methods
//! that fit many numbers per layer to the photos' statistics (GPTQ, SparseGPT, refitting after
//! pruning, measured importance). They estimate Gram matrices of each layer's input; a few
//! hundred photos leave those short of samples for the wide layers, and a mirrored or shifted
//! photo is as likely an input as the photo itself, so it adds samples without adding a bias.
//! The images are the preprocessed CHW squares the network reads.

use std::str::FromStr;

use crate::model::graph::Hw;
use crate::preprocess::image_hw;
use crate::{Error, Result};

/// Which copies of each calibration photo are used beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Augment {
    /// The photos as they are.
    #[default]
    None,
    /// Each photo and its mirror image (×2).
    Flip,
    /// Each photo, its mirror image, a zoomed crop of one corner and that crop mirrored (×4).
    FlipCrop,
}

/// The share of the side a corner crop keeps before it is scaled back to the full side: the
/// center crop of a 256 resize is 224 pixels; 7/8 of it is what a 224 crop of a 256 resize
/// would be if the photo had been resized to 256 × 8/7 ≈ 293 — a mild zoom, as ImageNet
/// evaluation crops differ from one another.
const CROP_SHARE: f32 = 0.875;

impl Augment {
    /// How many inputs each photo becomes.
    pub fn copies(self) -> usize {
        match self {
            Augment::None => 1,
            Augment::Flip => 2,
            Augment::FlipCrop => 4,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Augment::None => "none",
            Augment::Flip => "flip",
            Augment::FlipCrop => "flip-crop",
        }
    }

    /// `images` (normalised CHW images of the network's `aspect`, height to width) with their
    /// copies, photo by photo. The crop's corner turns with the photo's index, so a set of
    /// photos sees all four.
    pub fn apply(self, images: &[Vec<f32>], aspect: Hw) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(images.len() * self.copies());
        for (i, image) in images.iter().enumerate() {
            let hw = image_hw(image.len(), aspect)?;
            out.push(image.clone());
            if self == Augment::None {
                continue;
            }
            out.push(mirrored(image, hw[1]));
            if self == Augment::FlipCrop {
                let crop = corner_crop(image, hw, i % 4);
                out.push(mirrored(&crop, hw[1]));
                out.push(crop);
            }
        }
        Ok(out)
    }
}

impl FromStr for Augment {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Augment::None),
            "flip" => Ok(Augment::Flip),
            "flip-crop" => Ok(Augment::FlipCrop),
            other => Err(Error::Invalid(format!(
                "unknown augmentation '{other}': use none, flip or flip-crop"
            ))),
        }
    }
}

/// Left and right swapped (rows of `width` values).
pub(crate) fn mirrored(image: &[f32], width: usize) -> Vec<f32> {
    let mut out = image.to_vec();
    for row in out.chunks_exact_mut(width) {
        row.reverse();
    }
    out
}

/// The `CROP_SHARE` of each side at corner `corner` (0 top left, 1 top right, 2 bottom left,
/// 3 bottom right) scaled back to the image's `[height, width]`.
fn corner_crop(image: &[f32], hw: Hw, corner: usize) -> Vec<f32> {
    let [ch, cw] = hw.map(|s| (s as f32 * CROP_SHARE).round().max(1.0));
    let x0 = if corner % 2 == 1 {
        hw[1] as f32 - cw
    } else {
        0.0
    };
    let y0 = if corner >= 2 { hw[0] as f32 - ch } else { 0.0 };
    resized_crop(image, hw, (x0, y0), (cw, ch))
}

/// The rectangle at `origin` (x, y) of `size` (width, height) pixels of a CHW image of
/// `[height, width]`, scaled to the full image by bilinear interpolation (pixel centres
/// aligned, as image resizers do). Resizing is linear, so resizing the normalised values
/// equals normalising the resized pixels.
pub(crate) fn resized_crop(
    image: &[f32],
    hw: Hw,
    origin: (f32, f32),
    size: (f32, f32),
) -> Vec<f32> {
    let [height, width] = hw;
    // Source coordinate and weights for each output row/column.
    let taps = |origin: f32, crop: f32, side: usize| -> Vec<(usize, usize, f32)> {
        (0..side)
            .map(|o| {
                let s = (origin + (o as f32 + 0.5) * crop / side as f32 - 0.5)
                    .clamp(0.0, (side - 1) as f32);
                let lo = (s.floor() as usize).min(side - 1);
                let hi = (lo + 1).min(side - 1);
                (lo, hi, s - lo as f32)
            })
            .collect()
    };
    let (xs, ys) = (
        taps(origin.0, size.0, width),
        taps(origin.1, size.1, height),
    );
    let plane = height * width;
    let mut out = vec![0f32; image.len()];
    for c in 0..3 {
        let src = &image[c * plane..(c + 1) * plane];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (oy, &(y_lo, y_hi, fy)) in ys.iter().enumerate() {
            for (ox, &(x_lo, x_hi, fx)) in xs.iter().enumerate() {
                let top = src[y_lo * width + x_lo] * (1.0 - fx) + src[y_lo * width + x_hi] * fx;
                let bottom = src[y_hi * width + x_lo] * (1.0 - fx) + src[y_hi * width + x_hi] * fx;
                dst[oy * width + ox] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×4×4 image whose value says where it is: channel·100 + row·10 + column.
    fn ramp() -> Vec<f32> {
        let mut v = Vec::new();
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    v.push((c * 100 + y * 10 + x) as f32);
                }
            }
        }
        v
    }

    #[test]
    fn copies_come_photo_by_photo_and_mirroring_twice_is_the_identity() {
        let images = vec![ramp(), ramp()];
        let out = Augment::FlipCrop.apply(&images, [4, 4]).unwrap();
        assert_eq!(out.len(), 8);
        assert_eq!(out[0], images[0]);
        // Row 0 of channel 1, mirrored.
        assert_eq!(&out[1][16..20], &[103.0, 102.0, 101.0, 100.0]);
        assert_eq!(mirrored(&out[1], 4), images[0]);
        assert_eq!(Augment::None.apply(&images, [4, 4]).unwrap(), images);
        assert_eq!(Augment::Flip.apply(&images, [4, 4]).unwrap().len(), 4);
    }

    #[test]
    fn a_corner_crop_zooms_into_its_corner_on_a_linear_ramp() {
        // On a ramp bilinear interpolation is exact, so the crop is the ramp rescaled: the
        // 7×7 of an 8×8 ramp at the bottom-right corner, sampled at 8 pixel centres.
        let side = 8;
        let image: Vec<f32> = (0..3 * side * side)
            .map(|i| ((i % side) + 10 * ((i / side) % side)) as f32)
            .collect();
        let crop = corner_crop(&image, [side; 2], 3);
        let expect = |o: usize| ((o as f32 + 0.5) * 7.0 / 8.0 - 0.5 + 1.0).min(7.0);
        for y in 0..side {
            for x in 0..side {
                let want = expect(x) + 10.0 * expect(y);
                let got = crop[y * side + x];
                assert!((got - want).abs() < 1e-4, "({y},{x}): {got} vs {want}");
            }
        }
        // The top-left crop starts at the image's first pixel.
        assert_eq!(corner_crop(&image, [side; 2], 0)[0], image[0]);
        // A 4×12 image (a text line): each side cropped by the same share, rows of 12.
        let (h, w) = (4, 12);
        let line: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i % w) + 100 * ((i / w) % h)) as f32)
            .collect();
        let crop = corner_crop(&line, [h, w], 3);
        assert_eq!(crop.len(), line.len());
        assert_eq!(
            crop[h * w - 1],
            line[h * w - 1],
            "the bottom-right pixel stays"
        );
        assert!(crop[0] > line[0], "the top-left moves into the image");
        assert_eq!(image_hw(3 * 48 * 192, [48, 192]).unwrap(), [48, 192]);
        assert_eq!(image_hw(3 * 24 * 96, [48, 192]).unwrap(), [24, 96]);
        assert!(image_hw(3 * 48 * 50, [48, 192]).is_err());
    }

    #[test]
    fn images_that_are_not_squares_are_refused_in_one_line() {
        let err = Augment::Flip
            .apply(&[vec![0.0; 3 * 4 * 5]], [224, 224])
            .unwrap_err();
        assert!(err.to_string().contains("square"), "{err}");
        assert!("mirror".parse::<Augment>().is_err());
        assert_eq!("flip-crop".parse::<Augment>().unwrap(), Augment::FlipCrop);
    }
}
