//! Dense convolution (one group) as a matrix product, on the host, in NCHW throughout.
//!
//! Why: flex lowers a k×k convolution through channels-last: on every call it transposes the
//! weights (all 11.7 M of ResNet18's, each forward), converts the input to NHWC, builds and
//! zero-fills a patch matrix per tile, multiplies, scatters the product back to NCHW with
//! strided writes, and adds the bias in another pass. Profiled on one thread, a third of
//! ResNet18's time went to that traffic rather than to the products.
//!
//! How: in NCHW the weights `[M, C, kh, kw]` already are the row-major matrix `W[M, C·kh·kw]`,
//! and a patch matrix whose rows are (channel, kernel row, kernel column) and whose columns are
//! output positions gives `Y[M, positions] = W · patches`, which is the NCHW output itself. The
//! patch matrix is built a tile of columns at a time (each row of a tile is a few contiguous
//! copies of input rows, zeros where the padding is), the product writes straight into the
//! output's columns, and the output starts as the bias (plus a residual addition's other
//! operand), which the product accumulates onto; a following activation clamps each tile while
//! it is in cache. A 1×1 convolution with stride 1
//! needs no patches: the input is the matrix.

use super::{ConvShape, clamp_slice, for_each_image};

/// Patch-matrix elements per tile: small enough to stay in the L2 cache while the product
/// reads it (256 KiB of f32).
const TILE_ELEMENTS: usize = 64 * 1024;

/// Fewest output positions per tile: each product packs the whole weight matrix again, which
/// for ResNet18's last layers (2.4 M weights against 49 positions) costs more than the cache
/// misses of a larger tile.
const MIN_TILE: usize = 256;

/// `y[n, m] = skip[n, m] + bias[m] + Σ_{c,i,j} w[m, c, i, j] · x_padded[n, c, s_h·y + i, s_w·x + j]`,
/// NCHW in and out (`skip`, a residual addition, zero when absent); `weight` is
/// `[out_channels, C, kh, kw]`. Panics if the slices' lengths do not match
/// (callers check the tensors' shapes).
pub fn conv2d(
    input: &[f32],
    weight: &[f32],
    out_channels: usize,
    bias: Option<&[f32]>,
    skip: Option<&[f32]>,
    shape: &ConvShape,
    clamp: Option<[f32; 2]>,
) -> Vec<f32> {
    let [n, c, h, w] = shape.input;
    let [kh, kw] = shape.kernel;
    let Some([oh, ow]) = shape.output_for(input) else {
        return Vec::new();
    };
    assert_eq!(
        weight.len(),
        out_channels * c * kh * kw,
        "convolution weight length"
    );
    let positions = oh * ow;
    if let Some(s) = skip {
        assert_eq!(s.len(), n * out_channels * positions, "residual length");
    }
    // The output starts as what the product accumulates onto: the bias, plus the residual
    // addition's operand (one pass, instead of zeros then the bias).
    let mut output = Vec::with_capacity(n * out_channels * positions);
    for i in 0..n {
        for m in 0..out_channels {
            let b = bias.map_or(0.0, |b| b[m]);
            match skip {
                Some(s) => {
                    let s = &s[(i * out_channels + m) * positions..][..positions];
                    output.extend(s.iter().map(|v| v + b));
                }
                None => output.extend(std::iter::repeat_n(b, positions)),
            }
        }
    }
    if output.is_empty() {
        return output;
    }
    for_each_image(&mut output, out_channels * positions, |i, y, alone| {
        let x = &input[i * c * h * w..(i + 1) * c * h * w];
        let product = Product {
            weight,
            rows: out_channels,
            depth: c * kh * kw,
            positions,
        };
        let pointwise = shape.kernel == [1, 1] && shape.stride == [1, 1] && shape.pads == [0; 4];
        let tile = (TILE_ELEMENTS / product.depth).max(MIN_TILE).min(positions);
        let tiles = even_tiles(positions, positions.div_ceil(tile));
        let tile = positions.div_ceil(tiles);
        let tiles = positions.div_ceil(tile);
        let columns = Columns {
            ptr: y.as_mut_ptr(),
            len: y.len(),
        };
        // One tile: its columns of every output row, nothing else. `inside`: its product may
        // use every core (the tiles themselves run one after another).
        let run = |t: usize, inside: bool| {
            let start = t * tile;
            let end = (start + tile).min(positions);
            if pointwise {
                // The input's channels are the matrix's rows: no patches needed.
                product.accumulate(columns, start, end, &x[start..], positions, inside);
            } else {
                // Taken out of the thread's slot rather than borrowed: while a product shared
                // out over threads waits for its other rows, this thread may run another
                // convolution's tile, which needs patches of its own.
                let mut patches = PATCHES.take();
                fill_patches(&mut patches, x, shape, [oh, ow], start, end);
                product.accumulate(columns, start, end, &patches, end - start, inside);
                PATCHES.set(patches);
            }
            if let Some(bounds) = clamp {
                for row in 0..product.rows {
                    // SAFETY: `accumulate` checked that `columns` holds `rows × positions`
                    // values; this tile alone touches columns `start..end` of each row.
                    let values = unsafe {
                        std::slice::from_raw_parts_mut(
                            columns.at(row * positions + start),
                            end - start,
                        )
                    };
                    clamp_slice(values, bounds);
                }
            }
        };
        // An image alone spreads its tiles over the cores: each tile's product is whole, so
        // every output is the same sum in the same order whatever the thread count.
        #[cfg(parallel)]
        if alone && tiles > 1 {
            use rayon::prelude::*;
            (0..tiles).into_par_iter().for_each(|t| run(t, false));
            return;
        }
        for t in 0..tiles {
            run(t, alone);
        }
    });
    output
}

