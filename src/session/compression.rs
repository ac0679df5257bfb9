//! `Session::compress`: the settings checked against the photos there are, the pipeline run,
//! the files written, the metrics measured on those files, the compressed model's answers on
//! the kept photos and the model card — in that order, each step reported and cancellable.

use std::future::Future;
use std::rc::Rc;

use web_time::Instant;

use super::{Compressed, CompressionReport, FileFormat, Loaded, ModelCard, Session};
use crate::compress::{Progress, Settings, agreement, compress, layer_report, report};
use crate::export::to_onnx;
use crate::model::Model;
use crate::{Error, Result};

/// The downloadable files of one compression.
pub(super) struct Files {
    pub stem: String,
    pub onnx: Vec<u8>,
    pub safetensors: Vec<u8>,
    pub card: String,
}

/// A step outside the pipeline's own, announced the same way (no step number).
async fn announce<P, F>(progress: &mut P, label: &str) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let p = Progress {
        step: 0,
        steps: 0,
        label: label.into(),
    };
    report(progress, p).await
}

impl Session {
    /// Compress the loaded model with `settings`, calibrating on the kept photos (batch-norm
    /// photos for recalibration when there are any). `progress` is told before each step and
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
        let opts = settings.to_options()?;
        let original = self.original()?;
        let (photos, bn_photos) = self.inputs();
        if let Some(need) = settings.calibration_need()
            && photos.len().max(bn_photos.len()) < need.min
        {
            return Err(Error::Invalid(need.message()));
        }
        let batch = self.batches.calibration;
        let model = compress(
            &original.model,
            &opts,
            &bn_photos,
            &photos,
            batch,
            &self.backend,
            &mut progress,
        )
        .await?;

        // One announcement per piece: each is a point where the page's event loop runs (a
        // main-thread engine would otherwise freeze for seconds here).
        announce(&mut progress, "writing the safetensors file").await?;
        let safetensors = model.to_safetensors()?;
        announce(&mut progress, "writing the ONNX file").await?;
        let onnx = to_onnx(&model)?;
        announce(&mut progress, "measuring the files (gzip)").await?;
        let after = model.metrics_of_files(&safetensors, Some(&onnx));
        let cached = self.state.borrow().original_metrics.clone();
        let before = match cached {
            Some(m) => m,
            None => {
                announce(&mut progress, "measuring the original's files").await?;
                let m = original.model.metrics_with_onnx()?;
                self.state.borrow_mut().original_metrics = Some(m.clone());
                m
            }
        };

        let reference = self.original_logits(&mut progress).await?;
        let loaded = Loaded::new(model, &self.backend)?;
        let answers = loaded
            .answers(
                &photos,
                self.batches.display,
                "classifying your photos with the compressed model",
                &mut progress,
            )
            .await?;
        let logits: Vec<Vec<f32>> = answers.iter().map(|a| a.logits.clone()).collect();
        let agreement = (!photos.is_empty()).then(|| agreement(&reference, &logits));

        let arch = original.model.arch.name();
        let calibration_photos = if opts.act_quant.is_some() || opts.bias_correction {
            photos.len()
        } else if opts.recalibrate_bn {
            bn_photos.len()
        } else {
            0
        };
        let report = CompressionReport {
            ratios: after.ratios_to(&before),
            before,
            after,
            quantization: loaded.model.quant.describe(),
            layers: layer_report(&original.model, &loaded.model),
            photos: answers,
            agreement,
            calibration_photos,
            file_stem: opts.file_stem(arch),
            seconds: t0.elapsed().as_secs_f64(),
        };
        let card = serde_json::to_string_pretty(&ModelCard {
            tool: "modelslim",
            version: env!("CARGO_PKG_VERSION"),
            architecture: arch,
            file_stem: &report.file_stem,
            settings,
            quantization: &report.quantization,
            before: &report.before,
            after: &report.after,
            layers: &report.layers,
            agreement_on_uploaded_photos: report.agreement.as_ref(),
            calibration_photos,
            backend: &self.backend.description,
            note: "Sizes are the files' bytes. Agreement is measured on the photos given to the tool, against the uncompressed model; it is not ImageNet accuracy.",
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        self.set_compressed(
            loaded,
            Files {
                stem: report.file_stem.clone(),
                onnx,
                safetensors,
                card,
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
        if model.arch.name() != original.model.arch.name() {
            return Err(Error::Invalid(format!(
                "the compressed file is a {}, but the loaded model is a {}",
                model.arch.display(),
                original.model.arch.display()
            )));
        }
        let stem = serde_json::from_str::<serde_json::Value>(&card)
            .ok()
            .and_then(|c| c.get("file_stem")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{}-compressed", original.model.arch.name()));
        let onnx = to_onnx(&model)?;
        let loaded = Loaded::new(model, &self.backend)?;
        self.set_compressed(
            loaded,
            Files {
                stem,
                onnx,
                safetensors,
                card,
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
        let s = self.state.borrow();
        let f = &s
            .compressed
            .as_ref()
            .ok_or_else(|| Error::Invalid("compress the model first".into()))?
            .files;
        Ok(match format {
            FileFormat::Onnx => f.onnx.clone(),
            FileFormat::Safetensors => f.safetensors.clone(),
            FileFormat::Card => f.card.clone().into_bytes(),
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
