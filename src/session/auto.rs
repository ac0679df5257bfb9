//! `Session::auto`: compression to a budget on the kept photos. A share of them is held back
//! from every fitting step and the search's candidates are measured on it; the kept candidate
//! then becomes the session's compressed model with its files, as a compression does.

use std::future::Future;

use serde::Serialize;
use web_time::Instant;

use super::compression::Fitted;
use super::held_back::{HoldBack, held_back};
use super::{CompressionReport, Session};
use crate::compress::auto::{AutoOptions, LayerPlan, Search, layer_plan, search};
use crate::compress::{Plan, Progress};
use crate::{Error, Result};

/// What an automatic compression found and kept.
#[derive(Debug, Clone, Serialize)]
pub struct AutoReport {
    pub options: AutoOptions,
    #[serde(flatten)]
    pub search: Search,
    /// Each layer of the kept candidate: precision, granularity, channels kept, dropped.
    pub plan: Vec<LayerPlan>,
    /// Photos the candidates were measured on, never fitted on.
    pub held_out_images: usize,
    /// Photos the costs, GPTQ, refitting and block choices fitted on.
    pub fit_images: usize,
    /// Why the agreement floor was checked on too few held-out photos to mean much (fewer than
    /// [`MIN_HELD_OUT_FOR_FLOOR`]), with the kept candidate's interval; `None` when enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_note: Option<String>,
    /// How the candidates' times in the deployment runtime chose the kept one, when they were
    /// timed there (`auto --time-with`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_message: Option<String>,
    /// The kept candidate as a compression: its files' metrics, answers, model card.
    pub compression: CompressionReport,
}

/// What choosing another candidate needs: each candidate's model and settings, and the photos
/// the search held back (indices into the kept photos as they were then).
pub(super) struct Searched {
    models: Vec<(crate::model::Model, crate::compress::Shape)>,
    settings: Vec<crate::compress::Settings>,
    held: Vec<usize>,
    fit: usize,
    photos: usize,
}

/// Held-out photos below which the agreement floor is not much of a measurement: at 20, one
/// photo moves agreement by 5 points and 95 % of 18-of-20 lies between 70 and 97 %.
pub const MIN_HELD_OUT_FOR_FLOOR: usize = 20;

/// What to say of a floor checked on `held_out` photos when they are too few; `kept` is the
/// kept candidate's agreement on them.
fn floor_note(held_out: usize, photos: usize, floor: f64, kept: f64) -> Option<String> {
    if held_out >= MIN_HELD_OUT_FOR_FLOOR {
        return None;
    }
    let same = (kept * held_out as f64).round() as usize;
    let c = crate::scores::Count::of(same, held_out)?;
    // The default holds a fifth back: the photos that give MIN_HELD_OUT_FOR_FLOOR.
    let needed = MIN_HELD_OUT_FOR_FLOOR * 5;
    Some(format!(
        "only {held_out} of {photos} photos held out: the {:.0} % floor is a guess — {same} of {held_out} agree, and the 95 % interval runs from {:.0} to {:.0} %; add photos ({needed} hold out {MIN_HELD_OUT_FOR_FLOOR}) for a floor that means something",
        100.0 * floor,
        100.0 * c.low,
        100.0 * c.high
    ))
}

/// Photos an automatic compression holds back by default: a fifth, at least one, at most 50.
pub fn auto_held_out(photos: usize) -> usize {
    (photos / 5).clamp(1, 50)
}

