//! GPTQ (Frantar et al., 2022; after OBQ): choose a layer's integers one input column at a
//! time and move each column's rounding error onto the columns not yet quantized, weighted by
//! the inverse Gram matrix `H = Σ x xᵀ` of the layer's inputs, so that the layer's *outputs* on
//! the calibration inputs change as little as the integers allow. Round-to-nearest minimises the
//! error of each weight alone; GPTQ the error of `W x`.
//!
//! The scales are fixed before (the same ones round-to-nearest uses), so the stored format and
//! the ONNX export do not change: only which integers are chosen.

use crate::compress::linalg::{cholesky_upper, for_each_row, invert_upper, matmul, sub_product};
use crate::{Error, Result};

/// How GPTQ runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptqOptions {
    /// Added to `H`'s diagonal, as a share of its mean: keeps the inverse stable when inputs
    /// are few or correlated.
    pub damp: f64,
    /// Quantize the columns with the largest inputs first (the errors then land on the columns
    /// that matter least).
    pub act_order: bool,
    /// Columns updated eagerly before the rest is updated in one product.
    pub block: usize,
}

impl Default for GptqOptions {
    fn default() -> Self {
        GptqOptions {
            damp: 0.01,
            act_order: true,
            block: 128,
        }
    }
}

/// GPTQ on one weight matrix `w` (`rows × cols`, row-major) with the Gram matrix `h`
/// (`cols × cols`, row-major) of its inputs. `scale(row, col)` is the fixed scale of each
/// weight and integers are clamped to `±qmax`. Returns the integers, row-major.
pub fn gptq(
    w: &[f32],
    rows: usize,
    cols: usize,
    h: &[f64],
    scale: impl Fn(usize, usize) -> f32,
    qmax: i32,
    opts: GptqOptions,
) -> Result<Vec<i8>> {
    if w.len() != rows * cols {
        return Err(Error::Invalid(format!(
            "GPTQ: a {rows}×{cols} layer needs {} weights",
            rows * cols
        )));
    }
    Ok(Gptq::new(h, cols, opts)?.quantize(w, rows, scale, qmax))
}

/// GPTQ prepared for one Gram matrix: the column order and the inverse's Cholesky factor, so
/// that several scale choices can be tried on the same layer at the cost of the loop alone.
pub struct Gptq {
    cols: usize,
    /// Columns in the order they are quantized.
    order: Vec<usize>,
    /// Inputs that are always zero (their weights become 0).
    dead: Vec<bool>,
    /// `cols × cols`, row-major: the upper Cholesky factor of `H⁻¹` in sweep order.
    u: Vec<f64>,
    block: usize,
}

impl Gptq {
    pub fn new(h: &[f64], cols: usize, opts: GptqOptions) -> Result<Self> {
        if h.len() != cols * cols {
            return Err(Error::Invalid(format!(
                "GPTQ: the Gram matrix of {cols} inputs has {cols}×{cols} entries, not {}",
                h.len()
            )));
        }
        let diag = |i: usize| h[i * cols + i];
        let dead: Vec<bool> = (0..cols).map(|i| diag(i) == 0.0).collect();
        // Column order: largest input energy first with act_order.
        let mut order: Vec<usize> = (0..cols).collect();
        if opts.act_order {
            order.sort_by(|&a, &b| diag(b).total_cmp(&diag(a)).then(a.cmp(&b)));
        }
        let mean_diag = (0..cols)
            .map(|i| if dead[i] { 1.0 } else { diag(i) })
            .sum::<f64>()
            / cols.max(1) as f64;
        let damp = opts.damp * mean_diag;
        // In sweep order, reversed (see `upper_cholesky_of_inverse`); a dead input's diagonal 1.
        let n = cols;
        let mut reversed = vec![0f64; n * n];
        for i in 0..n {
            let a = order[n - 1 - i];
            for j in 0..n {
                let b = order[n - 1 - j];
                reversed[i * n + j] = if a == b {
                    (if dead[a] { 1.0 } else { h[a * n + a] }) + damp
                } else {
                    h[a * n + b]
                };
            }
        }
        Ok(Gptq {
            cols,
            u: upper_cholesky_of_inverse(reversed, n)?,
            order,
            dead,
            block: opts.block.max(1),
        })
    }

    /// The integers for `w` (`rows × cols`, row-major) with scale `scale(row, col)`, clamped
    /// to `±qmax`; row-major. Weights that are exactly zero stay zero (a sparse layer keeps its
    /// zeros; the others take up their share of the error).
    pub fn quantize(
        &self,
        w: &[f32],
        rows: usize,
        scale: impl Fn(usize, usize) -> f32,
        qmax: i32,
    ) -> Vec<i8> {
        let cols = self.cols;
        let q = qmax as f64;
        let mut values = vec![0i8; rows * cols];
        self.sweep(
            w,
            rows,
            |_, _, _| (),
            |_, r, c, x| {
                let s = scale(r, c) as f64;
                let v = if w[r * cols + c] == 0.0 {
                    0.0
                } else {
                    (x / s).round_ties_even().clamp(-q, q)
                };
                values[r * cols + c] = v as i8;
                v * s
            },
        );
        values
    }

