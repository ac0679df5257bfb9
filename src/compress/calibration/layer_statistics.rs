//! Calibration statistics of a layer's input: the Gram matrix `H = Σ x xᵀ` over the input
//! patches a conv multiplies with its kernel (im2col rows; per group for grouped and depthwise
//! convs, where each group sees its own input channels — 9×9 per depthwise channel), or over
//! the input vectors of a linear layer. GPTQ weighs rounding errors with it.
//!
//! Early layers see hundreds of thousands of patches per photo set; a deterministic sample of
//! them (at least [`MIN_ROWS`], about `ROWS_PER_COLUMN` per column of `H`) gives the same
//! matrix up to noise at a fraction of the cost.

use crate::compress::linalg::add_gram;
use crate::model::Op;
use crate::model::graph::{Hw, dilated, window_output};
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
    kernel: Hw,
    stride: Hw,
    dilation: Hw,
    pads: [usize; 4],
}

/// The Gram matrices of one layer's input, one per group, accumulated batch by batch.
pub struct Gram {
    patches: Patches,
    /// Columns of each matrix: input channels per group × kernel positions.
    pub columns: usize,
    /// Per group, `columns × columns`, row-major; empty when the patches are kept instead.
    pub h: Vec<Vec<f64>>,
    /// Patches accumulated.
    pub rows: usize,
    /// The patches themselves (`rows × columns`, row-major), kept instead of `h` when every
    /// position is kept and they number at most a quarter of the columns (an ungrouped layer
    /// late in the network on a few photos): GPTQ then works from them at a fraction of the
    /// dense cost (see [`crate::compress::quantize::gptq::Gptq::from_inputs`]).
    pub patches_kept: Option<Vec<f32>>,
    sampler: Sampler,
}

impl Gram {
    /// The statistics `op` needs, for `images` calibration images of `height × width` input;
    /// `None` for operations without weights.
    pub fn new(op: &Op, images: usize, height: usize, width: usize) -> Option<Gram> {
        let patches = Patches::of(op)?;
        let columns = patches.in_channels / patches.groups * patches.taps();
        let (oh, ow) = patches.output_size(height, width);
        let wanted = (ROWS_PER_COLUMN * columns).max(MIN_ROWS);
        let total = images * oh * ow;
        let few = patches.groups == 1 && total <= wanted && 4 * total <= columns;
        Some(Gram {
            patches,
            columns,
            h: if few {
                Vec::new()
            } else {
                vec![vec![0.0; columns * columns]; patches.groups]
            },
            rows: 0,
            patches_kept: few.then(Vec::new),
            sampler: Sampler::new(wanted, total),
        })
    }

    /// Groups of the layer (one matrix each).
    pub fn groups(&self) -> usize {
        self.patches.groups
    }

    /// Add one captured batch of the layer's input (`[n, c, h, w]`; a linear layer's input is
    /// `[n, c, 1, 1]`).
    pub fn add(&mut self, input: &Captured) {
        let p = self.patches;
        let kept = self.sampler.positions(&p, input);
        if kept.is_empty() {
            return;
        }
        let n = self.columns;
        if let Some(rows) = &mut self.patches_kept {
            rows.extend(p.rows_of(input, &kept, 0, false));
        }
        for (g, h) in self.h.iter_mut().enumerate() {
            let x = p.rows_of(input, &kept, g, false);
            add_gram(h, &x, &x, kept.len(), n, n, true);
        }
        self.rows += kept.len();
    }
}

/// A deterministic sample of a layer's output positions, the same for every model the layer's
/// input is captured from (so that two models' patches pair up).
#[derive(Debug, Clone, Copy)]
struct Sampler {
    /// Share of positions kept, and the running position index that decides which.
    keep: f64,
    seen: u64,
}

impl Sampler {
    /// Keep about `wanted` of `total` positions.
    fn new(wanted: usize, total: usize) -> Sampler {
        Sampler {
            keep: (wanted as f64 / total.max(1) as f64).min(1.0),
            seen: 0,
        }
    }

    /// The sampled output positions `(image, y, x)` of one captured batch; none when the
    /// batch is not this layer's input (another channel count).
    fn positions(&mut self, p: &Patches, input: &Captured) -> Vec<(usize, usize, usize)> {
        let [n, c, ih, iw] = input.dims;
        if c != p.in_channels {
            return Vec::new();
        }
        let (oh, ow) = p.output_size(ih, iw);
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
        kept
    }
}

/// What least-squares reconstruction of a dense layer needs when its input lost channels:
/// with `P` the pruned network's input patches and `O` the original network's at the same
/// positions, `H = Pᵀ P` (with a last column of ones, for an intercept) and `G = Pᵀ O`. The
/// weights `V` that best reproduce the original outputs `O Wᵀ` from `P` solve
/// `H Vᵀ = G Wᵀ`.
pub struct CrossGram {
    pruned: Patches,
    original: Patches,
    sampler: Sampler,
    /// Columns of `P`, the ones column included.
    pub columns: usize,
    /// Columns of `O`.
    pub original_columns: usize,
    /// `columns × columns`, row-major.
    pub h: Vec<f64>,
    /// `columns × original_columns`, row-major.
    pub g: Vec<f64>,
    pub rows: usize,
}