impl Session {
    /// Search for the most faithful compression within `opts`' budget, holding `held_out`
    /// of the kept photos back (default [`auto_held_out`]); then, with `distill_steps`,
    /// distil the kept candidate on the fitting photos, a candidate of its own that replaces
    /// it when it agrees better (less KL) on the held-out photos. `progress` names the
    /// candidate being built; `false` stops the search and keeps the best so far.
    pub async fn auto<P, F>(
        &self,
        opts: &AutoOptions,
        held_out: Option<usize>,
        distill_steps: usize,
        mut progress: P,
    ) -> Result<AutoReport>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("compressing automatically")?;
        let t0 = Instant::now();
        let original = self.original()?;
        let (photos, _) = self.inputs();
        if photos.len() < 2 {
            return Err(Error::Invalid(format!(
                "automatic compression fits on some photos and measures on others: add at least 2 (there {})",
                match photos.len() {
                    0 => "are none".to_string(),
                    n => format!("is {n}"),
                }
            )));
        }
        let k = held_out.unwrap_or_else(|| auto_held_out(photos.len()));
        if k == 0 {
            return Err(Error::Invalid(
                "automatic compression measures candidates on held-out photos: hold out at least 1"
                    .into(),
            ));
        }
        let held = held_back(HoldBack::Count(k), photos.len())?;
        let (mut fit, mut out) = (Vec::new(), Vec::new());
        for (i, p) in photos.iter().enumerate() {
            if held.contains(&i) {
                &mut out
            } else {
                &mut fit
            }
            .push(p.clone());
        }
        // Out of the state while the search runs (other calls read the state meanwhile).
        let mut costs = std::mem::take(&mut self.state.borrow_mut().auto_costs);
        let found = search(
            &original.model,
            opts,
            &fit,
            &out,
            self.batches.calibration,
            &self.backend,
            &mut costs,
            self.tflite.get(),
            &mut progress,
        )
        .await;
        self.state.borrow_mut().auto_costs = costs;
        let mut found = found?;
        if distill_steps > 0 && !found.cancelled {
            self.distill_chosen(
                &original.model,
                &mut found,
                distill_steps,
                &fit,
                &out,
                opts,
                &mut progress,
            )
            .await?;
        }
        let searched = Searched {
            models: std::mem::take(&mut found.models),
            settings: found
                .candidates
                .iter()
                .map(|c| c.settings.clone())
                .collect(),
            held,
            fit: fit.len(),
            photos: photos.len(),
        };
        let (compression, layers) = self
            .finish_candidate(
                &original,
                &searched,
                found.chosen,
                &photos,
                (t0, !found.cancelled),
                &mut progress,
            )
            .await?;
        self.state.borrow_mut().auto = Some(std::rc::Rc::new(searched));
        let kept = found
            .candidates
            .get(found.chosen)
            .map_or(0.0, |c| c.agreement);
        Ok(AutoReport {
            options: *opts,
            floor_note: floor_note(out.len(), photos.len(), opts.min_agreement, kept),
            runtime_message: None,
            search: found,
            plan: layers,
            held_out_images: out.len(),
            fit_images: fit.len(),
            compression,
        })
    }
}

