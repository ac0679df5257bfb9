//! GPTQ (Frantar et al., 2022; after OBQ): choose a layer's integers one input column at a
//! time and move each column's rounding error onto the columns not yet quantized, weighted by
//! the inverse Gram matrix `H = Σ x xᵀ` of the layer's inputs, so that the layer's *outputs* on
//! the calibration inputs change as little as the integers allow. Round-to-nearest minimises the
//! error of each weight alone; GPTQ the error of `W x`.
//!
//! The scales are fixed before (the same ones round-to-nearest uses), so the stored format and
//! the ONNX export do not change: only which integers are chosen.

use crate::compress::calibration::layer_statistics::Gram;
use crate::compress::linalg::{
    add_gram, add_scaled, cholesky_solve, cholesky_upper, for_each_row, invert_upper, matmul,
    sub_scaled,
};
use crate::{Error, Result};
use std::sync::atomic::{AtomicI8, AtomicU32, Ordering};

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
    scale: impl Fn(usize, usize) -> f32 + Sync,
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

/// GPTQ prepared for one layer input: the column order and the inverse's Cholesky factor, so
/// that several scale choices can be tried on the same layer at the cost of the loop alone.
pub struct Gptq {
    cols: usize,
    /// Columns in the order they are quantized.
    order: Vec<usize>,
    /// Inputs that are always zero (their weights become 0).
    dead: Vec<bool>,
    factor: Factor,
    block: usize,
}

/// How the sweep spreads errors.
enum Factor {
    /// `cols × cols`, row-major: the upper Cholesky factor `U` of `H⁻¹` in sweep order. Row
    /// `i` spreads column `i`'s error over every later column.
    Dense(Vec<f64>),
    /// From the inputs themselves, when they are fewer than the columns (see
    /// [`Gptq::from_inputs`]): the later blocks' weights are corrected from the output error
    /// made so far instead of being updated column by column.
    LowRank(LowRank),
}

/// `H = λI + XᵀX` with `X` the `r` input rows: `H` has rank `r` above its damping, so its
/// inverse is `(I − Xᵀ A⁻¹ X) / λ` with the `r × r` matrix `A = λI + X Xᵀ` (push-through).
struct LowRank {
    r: usize,
    /// `cols × r`: column `i`'s inputs (`X`'s column, in sweep order).
    x: Vec<f64>,
    /// Per block of columns `F₀ = [i1, i2)` with `F = [i1, cols)` not yet quantized:
    /// `corrector` (`r × width`) is `A_F⁻¹ X_F₀`, with `A_F = λI + X_F X_Fᵀ`, and `u`
    /// (`width × width`) the upper Cholesky factor of `(H_F⁻¹)_F₀F₀ = (I − X_F₀ᵀ A_F⁻¹ X_F₀) / λ`,
    /// which is the diagonal block of the dense `U`.
    blocks: Vec<(Vec<f64>, Vec<f64>)>,
}

