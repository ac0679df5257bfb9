//! The compression settings people choose, defined once: the CLI fills [`Settings`] from its
//! flags, the page from its form (the same names, as JSON), the model card records it, and
//! [`Settings::to_options`] is the one conversion into the pipeline's options. The fields'
//! descriptions, ranges and help are [`SETTINGS`]; every front end is generated from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::text;
use crate::compress::{
    Augment, Calibration, CompressOptions, Granularity, Importance, PruneOptions, PruneScope,
    QuantMethod, QuantOptions, SparsityOptions,
};
use crate::quant::Precision;
use crate::spec::{Choice, Field, Kind, Range, check_ranges};
use crate::{Error, Result};

/// Every compression knob, with the CLI's flag names (`prune_channels` is `--prune-channels`)
/// and defaults. Choices are typed; in JSON they keep the spellings of the CLI's values
/// (`"int8"`, `"group:32"`, `"percentile:99.9"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Share of each channel group to remove.
    pub prune_channels: f32,
    /// How channels are ranked (from the weights, or measured on the calibration photos).
    #[serde(with = "text")]
    pub importance: Importance,
    /// Rank channels across all groups instead of the same share from each.
    pub global: bool,
    /// Keep widths a multiple of this.
    pub round_to: usize,
    /// Prune (and sparsify) in this many steps.
    pub steps: usize,
    /// Let the stem's group lose channels too.
    pub prune_stem: bool,
    /// Which groups may lose channels. Internal by default: on EfficientNet-Lite0 with refit,
    /// 30 % of the block-internal channels (29 % fewer MACs) scored 0.408 top-1 (mean KL 1.96)
    /// where 20 % of every group (28 % fewer MACs) scored 0.356 (KL 2.21).
    #[serde(with = "text")]
    pub prune_scope: PruneScope,
    /// Share of the weights to zero.
    pub sparsity: f32,
    /// Refit the remaining weights on the calibration photos after pruning (least squares for
    /// channels, SparseGPT for sparsity).
    pub reconstruct: bool,
    /// Copies of the calibration photos the layer statistics (GPTQ, refitting, measured
    /// importance) are also measured on.
    #[serde(with = "text")]
    pub augment: Augment,
    /// Re-estimate batch-norm statistics on the calibration photos.
    pub recalibrate_bn: bool,
    /// The weights' precision.
    #[serde(with = "text")]
    pub quant: Precision,
    /// Which weights share a scale.
    #[serde(with = "text")]
    pub granularity: Granularity,
    /// How integers are chosen: round to nearest, or GPTQ calibrated on the photos.
    #[serde(with = "text")]
    pub quant_method: QuantMethod,
    /// First conv and classifier one step higher.
    pub keep_first_last: bool,
    /// Per-layer precision, `layer name → none|int8|int4|fp16`.
    #[serde(with = "text::map")]
    pub layer_quant: BTreeMap<String, Precision>,
    /// Quantize activations to u8 (ranges from the calibration photos).
    pub act_quant: bool,
    /// How activation ranges are estimated.
    #[serde(with = "text")]
    pub calibration: Calibration,
    /// Remove the rounding's mean output shift from each integer layer's bias.
    pub bias_correction: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prune_channels: 0.0,
            importance: Importance::L1,
            global: false,
            round_to: 1,
            steps: 1,
            prune_stem: false,
            prune_scope: PruneScope::Internal,
            sparsity: 0.0,
            reconstruct: false,
            augment: Augment::None,
            recalibrate_bn: false,
            quant: Precision::F32,
            granularity: Granularity::PerChannel,
            quant_method: QuantMethod::Rtn,
            keep_first_last: false,
            layer_quant: BTreeMap::new(),
            act_quant: false,
            calibration: Calibration::MinMax,
            bias_correction: false,
        }
    }
}

const PRECISIONS: &[Choice] = &[
    Choice {
        value: "none",
        label: "fp32 (none)",
    },
    Choice {
        value: "fp16",
        label: "fp16",
    },
    Choice {
        value: "int8",
        label: "int8",
    },
    Choice {
        value: "int4",
        label: "int4",
    },
];

