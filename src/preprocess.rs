//! Image → network input, exactly as torchvision's ImageNet eval transform does it.
//!
//! `Resize(256)` (short side to 256, PIL bilinear), `CenterCrop(224)`, `ToTensor()` (scale to
//! [0, 1]) and `Normalize(mean, std)`. PIL's bilinear resize is not textbook bilinear: when it
//! shrinks it widens the triangle filter by the scale factor (an antialiasing filter), works in
//! 22-bit fixed point and rounds to 8 bits between the horizontal and the vertical pass. This
//! module reproduces that arithmetic (Pillow's `Resample.c`), so the network sees the pixels
//! PyTorch users trained and evaluated with. EXIF orientation is applied first, as browsers do.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::limits::{MAX_ASPECT_RATIO, MAX_IMAGE_SIDE};
use crate::{Error, Result};

/// Whether a file's extension (`jpg`, `PNG`, …) names a format photos are read in: JPEG, PNG
/// or WebP.
pub fn is_image_extension(ext: &str) -> bool {
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "jpg" | "jpeg" | "png" | "webp"
    )
}

/// ImageNet channel means (RGB), as torchvision normalises.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How pixels become network input once the photo is resized and cropped.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// The short side after resizing (256 for ImageNet eval). Where that leaves the photo
    /// narrower or lower than the crop (a 48×192 text-line classifier resized to 48), the photo
    /// is scaled up until it covers the crop.
    pub resize: u32,
    /// The center crop's height (224), and its width unless `crop_width` says otherwise.
    pub crop: u32,
    /// The center crop's width where it differs from its height (a 48×192 text-line
    /// classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_width: Option<u32>,
    /// Per-channel mean subtracted from `pixel / 255`.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean.
    pub std: [f32; 3],
    /// Channels fed in B, G, R order (OpenCV-trained networks); `mean` and `std` are in the
    /// network's order.
    #[serde(default)]
    pub bgr: bool,
}

impl Preprocess {
    /// torchvision's ImageNet evaluation transform.
    pub const IMAGENET: Preprocess = Preprocess {
        resize: 256,
        crop: 224,
        crop_width: None,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        bgr: false,
    };

    /// EfficientNet-Lite's input: `(x − 127) / 128` on 0–255 pixels, after the same resize
    /// 256 and center crop 224.
    pub const LITE: Preprocess = Preprocess {
        resize: 256,
        crop: 224,
        crop_width: None,
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
        bgr: false,
    };

    /// The crop's (the network input's) `[height, width]`.
    pub fn input_hw(&self) -> [usize; 2] {
        [
            self.crop as usize,
            self.crop_width.unwrap_or(self.crop) as usize,
        ]
    }

    /// Decode, orient, resize and crop: the 8-bit RGB crop the network will see.
    pub fn crop_image(&self, bytes: &[u8]) -> Result<RgbImage> {
        let rgb = decode_rgb(bytes)?;
        Ok(self.crop_rgb(&rgb))
    }

    /// Resize (short side, covering the crop) and center-crop an RGB image.
    pub fn crop_rgb(&self, rgb: &RgbImage) -> RgbImage {
        let (w, h) = rgb.dimensions();
        let [ch, cw] = self.input_hw().map(|v| v as u32);
        let (nw, nh) = covering_size(w, h, self.resize, cw, ch);
        let resized = resize_bilinear_pil(rgb, nw, nh);
        center_crop(&resized, cw, ch)
    }