impl Gptq {
    pub fn new(h: &[f64], cols: usize, opts: GptqOptions) -> Result<Self> {
        if h.len() != cols * cols {
            return Err(Error::Invalid(format!(
                "GPTQ: the Gram matrix of {cols} inputs has {cols}×{cols} entries, not {}",
                h.len()
            )));
        }
        let diag: Vec<f64> = (0..cols).map(|i| h[i * cols + i]).collect();
        let (order, dead, damp) = order_and_damping(&diag, opts);
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
            factor: Factor::Dense(upper_cholesky_of_inverse(reversed, n)?),
            order,
            dead,
            block: opts.block.max(1),
        })
    }

    /// GPTQ from the layer's input rows `x` (`r × cols`, row-major) rather than from their Gram
    /// matrix: the same integers (up to rounding in the last bits), at a cost linear in the
    /// columns per row of `x` instead of cubic in the columns. With two photos, ResNet18's
    /// last convs see 98 input rows of 4608 columns: a dense factor costs about 10¹¹ flops
    /// per layer, this about 10⁹.
    ///
    /// GPTQ leaves the columns not yet quantized, `F`, at the weights that best restore the
    /// layer's outputs given the errors `D` of the columns already fixed. With
    /// `R = X_fixed Dᵀ` the output error so far, that optimum is `W_F − (X_Fᵀ A_F⁻¹ R)ᵀ`, so
    /// each block's weights are corrected once when its turn comes; inside a block the
    /// dense sweep runs with its diagonal block of `U`.
    pub fn from_inputs(x: &[f32], r: usize, cols: usize, opts: GptqOptions) -> Result<Self> {
        if x.len() != r * cols {
            return Err(Error::Invalid(format!(
                "GPTQ: {r} input rows of {cols} columns need {} values",
                r * cols
            )));
        }
        let mut diag = vec![0f64; cols];
        for row in x.chunks_exact(cols.max(1)) {
            for (d, &v) in diag.iter_mut().zip(row) {
                *d += v as f64 * v as f64;
            }
        }
        let (order, dead, damp) = order_and_damping(&diag, opts);
        let block = opts.block.max(1);
        // Xᵀ in sweep order (f32, as measured) and as f64 columns.
        let xt32: Vec<f32> = (0..cols * r)
            .map(|i| x[(i % r) * cols + order[i / r]])
            .collect();
        let xt: Vec<f64> = xt32.iter().map(|&v| v as f64).collect();
        let not_pd = || {
            Error::Invalid("GPTQ: the inputs' damped Gram matrix is not positive definite".into())
        };
        // A = λI + X Xᵀ over every column, then less each block's columns once it is done.
        let mut a = vec![0f64; r * r];
        add_gram(&mut a, &xt32, &xt32, cols, r, r, true);
        for k in 0..r {
            a[k * r + k] += damp;
        }
        let mut blocks = Vec::with_capacity(cols.div_ceil(block));
        let mut i1 = 0;
        while i1 < cols {
            let i2 = (i1 + block).min(cols);
            let width = i2 - i1;
            let xb = &xt[i1 * r..i2 * r];
            let mut factor = a.clone();
            cholesky_upper(&mut factor, r).map_err(|_| not_pd())?;
            // A_F⁻¹ X_F₀, r × width.
            let mut corrector: Vec<f64> = (0..r * width)
                .map(|i| xb[(i % width) * r + i / width])
                .collect();
            cholesky_solve(&factor, r, &mut corrector, width);
            let mut u = matmul(xb, &corrector, width, r, width);
            for (i, v) in u.iter_mut().enumerate() {
                let identity = if i / width == i % width { 1.0 } else { 0.0 };
                *v = (identity - *v) / damp;
            }
            cholesky_upper(&mut u, width).map_err(|_| not_pd())?;
            blocks.push((corrector, u));
            for_each_row(&mut a, r, |k, row| {
                for t in 0..width {
                    let c = xb[t * r + k];
                    if c != 0.0 {
                        sub_scaled(row, c, &xb[t * r..(t + 1) * r]);
                    }
                }
            });
            i1 = i2;
        }
        Ok(Gptq {
            cols,
            order,
            dead,
            factor: Factor::LowRank(LowRank { r, x: xt, blocks }),
            block,
        })
    }

    /// GPTQ for group `g` of a layer whose input `gram` measured: from the kept patches when
    /// there are, from the Gram matrix otherwise.
    pub fn for_layer(gram: &Gram, g: usize, opts: GptqOptions) -> Result<Self> {
        match &gram.patches_kept {
            Some(x) => Self::from_inputs(x, gram.rows, gram.columns, opts),
            None => Self::new(&gram.h[g], gram.columns, opts),
        }
    }

    /// The diagonal block of `U` for columns `[i1, i2)` (a block of the sweep) and its row
    /// stride: entry `(i, j)` is at `(i − i1)·stride + j − i1`.
    fn diagonal_block(&self, i1: usize) -> (&[f64], usize) {
        match &self.factor {
            Factor::Dense(u) => (&u[i1 * self.cols + i1..], self.cols),
            Factor::LowRank(l) => {
                let u = &l.blocks[i1 / self.block].1;
                let width = self.block.min(self.cols - i1);
                (u, width)
            }
        }
    }

    /// `U[i, i]`: how far column `i`'s error is scaled when it is spread.
    fn diagonal(&self, i: usize) -> f64 {
        let i1 = i - i % self.block;
        let (u, stride) = self.diagonal_block(i1);
        u[(i - i1) * (stride + 1)]
    }

    /// The integers for `w` (`rows × cols`, row-major) with scale `scale(row, col)`, clamped
    /// to `±qmax`; row-major. Weights that are exactly zero stay zero (a sparse layer keeps its
    /// zeros; the others take up their share of the error).
    pub fn quantize(
        &self,
        w: &[f32],
        rows: usize,
        scale: impl Fn(usize, usize) -> f32 + Sync,
        qmax: i32,
    ) -> Vec<i8> {
        let cols = self.cols;
        let q = qmax as f64;
        // Written from several threads (each row by one), hence atomics.
        let values: Vec<AtomicI8> = (0..rows * cols).map(|_| AtomicI8::new(0)).collect();
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
                values[r * cols + c].store(v as i8, Ordering::Relaxed);
                v * s
            },
        );
        values.into_iter().map(AtomicI8::into_inner).collect()
    }

    /// SparseGPT (Frantar & Alistarh, 2023), the same sweep choosing zeros instead of
    /// integers: in each block of columns, the `fraction` of weights whose removal costs least
    /// output error (`w² / [H⁻¹]ᵢᵢ`, OBS's saliency) become zero, and every error moves onto
    /// the columns not yet visited. Returns the new weights (`rows × cols`, row-major).
    pub fn sparsify(&self, w: &[f32], rows: usize, fraction: f64) -> Vec<f32> {
        let cols = self.cols;
        // f32 bits, written from several threads (each row by one).
        let out: Vec<AtomicU32> = (0..rows * cols).map(|_| AtomicU32::new(0)).collect();
        self.sweep(
            w,
            rows,
            // The block's mask, chosen with the errors of the earlier blocks already in.
            |w, i1, i2| {
                let mut saliency: Vec<(f64, usize, usize)> = Vec::with_capacity(rows * (i2 - i1));
                for r in 0..rows {
                    for i in i1..i2 {
                        saliency.push((w[r * cols + i].powi(2) / self.diagonal(i).powi(2), r, i));
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
                out[r * cols + c].store((v as f32).to_bits(), Ordering::Relaxed);
                v
            },
        );
        out.into_iter()
            .map(|v| f32::from_bits(v.into_inner()))
            .collect()
    }

    /// GPTQ's column sweep over `w` (`rows × cols`, row-major), in this solver's column order:
    /// `start(w, i1, i2)` is called before each block of columns with the current weights (in
    /// sweep order, row-major), and `choose(block, row, column, x)` returns the value weight
    /// `(row, column)` (original column index) takes when its turn comes with current value
    /// `x`; the difference is spread over the columns not yet visited, weighted by `H⁻¹`. Rows
    /// never mix (each output channel is its own problem sharing `H⁻¹`), so `choose` runs for
    /// several rows at once where there are threads; each row's values are the same whatever
    /// the thread count.
    fn sweep<S: Sync>(
        &self,
        w: &[f32],
        rows: usize,
        mut start: impl FnMut(&[f64], usize, usize) -> S,
        choose: impl Fn(&S, usize, usize, f64) -> f64 + Sync,
    ) {
        let (cols, order) = (self.cols, &self.order);
        let original = |r: usize, i: usize| {
            let c = order[i];
            if self.dead[c] {
                0.0
            } else {
                w[r * cols + c] as f64
            }
        };
        let mut w: Vec<f64> = (0..rows * cols)
            .map(|i| original(i / cols, i % cols))
            .collect();
        // Low rank: the output error of the columns fixed so far, `rows × r`.
        let mut output_error = match &self.factor {
            Factor::LowRank(l) => vec![0f64; rows * l.r],
            Factor::Dense(_) => Vec::new(),
        };
        let mut i1 = 0;
        while i1 < cols {
            let i2 = (i1 + self.block).min(cols);
            let width = i2 - i1;
            if let Factor::LowRank(l) = &self.factor {
                // The block's weights restore what the fixed columns lost: −(X_F₀ᵀ A_F⁻¹ R)ᵀ.
                let corrector = &l.blocks[i1 / self.block].0;
                for_each_row(&mut w, cols, |row, weights| {
                    let e = &output_error[row * l.r..(row + 1) * l.r];
                    for (k, &c) in e.iter().enumerate() {
                        if c != 0.0 {
                            let at = k * width;
                            sub_scaled(&mut weights[i1..i2], c, &corrector[at..at + width]);
                        }
                    }
                });
            }
            let block = start(&w, i1, i2);
            let (u, stride) = self.diagonal_block(i1);
            // The columns after the block take its errors (dense factor only).
            let rest = match &self.factor {
                Factor::Dense(u) if i2 < cols => Some(u),
                _ => None,
            };
            for_each_row(&mut w, cols, |r, row| {
                let mut err = vec![0f64; width];
                for i in i1..i2 {
                    let ui = &u[(i - i1) * stride..];
                    let x = row[i];
                    let chosen = choose(&block, r, order[i], x);
                    row[i] = chosen;
                    let e = (x - chosen) / ui[i - i1];
                    err[i - i1] = e;
                    for j in i + 1..i2 {
                        row[j] -= e * ui[j - i1];
                    }
                }
                // Then the rest of the columns, the block's errors in column order.
                if let Some(u) = rest {
                    for (i, &e) in err.iter().enumerate() {
                        if e != 0.0 {
                            let at = (i1 + i) * cols;
                            sub_scaled(&mut row[i2..], e, &u[at + i2..at + cols]);
                        }
                    }
                }
            });
            // Low rank: the output error grows by the block's columns' change,
            // R += X_F₀ (Q − W)ᵀ.
            if let Factor::LowRank(l) = &self.factor {
                for_each_row(&mut output_error, l.r, |r, e| {
                    for i in i1..i2 {
                        let change = w[r * cols + i] - original(r, i);
                        if change != 0.0 {
                            add_scaled(e, change, &l.x[i * l.r..(i + 1) * l.r]);
                        }
                    }
                });
            }
            i1 = i2;
        }
    }
}

/// The sweep's column order (largest input energy first with `act_order`), the inputs that
/// are always zero, and the damping added to `H`'s diagonal, from `H`'s diagonal.
fn order_and_damping(diag: &[f64], opts: GptqOptions) -> (Vec<usize>, Vec<bool>, f64) {
    let cols = diag.len();
    let dead: Vec<bool> = diag.iter().map(|&d| d == 0.0).collect();
    let mut order: Vec<usize> = (0..cols).collect();
    if opts.act_order {
        order.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]).then(a.cmp(&b)));
    }
    let mean_diag = diag
        .iter()
        .map(|&d| if d == 0.0 { 1.0 } else { d })
        .sum::<f64>()
        / cols.max(1) as f64;
    (order, dead, opts.damp * mean_diag)
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