    /// SparseGPT (Frantar & Alistarh, 2023), the same sweep choosing zeros instead of
    /// integers: in each block of columns, the `fraction` of weights whose removal costs least
    /// output error (`w² / [H⁻¹]ᵢᵢ`, OBS's saliency) become zero, and every error moves onto
    /// the columns not yet visited. Returns the new weights (`rows × cols`, row-major).
    pub fn sparsify(&self, w: &[f32], rows: usize, fraction: f64) -> Vec<f32> {
        let (cols, u) = (self.cols, &self.u);
        let mut out = vec![0f32; rows * cols];
        self.sweep(
            w,
            rows,
            // The block's mask, chosen with the errors of the earlier blocks already in.
            |w, i1, i2| {
                let mut saliency: Vec<(f64, usize, usize)> = Vec::with_capacity(rows * (i2 - i1));
                for r in 0..rows {
                    for i in i1..i2 {
                        saliency.push((w[r * cols + i].powi(2) / u[i * cols + i].powi(2), r, i));
                    }
                }
                saliency.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
                let zeros = ((saliency.len() as f64) * fraction).round() as usize;
                let mut masked = vec![false; rows * cols];
                for &(_, r, i) in &saliency[..zeros.min(saliency.len())] {
                    masked[r * cols + self.order[i]] = true;
                }
                masked
            },
            |masked, r, c, x| {
                let v = if masked[r * cols + c] { 0.0 } else { x };
                out[r * cols + c] = v as f32;
                v
            },
        );
        out
    }

    /// GPTQ's column sweep over `w` (`rows × cols`, row-major), in this solver's column order:
    /// `start(w, i1, i2)` is called before each block of columns with the current weights (in
    /// sweep order, row-major), and `choose(block, row, column, x)` returns the value weight
    /// `(row, column)` (original column index) takes when its turn comes with current value
    /// `x`; the difference is spread over the columns not yet visited, weighted by `H⁻¹`.
    fn sweep<S>(
        &self,
        w: &[f32],
        rows: usize,
        mut start: impl FnMut(&[f64], usize, usize) -> S,
        mut choose: impl FnMut(&S, usize, usize, f64) -> f64,
    ) {
        let (cols, order, u) = (self.cols, &self.order, &self.u);
        let mut w: Vec<f64> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, order[i % cols]);
                if self.dead[c] {
                    0.0
                } else {
                    w[r * cols + c] as f64
                }
            })
            .collect();
        let mut i1 = 0;
        while i1 < cols {
            let i2 = (i1 + self.block).min(cols);
            let block = start(&w, i1, i2);
            let width = i2 - i1;
            let mut err = vec![0f64; rows * width];
            for i in i1..i2 {
                let d = u[i * cols + i];
                for r in 0..rows {
                    let row = &mut w[r * cols..(r + 1) * cols];
                    let x = row[i];
                    let e = (x - choose(&block, r, order[i], x)) / d;
                    err[r * width + i - i1] = e;
                    for j in i + 1..i2 {
                        row[j] -= e * u[i * cols + j];
                    }
                }
            }
            if i2 < cols {
                // The rest of the columns take the block's errors, column by column in order.
                sub_product(&mut w, cols, &err, width, u, i1, i2);
            }
            i1 = i2;
        }
    }
}

/// The upper-triangular `U` with `Uᵀ U = H⁻¹` (GPTQ's form of the inverse: row `i` of `U`
/// spreads column `i`'s error over the later columns). With `J` the order reversal and
/// `J H J = L Lᵀ`, `U = J L⁻¹ J`: one Cholesky factor and one triangular inverse, instead of
/// inverting `H` and factoring the inverse (a third of the work on 4608-wide layers).
///
/// Takes `J H J` (the matrix with its order reversed) and factors it as `Wᵀ W`, so that
/// `L = Wᵀ` and `U = J (W⁻¹)ᵀ J`.
fn upper_cholesky_of_inverse(mut reversed: Vec<f64>, n: usize) -> Result<Vec<f64>> {
    cholesky_upper(&mut reversed, n).map_err(|_| {
        Error::Invalid("GPTQ: the inputs' Gram matrix is not positive definite".into())
    })?;
    let x = invert_upper(&reversed, n);
    let mut u = vec![0f64; n * n];
    for a in 0..n {
        for b in a..n {
            u[a * n + b] = x[(n - 1 - b) * n + (n - 1 - a)];
        }
    }
    Ok(u)
}

/// `‖(W − Q) X‖²` summed over the calibration inputs, from the Gram matrix:
/// `Σ_r (w_r − q_r)ᵀ H (w_r − q_r)`. What GPTQ lowers; tests compare methods with it.
pub fn output_error(w: &[f32], deq: &[f32], rows: usize, cols: usize, h: &[f64]) -> f64 {
    row_output_errors(w, deq, rows, cols, h).iter().sum()
}

/// Each row's (output channel's) share of [`output_error`].
pub fn row_output_errors(w: &[f32], deq: &[f32], rows: usize, cols: usize, h: &[f64]) -> Vec<f64> {
    let d: Vec<f64> = w
        .iter()
        .zip(deq)
        .take(rows * cols)
        .map(|(a, b)| (a - b) as f64)
        .collect();
    let dh = matmul(&d, h, rows, cols, cols);
    let mut errors = vec![0f64; rows];
    for_each_row(&mut errors, 1, |r, e| {
        e[0] = (0..cols).map(|c| dh[r * cols + c] * d[r * cols + c]).sum();
    });
    errors
}
