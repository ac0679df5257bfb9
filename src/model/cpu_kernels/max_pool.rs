//! Max pooling on the host.
//!
//! Why: flex's max pooling also records where each maximum came from (it runs its
//! `max_pool3d_with_indices`, whose indices inference throws away) and took 4.6 % of ResNet18's
//! time in the CPU fallback's profile, more than the pooled convolution's own patches.
//!
//! How: separably, per plane: the rows of one window's height are reduced into one row (whole
//! rows at a time, vectorised), then that row's windows along the width. The padding is −∞, as
//! in PyTorch: it never wins.

use super::{ConvShape, for_each_image};

/// `y[n, c, oy, ox] = max` of the input over the window at `(s_h·oy − top, s_w·ox − left)`,
/// NCHW in and out; a NaN in a window gives NaN. Panics if `input`'s length does not match
/// `shape` (callers check the tensor's shape).
pub fn max_pool2d(input: &[f32], shape: &ConvShape) -> Vec<f32> {
    let [n, c, h, w] = shape.input;
    let Some([oh, ow]) = shape.output_for(input) else {
        return Vec::new();
    };
    let mut output = vec![0.0; n * c * oh * ow];
    if output.is_empty() {
        return output;
    }
    let (y_first, y_end) = windows(shape, 0, oh);
    let (x_first, x_end) = windows(shape, 1, ow);
    for_each_image(&mut output, c * oh * ow, |i, y, _| {
        let mut row = vec![f32::NEG_INFINITY; w];
        for (ch, out) in y.chunks_exact_mut(oh * ow).enumerate() {
            let plane = &input[(i * c + ch) * h * w..][..h * w];
            for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
                // The window's rows inside the input, reduced into one row.
                row.fill(f32::NEG_INFINITY);
                for r in y_first[oy]..y_end[oy] {
                    max_into(&mut row, &plane[r * w..(r + 1) * w]);
                }
                for (ox, o) in out_row.iter_mut().enumerate() {
                    *o = row[x_first[ox]..x_end[ox]]
                        .iter()
                        .fold(f32::NEG_INFINITY, |m, &v| nan_max(m, v));
                }
            }
        }
    });
    output
}

/// For each output position along `axis` (0: height, 1: width), the input range `[first, end)` its window
/// covers inside the input.
fn windows(shape: &ConvShape, axis: usize, out: usize) -> (Vec<usize>, Vec<usize>) {
    let size = shape.input[2 + axis];
    let (k, s, before) = (shape.kernel[axis], shape.stride[axis], shape.pads[axis]);
    (0..out)
        .map(|o| {
            let first = (o * s).saturating_sub(before).min(size);
            let end = (o * s + k).saturating_sub(before).clamp(first, size);
            (first, end)
        })
        .unzip()
}

/// `acc[i] = max(acc[i], row[i])`, NaN winning.
fn max_into(acc: &mut [f32], row: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{f32x4_max, v128, v128_load, v128_store};
        // Explicit vectors: the module is built for size, where LLVM does not vectorise loops.
        // `f32x4_max` propagates NaN.
        let mut a = acc.chunks_exact_mut(4);
        let mut r = row.chunks_exact(4);
        for (a, r) in (&mut a).zip(&mut r) {
            // SAFETY: `a` and `r` are 4 floats each: one unaligned 16-byte load or store inside.
            unsafe {
                let m = f32x4_max(
                    v128_load(a.as_ptr() as *const v128),
                    v128_load(r.as_ptr() as *const v128),
                );
                v128_store(a.as_mut_ptr() as *mut v128, m);
            }
        }
        max_scalar(a.into_remainder(), r.remainder());
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    max_scalar(acc, row);
}

fn max_scalar(acc: &mut [f32], row: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(row) {
        *a = nan_max(*a, v);
    }
}

/// The larger of `m` and `v`, NaN winning (as PyTorch's max pooling).
fn nan_max(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() { v } else { m }
}
