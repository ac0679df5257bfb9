//! The compression settings people choose, defined once. The CLI fills [`Settings`] from its
//! flags, the page from its form (the same names, as JSON), the model card records it, and
//! [`Settings::to_options`] is the one conversion into the pipeline's options. The limits the
//! page's form enforces, the rule for how many calibration photos are needed and the presets
//! live here too, so that no front end carries its own copy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Calibration, CompressOptions, Importance, PruneOptions, QuantOptions, SparsityOptions,
};
use crate::quant::Precision;
use crate::{Error, Result};

/// Every compression knob, with the CLI's flag names (`prune_channels` is `--prune-channels`)
/// and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Share of each channel group to remove.
    pub prune_channels: f32,
    /// `l1`, `l2`, `bn` (from the weights), `output` or `hessian` (measured on the calibration
    /// photos).
    pub importance: String,
    /// Rank channels across all groups instead of the same share from each.
    pub global: bool,
    /// Keep widths a multiple of this.
    pub round_to: usize,
    /// Prune (and sparsify) in this many steps.
    pub steps: usize,
    /// Let the stem's group lose channels too.
    pub prune_stem: bool,
    /// `internal` (only groups inside blocks; residual streams and final features keep their
    /// width), or `all`. Internal by default: on EfficientNet-Lite0 with refit, 30 % of the
    /// block-internal channels (29 % fewer MACs) scored 0.408 top-1 (mean KL 1.96) where 20 %
    /// of every group (28 % fewer MACs) scored 0.356 (KL 2.21).
    pub prune_scope: String,
    /// Share of the weights to zero.
    pub sparsity: f32,
    /// Refit the remaining weights on the calibration photos after pruning (least squares for
    /// channels, SparseGPT for sparsity).
    pub reconstruct: bool,
    /// `none`, `flip` or `flip-crop`: copies of the calibration photos the layer statistics
    /// (GPTQ, refitting, measured importance) are also measured on.
    pub augment: String,
    /// Re-estimate batch-norm statistics on the calibration photos.
    pub recalibrate_bn: bool,
    /// `none`, `int8`, `int4` or `fp16`.
    pub quant: String,
    /// `channel`, `tensor` or `group:N`.
    pub granularity: String,
    /// How integers are chosen: `rtn` (round to nearest) or `gptq` (calibrated on the photos).
    pub quant_method: String,
    /// First conv and classifier one step higher.
    pub keep_first_last: bool,
    /// Per-layer precision, `layer name → none|int8|int4|fp16`.
    pub layer_quant: BTreeMap<String, String>,
    /// Quantize activations to u8 (ranges from the calibration photos).
    pub act_quant: bool,
    /// `minmax` or `percentile[:P]`.
    pub calibration: String,
    /// Remove the rounding's mean output shift from each integer layer's bias.
    pub bias_correction: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prune_channels: 0.0,
            importance: "l1".into(),
            global: false,
            round_to: 1,
            steps: 1,
            prune_stem: false,
            prune_scope: "internal".into(),
            sparsity: 0.0,
            reconstruct: false,
            augment: "none".into(),
            recalibrate_bn: false,
            quant: "none".into(),
            granularity: "channel".into(),
            quant_method: "rtn".into(),
            keep_first_last: false,
            layer_quant: BTreeMap::new(),
            act_quant: false,
            calibration: "minmax".into(),
            bias_correction: false,
        }
    }
}

/// The range of a numeric setting, for forms and messages.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limit {
    /// The setting's name in [`Settings`].
    pub name: &'static str,
    /// What it is, for people ("the share of channels to remove").
    pub what: &'static str,
    pub min: f64,
    pub max: f64,
}

/// Beyond these values a setting empties layers or does nothing useful: 90 % of a group's
/// channels is the most that still leaves every layer a few; 95 % sparsity likewise; widths
/// rounded to more than 64 and more than 10 steps have no use on these networks.
pub const LIMITS: [Limit; 4] = [
    Limit {
        name: "prune_channels",
        what: "the share of channels to remove",
        min: 0.0,
        max: 0.9,
    },
    Limit {
        name: "round_to",
        what: "the width multiple",
        min: 1.0,
        max: 64.0,
    },
    Limit {
        name: "sparsity",
        what: "the share of weights to zero",
        min: 0.0,
        max: 0.95,
    },
    Limit {
        name: "steps",
        what: "the number of steps",
        min: 1.0,
        max: 10.0,
    },
];

/// How many calibration photos a run needs: `min` to run at all, `advised` for usable ranges,
/// `better` for steady ones (the ranges and means are estimated from the photos' values).
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

impl Settings {
    /// The limit a value breaks, as a one-line message.
    pub fn check_limits(&self) -> Result<()> {
        let values = [
            self.prune_channels as f64,
            self.round_to as f64,
            self.sparsity as f64,
            self.steps as f64,
        ];
        for (limit, v) in LIMITS.iter().zip(values) {
            if !(limit.min..=limit.max).contains(&v) {
                return Err(Error::Invalid(format!(
                    "{} {v} is impossible: it must be between {} and {}",
                    limit.what, limit.min, limit.max
                )));
            }
        }
        Ok(())
    }