/// [`row_output_errors`] for group `g` of a layer whose input `gram` measured (`w` and `deq`
/// hold that group's rows); from the kept patches as `‖X (w_r − q_r)‖²` when there are.
pub fn layer_row_output_errors(
    w: &[f32],
    deq: &[f32],
    rows: usize,
    gram: &Gram,
    g: usize,
) -> Vec<f64> {
    let cols = gram.columns;
    let Some(x) = &gram.patches_kept else {
        return row_output_errors(w, deq, rows, cols, &gram.h[g]);
    };
    let r = gram.rows;
    let d = weight_change(w, deq, rows * cols);
    let xt: Vec<f64> = (0..cols * r)
        .map(|i| x[(i % r) * cols + i / r] as f64)
        .collect();
    let dx = matmul(&d, &xt, rows, cols, r);
    dx.chunks_exact(r.max(1))
        .map(|e| e.iter().map(|v| v * v).sum())
        .chain(std::iter::repeat(0.0))
        .take(rows)
        .collect()
}

/// `w − deq` over the first `n` weights, in f64.
fn weight_change(w: &[f32], deq: &[f32], n: usize) -> Vec<f64> {
    w.iter()
        .zip(deq)
        .take(n)
        .map(|(a, b)| (a - b) as f64)
        .collect()
}

