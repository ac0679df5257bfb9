//! Sparsity with reconstruction: SparseGPT over the whole network, layer after layer in graph
//! order (the walk of [`crate::compress::calibration::layerwise`]). Each layer loses the share of its weights that
//! magnitude pruning would take from it (one global threshold, or the same share everywhere),
//! but which weights go is chosen by their cost in output error and the rest are updated to
//! make up for them.

use std::collections::BTreeMap;
use std::future::Future;

use super::sparsity::{SparsityOptions, eligible, magnitude_prune};
use crate::backend::Backend;
use crate::compress::calibration::layer_statistics::Gram;
use crate::compress::calibration::layerwise::walk_layers;
use crate::compress::progress::Progress;
use crate::compress::quantize::gptq::{Gptq, GptqOptions};
use crate::model::Model;
use crate::{Error, Result};

impl Model {
    /// `self` with `opts.sparsity` of its eligible weights zeroed by SparseGPT on `batches` of
    /// calibration images. `progress` is told before each layer and may cancel.
    pub async fn sparsified_calibrated<P, F>(
        &self,
        opts: &SparsityOptions,
        backend: &Backend,
        batches: &[Vec<Vec<f32>>],
        progress: &mut P,
    ) -> Result<Model>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        self.refuse_if_quantized("sparsify")?;
        // Each layer's share: what magnitude pruning with the same options zeroes there.
        let magnitude = magnitude_prune(self, opts)?;
        let shares: BTreeMap<String, f64> = eligible(&magnitude, opts.include_classifier)
            .into_iter()
            .filter_map(|key| {
                let t = magnitude.get(&key)?;
                let zeros = t.data.iter().filter(|v| **v == 0.0).count();
                Some((key, zeros as f64 / t.data.len().max(1) as f64))
            })
            .collect();
        walk_layers(
            self.clone(),
            |name| shares.contains_key(&format!("{name}.weight")),
            "SparseGPT",
            backend,
            batches,
            progress,
            |model, name, gram| {
                let key = format!("{name}.weight");
                let share = shares.get(&key).copied().unwrap_or(0.0);
                sparsify_layer(model, &key, gram, share)
            },
        )
        .await
    }
}

/// `model` with `share` of weight `key`'s values zeroed by SparseGPT with `gram`.
fn sparsify_layer(mut model: Model, key: &str, gram: &Gram, share: f64) -> Result<Model> {
    let Some(w) = model.weights.get_mut(key) else {
        return Ok(model);
    };
    let groups = gram.groups().max(1);
    let cols = gram.columns;
    let rows = w.shape.first().copied().unwrap_or(0) / groups;
    if rows * groups * cols != w.data.len() {
        return Err(Error::Structure(format!(
            "'{key}': {} weights do not make {groups} groups of {rows}×{cols}",
            w.data.len()
        )));
    }
    // SparseGPT keeps the columns in place (the mask is chosen block by block in order).
    let opts = GptqOptions {
        act_order: false,
        ..GptqOptions::default()
    };
    for g in 0..groups {
        let at = g * rows * cols..(g + 1) * rows * cols;
        let solver = Gptq::for_layer(gram, g, opts)?;
        let new = solver.sparsify(&w.data[at.clone()], rows, share);
        w.data[at].copy_from_slice(&new);
    }
    Ok(model)
}
