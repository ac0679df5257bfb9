//! Unstructured magnitude pruning: zero the smallest weights. Dense formats keep their size;
//! only compression (gzip) or a sparse runtime turns the zeros into savings.

use crate::model::Model;
use crate::tensor::StateDict;
use crate::{Error, Result};

/// Options for magnitude pruning.
#[derive(Debug, Clone)]
pub struct SparsityOptions {
    /// Fraction of the eligible weights to zero, in [0, 1).
    pub sparsity: f32,
    /// One threshold over all eligible layers (true) or the same fraction in every layer.
    pub global: bool,
    /// Reach the target in this many steps (re-ranking between them).
    pub steps: usize,
    /// Zero classifier weights too (off by default: the classifier is small and sensitive).
    pub include_classifier: bool,
}

impl Default for SparsityOptions {
    fn default() -> Self {
        SparsityOptions {
            sparsity: 0.0,
            global: true,
            steps: 1,
            include_classifier: false,
        }
    }
}

/// Weights eligible for magnitude pruning: conv kernels (and the classifier if asked).
pub fn eligible(weights: &StateDict, include_classifier: bool) -> Vec<String> {
    weights
        .iter()
        .filter(|(_, t)| t.shape.len() == 4 || (include_classifier && t.shape.len() == 2))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Zero the `fraction` smallest |w| of `values` (ties broken by position).
fn zero_smallest(values: &mut [f32], fraction: f64) {
    let n = ((values.len() as f64) * fraction).round() as usize;
    if n == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()).then(a.cmp(&b)));
    for &i in &order[..n.min(values.len())] {
        values[i] = 0.0;
    }
}

/// L1 magnitude pruning of `model`'s weights.
pub fn magnitude_prune(model: &Model, opts: &SparsityOptions) -> Result<StateDict> {
    if !(0.0..1.0).contains(&opts.sparsity) {
        return Err(Error::Invalid(format!(
            "sparsity {} is impossible: it must be at least 0 and below 1",
            opts.sparsity
        )));
    }
    let mut w = model.weights.clone();
    let keys = eligible(&w, opts.include_classifier);
    let steps = opts.steps.max(1);
    for step in 1..=steps {
        let target = opts.sparsity as f64 * step as f64 / steps as f64;
        if opts.global {
            // One magnitude threshold across layers: rank every eligible weight together.
            let mut all: Vec<(f32, usize, usize)> = Vec::new();
            for (li, k) in keys.iter().enumerate() {
                if let Some(t) = w.get(k) {
                    all.extend(t.data.iter().enumerate().map(|(i, v)| (v.abs(), li, i)));
                }
            }
            let n = ((all.len() as f64) * target).round() as usize;
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
            for &(_, li, i) in &all[..n.min(all.len())] {
                if let Some(t) = w.get_mut(&keys[li]) {
                    t.data[i] = 0.0;
                }
            }
        } else {
            for k in &keys {
                if let Some(t) = w.get_mut(k) {
                    zero_smallest(&mut t.data, target);
                }
            }
        }
    }
    Ok(w)
}

impl Model {
    /// The model with every layer weight that holds zeros listed as sparse: from here on its
    /// zeros are pruned weights, which training keeps at zero and quantization cannot tell
    /// from values that round to zero.
    pub fn with_sparse_marked(mut self) -> Model {
        let graph = self.graph();
        self.quant.sparse = graph
            .nodes
            .iter()
            .filter_map(|n| n.op.layer_name())
            .map(|name| format!("{name}.weight"))
            .filter(|k| self.weights.get(k).is_some_and(|t| t.data.contains(&0.0)))
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_the_smallest_magnitudes() {
        let mut v = vec![0.5, -0.1, 2.0, 0.05, -3.0, 0.2];
        zero_smallest(&mut v, 0.5);
        assert_eq!(v, vec![0.5, 0.0, 2.0, 0.0, -3.0, 0.0]);
    }
}
