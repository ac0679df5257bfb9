//! Hostile files that used to exhaust memory (issue 12): each must now be refused with a
//! bounded peak. The allocator of this test binary counts live bytes, records the peak, and
//! refuses (aborting the binary, so the test cannot pass) anything past a hard cap — the
//! files below asked for 2.4 to 4,000 GB before. One test, run serially, so peaks are its own.

#[path = "common/hostile.rs"]
mod hostile;

#[path = "common/capped_alloc.rs"]
mod capped_alloc;

use capped_alloc::{CappedAlloc, peak_mib};
use hostile::*;
use modelslim::model::Model;
use modelslim::preprocess::Preprocess;
use modelslim::weights::{pickle, read_weights};

/// Allocations past 2 GiB fail: far above every bound asserted below.
#[global_allocator]
static ALLOCATOR: CappedAlloc<{ 2 << 30 }> = CappedAlloc;

#[test]
fn files_that_claimed_gigabytes_are_refused_within_a_bounded_peak() {
    // A tensor of 2^40 values over stride 0 on a one-value storage.
    let huge_view = TensorSpec {
        name: "w".into(),
        offset: 0,
        size: vec![1 << 20, 1 << 20],
        stride: vec![0, 0],
        numel: 1,
    };
    let file = pth_zip(&state_dict_pickle(&[huge_view]), &[floats(1)], false);
    let (r, mib) = peak_mib(|| read_weights(&file).map(drop));
    assert!(
        r.is_err() && mib < 16,
        "stride-0 view: {mib} MiB, {:?}",
        r.err()
    );

    // A few hundred bytes of pickle doubling through memo re-reads (64 rounds: 2^64 copies).
    let doubling = memo_doubling(64);
    assert!(doubling.len() < 1000);
    let (r, mib) = peak_mib(|| pickle::load(&doubling).map(drop));
    let m = r.unwrap_err().to_string();
    assert!(m.contains("more than 64 MiB"), "{m}");
    assert!(mib < 256, "memo doubling: {mib} MiB");

    // A storage entry that inflates far beyond the size its zip headers declare: 256 MiB of
    // zeros deflated to a few hundred KB, the declared sizes patched down to 24 bytes.
    let zeros = vec![0u8; 256 << 20];
    let t = TensorSpec::contiguous("w", &[2, 3]);
    let mut file = pth_zip(&state_dict_pickle(&[t]), &[zeros], true);
    patch_uncompressed_size(&mut file, "archive/data/0", 24);
    let (r, mib) = peak_mib(|| read_weights(&file).map(drop));
    let m = r.unwrap_err().to_string();
    assert!(
        m.contains("archive/data/0") && m.contains("declares 24"),
        "{m}"
    );
    assert!(mib < 16, "zip inflation: {mib} MiB");

    // A checkpoint whose one storage entry honestly declares 2 GiB (zeros, deflated to a few
    // MB) under names that are no network modelslim knows: data.pkl says so before any storage
    // is inflated (6.2 GB resident before).
    let t = TensorSpec::contiguous("features.0.weight", &[64, 3, 3, 3]);
    let file = pth_zip_with_zeros(&state_dict_pickle(&[t]), 2 << 30);
    let (r, mib) = peak_mib(|| Model::from_bytes(&file).map(drop));
    let m = r.unwrap_err().to_string();
    assert!(
        m.contains("neither torchvision's ResNet18 nor EfficientNet-Lite0"),
        "{m}"
    );
    assert!(mib < 64, "2 GiB storage under other names: {mib} MiB");
    // A storage far larger than the one tensor that views it: only what the view reaches is
    // inflated.
    let mut small = TensorSpec::contiguous("conv1.weight", &[64, 3, 7, 7]);
    small.numel = 1 << 29;
    let file = pth_zip_with_zeros(&state_dict_pickle(&[small]), 2 << 30);
    let (r, mib) = peak_mib(|| read_weights(&file).map(|w| w.tensors["conv1.weight"].len()));
    assert_eq!(r.unwrap(), 64 * 3 * 7 * 7);
    assert!(mib < 64, "2 GiB storage, a 37 KB view: {mib} MiB");

    // A 1×12000 PNG: resized to 256 × 3,072,000 (2.4 GB) before.
    let mut png = Vec::new();
    image::RgbImage::new(1, 12_000)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (r, mib) = peak_mib(|| Preprocess::IMAGENET.run(&png).map(drop));
    assert!(r.is_err() && mib < 16, "thin PNG: {mib} MiB");
}

/// Set the uncompressed size of zip entry `name` to `size` in its local header and in the
/// central directory (both say it; readers trust them).
fn patch_uncompressed_size(zip: &mut [u8], name: &str, size: u32) {
    let mut patched = 0;
    let name = name.as_bytes();
    let mut i = 0;
    while i + 46 <= zip.len() {
        let sig = u32::from_le_bytes(zip[i..i + 4].try_into().unwrap());
        // Local file header: name length at 26, name at 30, uncompressed size at 22.
        if sig == 0x0403_4b50 {
            let n = u16::from_le_bytes(zip[i + 26..i + 28].try_into().unwrap()) as usize;
            if zip.get(i + 30..i + 30 + n) == Some(name) {
                zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
        // Central directory header: name length at 28, name at 46, uncompressed size at 24.
        if sig == 0x0201_4b50 {
            let n = u16::from_le_bytes(zip[i + 28..i + 30].try_into().unwrap()) as usize;
            if zip.get(i + 46..i + 46 + n) == Some(name) {
                zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
        i += 1;
    }
    assert_eq!(patched, 2, "both headers of {name:?}");
}