/// How many tiles `positions` splits into, given the fewest the cache allows (`tiles`): a
/// multiple of [`TILE_SHARE`] where the tiles stay at least half [`MIN_TILE`] wide, so that
/// two, four or eight threads get the same number of equal tiles (13 tiles of ResNet18's first
/// stage kept one of two threads idle for a seventh of that stage). It does not depend on the thread
/// count, so neither do the products' sums.
fn even_tiles(positions: usize, tiles: usize) -> usize {
    if tiles < 2 {
        return tiles;
    }
    let shared = tiles.next_multiple_of(TILE_SHARE);
    if positions / shared >= MIN_TILE / 2 {
        shared
    } else {
        tiles
    }
}

/// See [`even_tiles`].
const TILE_SHARE: usize = 4;

thread_local! {
    /// One tile of the patch matrix, reused across tiles and calls (one per thread).
    static PATCHES: std::cell::RefCell<Vec<f32>> = std::cell::RefCell::default();
}

/// An image's output, `[rows, positions]`, shared by the tiles that write it: each writes its
/// own columns of every row, so no element has two writers.
#[derive(Clone, Copy)]
struct Columns {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: a `Columns` is only written through `Product::accumulate` and a tile's clamp, each
// within its tile's columns; tiles are disjoint, and the slice it points into outlives them.
unsafe impl Send for Columns {}
unsafe impl Sync for Columns {}

impl Columns {
    /// The address of the `offset`-th value (a closure calling this holds the whole
    /// `Columns`, which may cross threads, rather than its bare pointer, which may not).
    fn at(self, offset: usize) -> *mut f32 {
        self.ptr.wrapping_add(offset)
    }
}

/// `W[rows, depth]` times a `[depth, columns]` matrix, accumulated onto columns of the output.
struct Product<'a> {
    weight: &'a [f32],
    rows: usize,
    depth: usize,
    /// Output positions per channel: the output's row stride.
    positions: usize,
}

