//! Preprocessing equals torchvision's ImageNet eval transform run by PIL.
//!
//! Fixtures: tests/fixtures/preprocess/*.png are the 224×224 crops PIL + torchvision's
//! `Resize(256)`/`CenterCrop(224)` produced (after `ImageOps.exif_transpose`). Regenerate with
//! `python3 tests/golden/make_fixtures.py <seeded weights>` (see its header).

use std::path::PathBuf;

use modelslim::preprocess::Preprocess;

use crate::common;
use common::root;

/// One 8-bit step is 1/255; PIL's and our decoders may differ by a step or two on JPEGs.
const MAX_STEPS: i32 = 2;
const MEAN_STEPS: f64 = 0.5;

fn compare(source: PathBuf, fixture: &str) {
    let bytes = std::fs::read(&source).unwrap();
    let ours = Preprocess::IMAGENET.crop_image(&bytes).unwrap();
    let theirs = image::open(root().join("tests/fixtures/preprocess").join(fixture))
        .unwrap()
        .into_rgb8();
    assert_eq!(ours.dimensions(), (224, 224));
    assert_eq!(theirs.dimensions(), (224, 224));
    let diffs: Vec<i32> = ours
        .as_raw()
        .iter()
        .zip(theirs.as_raw())
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .collect();
    let max = *diffs.iter().max().unwrap();
    let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
    eprintln!("{fixture}: max {max}/255, mean {mean:.4}/255");
    assert!(max <= MAX_STEPS, "{fixture}: a pixel differs by {max}/255");
    assert!(mean < MEAN_STEPS, "{fixture}: mean difference {mean}/255");
}

#[test]
fn png_photos_match_pil() {
    for name in ["chelsea", "coffee", "astronaut"] {
        compare(
            root().join(format!("www/samples/{name}.png")),
            &format!("{name}.png"),
        );
    }
}

#[test]
fn jpeg_photo_matches_pil() {
    compare(root().join("www/samples/rocket.jpg"), "rocket.png");
}

#[test]
fn exif_orientation_is_applied() {
    let path = root().join("tests/fixtures/rotated_exif6.jpg");
    // Stored sideways (300 wide, 451 high); orientation 6 turns it back to 451×300.
    let rgb = modelslim::preprocess::decode_rgb(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(rgb.dimensions(), (451, 300));
    compare(path, "rotated_exif6.png");
}

#[test]
fn truncated_and_huge_images_are_refused() {
    let bytes = std::fs::read(root().join("www/samples/rocket.jpg")).unwrap();
    let err = Preprocess::IMAGENET.run(&bytes[..bytes.len() / 3]);
    // A truncated JPEG either fails to decode or decodes with grey fill; it must not panic.
    if let Err(e) = err {
        assert!(e.to_string().contains("image"), "{e}");
    }
    let png = std::fs::read(root().join("www/samples/chelsea.png")).unwrap();
    assert!(Preprocess::IMAGENET.run(&png[..png.len() / 2]).is_err());

    // A PNG header claiming 20000×20000 pixels.
    let mut huge = Vec::new();
    let img = image::RgbImage::new(1, 1);
    img.write_to(
        &mut std::io::Cursor::new(&mut huge),
        image::ImageFormat::Png,
    )
    .unwrap();
    // IHDR width/height live at bytes 16..24; patch them and fix the CRC.
    huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let crc = crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = Preprocess::IMAGENET.run(&huge).unwrap_err();
    assert!(
        matches!(err, modelslim::Error::ImageTooLarge(_)),
        "expected a size error, got {err}"
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn lossless_webp_decodes_to_the_same_pixels() {
    let webp = std::fs::read(root().join("tests/fixtures/coffee_lossless.webp")).unwrap();
    let png = std::fs::read(root().join("www/samples/coffee.png")).unwrap();
    let a = modelslim::preprocess::decode_rgb(&webp).unwrap();
    let b = modelslim::preprocess::decode_rgb(&png).unwrap();
    assert_eq!(a.dimensions(), b.dimensions());
    assert!(
        a.as_raw() == b.as_raw(),
        "lossless WebP pixels differ from the PNG"
    );
    compare(
        root().join("tests/fixtures/coffee_lossless.webp"),
        "coffee.png",
    );
}
