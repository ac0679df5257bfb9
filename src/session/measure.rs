//! Measurements on a session's models: latency, per-layer sensitivity, and scores (top-1/top-5
//! against the photos' labels, agreement and KL against a reference model).

use std::future::Future;
use std::rc::Rc;

use super::photos::label_of_name;
use super::{Benchmark, Evaluation, Loaded, Session, Which};
use crate::compress::sensitivity::sensitivity;
use crate::compress::{Granularity, Precision, Progress, Sensitivity, agreement, report};
use crate::labels::{Classes, class_name, class_of_label, imagenet_classes};
use crate::model::Model;
use crate::predict::top_k;
use crate::scores::scores;
use crate::timing::{Timing, benchmark_input};
use crate::{Error, Result};

impl Session {
    fn loaded(&self, which: Which) -> Result<Rc<Loaded>> {
        let s = self.state.borrow();
        let found = match which {
            Which::Original => s.original.clone(),
            Which::Compressed => s.compressed.as_ref().map(|c| c.loaded.clone()),
        };
        found.ok_or_else(|| {
            Error::Invalid(match which {
                Which::Original => "there is no model to benchmark: load one first".into(),
                Which::Compressed => {
                    "there is no compressed model to benchmark: compress first".into()
                }
            })
        })
    }

