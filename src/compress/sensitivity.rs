//! Per-layer sensitivity: which layers cost the most when quantized alone.

use std::future::Future;

use serde::Serialize;

use super::agreement::{Tally, logits_of};
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

/// The most images whose passes [`sensitivity`] keeps at once (Auto's per-layer costs use at
/// most as many photos, `COST_PHOTOS`), and the most bytes those passes may hold: each holds
/// the activations its later steps read, a few MB an image where a network is widest.
const PASS_IMAGES: usize = 32;
const PASS_BYTES: usize = 256 << 20;

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
    progress: P,
) -> Result<Vec<Sensitivity>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    sensitivity_in_groups(
        model,
        precision,
        granularity,
        images,
        batch,
        backend,
        None,
        progress,
    )
    .await
}

/// [`sensitivity`] keeping the passes of `pass_images` images at a time; `None`: as many as
/// [`PASS_BYTES`] holds, up to [`PASS_IMAGES`].
#[allow(clippy::too_many_arguments)]
async fn sensitivity_in_groups<P, F>(
    model: &Model,
    precision: Precision,
    granularity: Granularity,
    images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    pass_images: Option<usize>,
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
    // batch of the folded original (folded once; each layer is quantized from it, and every
    // quantized model has its graph) goes on from layer to layer, and each quantized model
    // computes only what comes after its layer. The passes hold the activations their later
    // steps read: at most `pass_images` images' at a time, the layers gone through again (and
    // each quantized again) for each further group of images.
    let folded = model.fold_bn()?;
    let base = Classifier::for_logits(&folded, backend.clone())?;
    let pass_images = match pass_images {
        Some(n) => n.max(1),
        None => {
            (PASS_BYTES / widest_pass(&base, &images[..1], &layers)?.max(1)).clamp(1, PASS_IMAGES)
        }
    };
    let groups: Vec<&[Vec<f32>]> = images.chunks(pass_images).collect();
    let mut tallies = vec![Tally::default(); layers.len()];
    for (g, group) in groups.iter().enumerate() {
        let reference = &reference[g * pass_images..][..group.len()];
        let chunks: Vec<&[Vec<f32>]> = group.chunks(batch.max(1)).collect();
        let mut passes = chunks
            .iter()
            .map(|c| base.start(c))
            .collect::<Result<Vec<_>>>()?;
        for (i, ((layer, _), tally)) in layers.iter().zip(&mut tallies).enumerate() {
            let p = Progress {
                step: g * layers.len() + i + 1,
                steps: groups.len() * layers.len(),
                label: format!("sensitivity of {layer}"),
            };
            report(&mut progress, p).await?;
            let opts = alone(layer, precision, granularity);
            let q = Classifier::for_logits(&folded.quantized(&opts)?, backend.clone())?;
            let resumed = passes
                .iter_mut()
                .map(|pass| base.advance_to_layer(pass, layer).then(|| pass.clone()))
                .collect::<Option<Vec<_>>>();
            let logits = match resumed {
                Some(passes) => q.logits_from(&passes).await?,
                // Not a layer of the folded network's steps: the whole network.
                None => {
                    let mut logits = Vec::with_capacity(group.len());
                    for chunk in &chunks {
                        logits.extend(q.logits(chunk).await?);
                    }
                    logits
                }
            };
            tally.add(reference, &logits);
        }
    }
    let mut rows: Vec<Sensitivity> = layers
        .iter()
        .zip(&tallies)
        .map(|((layer, params), tally)| {
            let a = tally.agreement();
            Sensitivity {
                layer: layer.clone(),
                params: *params,
                agreement: a.agreement,
                kl: a.kl,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.kl.total_cmp(&a.kl));
    Ok(rows)
}

/// `layer` alone stored in `precision`, every other layer in fp32.
fn alone(layer: &str, precision: Precision, granularity: Granularity) -> QuantOptions {
    QuantOptions {
        weights: Precision::F32,
        granularity,
        keep_first_last: false,
        overrides: [(layer.to_string(), precision)].into_iter().collect(),
        exact_scales: false,
    }
}

/// The most bytes a pass of `base` over `image` holds before any of `layers`: one image's
/// share of what the passes keep.
fn widest_pass(base: &Classifier, image: &[Vec<f32>], layers: &[(String, usize)]) -> Result<usize> {
    let mut pass = base.start(image)?;
    let mut widest = pass.bytes();
    for (layer, _) in layers {
        if base.advance_to_layer(&mut pass, layer) {
            widest = widest.max(pass.bytes());
        }
    }
    Ok(widest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::session::no_progress;

    /// The losses from passes resumed at each layer, in one group of images (as many as the
    /// passes' bytes allow) or in groups of two, are those of the whole quantized network run
    /// on every image, to the last bit.
    #[test]
    fn resumed_passes_in_groups_give_the_whole_networks_losses() {
        let model = Model::seeded_resnet18(5);
        let backend = Backend::cpu();
        let mut rng = Rng::new(6);
        let images: Vec<Vec<f32>> = (0..5)
            .map(|_| (0..3 * 224 * 224).map(|_| rng.normal() as f32).collect())
            .collect();
        let (p, g) = (Precision::Int4, Granularity::PerChannel);
        let run = |pass_images| {
            pollster::block_on(sensitivity_in_groups(
                &model,
                p,
                g,
                &images,
                2,
                &backend,
                pass_images,
                no_progress,
            ))
            .unwrap()
        };
        let (measured, pairs) = (run(None), run(Some(2)));
        assert_eq!(measured, pairs);
        let reference = pollster::block_on(logits_of(&model, &backend, &images, 2)).unwrap();
        for row in &measured[..3] {
            let q = model.quantized(&alone(&row.layer, p, g)).unwrap();
            let whole = pollster::block_on(logits_of(&q, &backend, &images, 2)).unwrap();
            let a = crate::compress::agreement(&reference, &whole);
            assert!(a.kl > 0.0, "{}: int4 changed nothing", row.layer);
            assert_eq!(
                (row.kl, row.agreement),
                (a.kl, a.agreement),
                "{}",
                row.layer
            );
        }
    }
}