impl Session {
    /// Make candidate `index` of the last automatic compression the compressed model, with its
    /// files, as if the search had kept it.
    pub async fn choose_candidate<P, F>(
        &self,
        index: usize,
        mut progress: P,
    ) -> Result<(CompressionReport, Vec<LayerPlan>)>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("loading another candidate")?;
        let t0 = Instant::now();
        let original = self.original()?;
        let searched = self.state.borrow().auto.clone().ok_or_else(|| {
            Error::Invalid("search first: Auto keeps the candidates it measured".into())
        })?;
        let (photos, _) = self.inputs();
        if photos.len() != searched.photos {
            return Err(Error::Invalid(
                "the photos changed since the search: search again to choose among new candidates"
                    .into(),
            ));
        }
        self.finish_candidate(
            &original,
            &searched,
            index,
            &photos,
            (t0, true),
            &mut progress,
        )
        .await
    }

    /// Candidate `index` of `searched` finished as a compression, and its per-layer plan;
    /// `started` is when the run began and whether `progress` may still cancel it.
    async fn finish_candidate<P, F>(
        &self,
        original: &super::Loaded,
        searched: &Searched,
        index: usize,
        photos: &[Vec<f32>],
        (t0, cancellable): (Instant, bool),
        progress: P,
    ) -> Result<(CompressionReport, Vec<LayerPlan>)>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let ((model, shape), settings) = searched
            .models
            .get(index)
            .zip(searched.settings.get(index))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "there is no candidate {} (the search measured {})",
                    index + 1,
                    searched.models.len()
                ))
            })?;
        let plan = Plan::of(settings)?;
        let layers = layer_plan(&original.model, model);
        let fitted = Fitted {
            plan: &plan,
            settings,
            model: model.clone(),
            shape: shape.clone(),
            photos,
            held: Some(&searched.held),
            calibration_photos: plan.photos_used(searched.fit, 0),
            started: t0,
            cancellable,
        };
        Ok((self.finish(original, fitted, progress).await?, layers))
    }

    /// Distil `found`'s kept candidate on `fit` and measure it on `held`, as a candidate of
    /// its own; it becomes the kept one when it is within the budget and its KL is lower.
    #[allow(clippy::too_many_arguments)]
    async fn distill_chosen<P, F>(
        &self,
        original: &crate::model::Model,
        found: &mut Search,
        steps: usize,
        fit: &[Vec<f32>],
        held: &[Vec<f32>],
        opts: &AutoOptions,
        progress: &mut P,
    ) -> Result<()>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        #[cfg(feature = "training")]
        {
            use crate::compress::prune::blocks::network_macs;
            use crate::compress::{agreement, logits_of};
            let t = Instant::now();
            let chosen = found.candidates[found.chosen].clone();
            let student = found.models[found.chosen].0.clone();
            let train = crate::train::DistillOptions {
                steps,
                ..Default::default()
            };
            train.check(fit.len())?;
            let label = chosen.label.clone();
            let (_, model) = crate::train::distill(
                original,
                &student,
                fit,
                &train,
                &self.backend,
                self.batches.calibration,
                |s| {
                    progress(Progress::new(
                        s.step,
                        s.steps,
                        format!("distilling {label}: loss {:.4}", s.loss),
                    ))
                },
            )
            .await?;
            let a = agreement(
                &found.reference,
                &logits_of(&model, &self.backend, held, self.batches.calibration).await?,
            );
            let macs = network_macs(&model);
            let macs0 = network_macs(original);
            // Training changes the weights' values, not how the files store them: their sizes
            // are the kept candidate's.
            let measure = opts.budget.measure(chosen.bytes, macs, chosen.ms);
            let fits = opts.budget.excess(measure, macs0) <= 0.0 && chosen.target_problem.is_none();
            let keeps_floor = a.agreement >= opts.min_agreement;
            // Better: within the budget, less KL, and not below a floor the kept one held.
            let better = fits && a.kl.max(0.0) < chosen.kl && (keeps_floor || !found.floor_met);
            found.candidates.push(crate::compress::auto::Candidate {
                label: format!("{}, distilled {steps} steps", chosen.label),
                macs,
                agreement: a.agreement,
                kl: a.kl.max(0.0),
                seconds: t.elapsed().as_secs_f64(),
                fits,
                pareto: false,
                ..chosen
            });
            let shape = found.models[found.chosen].1.clone();
            found.models.push((model, shape));
            if better {
                found.chosen = found.candidates.len() - 1;
                if keeps_floor && !found.floor_met {
                    found.floor_met = true;
                    found.message = None;
                }
            }
            found.seconds += t.elapsed().as_secs_f64();
            Ok(())
        }
        #[cfg(not(feature = "training"))]
        {
            let _ = (original, found, steps, fit, held, opts, progress);
            Err(Error::Invalid(
                "distillation needs the training module: load it first".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MIN_HELD_OUT_FOR_FLOOR, floor_note};

    #[test]
    fn a_floor_on_few_held_out_photos_says_what_it_is_worth() {
        // 2 of 3 agree: the interval is 21–94 %, which says nothing of an 80 % floor.
        let note = floor_note(3, 16, 0.8, 2.0 / 3.0).unwrap();
        assert!(
            note.contains("only 3 of 16 photos held out")
                && note.contains("2 of 3 agree")
                && note.contains("from 21 to 94 %")
                && note.contains("100 hold out 20"),
            "{note}"
        );
        assert!(floor_note(MIN_HELD_OUT_FOR_FLOOR, 100, 0.8, 0.9).is_none());
    }
}