impl CrossGram {
    /// For a dense (ungrouped) conv or linear layer `pruned` that was `original` before
    /// pruning; `None` for other operations.
    pub fn new(
        pruned: &Op,
        original: &Op,
        images: usize,
        height: usize,
        width: usize,
    ) -> Option<CrossGram> {
        let (p, o) = (Patches::of(pruned)?, Patches::of(original)?);
        if p.groups != 1 || o.groups != 1 {
            return None;
        }
        let columns = p.in_channels * p.taps() + 1;
        let original_columns = o.in_channels * o.taps();
        let (oh, ow) = p.output_size(height, width);
        let wanted = (ROWS_PER_COLUMN * columns).max(MIN_ROWS);
        Some(CrossGram {
            pruned: p,
            original: o,
            sampler: Sampler::new(wanted, images * oh * ow),
            columns,
            original_columns,
            h: vec![0.0; columns * columns],
            g: vec![0.0; columns * original_columns],
            rows: 0,
        })
    }

    /// Add one batch: the layer's input in the pruned network and in the original, on the
    /// same images.
    pub fn add(&mut self, pruned: &Captured, original: &Captured) {
        if original.dims[1] != self.original.in_channels || pruned.dims[0] != original.dims[0] {
            return;
        }
        let kept = self.sampler.positions(&self.pruned, pruned);
        if kept.is_empty() {
            return;
        }
        let p = self.pruned.rows_of(pruned, &kept, 0, true);
        let o = self.original.rows_of(original, &kept, 0, false);
        let (n, m, rows) = (self.columns, self.original_columns, kept.len());
        add_gram(&mut self.h, &p, &p, rows, n, n, true);
        add_gram(&mut self.g, &p, &o, rows, n, m, false);
        self.rows += kept.len();
    }
}

impl Patches {
    /// Kernel positions: `kh · kw`.
    fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// How `op` reads its input; `None` for operations without weights.
    fn of(op: &Op) -> Option<Patches> {
        match op {
            Op::Conv {
                in_channels,
                kernel,
                stride,
                pads,
                groups,
                dilation,
                ..
            } => Some(Patches {
                in_channels: *in_channels,
                groups: (*groups).max(1),
                kernel: *kernel,
                stride: stride.map(|s| s.max(1)),
                dilation: dilation.map(|d| d.max(1)),
                pads: *pads,
            }),
            Op::Linear { in_features, .. } => Some(Patches {
                in_channels: *in_features,
                groups: 1,
                kernel: [1; 2],
                stride: [1; 2],
                dilation: [1; 2],
                pads: [0; 4],
            }),
            _ => None,
        }
    }

    /// The im2col rows of group `g` at the sampled positions (`ones`: with a last column of
    /// ones), row-major.
    fn rows_of(
        &self,
        input: &Captured,
        kept: &[(usize, usize, usize)],
        g: usize,
        ones: bool,
    ) -> Vec<f32> {
        let [_, c, ih, iw] = input.dims;
        let [kh, kw] = self.kernel;
        let per_group = c / self.groups;
        let columns = per_group * kh * kw;
        let width = columns + usize::from(ones);
        let value = |row: usize, col: usize| {
            if col == columns {
                return 1.0;
            }
            let (img, oy, ox) = kept[row];
            let (ch, ky, kx) = (col / (kh * kw), (col / kw) % kh, col % kw);
            let y = (oy * self.stride[0] + ky * self.dilation[0]) as isize - self.pads[0] as isize;
            let xx = (ox * self.stride[1] + kx * self.dilation[1]) as isize - self.pads[1] as isize;
            if y < 0 || xx < 0 || y >= ih as isize || xx >= iw as isize {
                return 0.0;
            }
            let ch = g * per_group + ch;
            input.data[((img * c + ch) * ih + y as usize) * iw + xx as usize]
        };
        (0..kept.len() * width)
            .map(|i| value(i / width, i % width))
            .collect()
    }

    fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        let extent = dilated(self.kernel, self.dilation);
        let [oh, ow] = window_output([height, width], extent, self.stride, &self.pads);
        (oh, ow)
    }
}

/// Per input channel of a layer, the `k² × k²` Gram block of that channel's patches: the
/// diagonal blocks of [`Gram`]'s matrix, all that per-channel importance needs, at a small
/// fraction of its cost (`channels × k⁴` per patch instead of `(channels × k²)²`).
pub struct ChannelBlocks {
    patches: Patches,
    sampler: Sampler,
    /// Per channel, `k² × k²`, row-major.
    pub blocks: Vec<Vec<f64>>,
    pub rows: usize,
}

impl ChannelBlocks {
    /// For a dense conv or linear layer `op`; `None` for other operations.
    pub fn new(op: &Op, images: usize, height: usize, width: usize) -> Option<ChannelBlocks> {
        let patches = Patches::of(op)?;
        if patches.groups != 1 {
            return None;
        }
        let (oh, ow) = patches.output_size(height, width);
        let k2 = patches.taps();
        Some(ChannelBlocks {
            patches,
            sampler: Sampler::new(MIN_ROWS, images * oh * ow),
            blocks: vec![vec![0.0; k2 * k2]; patches.in_channels],
            rows: 0,
        })
    }

    /// Add one captured batch of the layer's input.
    pub fn add(&mut self, input: &Captured) {
        let p = self.patches;
        let kept = self.sampler.positions(&p, input);
        if kept.is_empty() {
            return;
        }
        let x = p.rows_of(input, &kept, 0, false);
        let k2 = p.taps();
        let width = p.in_channels * k2;
        for (c, block) in self.blocks.iter_mut().enumerate() {
            let xc: Vec<f32> = x
                .chunks_exact(width)
                .flat_map(|row| &row[c * k2..(c + 1) * k2])
                .copied()
                .collect();
            add_gram(block, &xc, &xc, kept.len(), k2, k2, true);
        }
        self.rows += kept.len();
    }
}