    /// Which steps need calibration photos, and how many; `None` when none does.
    pub fn calibration_need(&self) -> Option<CalibrationNeed> {
        let mut uses = Vec::new();
        if self.importance == "output" || self.importance == "hessian" {
            uses.push("measured channel importance");
        }
        if self.reconstruct {
            uses.push("refitting after pruning");
        }
        if self.quant_method == "gptq" {
            uses.push("GPTQ weight quantization");
        }
        if self.act_quant {
            uses.push("int8 activations");
        }
        if self.bias_correction {
            uses.push("bias correction");
        }
        if self.recalibrate_bn {
            uses.push("batch-norm recalibration");
        }
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

    /// The pipeline's options, or the first setting that is out of range or not understood.
    pub fn to_options(&self) -> Result<CompressOptions> {
        self.check_limits()?;
        let mut overrides = BTreeMap::new();
        for (layer, p) in &self.layer_quant {
            overrides.insert(layer.clone(), p.parse::<Precision>()?);
        }
        Ok(CompressOptions {
            prune: PruneOptions {
                ratio: self.prune_channels,
                importance: self.importance.parse::<Importance>()?,
                global: self.global,
                round_to: self.round_to,
                steps: self.steps,
                prune_stem: self.prune_stem,
                scope: self.prune_scope.parse()?,
                ..Default::default()
            },
            sparsity: SparsityOptions {
                sparsity: self.sparsity,
                steps: self.steps,
                ..Default::default()
            },
            recalibrate_bn: self.recalibrate_bn,
            reconstruct: self.reconstruct,
            augment: self.augment.parse()?,
            quant_method: self.quant_method.parse()?,
            quant: QuantOptions {
                weights: self.quant.parse()?,
                granularity: self.granularity.parse()?,
                keep_first_last: self.keep_first_last,
                overrides,
                exact_scales: false,
            },
            bias_correction: self.bias_correction,
            act_quant: if self.act_quant {
                Some(self.calibration.parse::<Calibration>()?)
            } else {
                None
            },
        })
    }
}

/// A named starting point for the settings.
#[derive(Debug, Clone, Serialize)]
pub struct Preset {
    /// Stable id (`pi`, `balanced`, `fastest`, `smallest`).
    pub id: &'static str,
    /// The button's label.
    pub name: &'static str,
    /// One line on what it does and costs.
    pub note: &'static str,
    pub settings: Settings,
}

/// The presets the page offers.
pub fn presets() -> Vec<Preset> {
    let base = Settings::default();
    vec![
        Preset {
            id: "pi",
            name: "int8 for Raspberry Pi / ARM",
            note: "A full int8 QDQ graph: ONNX Runtime and TFLite run it with int8 kernels on ARM (about 4× smaller, usually 2–3× faster there). Biases are corrected for the rounding. Needs your photos for calibration.",
            settings: Settings {
                quant: "int8".into(),
                act_quant: true,
                bias_correction: true,
                ..base.clone()
            },
        },
        Preset {
            id: "balanced",
            name: "Balanced: 30 % channels + int8",
            note: "30 % fewer channels inside each block (≈ 29 % fewer MACs), ranked by their output on your photos and the next layers refit to make up for them, and int8 weights. Needs your photos. Pruning without training still costs accuracy, less with more photos (EfficientNet-Lite0 on the README's 250 photos: top-1 0.41 refit on 64 photos, 0.62 on 200, vs 0.71): check the agreement before you download.",
            settings: Settings {
                prune_channels: 0.3,
                round_to: 8,
                prune_scope: "internal".into(),
                importance: "output".into(),
                reconstruct: true,
                quant: "int8".into(),
                ..base.clone()
            },
        },
        Preset {
            id: "fastest",
            name: "Fastest: 50 % channels + int8",
            note: "Half the channels inside each block, refit on your photos, int8 weights and activations, batch norms recalibrated. Needs your photos. A large accuracy cost without training (more than the balanced preset's): check the agreement before you download.",
            settings: Settings {
                prune_channels: 0.5,
                round_to: 8,
                prune_scope: "internal".into(),
                importance: "output".into(),
                reconstruct: true,
                quant: "int8".into(),
                act_quant: true,
                recalibrate_bn: true,
                ..base.clone()
            },
        },
        Preset {
            id: "smallest",
            name: "Smallest: 30 % channels + int4",
            note: "30 % fewer channels inside each block, refit on your photos, and int4 weights chosen by GPTQ (first conv and classifier int8): the smallest file, the largest accuracy cost. Needs your photos; check the agreement before you download.",
            settings: Settings {
                prune_channels: 0.3,
                round_to: 8,
                prune_scope: "internal".into(),
                importance: "output".into(),
                reconstruct: true,
                quant: "int4".into(),
                quant_method: "gptq".into(),
                keep_first_last: true,
                ..base
            },
        },
    ]
}