/// A field of [`Settings`] without a range, choices or placeholder.
const fn field(
    name: &'static str,
    label: &'static str,
    group: &'static str,
    kind: Kind,
    help: &'static str,
) -> Field {
    Field {
        name,
        label,
        help,
        group,
        kind,
        range: None,
        what: label,
        choices: &[],
        placeholder: None,
        advanced: false,
    }
}

/// Every field of [`Settings`], in the order forms and `--help` show them. Beyond the ranges
/// a setting empties layers or does nothing useful: 90 % of a group's channels is the most
/// that still leaves every layer a few; 95 % sparsity likewise; widths rounded to more than 64
/// and more than 10 steps have no use on these networks.
pub const SETTINGS: &[Field] = &[
    Field {
        range: Some(Range::closed(0.0, 0.9)),
        what: "the share of channels to remove",
        ..field(
            "prune_channels",
            "Channels to remove",
            "prune",
            Kind::Number,
            "Share of each channel group to remove (0 keeps all): the network gets physically narrower, fewer MACs and a smaller file.",
        )
    },
    Field {
        choices: &[
            Choice {
                value: "l1",
                label: "L1 norm of the weights",
            },
            Choice {
                value: "l2",
                label: "L2 norm of the weights",
            },
            Choice {
                value: "bn",
                label: "batch-norm scale",
            },
            Choice {
                value: "output",
                label: "output energy on your photos",
            },
            Choice {
                value: "hessian",
                label: "Hessian saliency on your photos",
            },
        ],
        ..field(
            "importance",
            "Channel importance",
            "prune",
            Kind::Choice,
            "How channels are ranked: from the weights (l1, l2, bn) or measured on the calibration photos (output, hessian).",
        )
    },
    Field {
        choices: &[
            Choice {
                value: "internal",
                label: "inside blocks only",
            },
            Choice {
                value: "all",
                label: "every group",
            },
        ],
        ..field(
            "prune_scope",
            "Groups pruned",
            "prune",
            Kind::Choice,
            "internal: only the channels inside blocks (residual streams and final features keep their width); all: every group but the stem.",
        )
    },
    Field {
        range: Some(Range::closed(1.0, 64.0)),
        what: "the width multiple",
        ..field(
            "round_to",
            "Round widths to",
            "prune",
            Kind::Integer,
            "Keep every pruned width a multiple of this (8 suits most SIMD kernels).",
        )
    },
    Field {
        range: Some(Range::closed(1.0, 10.0)),
        what: "the number of steps",
        advanced: true,
        ..field(
            "steps",
            "Steps",
            "prune",
            Kind::Integer,
            "Prune (and sparsify) in this many steps, re-scoring the channels between them.",
        )
    },
    Field {
        advanced: true,
        ..field(
            "global",
            "Rank across groups",
            "prune",
            Kind::Bool,
            "Rank channels across all groups instead of removing the same share from each.",
        )
    },
    Field {
        advanced: true,
        ..field(
            "prune_stem",
            "Prune the stem",
            "prune",
            Kind::Bool,
            "Let the stem's group lose channels too.",
        )
    },
    Field {
        range: Some(Range::closed(0.0, 0.95)),
        what: "the share of weights to zero",
        ..field(
            "sparsity",
            "Weights to zero",
            "sparsity",
            Kind::Number,
            "Share of the conv and linear weights to zero (same shapes: only gzip or a sparse runtime turns zeros into savings).",
        )
    },
    field(
        "reconstruct",
        "Refit on your photos",
        "sparsity",
        Kind::Bool,
        "After pruning, refit the layers that read pruned channels by least squares on the calibration photos; sparsity by SparseGPT instead of by magnitude.",
    ),
    Field {
        choices: PRECISIONS,
        ..field(
            "quant",
            "Weights",
            "quantize",
            Kind::Choice,
            "The precision of the conv and linear weights.",
        )
    },
    Field {
        placeholder: Some("group:32"),
        ..field(
            "granularity",
            "Scales per",
            "quantize",
            Kind::Text,
            "Which weights share a scale: channel (per output channel), tensor, or group:N (blocks of N input channels).",
        )
    },
    Field {
        choices: &[
            Choice {
                value: "rtn",
                label: "round to nearest",
            },
            Choice {
                value: "gptq",
                label: "GPTQ on your photos",
            },
        ],
        ..field(
            "quant_method",
            "Integers chosen by",
            "quantize",
            Kind::Choice,
            "rtn rounds each weight to the nearest level; gptq chooses the integers layer by layer so the layer's outputs on the calibration photos change least.",
        )
    },
    field(
        "keep_first_last",
        "First and last layer higher",
        "quantize",
        Kind::Bool,
        "Keep the first conv and the classifier one step higher (int4 → int8, others fp32).",
    ),
    Field {
        placeholder: Some("_fc=int8"),
        advanced: true,
        ..field(
            "layer_quant",
            "Per-layer precision",
            "quantize",
            Kind::Pairs,
            "LAYER=none|int8|int4|fp16 for single layers, over the precision above.",
        )
    },
    field(
        "act_quant",
        "int8 activations",
        "calibration",
        Kind::Bool,
        "Quantize activations to u8, their ranges measured on the calibration photos (needs int8 weights per channel or per tensor): a full int8 QDQ graph.",
    ),
    Field {
        placeholder: Some("percentile:99.99"),
        advanced: true,
        ..field(
            "calibration",
            "Activation ranges",
            "calibration",
            Kind::Text,
            "How activation ranges are estimated: minmax, or percentile[:P] (50 < P ≤ 100), which ignores rare outliers.",
        )
    },
    field(
        "bias_correction",
        "Bias correction",
        "calibration",
        Kind::Bool,
        "Remove the mean output shift each integer layer's rounding causes on the calibration photos from its bias.",
    ),
    field(
        "recalibrate_bn",
        "Recalibrate batch norms",
        "calibration",
        Kind::Bool,
        "Re-estimate every batch norm's statistics on the calibration photos after pruning.",
    ),
    Field {
        choices: &[
            Choice {
                value: "none",
                label: "the photos as they are",
            },
            Choice {
                value: "flip",
                label: "and mirrored (×2)",
            },
            Choice {
                value: "flip-crop",
                label: "and mirrored and cropped (×4)",
            },
        ],
        advanced: true,
        ..field(
            "augment",
            "Layer statistics on",
            "calibration",
            Kind::Choice,
            "Copies of the calibration photos that GPTQ, refitting and measured importance also measure their layer statistics on.",
        )
    },
];