    /// Time `runs` forward passes of one image after one warm-up pass, which is reported as
    /// cold when it was the model's first. `progress` is told before each run and may cancel.
    pub async fn benchmark<P, F>(
        &self,
        which: Which,
        runs: usize,
        mut progress: P,
    ) -> Result<Benchmark>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("benchmarking")?;
        let loaded = self.loaded(which)?;
        let input = [benchmark_input(loaded.model.arch.input_size())];
        let runs = runs.max(1);
        let mut times = Vec::with_capacity(runs);
        let mut cold_ms = None;
        for i in 0..=runs {
            let p = Progress {
                step: i + 1,
                steps: runs + 1,
                label: if i == 0 {
                    "warm-up run".into()
                } else {
                    format!("timed run {i}")
                },
            };
            report(&mut progress, p).await?;
            let (_, ms, cold) = loaded.run(&input).await?;
            if i == 0 {
                cold_ms = cold.then_some(ms);
            } else {
                times.push(ms);
            }
        }
        let warm = Timing::of(&times).ok_or_else(|| Error::Invalid("no runs were timed".into()))?;
        Ok(Benchmark {
            backend: self.backend.description.clone(),
            upload_ms: loaded.upload_ms.get(),
            cold_ms,
            warm,
        })
    }

    /// Quantize one layer at a time to `precision` and measure how far the outputs move on the
    /// kept photos; most sensitive first.
    pub async fn sensitivity<P, F>(
        &self,
        precision: Precision,
        granularity: Granularity,
        mut progress: P,
    ) -> Result<Vec<Sensitivity>>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("measuring sensitivity")?;
        if precision == Precision::F32 {
            return Err(Error::Invalid(
                "sensitivity is measured for int8, int4 or fp16, not fp32".into(),
            ));
        }
        let original = self.original()?;
        let (photos, _) = self.inputs();
        if photos.is_empty() {
            return Err(Error::Invalid(
                "sensitivity is measured on your photos: add some first".into(),
            ));
        }
        sensitivity(
            &original.model,
            precision,
            granularity,
            &photos,
            self.batches.calibration,
            &self.backend,
            // By reference, as the automatic search passes it: one copy of the code in the page.
            &mut progress,
        )
        .await
    }

    /// Top-1 and top-5 of the loaded model over the kept photos whose names carry a label, and
    /// its agreement and mean KL against `reference` when one is given (whose scores are then
    /// the reference's).
    pub async fn evaluate<P, F>(
        &self,
        reference: Option<Model>,
        mut progress: P,
    ) -> Result<Evaluation>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("scoring")?;
        let logits = self.original_logits(&mut progress).await?;
        let reference = match reference {
            Some(r) => {
                let (photos, _) = self.inputs();
                let r = Loaded::new(r, &self.backend)?;
                let answers = r
                    .answers(
                        &photos,
                        self.batches.calibration,
                        "classifying with the reference",
                        &mut progress,
                    )
                    .await?;
                Some(answers.into_iter().map(|a| a.logits).collect::<Vec<_>>())
            }
            None => None,
        };
        self.evaluation(&logits, reference.as_deref())
    }

    /// [`Session::evaluate`] of the last compression, the loaded original its reference: what
    /// the page shows for labelled photos.
    pub async fn evaluate_compressed<P, F>(&self, mut progress: P) -> Result<Evaluation>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("scoring")?;
        let original = self.original_logits(&mut progress).await?;
        let compressed = self.state.borrow().compressed.clone();
        // Without a labelled photo there is nothing to score: no pass of the compressed model.
        let labelled = self.photo_labels()?.0.iter().any(Option::is_some);
        let Some(c) = compressed.filter(|_| labelled) else {
            return self.evaluation(&original, None);
        };
        let (photos, _) = self.inputs();
        let answers = c
            .loaded
            .answers(
                &photos,
                self.batches.calibration,
                "classifying with the compressed model",
                &mut progress,
            )
            .await?;
        let logits: Vec<Vec<f32>> = answers.into_iter().map(|a| a.logits).collect();
        self.evaluation(&logits, Some(&original))
    }

    /// The class of each kept photo, of the loaded model's classes (a labels file's row, else
    /// its path), and the classes labels files give that the model does not have.
    fn photo_labels(&self) -> Result<(Vec<Option<usize>>, Vec<String>)> {
        let names = self.labels();
        let count = self.original()?.model.arch.num_classes();
        let classes = match &names {
            Some(n) => Classes::Named(n),
            None if count == imagenet_classes().len() => Classes::ImageNet,
            None => Classes::Unnamed,
        };
        let s = self.state.borrow();
        let mut unknown = Vec::new();
        let labels = s
            .photos
            .iter()
            .map(|p| match s.photo_labels.class_written(&p.name) {
                Some(written) => {
                    let class = class_of_label(written, classes, count);
                    if class.is_none() && !unknown.iter().any(|u| u == written) {
                        unknown.push(written.to_string());
                    }
                    class
                }
                None => label_of_name(&p.name, classes),
            })
            .collect();
        Ok((labels, unknown))
    }

    /// Scores of `logits` (one per kept photo) against the photos' labels, and against
    /// `reference`'s logits when given.
    fn evaluation(
        &self,
        logits: &[Vec<f32>],
        reference: Option<&[Vec<f32>]>,
    ) -> Result<Evaluation> {
        let names = self.labels();
        let photo_names: Vec<String> = self
            .state
            .borrow()
            .photos
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let (labels, unknown_classes) = self.photo_labels()?;
        // Top-1 is the scores' count; top-5 only here.
        let (mut labelled, mut top5) = (0usize, 0usize);
        for (l, label) in logits.iter().zip(&labels) {
            let Some(label) = label else { continue };
            labelled += 1;
            top5 += usize::from(top_k(l, 5).iter().any(|c| c.index == *label));
        }
        let agreement = reference.map(|r| agreement(r, logits));
        let class_name = |i: usize| match &names {
            Some(n) => n.get(i).cloned().unwrap_or_else(|| format!("class {i}")),
            None => class_name(i),
        };
        let scores = scores(&photo_names, &labels, logits, reference, class_name);
        Ok(Evaluation {
            n: logits.len(),
            labelled,
            top1: scores.top1_count.as_ref().map(|c| c.share),
            top5: (labelled > 0).then(|| top5 as f64 / labelled as f64),
            agreement: agreement.as_ref().map(|a| a.agreement),
            kl: agreement.as_ref().map(|a| a.kl),
            unknown_classes,
            scores,
        })
    }
}
