//! `Session::compress`: the settings' plan checked against the photos there are, the pipeline
//! run on the photos not held back, the files written, the metrics measured on those files,
//! the compressed model's answers on the kept photos and the model card — in that order, each
//! step reported and cancellable.

use std::future::Future;
use std::rc::Rc;

use web_time::Instant;

use super::card::{AgreementPhotos, CardStep, ModelCard};
use super::held_back::held_back;
use super::{Compressed, CompressionReport, FileFormat, Loaded, Session};
use crate::compress::pipeline::run;
use crate::compress::{
    Metrics, Plan, Progress, Settings, Shape, agreement, announce, layer_report,
};
use crate::export::to_onnx;
use crate::model::Model;
use crate::{Error, Result};

/// A compression's model as its plan built it, with what it was fitted on.
pub(super) struct Fitted<'a> {
    pub plan: &'a Plan,
    pub settings: &'a Settings,
    pub model: Model,
    pub shape: Shape,
    /// Every kept photo, preprocessed.
    pub photos: &'a [Vec<f32>],
    /// The photos held back from fitting (`None`: nothing was fitted on the kept photos).
    pub held: Option<&'a [usize]>,
    pub calibration_photos: usize,
    pub started: Instant,
    /// Whether `progress` answering `false` cancels writing the files (not after a search the
    /// user stopped: its best candidate is kept).
    pub cancellable: bool,
}

/// The downloadable files of one compression. Each is written from its model when it is
/// asked for, and not kept: a large network's files would otherwise sit in memory beside its
/// two models for the whole session.
pub(super) struct Files {
    pub stem: String,
    /// An adopted compression's safetensors file, kept byte for byte as the user has it;
    /// `None` where it is written from the model.
    pub adopted_safetensors: Option<Vec<u8>>,
    /// `None` for a model distilled without a compression in this session.
    pub card: Option<CardFile>,
}

/// A model card and its JSON, written once: an adopted card stays byte for byte the file the
/// user may already have (JSON numbers do not always read back to the same last bit).
#[derive(Clone)]
pub(super) struct CardFile {
    pub card: ModelCard,
    pub json: String,
}

impl CardFile {
    pub fn new(card: ModelCard) -> Result<CardFile> {
        Ok(CardFile {
            json: card.to_json()?,
            card,
        })
    }

    /// A card read from `json`, checked against the schema and kept as it is.
    pub fn read(json: String) -> Result<CardFile> {
        Ok(CardFile {
            card: ModelCard::from_json(&json)?,
            json,
        })
    }
}