impl Settings {
    /// The range a value breaks, as a one-line message.
    pub fn check_limits(&self) -> Result<()> {
        check_ranges(SETTINGS, self)
    }

    /// The pipeline's options, or the first setting that is out of range.
    pub fn to_options(&self) -> Result<CompressOptions> {
        self.check_limits()?;
        Ok(CompressOptions {
            prune: PruneOptions {
                ratio: self.prune_channels,
                importance: self.importance,
                global: self.global,
                round_to: self.round_to,
                steps: self.steps,
                prune_stem: self.prune_stem,
                scope: self.prune_scope,
                ..Default::default()
            },
            sparsity: SparsityOptions {
                sparsity: self.sparsity,
                steps: self.steps,
                ..Default::default()
            },
            recalibrate_bn: self.recalibrate_bn,
            reconstruct: self.reconstruct,
            augment: self.augment,
            quant_method: self.quant_method,
            quant: QuantOptions {
                weights: self.quant,
                granularity: self.granularity,
                keep_first_last: self.keep_first_last,
                overrides: self.layer_quant.clone(),
                exact_scales: false,
            },
            bias_correction: self.bias_correction,
            act_quant: self.act_quant.then_some(self.calibration),
        })
    }

    /// Settings from the page's JSON: unknown names and values are one-line errors.
    pub fn from_json(json: &str) -> Result<Settings> {
        serde_json::from_str(json).map_err(|e| Error::Invalid(format!("bad settings: {e}")))
    }
}
