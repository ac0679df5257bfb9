//! The downloadable model card: what was done to the model, with which settings, on how many
//! photos, and what it measured. One schema, written by compression, extended by distillation
//! and read back when a compression moves into another session.

use serde::{Deserialize, Serialize};

use crate::compress::{Agreement, LayerStat, Metrics, Photos, Plan, Settings};
use crate::train::DistillOptions;
use crate::{Error, Result};

/// Which photos an agreement was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementPhotos {
    /// Photos kept out of every fitted step: an honest estimate.
    HeldBack,
    /// The photos the compression was fitted on: optimistic.
    Fitting,
    /// No step was fitted on photos: every kept photo is as good as a new one.
    Unfitted,
}

/// One step of the run, as the card records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardStep {
    pub label: String,
    /// `none`, `photos`, `photos with copies` or `batch-norm photos`.
    pub photos: String,
}

impl CardStep {
    pub fn of_plan(plan: &Plan) -> Vec<CardStep> {
        plan.steps
            .iter()
            .map(|s| CardStep {
                label: s.label.clone(),
                photos: match s.photos {
                    Photos::None => "none",
                    Photos::AsTheyAre(_) => "photos",
                    Photos::WithCopies(_) => "photos with copies",
                    Photos::BatchNorm => "batch-norm photos",
                }
                .into(),
            })
            .collect()
    }
}

/// What a distillation added to a compression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillationEntry {
    pub options: DistillOptions,
    pub steps: usize,
    pub train_images: usize,
    pub held_out_images: usize,
    /// Agreement on the held-back photos before and after.
    pub before: Agreement,
    pub after: Agreement,
    pub best_step: usize,
    pub seconds: f64,
    pub cancelled: bool,
}

/// The card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub tool: String,
    pub version: String,
    pub architecture: String,
    pub file_stem: String,
    pub settings: Settings,
    /// The steps that ran, in order.
    pub steps: Vec<CardStep>,
    pub quantization: String,
    pub before: Metrics,
    pub after: Metrics,
    pub layers: Vec<LayerStat>,
    /// The blocks dropped and each group's removed share.
    #[serde(default, flatten)]
    pub shape: crate::compress::pipeline::Shape,
    /// Against the uncompressed model, on `agreement_photos`.
    pub agreement_on_uploaded_photos: Option<Agreement>,
    pub agreement_photos: AgreementPhotos,
    /// Photos the compression was fitted on.
    pub calibration_photos: usize,
    /// Photos kept out of fitting to measure agreement on.
    pub held_back_photos: usize,
    /// The class names, when they are not ImageNet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    pub backend: String,
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillation: Option<DistillationEntry>,
}

impl ModelCard {
    pub const NOTE: &str = "Sizes are the files' bytes. Agreement is measured against the uncompressed model on the photos given to the tool (see agreement_photos: held back from fitting, or the fitting photos themselves, which flatter it); it is not ImageNet accuracy.";

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))
    }

    pub fn from_json(json: &str) -> Result<ModelCard> {
        serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("the model card is not one modelslim wrote: {e}")))
    }
}
