//! The whole compression, in the order that works: block dropping and structured pruning, magnitude sparsity,
//! batch-norm recalibration, weight quantization, activation calibration. The CLI and the page
//! both call [`compress`], which runs a [`Plan`]'s steps; each step is reported to a progress
//! callback, which may cancel.

use std::future::Future;

use super::plan::{Action, Plan};
use super::progress::{Progress, report};
use super::prune::blocks::{BlockDrop, DroppedBlock, choose_blocks, named_blocks, network_macs};
use super::prune::budget::meet_mac_target;
use super::prune::importance::{ChannelImportance, group_width};
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
    /// Whole residual blocks to remove (before channels are pruned).
    pub drop_blocks: BlockDrop,
    /// Keep at most this share of the MACs: per-group ratios (and blocks to drop) chosen by
    /// the loss each option measures on the calibration images, instead of `prune.ratio`.
    pub target_macs: Option<f32>,
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
    Ok(run(
        &plan, model, bn_images, act_images, batch, backend, progress,
    )
    .await?
    .0)
}

/// What a run chose about the network's shape: the blocks it dropped and why, and the share
/// of each channel group's channels it removed (every group when any lost channels, none
/// otherwise; groups of dropped blocks are absent).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Shape {
    pub dropped_blocks: Vec<DroppedBlock>,
    pub group_ratios: std::collections::BTreeMap<String, f32>,
}

impl Shape {
    /// `dropped` and the removed shares of `original`'s groups in `compressed`.
    fn of(original: &Model, compressed: &Model, dropped: Vec<DroppedBlock>) -> Shape {
        let after = compressed.channel_groups();
        let mut group_ratios: std::collections::BTreeMap<String, f32> = original
            .channel_groups()
            .iter()
            .filter_map(|g| {
                let a = after.iter().find(|a| a.name == g.name)?;
                let (w0, w) = (
                    group_width(g, &original.weights),
                    group_width(a, &compressed.weights),
                );
                (w0 > 0).then(|| (g.name.clone(), 1.0 - w as f32 / w0 as f32))
            })
            .collect();
        if group_ratios.values().all(|&r| r == 0.0) {
            group_ratios.clear();
        }
        Shape {
            dropped_blocks: dropped,
            group_ratios,
        }
    }
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
    /// A bias correction follows the weights' rounding: the float model is kept for it.
    keeps_float: bool,
    /// The blocks dropped so far.
    dropped: Vec<DroppedBlock>,
    /// The shares the MAC target chose, by group.
    chosen_ratios: Option<std::collections::HashMap<String, f32>>,
    /// The MACs of the network the run started from.
    original_macs: u64,
}

/// Run `plan`'s steps on `model` (see [`compress`]); also returns the shape it chose.
pub async fn run<P, F>(
    plan: &Plan,
    model: &Model,
    bn_images: &[Vec<f32>],
    act_images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    mut progress: P,
) -> Result<(Model, Shape)>
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
            batches_of(
                &plan
                    .options
                    .augment
                    .apply(act_images, model.arch.input_size())?,
            )
        } else {
            Vec::new()
        },
        batch_norm: batches_of(bn_images),
    };
    let mut m = model.clone();
    let mut carried = Carried {
        original_macs: network_macs(model),
        keeps_float: plan.steps.iter().any(|s| s.action == Action::CorrectBiases),
        ..Carried::default()
    };
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
    let shape = Shape::of(model, &m, std::mem::take(&mut carried.dropped));
    Ok((m, shape))
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
        Action::DropBlocks => {
            let dropped = match &opts.drop_blocks {
                BlockDrop::Count(n) => {
                    choose_blocks(&m, *n, backend, &inputs.photos, progress).await?
                }
                BlockDrop::Names(names) => named_blocks(&m, names)?,
                BlockDrop::None => Vec::new(),
            };
            let names: Vec<String> = dropped.iter().map(|d| d.name.clone()).collect();
            carried.dropped.extend(dropped);
            m.with_blocks_dropped(&names)?
        }
        Action::MeetMacTarget => {
            let keep = opts.target_macs.ok_or_else(|| missing("the MAC target"))?;
            let measured = measured_importance(&m, opts, inputs, backend).await?;
            let criterion = criterion_of(opts, measured.as_ref())?;
            let target = (carried.original_macs as f64 * keep as f64).floor() as u64;
            let budget = meet_mac_target(
                &m,
                target,
                &opts.prune,
                criterion,
                opts.reconstruct,
                backend,
                &inputs.photos,
                &inputs.statistics,
                progress,
            )
            .await?;
            carried.dropped.extend(budget.dropped);
            carried.chosen_ratios = Some(budget.ratios.into_iter().collect());
            budget.model
        }
        Action::PruneChannels => {
            let prune = match carried.chosen_ratios.take() {
                // Exactly the widths the MAC target chose.
                Some(overrides) => PruneOptions {
                    ratio: 0.0,
                    overrides,
                    round_to: 1,
                    ..opts.prune.clone()
                },
                None => opts.prune.clone(),
            };
            let measured = measured_importance(&m, opts, inputs, backend).await?;
            let (pruned, kept) = m.pruned_by(&prune, criterion_of(opts, measured.as_ref())?)?;
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
            // The float model is kept only for a bias correction to come.
            let float = carried.keeps_float.then(|| m.clone());
            let quantized = match opts.quant_method {
                QuantMethod::Rtn => m.into_quantized(&quant)?,
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
            carried.before_rounding = float;
            quantized
        }
        Action::CorrectBiases => {
            let float = carried
                .before_rounding
                .take()
                .ok_or_else(|| missing("bias correction"))?;
            // Input means are measured on the folded float model.
            m.bias_corrected(&float.into_folded()?, backend.clone(), &inputs.photos)
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

/// The measured channel importance of `m` when the options rank channels by one.
async fn measured_importance(
    m: &Model,
    opts: &CompressOptions,
    inputs: &Inputs,
    backend: &Backend,
) -> Result<Option<MeasuredImportance>> {
    if !opts.prune.importance.is_measured() {
        return Ok(None);
    }
    Ok(Some(
        MeasuredImportance::measure(m, opts.prune.importance, backend, &inputs.statistics).await?,
    ))
}

/// The criterion channels are ranked by: `measured`, or the one read from the weights.
fn criterion_of<'a>(
    opts: &CompressOptions,
    measured: Option<&'a MeasuredImportance>,
) -> Result<&'a dyn ChannelImportance> {
    match measured {
        Some(m) => Ok(m),
        None => opts.prune.importance.criterion(),
    }
}
