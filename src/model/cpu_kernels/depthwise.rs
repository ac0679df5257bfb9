//! Depthwise convolution (one filter per channel) on the host.
//!
//! Why: a depthwise convolution does k² multiply-adds per output and mixes no channels, so it
//! is all loop overhead and memory traffic. Flex walks one output row at a time: on
//! EfficientNet-Lite0's 7- and 14-wide planes those rows are mostly scalar tails, and with a
//! stride of 2 the input is read at every other element, which it cannot vectorise. Its
//! depthwise layers ran at ~3 GMAC/s and took a third of the network's CPU time (perf, one
//! thread), against ~60 GMAC/s for the pointwise convolutions beside them.
//!
//! How: each (image, channel) plane is zero-padded once into a scratch buffer, split into
//! stride² *phases* (rows and columns by their remainder modulo the stride), so that every
//! kernel tap reads one phase at unit stride. All phases share one row width, so one tap is a
//! single contiguous multiply-add over the whole output plane laid out at that width (the few
//! columns past the output's edge are computed and dropped), and a block of 16 outputs stays in
//! registers across all k² taps.

use super::{ConvShape, clamp_slice};

/// Outputs computed together, kept in registers across the taps: four 128-bit vectors.
const BLOCK: usize = 16;

/// `y[n, c] = bias[c] + Σ_{i,j} w[c, i, j] · x_padded[n, c, s_h·y + i, s_w·x + j]` for every
/// plane, NCHW in and out. `weight` is `[channels, kh, kw]`; panics if the slices' lengths do not
/// match `shape` (callers check the tensors' shapes).
pub fn depthwise_conv2d(
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: &ConvShape,
    clamp: Option<[f32; 2]>,
) -> Vec<f32> {
    let [n, c, h, w] = shape.input;
    let [kh, kw] = shape.kernel;
    let Some([oh, ow]) = shape.output_for(input) else {
        return Vec::new();
    };
    assert_eq!(weight.len(), c * kh * kw, "depthwise weight length");
    let plan = Plan::new(shape, [oh, ow]);
    let mut output = vec![0.0; n * c * oh * ow];
    if output.is_empty() {
        return output;
    }
    let plane = |(p, out): (usize, &mut [f32])| {
        let ch = p % c;
        let taps = &weight[ch * kh * kw..(ch + 1) * kh * kw];
        let b = bias.map_or(0.0, |b| b[ch]);
        let x = &input[p * h * w..(p + 1) * h * w];
        SCRATCH.with_borrow_mut(|s| plan.plane(x, taps, b, s, out));
        if let Some(bounds) = clamp {
            clamp_slice(out, bounds);
        }
    };
    // The planes are spread over the cores (as flex does) where there are threads (`cfg(parallel)`).
    #[cfg(parallel)]
    {
        use rayon::prelude::*;
        output.par_chunks_mut(oh * ow).enumerate().for_each(plane);
    }
    #[cfg(not(parallel))]
    output.chunks_mut(oh * ow).enumerate().for_each(plane);
    output
}

