//! The dense linear algebra of calibrated compression (Gram matrices, Cholesky factors,
//! triangular inverses and solves, the products of GPTQ's sweep), written so that every result
//! is the same to the last bit on any CPU, with any number of threads, natively and in wasm.
//!
//! Why not a BLAS-like crate: their kernels are chosen at run time by the CPU's SIMD width
//! (AVX2 or AVX-512, with different register blockings) and split reductions by cache size, so
//! the last bits of a sum depend on the machine. GPTQ turns such bits into other integers — one
//! rounding decision moves the error every later column absorbs — and the same photos gave
//! files 8 points of top-1 apart on two CPUs. Here each output element is summed by one thread
//! in one fixed order (ascending, or descending where stated), and vectorisation only runs
//! across independent outputs (`c[j] -= a · b[j]`), which IEEE arithmetic without fused
//! multiply-adds makes exact whatever the vector width. Rust never contracts `a·b + c` into an
//! FMA on its own.

/// Rows of a Gram matrix's input handled per pass: the block's rows (converted to f64) stay in
/// cache while every output row takes them. Any size gives the same sums (rows are added in
/// ascending order either way); this one is for speed.
const ROW_BLOCK: usize = 64;

/// Panel width of the blocked Cholesky factorisation and row block of the triangular inverse
/// (again speed only: the order of every element's updates does not depend on it).
const PANEL: usize = 32;

/// Run `f(index, row)` on each `len`-long row of `data`: in parallel where there are threads
/// (`cfg(parallel)`: natively, and the browser's threaded module), else in order. Each row is written by one call, so the result does not
/// depend on how rows are shared out.
pub(crate) fn for_each_row<F>(data: &mut [f64], len: usize, f: F)
where
    F: Fn(usize, &mut [f64]) + Sync + Send,
{
    if len == 0 {
        return;
    }
    // Small work is not worth a thread's wake-up (a 9×9 block per channel, say).
    #[cfg(parallel)]
    if data.len() >= 1 << 12 {
        use rayon::prelude::*;
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, row)| f(i, row));
        return;
    }
    data.chunks_mut(len)
        .enumerate()
        .for_each(|(i, row)| f(i, row));
}

/// `c[j] -= a · b[j]` for every `j`.
#[inline]
pub(crate) fn sub_scaled(c: &mut [f64], a: f64, b: &[f64]) {
    for (c, b) in c.iter_mut().zip(b) {
        *c -= a * b;
    }
}

/// `c[j] += a · b[j]` for every `j`.
#[inline]
pub(crate) fn add_scaled(c: &mut [f64], a: f64, b: &[f64]) {
    for (c, b) in c.iter_mut().zip(b) {
        *c += a * b;
    }
}

/// `h += aᵀ b`: `a` is `rows × a_cols`, `b` is `rows × b_cols` (row-major f32), `h` is
/// `a_cols × b_cols` (row-major f64). Products are formed in f64 and added in ascending row
/// order. With `symmetric` (`b` is `a`), only the upper triangle is summed and then mirrored.
pub fn add_gram(
    h: &mut [f64],
    a: &[f32],
    b: &[f32],
    rows: usize,
    a_cols: usize,
    b_cols: usize,
    symmetric: bool,
) {
    debug_assert_eq!(h.len(), a_cols * b_cols);
    debug_assert!(a.len() >= rows * a_cols && b.len() >= rows * b_cols);
    let mut r0 = 0;
    while r0 < rows {
        let r1 = (r0 + ROW_BLOCK).min(rows);
        let block: Vec<f64> = b[r0 * b_cols..r1 * b_cols]
            .iter()
            .map(|&v| v as f64)
            .collect();
        for_each_row(h, b_cols, |i, out| {
            let from = if symmetric { i } else { 0 };
            for r in r0..r1 {
                let s = a[r * a_cols + i] as f64;
                // A zero input adds nothing (ReLU outputs are half zeros).
                if s != 0.0 {
                    let row = &block[(r - r0) * b_cols..(r - r0 + 1) * b_cols];
                    add_scaled(&mut out[from..], s, &row[from..]);
                }
            }
        });
        r0 = r1;
    }
    if symmetric {
        for i in 0..a_cols {
            for j in 0..i {
                h[i * b_cols + j] = h[j * b_cols + i];
            }
        }
    }
}

