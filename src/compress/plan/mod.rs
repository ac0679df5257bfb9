//! A compression as a value: [`Settings`] (what a person chose) become [`CompressOptions`]
//! (the pipeline's typed options) and then a [`Plan`], the steps that will run in order. Each
//! step declares its label, the photos it reads and why, and its part of the file name; the
//! checks, the photo request, the progress labels, the file name and the model card's
//! account of the run are all read from the plan, never worked out again beside it.

mod presets;
mod settings;
pub mod text;

use serde::Serialize;

pub use presets::{Preset, presets};
pub use settings::{SETTINGS, Settings};

use super::{CompressOptions, Granularity, QuantMethod};
use crate::quant::Precision;
use crate::{Error, Result};

/// What one step of a compression does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Remove channels (ranked from the weights, or measured on the photos).
    PruneChannels,
    /// Refit the layers that read pruned channels by least squares.
    Refit,
    /// Zero weights: by magnitude, or by SparseGPT on the photos.
    Sparsify,
    /// Re-estimate the batch norms' statistics.
    RecalibrateBatchNorms,
    /// Store the weights in their precision (round to nearest, or GPTQ on the photos).
    QuantizeWeights,
    /// Shift each integer layer's bias by its rounding's mean output change.
    CorrectBiases,
    /// Measure the activations' u8 ranges.
    CalibrateActivations,
}

/// Why a step reads photos, in the order a request for photos names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    MeasuredImportance,
    Refitting,
    Gptq,
    ActivationRanges,
    BiasCorrection,
    BatchNormStatistics,
}

impl Purpose {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::MeasuredImportance => "measured channel importance",
            Purpose::Refitting => "refitting after pruning",
            Purpose::Gptq => "GPTQ weight quantization",
            Purpose::ActivationRanges => "int8 activations",
            Purpose::BiasCorrection => "bias correction",
            Purpose::BatchNormStatistics => "batch-norm recalibration",
        }
    }

    /// Whether the step measures layer-input statistics (Gram matrices), which the
    /// augmented copies of the photos also feed.
    pub fn measures_layer_statistics(self) -> bool {
        matches!(
            self,
            Purpose::MeasuredImportance | Purpose::Refitting | Purpose::Gptq
        )
    }
}

/// The photos a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Photos {
    /// None: the step works on the weights alone.
    None,
    /// The calibration photos as they are.
    AsTheyAre(Purpose),
    /// The calibration photos and their augmented copies (layer statistics).
    WithCopies(Purpose),
    /// The batch-norm photos (the calibration photos unless a separate set was given).
    BatchNorm,
}