/// Each row's (output channel's) share of [`output_error`].
pub fn row_output_errors(w: &[f32], deq: &[f32], rows: usize, cols: usize, h: &[f64]) -> Vec<f64> {
    let d = weight_change(w, deq, rows * cols);
    let dh = matmul(&d, h, rows, cols, cols);
    let mut errors = vec![0f64; rows];
    for_each_row(&mut errors, 1, |r, e| {
        e[0] = (0..cols).map(|c| dh[r * cols + c] * d[r * cols + c]).sum();
    });
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The sweep shares rows out over threads: the integers (dense and low-rank factors) and
    /// SparseGPT's weights must be the same bits on one thread as on three. 40 rows of 200
    /// columns in blocks of 64: several blocks, a partial last one, every row length parallel.
    #[test]
    fn the_sweep_gives_the_same_values_on_any_thread_count() {
        let (rows, cols) = (40, 200);
        let mut rng = Rng::new(7);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.range(-1.0, 1.0)).collect();
        let x: Vec<f32> = (0..50 * cols).map(|_| rng.range(-1.0, 1.0)).collect();
        let mut h = vec![0f64; cols * cols];
        add_gram(&mut h, &x, &x, 50, cols, cols, true);
        let opts = GptqOptions {
            block: 64,
            ..GptqOptions::default()
        };
        let scale = |r: usize, _: usize| 0.1 + r as f32 * 0.01;
        let run = |threads: usize| {
            crate::parallel::on_pool(threads, || {
                let dense = Gptq::new(&h, cols, opts).unwrap();
                let low_rank = Gptq::from_inputs(&x, 50, cols, opts).unwrap();
                let sparse: Vec<u32> = dense
                    .sparsify(&w, rows, 0.5)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                (
                    dense.quantize(&w, rows, scale, 7),
                    low_rank.quantize(&w, rows, scale, 7),
                    sparse,
                )
            })
        };
        let one = run(1);
        assert!(one.0.iter().any(|&v| v != 0) && one.2.iter().any(|&v| v != 0));
        assert_eq!(one, run(3));
    }
}
