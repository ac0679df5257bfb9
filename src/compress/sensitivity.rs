//! Per-layer sensitivity: which layers cost the most when quantized alone.

use std::future::Future;

use serde::Serialize;

use super::agreement::{agreement, logits_of};
use super::progress::{Progress, report};
use super::{Granularity, QuantOptions};
use crate::backend::Backend;
use crate::model::Model;
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
        let q = model.quantized(&opts)?;
        let a = agreement(&reference, &logits_of(&q, backend, images, batch).await?);
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
