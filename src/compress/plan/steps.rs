//! The parts of a plan: what each step does ([`Action`]), which photos it reads ([`Photos`]) and
//! why ([`Purpose`]).

use serde::Serialize;

/// What one step of a compression does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Remove whole residual blocks (named, or chosen on the photos).
    DropBlocks,
    /// Measure each group's loss at a few ratios (and without its block) and choose the
    /// shares that meet the MAC target; the blocks chosen are dropped here.
    MeetMacTarget,
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
    BlockChoice,
    MacBudget,
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
            Purpose::BlockChoice => "choosing the blocks to drop",
            Purpose::MacBudget => "choosing each group's share for the MAC target",
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
    pub(super) name_parts: Vec<(u8, String)>,
}