    /// The normalised CHW tensor of an 8-bit crop.
    pub fn to_chw(&self, crop: &RgbImage) -> Vec<f32> {
        let (w, h) = crop.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in crop.pixels().enumerate() {
            for c in 0..3 {
                let v = px[if self.bgr { 2 - c } else { c }] as f32 / 255.0;
                out[c * plane + i] = (v - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    /// Image file bytes → normalised CHW input of shape `[3, height, width]`.
    pub fn run(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        Ok(self.to_chw(&self.crop_image(bytes)?))
    }
}

/// The `[height, width]` of a 3-channel image of `len` values whose sides are in the ratio
/// `aspect` (a network's input size: `[224, 224]` for squares of any side), or why it is not
/// one.
pub fn image_hw(len: usize, aspect: [usize; 2]) -> Result<[usize; 2]> {
    let g = gcd(aspect[0], aspect[1]).max(1);
    let [a, b] = aspect.map(|s| s / g);
    let scale = ((len / 3) as f64 / (a * b).max(1) as f64).sqrt().round() as usize;
    let hw = [a * scale, b * scale];
    if scale == 0 || 3 * hw[0] * hw[1] != len {
        let shape = if a == b {
            "squares".to_string()
        } else {
            format!("images of sides in the ratio {a}:{b} (height:width)")
        };
        return Err(Error::Invalid(format!(
            "images must be 3-channel {shape}, not {len} values"
        )));
    }
    Ok(hw)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Decode JPEG/PNG/WebP bytes, apply EXIF orientation and convert to 8-bit RGB.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::NotAnImage("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::NotAnImage(e.to_string()))?;
    if reader.format().is_none() {
        return Err(Error::NotAnImage("unknown file format".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    // Decoded pixels, before the RGB copy: bounded so a browser tab (wasm32) cannot run out.
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    // Before decoding: the resize to a 256-pixel short side scales the long side by the same
    // factor, so a thin strip would become gigabytes (see `MAX_ASPECT_RATIO`).
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 || w.max(h) / w.min(h).max(1) > MAX_ASPECT_RATIO {
        return Err(Error::ImageShape(format!(
            "{w}×{h} pixels, more than {MAX_ASPECT_RATIO} times longer than wide; crop it around the subject"
        )));
    }
    let orientation = decoder.orientation().map_err(map_image_error)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(map_image_error)?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// The decoder's error in words for people: its messages can quote internal structures
/// (`ChunkType { type: IDAT, … }`), so only their kind and the format are kept.
fn map_image_error(e: image::ImageError) -> Error {
    use image::ImageError as E;
    match e {
        E::Limits(l) => Error::ImageTooLarge(l.to_string()),
        E::Decoding(d) => Error::NotAnImage(match d.format_hint() {
            image::error::ImageFormatHint::Exact(f) => {
                format!("its {f:?} data is damaged or cut off")
            }
            _ => "its data is damaged or cut off".into(),
        }),
        E::Unsupported(u) => Error::NotAnImage(format!(
            "a {} variant the decoder does not support",
            match u.format_hint() {
                image::error::ImageFormatHint::Exact(f) => format!("{f:?}"),
                _ => "format".into(),
            }
        )),
        E::IoError(_) => Error::NotAnImage("the file ends early (truncated?)".into()),
        other => Error::NotAnImage(other.to_string()),
    }
}

/// torchvision's `Resize(size)` output for an int size: the short side becomes `size`, the long
/// side `int(size * long / short)` (truncated, as Python's `int` does).
pub fn resized_size(w: u32, h: u32, size: u32) -> (u32, u32) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = ((size as u64 * long as u64) / short.max(1) as u64) as u32;
    if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// [`resized_size`], unless that leaves the image narrower than `crop_w` or lower than
/// `crop_h`: then the scale is the one that makes the side falling shortest equal the crop's
/// (torchvision's size for a short side of `resize`; a text-line photo resized to a 48-pixel
/// short side for a 48×192 crop keeps its whole width when it is 4 times wider than high).
pub fn covering_size(w: u32, h: u32, resize: u32, crop_w: u32, crop_h: u32) -> (u32, u32) {
    let (nw, nh) = resized_size(w, h, resize);
    if nw >= crop_w && nh >= crop_h {
        return (nw, nh);
    }
    let (w64, h64) = (w.max(1) as u64, h.max(1) as u64);
    // crop_w / w ≥ crop_h / h: the width falls shortest.
    if crop_w as u64 * h64 >= crop_h as u64 * w64 {
        let nh = (crop_w as u64 * h64 / w64) as u32;
        (crop_w, nh.max(crop_h))
    } else {
        let nw = (crop_h as u64 * w64 / h64) as u32;
        (nw.max(crop_w), crop_h)
    }
}

/// torchvision's `CenterCrop(size)`: offsets `int(round((dim - size) / 2))` with Python's
/// round-half-to-even. The image must be at least `size` on both sides.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let left = round_half_even((w.saturating_sub(width)) as f64 / 2.0);
    let top = round_half_even((h.saturating_sub(height)) as f64 / 2.0);
    image::imageops::crop_imm(img, left, top, width.min(w), height.min(h)).to_image()
}

fn round_half_even(x: f64) -> u32 {
    let r = x.round();
    let r = if (x - x.trunc()) == 0.5 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    r as u32
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's fixed-point filter weights for one axis: for each output index, the first input
/// index and the integer weights of the inputs it reads.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

fn precompute_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 1.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates towards zero; clamping to 0 makes that floor here.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bilinear_filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..ksize {
            let w = if x < xmax && ww != 0.0 {
                k[x] / ww
            } else {
                0.0
            };
            let fixed = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs {
        bounds,
        ksize,
        weights,
    }
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize like `PIL.Image.resize((w, h), Image.BILINEAR)` on an RGB image: horizontal pass, round
/// to 8 bits, vertical pass.
pub fn resize_bilinear_pil(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    let src = img.as_raw();
    let (in_w, in_h, out_w, out_h) = (in_w as usize, in_h as usize, out_w as usize, out_h as usize);

    let horizontal = if out_w != in_w {
        let c = precompute_coeffs(in_w, out_w);
        let mut out = vec![0u8; out_w * in_h * 3];
        for y in 0..in_h {
            let row = &src[y * in_w * 3..(y + 1) * in_w * 3];
            for xx in 0..out_w {
                let (xmin, n) = c.bounds[xx];
                let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
                for ch in 0..3 {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for (x, &w) in k.iter().enumerate() {
                        ss += row[(xmin + x) * 3 + ch] as i64 * w as i64;
                    }
                    out[(y * out_w + xx) * 3 + ch] = clip8(ss);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };

    let vertical = if out_h != in_h {
        let c = precompute_coeffs(in_h, out_h);
        let mut out = vec![0u8; out_w * out_h * 3];
        for yy in 0..out_h {
            let (ymin, n) = c.bounds[yy];
            let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
            for x in 0..out_w * 3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for (y, &w) in k.iter().enumerate() {
                    ss += horizontal[(ymin + y) * out_w * 3 + x] as i64 * w as i64;
                }
                out[yy * out_w * 3 + x] = clip8(ss);
            }
        }
        out
    } else {
        horizontal
    };
    // The buffer has exactly out_w * out_h * 3 bytes by construction.
    RgbImage::from_raw(out_w as u32, out_h as u32, vertical)
        .unwrap_or_else(|| RgbImage::new(out_w as u32, out_h as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_resize_keeps_a_strip_whole_and_squares_unchanged() {
        // A 4:1 text line for a 48×192 crop: the short side becomes 48, nothing is cut.
        assert_eq!(covering_size(400, 100, 48, 192, 48), (192, 48));
        // A square photo for the same crop: scaled until it is 192 wide, then cropped.
        assert_eq!(covering_size(300, 300, 48, 192, 48), (192, 192));
        // A 2:1 photo: the width falls short first.
        assert_eq!(covering_size(200, 100, 48, 192, 48), (192, 96));
        // A 6:1 strip: the short side's resize already covers.
        assert_eq!(covering_size(600, 100, 48, 192, 48), (288, 48));
        // Where the short side covers, torchvision's size.
        assert_eq!(covering_size(451, 300, 256, 224, 224), (384, 256));
        assert_eq!(covering_size(100, 400, 219, 192, 48), (219, 876));
    }

    #[test]
    fn resize_keeps_aspect_like_torchvision() {
        assert_eq!(resized_size(451, 300, 256), (384, 256));
        assert_eq!(resized_size(300, 451, 256), (256, 384));
        assert_eq!(resized_size(640, 427, 256), (383, 256));
        assert_eq!(resized_size(512, 512, 256), (256, 256));
    }

    #[test]
    fn center_crop_rounds_half_to_even() {
        assert_eq!(round_half_even(16.5), 16);
        assert_eq!(round_half_even(17.5), 18);
        assert_eq!(round_half_even(3.0), 3);
        let img = RgbImage::new(383, 256);
        assert_eq!(center_crop(&img, 224, 224).dimensions(), (224, 224));
        assert_eq!(center_crop(&img, 192, 48).dimensions(), (192, 48));
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(301, 257, image::Rgb([10, 128, 250]));
        let out = resize_bilinear_pil(&img, 256, 218);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }

    #[test]
    fn non_images_are_rejected_with_a_message() {
        let err = decode_rgb(b"hello, this is text").unwrap_err();
        assert!(matches!(err, Error::NotAnImage(_)), "{err}");
        assert!(err.to_string().contains("JPEG, PNG or WebP"));
        assert!(matches!(decode_rgb(&[]), Err(Error::NotAnImage(_))));
    }

    #[test]
    fn normalisation_matches_formula() {
        let crop = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 128]));
        let chw = Preprocess::IMAGENET.to_chw(&crop);
        assert_eq!(chw.len(), 12);
        assert!((chw[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((chw[4] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((chw[8] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }
}