impl Photos {
    pub fn purpose(self) -> Option<Purpose> {
        match self {
            Photos::None => None,
            Photos::AsTheyAre(p) | Photos::WithCopies(p) => Some(p),
            Photos::BatchNorm => Some(Purpose::BatchNormStatistics),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub action: Action,
    /// What it does, for progress reports and the model card.
    pub label: String,
    pub photos: Photos,
    /// Its parts of the file name, with their place in it (the name reads: channels,
    /// sparsity, refit, precision, method, batch norms).
    #[serde(skip)]
    name_parts: Vec<(u8, String)>,
}

/// The steps a compression runs, in order, with the options they run with.
#[derive(Debug, Clone)]
pub struct Plan {
    pub options: CompressOptions,
    pub steps: Vec<Step>,
}

/// How many calibration photos a plan needs: `min` to run at all, `advised` for usable
/// ranges, `better` for steady ones (ranges and means are estimated from the photos' values).
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationNeed {
    pub min: usize,
    pub advised: usize,
    pub better: usize,
    /// The steps that use the photos, for people.
    pub why: String,
}

impl CalibrationNeed {
    /// The counts every calibrated step shares (`why` left empty).
    pub const COUNTS: CalibrationNeed = CalibrationNeed {
        min: 1,
        advised: 4,
        better: 16,
        why: String::new(),
    };

    /// The one-line request for photos, when fewer than `min` are there.
    pub fn message(&self) -> String {
        format!(
            "{} calibrated on your photos: upload at least {} first ({} or more are better)",
            self.why, self.advised, self.better
        )
    }
}

impl Plan {
    /// The steps `options` ask for, or why they cannot run together (checked before any
    /// photo is read).
    pub fn new(options: CompressOptions) -> Result<Plan> {
        check_combinations(&options)?;
        let o = &options;
        let pct = |r: f32| (r * 100.0).round() as u32;
        let statistics = |p: Purpose| {
            if o.augment == super::Augment::None {
                Photos::AsTheyAre(p)
            } else {
                Photos::WithCopies(p)
            }
        };
        let step = |action, label: String, photos, name_parts| Step {
            action,
            label,
            photos,
            name_parts,
        };
        let mut steps = Vec::new();
        if o.prunes_channels() {
            let n = o.prune.steps.max(1);
            let (label, photos) = if o.prune.importance.is_measured() {
                (
                    format!(
                        "measuring channel importance ({}) and pruning channels",
                        o.prune.importance.label()
                    ),
                    statistics(Purpose::MeasuredImportance),
                )
            } else {
                (
                    format!(
                        "pruning channels ({n} step{}, re-scoring between them)",
                        if n == 1 { "" } else { "s" }
                    ),
                    Photos::None,
                )
            };
            let name = vec![(0, format!("c{}", pct(o.prune.ratio)))];
            steps.push(step(Action::PruneChannels, label, photos, name));
            if o.reconstruct {
                steps.push(step(
                    Action::Refit,
                    "refitting the layers that read pruned channels".into(),
                    statistics(Purpose::Refitting),
                    vec![(2, "refit".into())],
                ));
            }
        }
        if o.sparsity.sparsity > 0.0 {
            let mut name = vec![(1, format!("s{}", pct(o.sparsity.sparsity)))];
            let (label, photos) = if o.reconstruct {
                name.push((2, "refit".into()));
                (
                    "zeroing weights with SparseGPT, layer by layer",
                    statistics(Purpose::Refitting),
                )
            } else {
                ("zeroing the smallest weights", Photos::None)
            };
            steps.push(step(Action::Sparsify, label.into(), photos, name));
        }
        if o.recalibrate_bn {
            steps.push(step(
                Action::RecalibrateBatchNorms,
                "recalibrating batch norms".into(),
                Photos::BatchNorm,
                vec![(5, "bn".into())],
            ));
        }
        if o.quantizes_weights() {
            let w = o.quant.weights;
            let (label, photos) = match o.quant_method {
                QuantMethod::Rtn => (format!("quantizing weights to {}", w.label()), Photos::None),
                QuantMethod::Gptq => (
                    format!(
                        "quantizing weights to {} with GPTQ, layer by layer",
                        w.label()
                    ),
                    statistics(Purpose::Gptq),
                ),
            };
            let mut name = Vec::new();
            if w != Precision::F32 {
                let mut q = w.label().to_string();
                if w.bits().is_some() {
                    match o.quant.granularity {
                        Granularity::PerTensor => q.push('t'),
                        Granularity::Group(n) => q.push_str(&format!("g{n}")),
                        Granularity::PerChannel => {}
                    }
                }
                if o.act_quant.is_some() {
                    q.push_str("a8");
                }
                name.push((3, q));
                if o.quant_method == QuantMethod::Gptq {
                    name.push((4, "gptq".into()));
                }
            }
            steps.push(step(Action::QuantizeWeights, label, photos, name));
            if o.bias_correction {
                steps.push(step(
                    Action::CorrectBiases,
                    "correcting biases for the rounding".into(),
                    Photos::AsTheyAre(Purpose::BiasCorrection),
                    Vec::new(),
                ));
            }
        }
        if o.act_quant.is_some() {
            steps.push(step(
                Action::CalibrateActivations,
                "calibrating activation ranges".into(),
                Photos::AsTheyAre(Purpose::ActivationRanges),
                Vec::new(),
            ));
        }
        let plan = Plan { options, steps };
        if plan.options.augment != super::Augment::None && !plan.measures_layer_statistics() {
            return Err(Error::Invalid(format!(
                "augmentation '{}' multiplies the photos GPTQ, refitting and measured importance use: choose one of them",
                plan.options.augment.label()
            )));
        }
        Ok(plan)
    }

    /// The plan of `settings`.
    pub fn of(settings: &Settings) -> Result<Plan> {
        Plan::new(settings.to_options()?)
    }

    /// Why the plan reads photos, each reason once, in [`Purpose`]'s order.
    pub fn purposes(&self) -> Vec<Purpose> {
        let mut p: Vec<Purpose> = self
            .steps
            .iter()
            .filter_map(|s| s.photos.purpose())
            .collect();
        p.sort();
        p.dedup();
        p
    }

    /// Which photos the plan needs, and how many; `None` when no step reads any.
    pub fn calibration_need(&self) -> Option<CalibrationNeed> {
        let uses: Vec<&str> = self.purposes().iter().map(|p| p.label()).collect();
        let why = match uses.as_slice() {
            [] => return None,
            [one] => format!("{one} is"),
            [init @ .., last] => format!("{} and {last} are", init.join(", ")),
        };
        Some(CalibrationNeed {
            why,
            ..CalibrationNeed::COUNTS
        })
    }

    /// Whether a step other than batch-norm recalibration fits on the calibration photos.
    pub fn fits_on_photos(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.photos, Photos::AsTheyAre(_) | Photos::WithCopies(_)))
    }

