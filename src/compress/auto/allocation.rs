//! Choosing one option per layer (a precision, each with its bytes and its measured loss) so
//! that the bytes fit a budget at the least summed loss: the multiple-choice knapsack. Losses
//! are taken as additive across layers, the first-order model HAWQ and OMPQ allocate bit
//! widths with; the candidates built from the choice are then measured whole.
//!
//! Solved exactly by dynamic programming over the byte budget in [`RESOLUTION`] steps, each
//! option's bytes rounded up to a whole step, so a choice never exceeds the budget it was
//! given (the steps' rounding costs at most one step per layer of slack).

/// The number of steps the byte budget is divided into.
pub const RESOLUTION: u64 = 40_000;

/// One way to store a layer: its bytes and the loss measured with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub bytes: u64,
    pub loss: f64,
}

/// For each layer the index of its chosen option, so that the chosen bytes sum to at most
/// `capacity` at the least summed loss; `None` when even the smallest options do not fit.
/// Among choices of equal loss the earlier option of a layer wins.
pub fn allocate(options: &[Vec<Choice>], capacity: u64) -> Option<Vec<usize>> {
    let smallest: u64 = options
        .iter()
        .map(|o| o.iter().map(|c| c.bytes).min().unwrap_or(0))
        .sum();
    if smallest > capacity || options.iter().any(|o| o.is_empty()) {
        return None;
    }
    let unit = capacity.div_ceil(RESOLUTION).max(1);
    let steps = (capacity / unit) as usize;
    // best[c]: the least loss of the layers so far within c steps.
    let mut best = vec![0.0f64; steps + 1];
    let mut picks: Vec<Vec<u8>> = Vec::with_capacity(options.len());
    for layer in options {
        let cost: Vec<usize> = layer
            .iter()
            .map(|c| c.bytes.div_ceil(unit) as usize)
            .collect();
        let mut next = vec![f64::INFINITY; steps + 1];
        let mut pick = vec![u8::MAX; steps + 1];
        for c in 0..=steps {
            for (i, (&w, choice)) in cost.iter().zip(layer).enumerate() {
                if w <= c && best[c - w] + choice.loss < next[c] {
                    next[c] = best[c - w] + choice.loss;
                    pick[c] = i as u8;
                }
            }
        }
        best = next;
        picks.push(pick);
    }
    // Rounding every cost up can leave the smallest choice without a fitting step.
    if !best[steps].is_finite() {
        return None;
    }
    let mut out = vec![0usize; options.len()];
    let mut c = steps;
    for (l, layer) in options.iter().enumerate().rev() {
        let i = picks[l][c] as usize;
        out[l] = i;
        c -= layer[i].bytes.div_ceil(unit) as usize;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bytes: u64, loss: f64) -> Choice {
        Choice { bytes, loss }
    }

    /// Every combination, the least loss within `capacity`.
    fn brute_force(options: &[Vec<Choice>], capacity: u64) -> Option<f64> {
        let mut best: Option<f64> = None;
        let mut idx = vec![0usize; options.len()];
        loop {
            let bytes: u64 = idx.iter().zip(options).map(|(&i, o)| o[i].bytes).sum();
            let loss: f64 = idx.iter().zip(options).map(|(&i, o)| o[i].loss).sum();
            if bytes <= capacity && best.is_none_or(|b| loss < b) {
                best = Some(loss);
            }
            let mut l = 0;
            loop {
                if l == options.len() {
                    return best;
                }
                idx[l] += 1;
                if idx[l] < options[l].len() {
                    break;
                }
                idx[l] = 0;
                l += 1;
            }
        }
    }

    #[test]
    fn matches_every_combination_and_fits() {
        let mut rng = crate::rng::Rng::new(7);
        for _ in 0..200 {
            let layers = 1 + rng.below(5);
            let options: Vec<Vec<Choice>> = (0..layers)
                .map(|_| {
                    (0..1 + rng.below(4))
                        .map(|_| c(1 + rng.below(1000) as u64, rng.uniform()))
                        .collect()
                })
                .collect();
            let capacity = rng.below(2500) as u64;
            let got = allocate(&options, capacity);
            let want = brute_force(&options, capacity);
            match (got, want) {
                (None, None) => {}
                (Some(pick), Some(best)) => {
                    let bytes: u64 = pick.iter().zip(&options).map(|(&i, o)| o[i].bytes).sum();
                    let loss: f64 = pick.iter().zip(&options).map(|(&i, o)| o[i].loss).sum();
                    assert!(bytes <= capacity, "{bytes} > {capacity}");
                    // Below one byte per step the search is exact.
                    assert!((loss - best).abs() < 1e-9, "{loss} vs {best}");
                }
                (got, want) => panic!("allocate {got:?}, every combination {want:?}"),
            }
        }
    }

    #[test]
    fn a_costly_layer_keeps_its_bytes() {
        // Two layers of equal size; room for one at 8 bits and one at 4.
        let options = vec![
            vec![c(400, 0.0), c(100, 0.01), c(50, 0.02)],
            vec![c(400, 0.0), c(100, 0.01), c(50, 3.0)],
        ];
        assert_eq!(allocate(&options, 150), Some(vec![2, 1]));
        assert_eq!(allocate(&options, 99), None);
        assert_eq!(allocate(&options, 800), Some(vec![0, 0]));
    }
}
