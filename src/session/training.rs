//! `Session::distill` and `Session::synthesize`: recovering accuracy after a compression by
//! distillation on the kept photos, and calibration images made from the loaded model when
//! there are too few photos. The distilled model replaces the compressed one, with new files.

use std::future::Future;

use serde::Serialize;

use super::compression::Files;
use super::{Answer, Loaded, Session, no_progress};
use crate::export::to_onnx;
use crate::model::Model;
use crate::train::{
    DistillOptions, Distilled, StepReport, SynthOptions, SynthStep, distill, synthesize, to_png,
};
use crate::{Error, Result};

/// What a distillation did, for the CLI's JSON and the page.
#[derive(Debug, Clone, Serialize)]
pub struct DistillReport {
    pub options: DistillOptions,
    #[serde(flatten)]
    pub run: Distilled,
    /// Per kept photo, the distilled model's answer.
    pub photos: Vec<Answer>,
    pub file_stem: String,
}

/// Synthesized images as PNG files.
#[derive(Debug, Clone, Serialize)]
pub struct SynthReport {
    #[serde(skip)]
    pub png: Vec<Vec<u8>>,
    pub side: usize,
    pub loss_before: Vec<f64>,
    pub loss_after: Vec<f64>,
    pub seconds: f64,
}

impl Session {
    /// Distil `student` — or, when `None`, the last compression — from the loaded model on the
    /// kept photos. `report` hears about every step (`false` stops; the best model so far is
    /// kept). The distilled model becomes the session's compressed model, with its files.
    pub async fn distill<R, F>(
        &self,
        student: Option<Model>,
        opts: &DistillOptions,
        report: R,
    ) -> Result<DistillReport>
    where
        R: FnMut(StepReport) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("distilling")?;
        let original = self.original()?;
        let previous = self.state.borrow().compressed.clone();
        let (student, stem, card) = match (student, &previous) {
            (Some(m), _) => (m, format!("{}-kd", original.model.arch.name()), None),
            (None, Some(c)) => (
                c.loaded.model.clone(),
                format!("{}-kd", c.files.stem.trim_end_matches("-kd")),
                Some(c.files.card.clone()),
            ),
            (None, None) => {
                return Err(Error::Invalid(
                    "compress the model first: distillation trains the compressed model".into(),
                ));
            }
        };
        let (photos, _) = self.inputs();
        let (run, model) = distill(
            &original.model,
            &student,
            &photos,
            opts,
            &self.backend,
            self.batches.calibration,
            report,
        )
        .await?;
        let safetensors = model.to_safetensors()?;
        let onnx = to_onnx(&model)?;
        let loaded = Loaded::new(model, &self.backend)?;
        let mut quiet = no_progress;
        let answers = loaded
            .answers(&photos, self.batches.display, "", &mut quiet)
            .await?;
        let out = DistillReport {
            options: opts.clone(),
            run,
            photos: answers,
            file_stem: stem.clone(),
        };
        // The model card says what was done: the compression's card with this run added.
        let mut card: serde_json::Value = card
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_else(
                || serde_json::json!({"tool": "modelslim", "version": env!("CARGO_PKG_VERSION")}),
            );
        if let Some(obj) = card.as_object_mut() {
            let mut summary = serde_json::to_value(&out).unwrap_or_default();
            if let Some(s) = summary.as_object_mut() {
                s.remove("photos");
            }
            obj.insert("distillation".into(), summary);
            obj.insert("file_stem".into(), stem.clone().into());
        }
        self.set_compressed(
            loaded,
            Files {
                stem,
                onnx,
                safetensors,
                card: serde_json::to_string_pretty(&card).unwrap_or_default(),
            },
        );
        Ok(out)
    }

    /// Synthesize calibration images from the loaded model's batch norms, as PNG files.
    pub async fn synthesize<R, F>(&self, opts: &SynthOptions, report: R) -> Result<SynthReport>
    where
        R: FnMut(SynthStep) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("synthesizing images")?;
        let original = self.original()?;
        let run = synthesize(&original.model, opts, &self.backend, report).await?;
        let pre = original.model.preprocess();
        let png = run
            .images
            .iter()
            .map(|im| to_png(im, &pre))
            .collect::<Result<Vec<_>>>()?;
        Ok(SynthReport {
            png,
            side: run.side,
            loss_before: run.loss_before,
            loss_after: run.loss_after,
            seconds: run.seconds,
        })
    }
}