    /// Whether a step recalibrates batch norms.
    pub fn reads_batch_norm_photos(&self) -> bool {
        self.steps.iter().any(|s| s.photos == Photos::BatchNorm)
    }

    /// Whether a step measures layer-input statistics (which the augmented copies feed).
    pub fn measures_layer_statistics(&self) -> bool {
        self.purposes()
            .iter()
            .any(|p| p.measures_layer_statistics())
    }

    /// Refuse to run with too few photos: `photos` calibration photos, `batch_norm` photos
    /// for the batch norms (the calibration photos when no separate set was given).
    pub fn check_photos(&self, photos: usize, batch_norm: usize) -> Result<()> {
        let short = (self.fits_on_photos() && photos < CalibrationNeed::COUNTS.min)
            || (self.reads_batch_norm_photos() && batch_norm < CalibrationNeed::COUNTS.min);
        match self.calibration_need() {
            Some(need) if short => Err(Error::Invalid(need.message())),
            _ => Ok(()),
        }
    }

    /// How many photos a run on `photos` calibration photos and `batch_norm` separate
    /// batch-norm photos (0: none given) reads.
    pub fn photos_used(&self, photos: usize, batch_norm: usize) -> usize {
        let fit = if self.fits_on_photos() { photos } else { 0 };
        let bn = match (self.reads_batch_norm_photos(), batch_norm) {
            (false, _) => 0,
            (true, 0) if self.fits_on_photos() => 0, // the same photos, counted once
            (true, 0) => photos,
            (true, n) => n,
        };
        fit + bn
    }

    /// A file name stem that says what the file is: `resnet18-c30-int8`,
    /// `resnet18-s50-int8a8-bn` (c: channels pruned %, s: sparsity %, a8: u8 activations, bn:
    /// recalibrated batch norms).
    pub fn file_stem(&self, architecture: &str) -> String {
        let mut parts: Vec<&(u8, String)> = self.steps.iter().flat_map(|s| &s.name_parts).collect();
        parts.sort_by_key(|(rank, _)| *rank);
        parts.dedup();
        let mut name = vec![architecture];
        name.extend(parts.iter().map(|(_, p)| p.as_str()));
        if name.len() == 1 {
            name.push("fp32");
        }
        name.join("-")
    }

    /// The progress labels, in order.
    pub fn labels(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.label.clone()).collect()
    }
}

impl CompressOptions {
    pub fn prunes_channels(&self) -> bool {
        self.prune.ratio > 0.0 || !self.prune.overrides.is_empty()
    }

    pub fn quantizes_weights(&self) -> bool {
        self.quant.weights != Precision::F32 || !self.quant.overrides.is_empty()
    }

    /// [`Plan::file_stem`] of these options; a stem for options that cannot run together
    /// still names what they ask for.
    pub fn file_stem(&self, architecture: &str) -> String {
        match Plan::new(self.clone()) {
            Ok(p) => p.file_stem(architecture),
            Err(_) => format!("{architecture}-compressed"),
        }
    }
}

/// Refuse what cannot work together before any time is spent.
fn check_combinations(o: &CompressOptions) -> Result<()> {
    let bad = |m: &str| Err(Error::Invalid(m.into()));
    if o.reconstruct && !o.prunes_channels() && o.sparsity.sparsity == 0.0 {
        return bad(
            "reconstruction refits what pruning removed: use it with channel pruning or sparsity",
        );
    }
    if o.prunes_channels() && o.prune.importance.is_measured() && o.prune.steps > 1 {
        return Err(Error::Invalid(format!(
            "importance '{}' is measured once, on the original network: prune in one step",
            o.prune.importance.label()
        )));
    }
    if o.quant_method == QuantMethod::Gptq {
        let any_int = o.quant.weights.bits().is_some()
            || o.quant.overrides.values().any(|p| p.bits().is_some());
        if !any_int {
            return bad("GPTQ chooses integers: use it with int8 or int4 weights");
        }
    }
    if o.act_quant.is_some() {
        if o.quant.weights == Precision::Int4 {
            return bad(
                "int4 weights with quantized activations are not supported: use int8, or leave activations in float",
            );
        }
        if o.quant.weights != Precision::Int8 {
            return bad("activation quantization needs int8 weights (--quant int8)");
        }
        if let Granularity::Group(_) = o.quant.granularity {
            return bad(
                "activation quantization needs per-channel or per-tensor weights, not groups",
            );
        }
    }
    Ok(())
}