thread_local! {
    /// The padded phases of the plane being computed and its accumulators, reused across
    /// planes and calls (one per thread).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

#[derive(Default)]
struct Scratch {
    phases: Vec<f32>,
    acc: Vec<f32>,
}

/// What every plane of one convolution shares: the phase layout and where each tap reads.
struct Plan {
    shape: ConvShape,
    out: [usize; 2],
    /// Row width shared by every phase and by the accumulators.
    width: usize,
    /// Rows per phase: the output's, the kernel's reach, and one row of slack for the
    /// columns computed past the output's edge.
    rows: usize,
    /// For each tap (row-major over the kernel): the offset of its first read in `phases`.
    taps: Vec<usize>,
}

impl Plan {
    fn new(shape: &ConvShape, out: [usize; 2]) -> Self {
        let [kh, kw] = shape.kernel;
        let [sh, sw] = shape.stride;
        let [oh, ow] = out;
        let width = ow + (kw - 1) / sw;
        let rows = oh + (kh - 1) / sh + 1;
        let taps = (0..kh)
            .flat_map(|i| (0..kw).map(move |j| (i, j)))
            .map(|(i, j)| {
                let phase = (i % sh) * sw + j % sw;
                phase * rows * width + (i / sh) * width + j / sw
            })
            .collect();
        Plan {
            shape: *shape,
            out,
            width,
            rows,
            taps,
        }
    }

    /// One plane: `x` is `[h, w]`, `taps` the filter `[kh·kw]`, `out` is `[oh, ow]`.
    fn plane(&self, x: &[f32], taps: &[f32], bias: f32, s: &mut Scratch, out: &mut [f32]) {
        self.fill_phases(x, &mut s.phases);
        // Whole blocks only: the last one runs past the plane's end into the slack after the
        // phases (see `fill_phases`) and its extra outputs are never copied out. On 7×7 planes
        // a scalar remainder had been a fifth of the outputs.
        let n = (self.out[0] * self.width).next_multiple_of(BLOCK);
        s.acc.resize(n, 0.0);
        let acc = &mut s.acc[..n];
        let phases = &s.phases[..];
        for (i, block) in acc.chunks_exact_mut(BLOCK).enumerate() {
            let block: &mut [f32; BLOCK] = block.try_into().expect("block");
            accumulate_block(block, phases, &self.taps, taps, i * BLOCK, bias);
        }
        let ow = self.out[1];
        for (row, dst) in out.chunks_exact_mut(ow).enumerate() {
            let start = row * self.width;
            dst.copy_from_slice(&acc[start..start + ow]);
        }
    }

    /// Phase `(py, px)` row `r`, column `q` holds the padded input at `(sh·r + py, sw·q + px)`,
    /// zero outside the input.
    fn fill_phases(&self, x: &[f32], phases: &mut Vec<f32>) {
        let [_, _, h, w] = self.shape.input;
        let [sh, sw] = self.shape.stride;
        let [top, left, _, _] = self.shape.pads;
        let (rows, width) = (self.rows, self.width);
        // Every element is written below (zeros where the padding is): no clearing pass. One
        // block of slack after the phases for the last block's reads (any values).
        phases.resize(sh * sw * rows * width + BLOCK, 0.0);
        for py in 0..sh {
            for px in 0..sw {
                let phase = &mut phases[(py * sw + px) * rows * width..][..rows * width];
                // Columns q whose input column sw·q + px − left lies in [0, w).
                let q0 = left.saturating_sub(px).div_ceil(sw).min(width);
                let q1 = (left + w).saturating_sub(px).div_ceil(sw).clamp(q0, width);
                for (r, dst) in phase.chunks_exact_mut(width).enumerate() {
                    let y = sh * r + py;
                    if y < top || y - top >= h || q0 == q1 {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &x[(y - top) * w..(y - top + 1) * w];
                    let first = sw * q0 + px - left;
                    dst[..q0].fill(0.0);
                    if sw == 1 {
                        dst[q0..q1].copy_from_slice(&src[first..first + (q1 - q0)]);
                    } else {
                        for (d, s) in dst[q0..q1].iter_mut().zip(src[first..].iter().step_by(sw)) {
                            *d = *s;
                        }
                    }
                    dst[q1..].fill(0.0);
                }
            }
        }
    }
}

/// `block[k] = bias + Σ_t weights[t] · phases[offsets[t] + start + k]` for k in 0..16.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn accumulate_block(
    block: &mut [f32; BLOCK],
    phases: &[f32],
    offsets: &[usize],
    weights: &[f32],
    start: usize,
    bias: f32,
) {
    use core::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128, v128_load, v128_store};
    // Explicit vectors, and the four accumulators written out: the module is built for size
    // (opt-level "s"), where LLVM neither vectorises nor unrolls loops, and an array indexed in
    // a loop would live in memory rather than in registers.
    let b = f32x4_splat(bias);
    let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
    for (&off, &wt) in offsets.iter().zip(weights) {
        let src = &phases[off + start..off + start + BLOCK];
        let w = f32x4_splat(wt);
        let p = src.as_ptr() as *const v128;
        // SAFETY: `src` holds 16 floats (the slice above is bounds-checked): four unaligned
        // 16-byte loads inside it.
        let (x0, x1, x2, x3) = unsafe {
            (
                v128_load(p),
                v128_load(p.add(1)),
                v128_load(p.add(2)),
                v128_load(p.add(3)),
            )
        };
        a0 = f32x4_add(a0, f32x4_mul(w, x0));
        a1 = f32x4_add(a1, f32x4_mul(w, x1));
        a2 = f32x4_add(a2, f32x4_mul(w, x2));
        a3 = f32x4_add(a3, f32x4_mul(w, x3));
    }
    let p = block.as_mut_ptr() as *mut v128;
    // SAFETY: `block` is 16 floats: four 16-byte stores inside it.
    unsafe {
        v128_store(p, a0);
        v128_store(p.add(1), a1);
        v128_store(p.add(2), a2);
        v128_store(p.add(3), a3);
    }
}

/// `block[k] = bias + Σ_t weights[t] · phases[offsets[t] + start + k]` for k in 0..16; LLVM
/// vectorises the fixed-length inner loop natively (opt-level 3).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn accumulate_block(
    block: &mut [f32; BLOCK],
    phases: &[f32],
    offsets: &[usize],
    weights: &[f32],
    start: usize,
    bias: f32,
) {
    let mut a = [bias; BLOCK];
    for (&off, &wt) in offsets.iter().zip(weights) {
        let src: &[f32; BLOCK] = phases[off + start..off + start + BLOCK]
            .try_into()
            .expect("block");
        for k in 0..BLOCK {
            a[k] += wt * src[k];
        }
    }
    *block = a;
}
