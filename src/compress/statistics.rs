//! Calibration statistics of a layer's input: the Gram matrix `H = Σ x xᵀ` over the input
//! patches a conv multiplies with its kernel (im2col rows; per group for grouped and depthwise
//! convs, where each group sees its own input channels — 9×9 per depthwise channel), or over
//! the input vectors of a linear layer. GPTQ weighs rounding errors with it.
//!
//! Early layers see hundreds of thousands of patches per photo set; a deterministic sample of
//! them (at least [`MIN_ROWS`], about `ROWS_PER_COLUMN` per column of `H`) gives the same
//! matrix up to noise at a fraction of the cost.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat};

use super::gptq::par;
use crate::model::Op;
use crate::predict::Captured;

/// Patches kept per column of `H` (the statistic's size), at least.
const ROWS_PER_COLUMN: usize = 32;
/// Patches kept per layer, at least.
const MIN_ROWS: usize = 8192;

/// How a layer reads its input.
#[derive(Debug, Clone, Copy)]
struct Patches {
    in_channels: usize,
    groups: usize,
    kernel: usize,
    stride: usize,
    pads: [usize; 4],
}

/// The Gram matrices of one layer's input, one per group, accumulated batch by batch.
pub struct Gram {
    patches: Patches,
    /// Columns of each matrix: input channels per group × kernel positions.
    pub columns: usize,
    /// Per group, `columns × columns`, row-major.
    pub h: Vec<Vec<f64>>,
    /// Patches accumulated.
    pub rows: usize,
    /// Share of patches kept, and the running patch index that decides which.
    keep: f64,
    seen: u64,
}

impl Gram {
    /// The statistics `op` needs, for `images` calibration images of `height × width` input;
    /// `None` for operations without weights.
    pub fn new(op: &Op, images: usize, height: usize, width: usize) -> Option<Gram> {
        let patches = match op {
            Op::Conv {
                in_channels,
                kernel,
                stride,
                pads,
                groups,
                ..
            } => Patches {
                in_channels: *in_channels,
                groups: (*groups).max(1),
                kernel: *kernel,
                stride: (*stride).max(1),
                pads: *pads,
            },
            Op::Linear { in_features, .. } => Patches {
                in_channels: *in_features,
                groups: 1,
                kernel: 1,
                stride: 1,
                pads: [0; 4],
            },
            _ => return None,
        };
        let columns = patches.in_channels / patches.groups * patches.kernel * patches.kernel;
        let (oh, ow) = patches.output_size(height, width);
        let total = images * oh * ow;
        let wanted = (ROWS_PER_COLUMN * columns).max(MIN_ROWS);
        Some(Gram {
            patches,
            columns,
            h: vec![vec![0.0; columns * columns]; patches.groups],
            rows: 0,
            keep: (wanted as f64 / total.max(1) as f64).min(1.0),
            seen: 0,
        })
    }

    /// Add one captured batch of the layer's input (`[n, c, h, w]`; a linear layer's input is
    /// `[n, c, 1, 1]`).
    pub fn add(&mut self, input: &Captured) {
        let [n, c, ih, iw] = input.dims;
        let p = self.patches;
        if c != p.in_channels {
            return;
        }
        let (oh, ow) = p.output_size(ih, iw);
        // Which output positions (image, y, x) are sampled: a fixed hash of a running index.
        let mut kept = Vec::new();
        for img in 0..n {
            for pos in 0..oh * ow {
                let hash = (self.seen.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                    / (1u64 << 53) as f64;
                self.seen += 1;
                if hash < self.keep {
                    kept.push((img, pos / ow, pos % ow));
                }
            }
        }
        if kept.is_empty() {
            return;
        }
        let per_group = c / p.groups;
        let k = p.kernel;
        for (g, h) in self.h.iter_mut().enumerate() {
            let x = Mat::<f32>::from_fn(kept.len(), self.columns, |row, col| {
                let (img, oy, ox) = kept[row];
                let (ch, ky, kx) = (col / (k * k), (col / k) % k, col % k);
                let y = (oy * p.stride + ky) as isize - p.pads[0] as isize;
                let xx = (ox * p.stride + kx) as isize - p.pads[1] as isize;
                if y < 0 || xx < 0 || y >= ih as isize || xx >= iw as isize {
                    return 0.0;
                }
                let ch = g * per_group + ch;
                input.data[((img * c + ch) * ih + y as usize) * iw + xx as usize]
            });
            let mut xtx = Mat::<f32>::zeros(self.columns, self.columns);
            matmul(
                xtx.as_mut(),
                Accum::Replace,
                x.transpose(),
                x.as_ref(),
                1.0,
                par(),
            );
            for i in 0..self.columns {
                for j in 0..self.columns {
                    h[i * self.columns + j] += xtx[(i, j)] as f64;
                }
            }
        }
        self.rows += kept.len();
    }
}

impl Patches {
    fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let out = |size: usize, before: usize, after: usize| {
            (size + before + after).saturating_sub(self.kernel) / self.stride + 1
        };
        (
            out(height, self.pads[0], self.pads[2]),
            out(width, self.pads[1], self.pads[3]),
        )
    }
}
