//! The resource limits every size read from a file is checked against, before anything is
//! allocated. A weights file or a photo comes from anywhere: a few bytes must not be able to
//! claim gigabytes. The caps sit far above what ResNet18 or EfficientNet-Lite0 need, and lower
//! in the browser, where a tab has a few GiB of wasm memory at most.

/// The largest file the CLI reads (weights or image); the page's file inputs give bytes
/// already in memory. ResNet18's fp32 checkpoint is 47 MB.
pub const MAX_FILE_BYTES: u64 = if cfg!(target_family = "wasm") {
    512 << 20
} else {
    2 << 30
};

/// The most float values one weights file may decode to, all tensors together (4 bytes
/// each): 256 M values (1 GiB) natively, 64 M (256 MiB) in the browser. ResNet18 has 11.7 M.
pub const MAX_DECODED_VALUES: usize = if cfg!(target_family = "wasm") {
    64 << 20
} else {
    256 << 20
};

/// A photo's longest side, in pixels, as stored in the file.
pub const MAX_IMAGE_SIDE: u32 = 12_000;

/// A photo's long side over its short side. The network sees a square crop of the photo
/// resized so its short side is 256 pixels; a 1×12000 strip would become 256×3,072,000 (2.4
/// GB) before the crop.
pub const MAX_ASPECT_RATIO: u32 = 16;
