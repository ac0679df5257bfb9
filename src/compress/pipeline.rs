//! The whole compression, in the order that works: structured pruning, magnitude sparsity,
//! batch-norm recalibration, weight quantization, activation calibration. The CLI and the page
//! both call [`compress`], which runs a [`Plan`]'s steps; each step is reported to a progress
//! callback, which may cancel.

use std::future::Future;

use super::plan::{Action, Plan};
use super::progress::{Progress, report};
use super::prune::measured_importance::MeasuredImportance;
use super::{Augment, Calibration, GptqOptions, QuantMethod, QuantOptions};
use super::{PruneOptions, SparsityOptions, recalibrate_bn};
use crate::Result;
use crate::backend::Backend;
use crate::model::Model;

/// Everything one compression run does.
#[derive(Debug, Clone, Default)]
pub struct CompressOptions {
    pub prune: PruneOptions,
    pub sparsity: SparsityOptions,
    /// Re-estimate batch-norm statistics on the calibration images after pruning.
    pub recalibrate_bn: bool,
    pub quant: QuantOptions,
    /// Round to nearest, or GPTQ on the calibration images.
    pub quant_method: QuantMethod,
    /// With calibration images: after structured pruning, refit the layers that read pruned
    /// channels by least squares; sparsity by SparseGPT instead of magnitude.
    pub reconstruct: bool,
    /// Copies of the calibration images the layer statistics (GPTQ, SparseGPT, refitting,
    /// measured importance) are also measured on; activation ranges, bias correction and
    /// batch-norm recalibration use the images as they are.
    pub augment: Augment,
    /// Quantize activations to u8, ranges from the calibration images.
    pub act_quant: Option<Calibration>,
    /// After weight quantization, shift each integer layer's bias by the mean output change its
    /// rounding causes on the calibration images (bias correction).
    pub bias_correction: bool,
}

/// Run the plan of `opts` on `model`. `bn_images` (batch-norm recalibration) and `act_images`
/// (every other calibrated step) are preprocessed images, used in batches of `batch`.
/// `progress` is told before each step and awaited (the page yields to its event loop there);
/// resolving to `false` cancels.
pub async fn compress<P, F>(
    model: &Model,
    opts: &CompressOptions,
    bn_images: &[Vec<f32>],
    act_images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    progress: P,
) -> Result<Model>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let plan = Plan::new(opts.clone())?;
    run(
        &plan, model, bn_images, act_images, batch, backend, progress,
    )
    .await
}

/// Run `plan`'s steps on `model` (see [`compress`]).
pub async fn run<P, F>(
    plan: &Plan,
    model: &Model,
    bn_images: &[Vec<f32>],
    act_images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    mut progress: P,
) -> Result<Model>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    plan.check_photos(act_images.len(), bn_images.len())?;
    let opts = &plan.options;
    let batches_of = |images: &[Vec<f32>]| -> Vec<Vec<Vec<f32>>> {
        images.chunks(batch.max(1)).map(<[_]>::to_vec).collect()
    };
    // Only the layer statistics see the copies (see `CompressOptions::augment`).
    let statistics_batches = if plan.measures_layer_statistics() {
        batches_of(&opts.augment.apply(act_images)?)
    } else {
        Vec::new()
    };
    let mut m = model.clone();
    // What the refit and bias-correction steps compare with: the model before the step
    // before them.
    let mut before_pruning: Option<(Model, super::KeptChannels)> = None;
    let mut float_before_rounding: Option<Model> = None;
    for (i, step) in plan.steps.iter().enumerate() {
        let p = Progress {
            step: i + 1,
            steps: plan.steps.len(),
            label: step.label.clone(),
        };
        report(&mut progress, p).await?;
        m = match step.action {
            Action::PruneChannels => {
                let (pruned, kept) = if opts.prune.importance.is_measured() {
                    let measured = MeasuredImportance::measure(
                        &m,
                        opts.prune.importance,
                        backend,
                        &statistics_batches,
                    )
                    .await?;
                    m.pruned_by(&opts.prune, &measured)?
                } else {
                    m.pruned_by(&opts.prune, opts.prune.importance.criterion()?)?
                };
                before_pruning = Some((m, kept));
                pruned
            }
            Action::Refit => {
                let (original, kept) = before_pruning
                    .take()
                    .ok_or_else(|| crate::Error::Invalid("refit before pruning".into()))?;
                m.reconstructed(
                    &original,
                    &kept,
                    None,
                    backend,
                    &statistics_batches,
                    &mut progress,
                )
                .await?
            }
            Action::Sparsify => {
                if opts.reconstruct {
                    m.sparsified_calibrated(
                        &opts.sparsity,
                        backend,
                        &statistics_batches,
                        &mut progress,
                    )
                    .await?
                    .with_sparse_marked()
                } else {
                    m.sparsified(&opts.sparsity)?
                }
            }
            Action::RecalibrateBatchNorms => {
                recalibrate_bn(&m, backend.clone(), &batches_of(bn_images)).await?
            }
            Action::QuantizeWeights => {
                // With quantized activations, weight scales go on the grid that keeps the
                // exported graph's arithmetic exact (see `ActQuant`).
                let quant = QuantOptions {
                    exact_scales: opts.quant.exact_scales || opts.act_quant.is_some(),
                    ..opts.quant.clone()
                };
                let quantized = match opts.quant_method {
                    QuantMethod::Rtn => m.quantized(&quant)?,
                    QuantMethod::Gptq => {
                        m.quantized_gptq(
                            &quant,
                            GptqOptions::default(),
                            backend,
                            &statistics_batches,
                            &mut progress,
                        )
                        .await?
                    }
                };
                float_before_rounding = Some(m);
                quantized
            }
            Action::CorrectBiases => {
                let float = float_before_rounding.take().ok_or_else(|| {
                    crate::Error::Invalid("bias correction before rounding".into())
                })?;
                // Input means are measured on the folded float model.
                m.bias_corrected(&float.fold_bn()?, backend.clone(), &batches_of(act_images))
                    .await?
            }
            Action::CalibrateActivations => {
                let method = opts.act_quant.unwrap_or(Calibration::MinMax);
                let act = m
                    .calibrate_activations(backend.clone(), &batches_of(act_images), method)
                    .await?;
                m.with_activation_quant(act)?
            }
        };
    }
    Ok(m)
}