/// Factor the symmetric `n × n` matrix `a` (row-major) in place as `a = Uᵀ U`, `U` upper
/// triangular (the lower triangle is zeroed). `Err(k)` when the `k`-th pivot is not positive
/// (the matrix is not positive definite).
///
/// Element `(i, j)` takes its updates `−U[k,i]·U[k,j]` for `k = 0, 1, …` in that order, panel
/// after panel, whatever the panel width or the thread count.
pub fn cholesky_upper(a: &mut [f64], n: usize) -> Result<(), usize> {
    debug_assert_eq!(a.len(), n * n);
    let mut k0 = 0;
    while k0 < n {
        let k1 = (k0 + PANEL).min(n);
        // The panel's rows: factor them, each updating the panel rows below it.
        for k in k0..k1 {
            let d = a[k * n + k];
            if !(d > 0.0 && d.is_finite()) {
                return Err(k);
            }
            let d = d.sqrt();
            a[k * n + k] = d;
            for j in k + 1..n {
                a[k * n + j] /= d;
            }
            let (top, rest) = a.split_at_mut((k + 1) * n);
            let pivot = &top[k * n..];
            for i in k + 1..k1 {
                let u = pivot[i];
                if u != 0.0 {
                    let row = &mut rest[(i - k - 1) * n..(i - k) * n];
                    sub_scaled(&mut row[i..], u, &pivot[i..]);
                }
            }
        }
        // Every row below the panel takes the panel's updates, in panel order.
        if k1 < n {
            let (top, rest) = a.split_at_mut(k1 * n);
            let panel = &top[k0 * n..];
            for_each_row(rest, n, |r, row| {
                let i = k1 + r;
                for k in 0..k1 - k0 {
                    let u = panel[k * n + i];
                    if u != 0.0 {
                        sub_scaled(&mut row[i..], u, &panel[k * n + i..(k + 1) * n]);
                    }
                }
            });
        }
        k0 = k1;
    }
    for i in 0..n {
        for j in 0..i {
            a[i * n + j] = 0.0;
        }
    }
    Ok(())
}

/// The inverse `X = U⁻¹` of the upper-triangular `n × n` matrix `u` (row-major, nonzero
/// diagonal), upper triangular too. Row `i` is `(eᵢ − Σₖ U[i,k]·X[k,·]) / U[i,i]` over
/// `k > i`, each element's terms taken in descending `k`: rows are solved bottom-up in blocks,
/// the terms of the rows below a block first (every row of the block at once, so each row of
/// `X` is read once per block), then the block's own rows.
pub fn invert_upper(u: &[f64], n: usize) -> Vec<f64> {
    debug_assert_eq!(u.len(), n * n);
    let mut x = vec![0f64; n * n];
    let mut i1 = n;
    while i1 > 0 {
        let i0 = i1.saturating_sub(PANEL);
        let (head, solved) = x.split_at_mut(i1 * n);
        let (block, solved): (&mut [f64], &[f64]) = (&mut head[i0 * n..], solved);
        // Start each row as eᵢ and take the terms of the rows already solved (k ≥ i1).
        for_each_row(block, n, |r, acc| {
            let i = i0 + r;
            acc[i] = 1.0;
            for k in (i1..n).rev() {
                let c = u[i * n + k];
                if c != 0.0 {
                    sub_scaled(
                        &mut acc[k..],
                        c,
                        &solved[(k - i1) * n + k..(k - i1 + 1) * n],
                    );
                }
            }
        });
        // Then the block's own rows, bottom-up, each finished before the rows above use it.
        for i in (i0..i1).rev() {
            let (above, below) = block.split_at_mut((i - i0 + 1) * n);
            let acc = &mut above[(i - i0) * n..];
            for k in (i + 1..i1).rev() {
                let c = u[i * n + k];
                if c != 0.0 {
                    let xk = &below[(k - i - 1) * n..(k - i) * n];
                    sub_scaled(&mut acc[k..], c, &xk[k..]);
                }
            }
            let d = u[i * n + i];
            for v in &mut acc[i..] {
                *v /= d;
            }
        }
        i1 = i0;
    }
    x
}

/// Solve `(Uᵀ U) X = B` for `X` (`n × m`, row-major, in place of `b`), `U` upper triangular
/// from [`cholesky_upper`]: forward with `Uᵀ`, then back with `U`, each row's terms in
/// ascending `k`. Columns are independent, so blocks of them are solved in parallel.
pub fn cholesky_solve(u: &[f64], n: usize, b: &mut [f64], m: usize) {
    debug_assert_eq!(b.len(), n * m);
    const COLUMNS: usize = 64;
    let width = COLUMNS.min(m.max(1));
    let blocks = m.div_ceil(width);
    // Block `q` holds columns `q·width …` as an `n × width` matrix (the last one zero-padded).
    let mut packed = vec![0f64; blocks * n * width];
    for (i, row) in b.chunks_exact(m).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            packed[(j / width) * n * width + i * width + j % width] = v;
        }
    }
    for_each_row(&mut packed, n * width, |_, block| {
        solve_block(u, n, block, width)
    });
    for (i, row) in b.chunks_exact_mut(m).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = packed[(j / width) * n * width + i * width + j % width];
        }
    }
}

