//! `Session::distill` and `Session::synthesize`: recovering accuracy after a compression by
//! distillation on the kept photos, and calibration images made from the loaded model when
//! there are too few photos. The distilled model replaces the compressed one, with new files.

use std::future::Future;

use serde::Serialize;

use super::card::DistillationEntry;
use super::compression::{CardFile, Files};
use super::{Answer, Loaded, Session, no_progress};
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
    /// Whether a step improved on the start (on the held-back photos). When none did, the
    /// compressed model, its files and their names stay what they were.
    pub improved: bool,
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
        let student_given = student.as_ref().map(|_| ());
        let (student, stem, card) = match (student, &previous) {
            (Some(m), _) => (m, format!("{}-kd", original.model.arch.file_stem()), None),
            (None, Some(c)) => (
                c.loaded.model.clone(),
                format!("{}-kd", c.files.stem.trim_end_matches("-kd")),
                c.files.card.clone(),
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
        let improved = run.best_step > 0;
        if !improved && let Some(c) = previous.filter(|_| student_given.is_none()) {
            // Nothing better than the start: the compressed model stays, files and names too.
            let mut quiet = no_progress;
            let answers = c
                .loaded
                .answers(&photos, self.batches.display, "", &mut quiet)
                .await?;
            return Ok(DistillReport {
                options: opts.clone(),
                run,
                photos: answers,
                file_stem: c.files.stem.clone(),
                improved,
            });
        }
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
            improved,
        };
        // The model card says what was done: the compression's card with this run added.
        let card = card.map(|file| {
            let mut c = file.card;
            c.file_stem = stem.clone();
            c.distillation = Some(DistillationEntry {
                options: opts.clone(),
                steps: out.run.steps,
                train_images: out.run.train_images,
                held_out_images: out.run.held_out_images,
                before: out.run.before.clone(),
                after: out.run.after.clone(),
                best_step: out.run.best_step,
                seconds: out.run.seconds,
                cancelled: out.run.cancelled,
            });
            c
        });
        let card = card.map(CardFile::new).transpose()?;
        self.set_compressed(
            loaded,
            Files {
                stem,
                adopted_safetensors: None,
                card,
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
