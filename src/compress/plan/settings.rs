//! The compression settings people choose, defined once: the CLI fills [`Settings`] from its
//! flags, the page from its form (the same names, as JSON), the model card records it, and
//! [`Settings::to_options`] is the one conversion into the pipeline's options. The fields'
//! descriptions, ranges and help are [`SETTINGS`](super::SETTINGS); every front end is generated
//! from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SETTINGS;
use super::text;
use crate::compress::prune::blocks::BlockDrop;
use crate::compress::{
    Augment, Calibration, CompressOptions, Granularity, Importance, PruneOptions, PruneScope,
    QuantMethod, QuantOptions, SparsityOptions,
};
use crate::quant::Precision;
use crate::spec::check_ranges;
use crate::{Error, Result};

/// Every compression knob, with the CLI's flag names (`prune_channels` is `--prune-channels`)
/// and defaults. Choices are typed; in JSON they keep the spellings of the CLI's values
/// (`"int8"`, `"group:32"`, `"percentile:99.9"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Share of each channel group to remove.
    pub prune_channels: f32,
    /// Whole residual blocks to remove: a count (chosen on the photos) or names.
    #[serde(with = "text")]
    pub drop_blocks: BlockDrop,
    /// Keep at most this share of the MACs, the ratios per group chosen by measured loss.
    pub target_macs: Option<f32>,
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
            drop_blocks: BlockDrop::None,
            target_macs: None,
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
            drop_blocks: self.drop_blocks.clone(),
            target_macs: self.target_macs,
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