/// [`cholesky_solve`] on one `n × m` block.
fn solve_block(u: &[f64], n: usize, b: &mut [f64], m: usize) {
    // Uᵀ y = b: y[i] = (b[i] − Σ_{k<i} U[k,i]·y[k]) / U[i,i].
    for i in 0..n {
        let (done, rest) = b.split_at_mut(i * m);
        let row = &mut rest[..m];
        for k in 0..i {
            let c = u[k * n + i];
            if c != 0.0 {
                sub_scaled(row, c, &done[k * m..(k + 1) * m]);
            }
        }
        let d = u[i * n + i];
        row.iter_mut().for_each(|v| *v /= d);
    }
    // U x = y: x[i] = (y[i] − Σ_{k>i} U[i,k]·x[k]) / U[i,i].
    for i in (0..n).rev() {
        let (head, done) = b.split_at_mut((i + 1) * m);
        let row = &mut head[i * m..];
        for k in i + 1..n {
            let c = u[i * n + k];
            if c != 0.0 {
                sub_scaled(row, c, &done[(k - i - 1) * m..(k - i) * m]);
            }
        }
        let d = u[i * n + i];
        row.iter_mut().for_each(|v| *v /= d);
    }
}

/// `a · b`: `a` is `n × k`, `b` is `k × m` (row-major); each output row sums its terms in
/// ascending `k`.
pub fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    debug_assert!(a.len() == n * k && b.len() == k * m);
    let mut out = vec![0f64; n * m];
    for_each_row(&mut out, m, |i, row| {
        for (kk, &c) in a[i * k..(i + 1) * k].iter().enumerate() {
            if c != 0.0 {
                add_scaled(row, c, &b[kk * m..(kk + 1) * m]);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// A random `n × n` positive definite matrix: `XᵀX + I` of `2n` random rows.
    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let x: Vec<f32> = (0..2 * n * n).map(|_| lcg(&mut s) as f32).collect();
        let mut h = vec![0f64; n * n];
        add_gram(&mut h, &x, &x, 2 * n, n, n, true);
        for i in 0..n {
            h[i * n + i] += 1.0;
        }
        h
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn gram_matches_the_plain_sum_and_is_symmetric() {
        let (rows, n) = (130, 7);
        let mut s = 3;
        let x: Vec<f32> = (0..rows * n).map(|_| lcg(&mut s) as f32).collect();
        let mut h = vec![0f64; n * n];
        add_gram(&mut h, &x, &x, rows, n, n, true);
        let mut g = vec![0f64; n * n];
        add_gram(&mut g, &x, &x, rows, n, n, false);
        for i in 0..n {
            for j in 0..n {
                let plain: f64 = (0..rows)
                    .map(|r| x[r * n + i] as f64 * x[r * n + j] as f64)
                    .sum();
                assert_eq!(h[i * n + j], plain, "({i}, {j}) in ascending order");
                assert_eq!(h[i * n + j], h[j * n + i]);
                assert_eq!(g[i * n + j], plain);
            }
        }
    }

    #[test]
    fn cholesky_inverse_and_solve_are_what_they_claim() {
        for n in [1, 5, 33, 70] {
            let h = spd(n, n as u64);
            let mut u = h.clone();
            cholesky_upper(&mut u, n).unwrap();
            // Uᵀ U = H.
            let mut ut = vec![0f64; n * n];
            for i in 0..n {
                for j in 0..n {
                    ut[i * n + j] = u[j * n + i];
                }
            }
            assert!(max_diff(&matmul(&ut, &u, n, n, n), &h) < 1e-9 * n as f64);
            // U X = I.
            let x = invert_upper(&u, n);
            let id: Vec<f64> = (0..n * n)
                .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
                .collect();
            assert!(max_diff(&matmul(&u, &x, n, n, n), &id) < 1e-10 * n as f64);
            assert!((0..n).all(|i| (0..i).all(|j| x[i * n + j] == 0.0)));
            // H X = B, in one block of columns and in several (the last one padded).
            for m in [3, 70] {
                let mut s = 9;
                let b: Vec<f64> = (0..n * m).map(|_| lcg(&mut s)).collect();
                let mut sol = b.clone();
                cholesky_solve(&u, n, &mut sol, m);
                assert!(max_diff(&matmul(&h, &sol, n, n, m), &b) < 1e-9 * n as f64);
            }
        }
        let mut not_pd = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_upper(&mut not_pd, 2), Err(1));
    }

    /// One thread or two, the same bits (natively; the browser has one).
    #[cfg(not(target_family = "wasm"))]
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let n = 150;
        let run = |threads: usize| {
            crate::parallel::on_pool(threads, || {
                let mut u = spd(n, 1);
                cholesky_upper(&mut u, n).unwrap();
                invert_upper(&u, n)
            })
        };
        let (one, two) = (run(1), run(2));
        assert!(
            one.iter()
                .zip(&two)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }
}
