//! The whole compression, in the order that works: structured pruning, magnitude sparsity,
//! batch-norm recalibration, weight quantization, activation calibration. The CLI and the page
//! both call [`compress`], which runs a [`Plan`]'s steps; each step is reported to a progress
//! callback, which may cancel.

use std::future::Future;

use super::plan::{Action, Plan};
use super::progress::{Progress, report};
use super::prune::measured_importance::MeasuredImportance;
use super::{Augment, Calibration, GptqOptions, QuantMethod, QuantOptions};
use super::{KeptChannels, PruneOptions, SparsityOptions, recalibrate_bn};
use crate::backend::Backend;
use crate::model::Model;
use crate::{Error, Result};

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

/// The photos of a run, in batches: as they are, with their copies (for the layer
/// statistics), and the batch-norm photos.
struct Inputs {
    photos: Vec<Vec<Vec<f32>>>,
    statistics: Vec<Vec<Vec<f32>>>,
    batch_norm: Vec<Vec<Vec<f32>>>,
}

/// What a step leaves for a later one: the network before pruning and the channels kept
/// (refitting compares with it), the float network before rounding (bias correction does).
#[derive(Default)]
struct Carried {
    before_pruning: Option<(Model, KeptChannels)>,
    before_rounding: Option<Model>,
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
    if let Some(need) = plan.short_of_photos(act_images.len(), bn_images.len()) {
        return Err(Error::Invalid(format!(
            "{} calibrated on calibration images, and none were given",
            need.why
        )));
    }
    let batches_of = |images: &[Vec<f32>]| -> Vec<Vec<Vec<f32>>> {
        images.chunks(batch.max(1)).map(<[_]>::to_vec).collect()
    };
    let inputs = Inputs {
        photos: batches_of(act_images),
        // Only the layer statistics see the copies (see `CompressOptions::augment`).
        statistics: if plan.measures_layer_statistics() {
            batches_of(&plan.options.augment.apply(act_images)?)
        } else {
            Vec::new()
        },
        batch_norm: batches_of(bn_images),
    };
    let mut m = model.clone();
    let mut carried = Carried::default();
    for (i, step) in plan.steps.iter().enumerate() {
        let p = Progress {
            step: i + 1,
            steps: plan.steps.len(),
            label: step.label.clone(),
        };
        report(&mut progress, p).await?;
        m = apply(
            step.action,
            m,
            &plan.options,
            &inputs,
            &mut carried,
            backend,
            &mut progress,
        )
        .await?;
    }
    Ok(m)
}

/// One step of a plan on `m`.
async fn apply<P, F>(
    action: Action,
    m: Model,
    opts: &CompressOptions,
    inputs: &Inputs,
    carried: &mut Carried,
    backend: &Backend,
    progress: &mut P,
) -> Result<Model>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let missing = |what: &str| Error::Invalid(format!("{what} came before the step it needs"));
    Ok(match action {
        Action::PruneChannels => {
            let (pruned, kept) = if opts.prune.importance.is_measured() {
                let measured = MeasuredImportance::measure(
                    &m,
                    opts.prune.importance,
                    backend,
                    &inputs.statistics,
                )
                .await?;
                m.pruned_by(&opts.prune, &measured)?
            } else {
                m.pruned_by(&opts.prune, opts.prune.importance.criterion()?)?
            };
            carried.before_pruning = Some((m, kept));
            pruned
        }
        Action::Refit => {
            let (original, kept) = carried
                .before_pruning
                .take()
                .ok_or_else(|| missing("refitting"))?;
            m.reconstructed(
                &original,
                &kept,
                None,
                backend,
                &inputs.statistics,
                progress,
            )
            .await?
        }
        Action::Sparsify if opts.reconstruct => m
            .sparsified_calibrated(&opts.sparsity, backend, &inputs.statistics, progress)
            .await?
            .with_sparse_marked(),
        Action::Sparsify => m.sparsified(&opts.sparsity)?,
        Action::RecalibrateBatchNorms => {
            recalibrate_bn(&m, backend.clone(), &inputs.batch_norm).await?
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
                        &inputs.statistics,
                        progress,
                    )
                    .await?
                }
            };
            carried.before_rounding = Some(m);
            quantized
        }
        Action::CorrectBiases => {
            let float = carried
                .before_rounding
                .take()
                .ok_or_else(|| missing("bias correction"))?;
            // Input means are measured on the folded float model.
            m.bias_corrected(&float.fold_bn()?, backend.clone(), &inputs.photos)
                .await?
        }
        Action::CalibrateActivations => {
            let method = opts.act_quant.unwrap_or(Calibration::MinMax);
            let act = m
                .calibrate_activations(backend.clone(), &inputs.photos, method)
                .await?;
            m.with_activation_quant(act)?
        }
    })
}