impl Session {
    /// Compress the loaded model with `settings`, fitting on the kept photos (batch-norm
    /// photos for recalibration when there are any), less the share held back to measure
    /// agreement on (see [`super::HoldBack`]). `progress` is told before each step and
    /// awaited (the page yields to its event loop there); resolving to `false` cancels, and
    /// the previous result stays. The files are then ready for [`Session::file`].
    pub async fn compress<P, F>(
        &self,
        settings: &Settings,
        mut progress: P,
    ) -> Result<CompressionReport>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let _busy = self.begin("compressing")?;
        let t0 = Instant::now();
        let plan = Plan::of(settings)?;
        let original = self.original()?;
        let (photos, separate_bn) = self.inputs();
        // Batch-norm statistics are fitted too: on the kept photos, they count as fitting.
        let fits_kept =
            plan.fits_on_photos() || (plan.reads_batch_norm_photos() && separate_bn.is_empty());
        let held = if fits_kept {
            held_back(self.hold_back.get(), photos.len())?
        } else {
            Vec::new()
        };
        let fitting: Vec<Vec<f32>> = photos
            .iter()
            .enumerate()
            .filter(|(i, _)| !held.contains(i))
            .map(|(_, p)| p.clone())
            .collect();
        let bn_photos = if separate_bn.is_empty() {
            &fitting
        } else {
            &separate_bn
        };
        if let Some(need) = plan.short_of_photos(fitting.len(), bn_photos.len()) {
            return Err(Error::Invalid(need.message()));
        }
        // The original's network is not used while its files are measured and its compressed
        // copy is made: its weights go, and it is built again when a photo next needs it. The
        // files are measured (once per model) before a compressed copy exists to sit beside them.
        original.release();
        self.original_metrics(&original, &mut progress).await?;
        let (model, shape) = run(
            &plan,
            &original.model,
            bn_photos,
            &fitting,
            self.batches.calibration,
            &self.backend,
            &mut progress,
        )
        .await?;
        let calibration_photos = plan.photos_used(fitting.len(), separate_bn.len());
        let fitted = Fitted {
            plan: &plan,
            settings,
            model,
            shape,
            photos: &photos,
            held: if fits_kept { Some(&held) } else { None },
            calibration_photos,
            started: t0,
            cancellable: true,
        };
        self.finish(&original, fitted, &mut progress).await
    }

    /// The original model's metrics, its files written and measured on first use.
    async fn original_metrics<P, F>(&self, original: &Loaded, progress: &mut P) -> Result<Metrics>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        if let Some(m) = self.state.borrow().original_metrics.clone() {
            return Ok(m);
        }
        announce(progress, "measuring the original's files").await?;
        let m = original.model.metrics_with_onnx()?;
        self.state.borrow_mut().original_metrics = Some(m.clone());
        Ok(m)
    }

    /// The rest of a compression once its model is built: files, metrics, answers on the kept
    /// photos, agreement, the model card; the model becomes the session's compressed one.
    pub(super) async fn finish<P, F>(
        &self,
        original: &Loaded,
        fitted: Fitted<'_>,
        mut progress: P,
    ) -> Result<CompressionReport>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let Fitted {
            plan,
            settings,
            mut model,
            shape,
            photos,
            held,
            calibration_photos,
            started: t0,
            cancellable,
        } = fitted;
        // Every caller passes its progress by reference and this wrapper is the only one: the
        // page's module holds one copy of what follows.
        let mut progress = |p: Progress| {
            let answer = progress(p);
            async move { answer.await || !cancellable }
        };
        model.labels = self.labels();
        // One announcement per piece: each is a point where the page's event loop runs (a
        // main-thread engine would otherwise freeze for seconds here). The files are measured
        // and dropped (see `metrics_with_onnx`): the downloads write them again when asked.
        announce(&mut progress, "writing the safetensors and ONNX files").await?;
        let after = model.metrics_with_onnx()?;
        let before = self.original_metrics(original, &mut progress).await?;

        let reference = self.original_logits(&mut progress).await?;
        original.release();
        // Built when a photo needs it (none may).
        let loaded = Loaded::lazy(model, &self.backend);
        let answers = loaded
            .answers(
                photos,
                self.batches.display,
                "classifying your photos with the compressed model",
                &mut progress,
            )
            .await?;
        let logits: Vec<Vec<f32>> = answers.iter().map(|a| a.logits.clone()).collect();
        let (agreement_photos, on): (AgreementPhotos, Vec<usize>) = match held {
            None => (AgreementPhotos::Unfitted, (0..photos.len()).collect()),
            Some([]) => (AgreementPhotos::Fitting, (0..photos.len()).collect()),
            Some(held) => (AgreementPhotos::HeldBack, held.to_vec()),
        };
        let held = held.map_or(0, <[usize]>::len);
        let pick = |v: &[Vec<f32>]| -> Vec<Vec<f32>> {
            on.iter().filter_map(|&i| v.get(i).cloned()).collect()
        };
        let agreement = (!photos.is_empty()).then(|| agreement(&pick(&reference), &pick(&logits)));

        let arch = original.model.arch.file_stem();
        let report = CompressionReport {
            ratios: after.ratios_to(&before),
            before,
            after,
            quantization: loaded.model.quant.describe(),
            layers: layer_report(&original.model, &loaded.model),
            photos: answers,
            agreement,
            agreement_photos,
            held_back: held,
            calibration_photos,
            file_stem: plan.file_stem(&arch),
            shape,
            seconds: t0.elapsed().as_secs_f64(),
        };
        let card = ModelCard {
            tool: "modelslim".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            architecture: original.model.arch.file_stem(),
            file_stem: report.file_stem.clone(),
            settings: settings.clone(),
            steps: CardStep::of_plan(plan),
            quantization: report.quantization.clone(),
            before: report.before.clone(),
            after: report.after.clone(),
            layers: report.layers.clone(),
            shape: report.shape.clone(),
            agreement_on_uploaded_photos: report.agreement.clone(),
            agreement_photos,
            calibration_photos,
            held_back_photos: held,
            labels: loaded.model.labels.as_deref().cloned(),
            backend: self.backend.description.clone(),
            note: ModelCard::NOTE.into(),
            distillation: None,
        };
        self.set_compressed(
            loaded,
            Files {
                stem: report.file_stem.clone(),
                adopted_safetensors: None,
                card: Some(CardFile::new(card)?),
            },
        );
        Ok(report)
    }

    /// Take a compression made elsewhere as this session's last one: its safetensors file (kept
    /// byte for byte) and model card. The page moves its session this way into the engine
    /// module that can train, which it loads only when the user asks to recover accuracy.
    pub fn adopt_compressed(&self, safetensors: Vec<u8>, card: String) -> Result<()> {
        let _busy = self.begin("taking over a compression")?;
        let original = self.original()?;
        let model = Model::from_bytes(&safetensors)?;
        if !model.arch.same_network(&original.model.arch) {
            return Err(Error::Invalid(format!(
                "the compressed file is a {}, but the loaded model is a {}",
                model.arch.display(),
                original.model.arch.display()
            )));
        }
        let card = CardFile::read(card)?;
        let stem = card.card.file_stem.clone();
        let loaded = Loaded::new(model, &self.backend)?;
        self.set_compressed(
            loaded,
            Files {
                stem,
                adopted_safetensors: Some(safetensors),
                card: Some(card),
            },
        );
        Ok(())
    }

    /// Make `loaded` with its `files` the last compression (the files' model).
    pub(super) fn set_compressed(&self, loaded: Loaded, files: Files) {
        self.state.borrow_mut().compressed = Some(Rc::new(Compressed {
            loaded: Rc::new(loaded),
            files,
        }));
    }

    /// A file of the last compression.
    pub fn file(&self, format: FileFormat) -> Result<Vec<u8>> {
        let compressed = self
            .state
            .borrow()
            .compressed
            .clone()
            .ok_or_else(|| Error::Invalid("compress the model first".into()))?;
        let (model, f) = (&compressed.loaded.model, &compressed.files);
        Ok(match format {
            FileFormat::Onnx => to_onnx(model)?,
            FileFormat::Safetensors => match &f.adopted_safetensors {
                Some(bytes) => bytes.clone(),
                None => model.to_safetensors()?,
            },
            FileFormat::Card => f
                .card
                .as_ref()
                .ok_or_else(|| {
                    Error::Invalid(
                        "this model has no model card: it was not compressed here".into(),
                    )
                })?
                .json
                .clone()
                .into_bytes(),
        })
    }

    /// The loaded original as ONNX (fp32): the baseline a runtime check times the compressed
    /// file against.
    pub fn original_onnx(&self) -> Result<Vec<u8>> {
        to_onnx(&self.original()?.model)
    }

    /// The name that says what the file is, e.g. `resnet18-c30-int8.onnx`; `None` before a
    /// compression.
    pub fn file_name(&self, format: FileFormat) -> Option<String> {
        let s = self.state.borrow();
        let stem = &s.compressed.as_ref()?.files.stem;
        Some(format!("{stem}.{}", format.extension()))
    }
}
