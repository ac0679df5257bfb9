//! Per-layer sensitivity: which layers cost the most when quantized alone.

use std::future::Future;

use serde::Serialize;

use super::agreement::{agreement, logits_of};
use super::progress::{Progress, report};
use super::{Granularity, QuantOptions};
use crate::backend::Backend;
use crate::model::Model;
use crate::predict::Classifier;
use crate::quant::Precision;
use crate::{Error, Result};

/// One row of the sensitivity table: compressing only `layer` changed the outputs this much.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sensitivity {
    pub layer: String,
    pub params: usize,
    pub agreement: f64,
    pub kl: f64,
}

/// Per-layer sensitivity: quantize one conv/linear layer at a time to `precision` (all others
/// fp32) and measure the outputs against the original on `images`, in batches of `batch`.
/// Sorted most sensitive first.
pub async fn sensitivity<P, F>(
    model: &Model,
    precision: Precision,
    granularity: Granularity,
    images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    mut progress: P,
) -> Result<Vec<Sensitivity>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if images.is_empty() {
        return Err(Error::Invalid(
            "sensitivity needs at least one calibration image".into(),
        ));
    }
    let reference = logits_of(model, backend, images, batch).await?;
    let graph = model.graph();
    let layers: Vec<(String, usize)> = graph
        .nodes
        .iter()
        .filter_map(|n| n.op.layer_name())
        .map(|name| {
            let params = model
                .weights
                .get(&format!("{name}.weight"))
                .map(|t| t.len())
                .unwrap_or(0);
            (name.to_string(), params)
        })
        .collect();
    // Everything before a layer computes the same with it quantized or not: one pass per
    // batch of the folded original (the graph every quantized model has) goes on from layer
    // to layer, and each quantized model computes only what comes after its layer.
    let folded = model.fold_bn()?;
    let base = Classifier::for_logits(&folded, backend.clone())?;
    let chunks: Vec<&[Vec<f32>]> = images.chunks(batch.max(1)).collect();
    let mut passes = chunks
        .iter()
        .map(|c| base.start(c))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::with_capacity(layers.len());
    for (i, (layer, params)) in layers.iter().enumerate() {
        let p = Progress {
            step: i + 1,
            steps: layers.len(),
            label: format!("sensitivity of {layer}"),
        };
        report(&mut progress, p).await?;
        let opts = QuantOptions {
            weights: Precision::F32,
            granularity,
            keep_first_last: false,
            overrides: [(layer.clone(), precision)].into_iter().collect(),
            exact_scales: false,
        };
        let q = Classifier::for_logits(&model.quantized(&opts)?, backend.clone())?;
        let resumed = passes
            .iter_mut()
            .map(|pass| base.advance_to_layer(pass, layer).then(|| pass.clone()))
            .collect::<Option<Vec<_>>>();
        let logits = match resumed {
            Some(passes) => q.logits_from(&passes).await?,
            // Not a layer of the folded network's steps: the whole network.
            None => {
                let mut logits = Vec::with_capacity(images.len());
                for chunk in &chunks {
                    logits.extend(q.logits(chunk).await?);
                }
                logits
            }
        };
        let a = agreement(&reference, &logits);
        rows.push(Sensitivity {
            layer: layer.clone(),
            params: *params,
            agreement: a.agreement,
            kl: a.kl,
        });
    }
    rows.sort_by(|a, b| b.kl.total_cmp(&a.kl));
    Ok(rows)
}
