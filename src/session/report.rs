//! What a session hands back: answers per photo, the compression report, the model card, the
//! benchmark and the scores. Serialisable as they are; the page reads these JSON fields.

use serde::Serialize;

use super::card::AgreementPhotos;
use crate::compress::{Agreement, LayerStat, Metrics, Ratios};
use crate::predict::ClassScore;
use crate::timing::Timing;
use crate::{Error, Result};

/// One model's answer for one photo.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub top5: Vec<ClassScore>,
    /// The raw logits (the page's tests compare them with onnxruntime's on the downloaded file).
    pub logits: Vec<f32>,
    /// Forward pass including read-back, in ms (a batch's time shared by its photos).
    pub inference_ms: f64,
    /// True for the first forward pass after a model was loaded (shader compilation, autotune).
    pub cold: bool,
}

/// A photo classified without being kept.
#[derive(Debug, Clone, Serialize)]
pub struct Classified {
    /// Decode + resize + crop + normalise, in ms.
    pub preprocess_ms: f64,
    #[serde(flatten)]
    pub answer: Answer,
}

/// A kept photo's answers from the original and (once there is one) the compressed model.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoResult {
    pub index: usize,
    pub name: String,
    pub preprocess_ms: f64,
    pub original: Option<Answer>,
    pub compressed: Option<Answer>,
}

/// What one compression run did and what it bought.
#[derive(Debug, Clone, Serialize)]
pub struct CompressionReport {
    pub before: Metrics,
    pub after: Metrics,
    /// After / before, per measure.
    pub ratios: Ratios,
    /// What the compressed file stores.
    pub quantization: String,
    pub layers: Vec<LayerStat>,
    /// Per kept photo, the compressed model's answer.
    pub photos: Vec<Answer>,
    /// Against the original, on the photos `agreement_photos` says; `None` without photos.
    pub agreement: Option<Agreement>,
    pub agreement_photos: AgreementPhotos,
    /// Photos kept out of fitting (agreement is measured on them when there are any).
    pub held_back: usize,
    /// Photos the run fitted on (0 when no step needed them).
    pub calibration_photos: usize,
    pub file_stem: String,
    /// The blocks dropped and each group's removed share.
    #[serde(flatten)]
    pub shape: crate::compress::pipeline::Shape,
    pub seconds: f64,
}

/// The files a compression produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Onnx,
    Safetensors,
    /// The model card, JSON.
    Card,
}

impl std::str::FromStr for FileFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "onnx" => Ok(FileFormat::Onnx),
            "safetensors" => Ok(FileFormat::Safetensors),
            "card" => Ok(FileFormat::Card),
            other => Err(Error::Invalid(format!(
                "unknown format '{other}': use onnx, safetensors or card"
            ))),
        }
    }
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Onnx => "onnx",
            FileFormat::Safetensors => "safetensors",
            FileFormat::Card => "json",
        }
    }
}

/// Which of the session's models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Original,
    Compressed,
}

impl std::str::FromStr for Which {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "original" => Ok(Which::Original),
            "compressed" => Ok(Which::Compressed),
            other => Err(Error::Invalid(format!(
                "unknown model '{other}': use original or compressed"
            ))),
        }
    }
}

/// Latency of one model: building it on the device, the cold first pass when the benchmark
/// made it, and the warm runs' statistics.
#[derive(Debug, Clone, Serialize)]
pub struct Benchmark {
    pub backend: String,
    pub upload_ms: f64,
    pub cold_ms: Option<f64>,
    #[serde(flatten)]
    pub warm: Timing,
}

/// Scores over the kept photos.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub n: usize,
    /// Photos whose label is known (top-1/top-5 are over these).
    pub labelled: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Classes a labels file gives that are none of the model's (the photos count as unlabelled).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_classes: Vec<String>,
    /// Counts with their intervals, per class, new confusions, changed photos.
    #[serde(flatten)]
    pub scores: crate::scores::Scores,
}
