//! A compression as a value: [`Settings`] (what a person chose) become [`CompressOptions`]
//! (the pipeline's typed options) and then a [`Plan`], the steps that will run in order. Each
//! step declares its label, the photos it reads and why, and its part of the file name; the
//! checks, the photo request, the progress labels, the file name and the model card's
//! account of the run are all read from the plan, never worked out again beside it.

mod fields;
mod presets;
mod settings;
mod steps;
pub mod text;

use serde::Serialize;

pub use fields::SETTINGS;
pub use presets::{Preset, full_integer, presets};
pub use settings::Settings;
pub use steps::{Action, Photos, Purpose, Step};

use super::prune::blocks::BlockDrop;
use super::{CompressOptions, Granularity, QuantMethod};
use crate::quant::Precision;
use crate::{Error, Result};

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
        let drops = match &o.drop_blocks {
            BlockDrop::None | BlockDrop::Count(0) => None,
            BlockDrop::Count(n) => Some((
                format!("choosing {n} block{} to drop on the photos", plural(*n)),
                Photos::AsTheyAre(Purpose::BlockChoice),
                *n,
            )),
            BlockDrop::Names(names) => Some((
                format!("dropping {}", names.join(", ")),
                Photos::None,
                names.len(),
            )),
        };
        if let Some((label, photos, n)) = drops {
            let name = vec![(0, format!("d{n}"))];
            steps.push(step(Action::DropBlocks, label, photos, name));
        }
        if let Some(keep) = o.target_macs {
            steps.push(step(
                Action::MeetMacTarget,
                format!(
                    "measuring what each group's channels and block cost, for {} % of the MACs",
                    pct(keep)
                ),
                Photos::AsTheyAre(Purpose::MacBudget),
                vec![(0, format!("m{}", pct(keep)))],
            ));
            steps.push(step(
                Action::PruneChannels,
                "pruning each group to its chosen share".into(),
                Photos::None,
                Vec::new(),
            ));
        } else if o.prunes_channels() {
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
                        plural(n)
                    ),
                    Photos::None,
                )
            };
            let name = vec![(0, format!("c{}", pct(o.prune.ratio)))];
            steps.push(step(Action::PruneChannels, label, photos, name));
        }
        if o.prunes_channels() && o.reconstruct {
            steps.push(step(
                Action::Refit,
                "refitting the layers that read pruned channels".into(),
                statistics(Purpose::Refitting),
                vec![(2, "refit".into())],
            ));
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
            // Per-layer precisions: the file is named `mixed`, not for its default.
            let mixed = !o.quant.overrides.is_empty();
            let what = if mixed {
                format!(
                    "{} ({} layers in their own precision)",
                    w.label(),
                    o.quant.overrides.len()
                )
            } else {
                w.label().to_string()
            };
            let (label, photos) = match o.quant_method {
                QuantMethod::Rtn => (format!("quantizing weights to {what}"), Photos::None),
                QuantMethod::Gptq => (
                    format!("quantizing weights to {what} with GPTQ, layer by layer"),
                    statistics(Purpose::Gptq),
                ),
            };
            let mut name = Vec::new();
            if w != Precision::F32 || mixed {
                let mut q = if mixed { "mixed" } else { w.label() }.to_string();
                let integers =
                    w.bits().is_some() || o.quant.overrides.values().any(|p| p.bits().is_some());
                if integers {
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

    /// What the plan needs when `photos` calibration photos and `batch_norm` photos for the
    /// batch norms (the calibration photos when no separate set was given) are too few to run;
    /// `None` when they are enough. Its [`CalibrationNeed::message`] asks a person for them.
    pub fn short_of_photos(&self, photos: usize, batch_norm: usize) -> Option<CalibrationNeed> {
        let short = (self.fits_on_photos() && photos < CalibrationNeed::COUNTS.min)
            || (self.reads_batch_norm_photos() && batch_norm < CalibrationNeed::COUNTS.min);
        self.calibration_need().filter(|_| short)
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
        self.prune.ratio > 0.0 || !self.prune.overrides.is_empty() || self.target_macs.is_some()
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Refuse what cannot work together before any time is spent.
fn check_combinations(o: &CompressOptions) -> Result<()> {
    let bad = |m: &str| Err(Error::Invalid(m.into()));
    if o.reconstruct && !o.prunes_channels() && o.sparsity.sparsity == 0.0 {
        return bad(
            "reconstruction refits what pruning removed: use it with channel pruning or sparsity",
        );
    }
    if o.target_macs.is_some() {
        if o.prune.ratio > 0.0 {
            return bad(
                "a MAC target chooses how many channels each group loses: leave out the share of channels to remove",
            );
        }
        if o.prune.global || o.prune.steps > 1 {
            return bad(
                "a MAC target chooses each group's share in one step: leave out global ranking and steps",
            );
        }
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