impl Product<'_> {
    /// `y[:, start..end] += W · b`, where `b` is `[depth, end − start]` with row stride `b_rs`;
    /// on every core when `inside` and the product is large.
    fn accumulate(
        &self,
        y: Columns,
        start: usize,
        end: usize,
        b: &[f32],
        b_rs: usize,
        inside: bool,
    ) {
        let columns = end - start;
        assert!(
            b_rs >= columns && b.len() >= (self.depth - 1) * b_rs + columns,
            "matrix size"
        );
        assert!(
            y.len >= self.rows * self.positions && end <= self.positions,
            "output size"
        );
        assert!(self.weight.len() >= self.rows * self.depth, "weight size");
        let big = inside && self.rows * columns * self.depth >= 192 * 192 * 192;
        // Rows `rows` of the product.
        let product = |rows: std::ops::Range<usize>, parallelism: gemm::Parallelism| {
            // SAFETY: the asserts above keep every access inside the buffers: the product reads
            // `rows.len() × depth` weights from row `rows.start` (row stride `depth`),
            // `depth × columns` values of `b` (row stride `b_rs`), and reads and writes
            // `rows.len() × columns` outputs from row `rows.start`, column `start`, with row
            // stride `positions`, the last at `(rows.end − 1)·positions + end − 1`; callers
            // running several at once give them disjoint rows.
            unsafe {
                gemm::gemm(
                    rows.len(),
                    columns,
                    self.depth,
                    y.at(rows.start * self.positions + start),
                    1,
                    self.positions as isize,
                    true,
                    self.weight.as_ptr().add(rows.start * self.depth),
                    1,
                    self.depth as isize,
                    b.as_ptr(),
                    1,
                    b_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        };
        // A large product spreads its rows over the cores, in blocks of at least 65 rows: gemm
        // then cuts the depth as it does for the whole product (it cuts it otherwise only for
        // at most 64 rows and columns), so each output is the same sum in the same order
        // whatever the thread count. Too few rows to share: gemm's own threads.
        #[cfg(parallel)]
        if big {
            use rayon::prelude::*;
            let blocks = rayon::current_num_threads().min(self.rows / 65);
            if blocks < 2 {
                product(0..self.rows, gemm::Parallelism::Rayon(0));
                return;
            }
            let (base, extra) = (self.rows / blocks, self.rows % blocks);
            (0..blocks).into_par_iter().for_each(|i| {
                let first = i * base + i.min(extra);
                product(
                    first..first + base + usize::from(i < extra),
                    gemm::Parallelism::None,
                );
            });
            return;
        }
        #[cfg(not(parallel))]
        let _ = big;
        product(0..self.rows, gemm::Parallelism::None);
    }
}

/// The patch matrix for output positions `start..end` (row-major, `[C·kh·kw, end − start]`):
/// row (c, i, j), column p holds the padded input at `(c, s_h·y + i, s_w·x + j)` for the
/// position p = y·ow + x, zero in the padding.
fn fill_patches(
    patches: &mut Vec<f32>,
    x: &[f32],
    shape: &ConvShape,
    [oh, ow]: [usize; 2],
    start: usize,
    end: usize,
) {
    let [_, c, h, w] = shape.input;
    let [kh, kw] = shape.kernel;
    let [sh, sw] = shape.stride;
    let [top, left, _, _] = shape.pads;
    let columns = end - start;
    // Every element is written below (zeros where the padding is): no clearing pass.
    patches.resize(c * kh * kw * columns, 0.0);
    let mut rows = patches.chunks_exact_mut(columns);
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for i in 0..kh {
            let (y_first, y_end) = shape.inside(0, i, oh);
            for j in 0..kw {
                let (x_first, x_end) = shape.inside(1, j, ow);
                let Some(row) = rows.next() else { return };
                // The output rows this tile covers: in each, the tile's columns [lo, hi)
                // and among them those that read inside the input, [a, b).
                for y in start / ow..end.div_ceil(ow) {
                    let lo = start.saturating_sub(y * ow);
                    let hi = (end - y * ow).min(ow);
                    let dst = &mut row[y * ow + lo - start..y * ow + hi - start];
                    let (a, b) = (x_first.clamp(lo, hi), x_end.clamp(lo, hi));
                    if y < y_first || y >= y_end || a >= b {
                        dst.fill(0.0);
                        continue;
                    }
                    let (before, rest) = dst.split_at_mut(a - lo);
                    let (inside, after) = rest.split_at_mut(b - a);
                    before.fill(0.0);
                    after.fill(0.0);
                    let src = &plane[(y * sh + i - top) * w..][..w];
                    let first = a * sw + j - left;
                    if sw == 1 {
                        inside.copy_from_slice(&src[first..first + (b - a)]);
                    } else {
                        for (d, s) in inside.iter_mut().zip(src[first..].iter().step_by(sw)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}
