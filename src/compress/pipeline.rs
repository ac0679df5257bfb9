//! The whole compression, in the order that works: structured pruning, magnitude sparsity,
//! batch-norm recalibration, weight quantization, activation calibration. The CLI and the page
//! both call [`compress`]; each step is reported to a progress callback, which may cancel.

use std::future::Future;

use serde::Serialize;

use super::measured_importance::MeasuredImportance;
use super::{Augment, Calibration, GptqOptions, QuantMethod, QuantOptions};
use super::{PruneOptions, SparsityOptions, recalibrate_bn};
use crate::backend::Backend;
use crate::model::Model;
use crate::predict::{Classifier, softmax};
use crate::quant::Precision;
use crate::{Error, Result};

/// Everything one compression run does.
#[derive(Debug, Clone, Default)]
pub struct CompressOptions {
    pub prune: PruneOptions,
    pub sparsity: SparsityOptions,
    /// Re-estimate batch-norm statistics on the calibration images after pruning.
    pub recalibrate_bn: bool,
    pub quant: QuantOptions,
    /// Round to nearest, or GPTQ on the calibration images.
    pub quant_method: QuantMethod,
    /// With calibration images: after structured pruning, refit the layers that read pruned
    /// channels by least squares; sparsity by SparseGPT instead of magnitude.
    pub reconstruct: bool,
    /// Copies of the calibration images the layer statistics (GPTQ, SparseGPT, refitting,
    /// measured importance) are also measured on; activation ranges, bias correction and
    /// batch-norm recalibration use the images as they are.
    pub augment: Augment,
    /// Quantize activations to u8, ranges from the calibration images.
    pub act_quant: Option<Calibration>,
    /// After weight quantization, shift each integer layer's bias by the mean output change its
    /// rounding causes on the calibration images (bias correction).
    pub bias_correction: bool,
}

impl CompressOptions {
    /// Whether a step measures layer inputs' Gram matrices on the calibration images.
    fn uses_layer_statistics(&self) -> bool {
        let prune = self.prune.ratio > 0.0 || !self.prune.overrides.is_empty();
        self.reconstruct
            || self.quant_method == QuantMethod::Gptq
            || (prune && self.prune.importance.is_measured())
    }

    /// Refuse what cannot work before any time is spent.
    pub fn check(&self, bn_images: usize, act_images: usize) -> Result<()> {
        if self.recalibrate_bn && bn_images == 0 {
            return Err(Error::Invalid(
                "batch-norm recalibration needs calibration images".into(),
            ));
        }
        if self.bias_correction && act_images == 0 {
            return Err(Error::Invalid(
                "bias correction needs calibration images".into(),
            ));
        }
        let prune = self.prune.ratio > 0.0 || !self.prune.overrides.is_empty();
        if self.reconstruct {
            if act_images == 0 {
                return Err(Error::Invalid(
                    "reconstruction needs calibration images (the layers are refit on them)".into(),
                ));
            }
            if !prune && self.sparsity.sparsity == 0.0 {
                return Err(Error::Invalid(
                    "reconstruction refits what pruning removed: use it with channel pruning or sparsity"
                        .into(),
                ));
            }
        }
        if prune && self.prune.importance.is_measured() {
            if act_images == 0 {
                return Err(Error::Invalid(format!(
                    "importance '{}' is measured on calibration images: give some",
                    self.prune.importance.label()
                )));
            }
            if self.prune.steps > 1 {
                return Err(Error::Invalid(format!(
                    "importance '{}' is measured once, on the original network: prune in one step",
                    self.prune.importance.label()
                )));
            }
        }
        if self.quant_method == QuantMethod::Gptq {
            if act_images == 0 {
                return Err(Error::Invalid(
                    "GPTQ needs calibration images (its layer statistics come from them)".into(),
                ));
            }
            let any_int = self.quant.weights.bits().is_some()
                || self.quant.overrides.values().any(|p| p.bits().is_some());
            if !any_int {
                return Err(Error::Invalid(
                    "GPTQ chooses integers: use it with int8 or int4 weights".into(),
                ));
            }
        }
        if self.augment != Augment::None && !self.uses_layer_statistics() {
            return Err(Error::Invalid(format!(
                "augmentation '{}' multiplies the photos GPTQ, refitting and measured importance use: choose one of them",
                self.augment.label()
            )));
        }
        if self.act_quant.is_some() && act_images == 0 {
            return Err(Error::Invalid(
                "activation quantization needs calibration images".into(),
            ));
        }
        if self.act_quant.is_some() {
            if self.quant.weights == Precision::Int4 {
                return Err(Error::Invalid(
                    "int4 weights with quantized activations are not supported: use int8, or leave activations in float"
                        .into(),
                ));
            }
            if self.quant.weights != Precision::Int8 {
                return Err(Error::Invalid(
                    "activation quantization needs int8 weights (--quant int8)".into(),
                ));
            }
            if let super::Granularity::Group(_) = self.quant.granularity {
                return Err(Error::Invalid(
                    "activation quantization needs per-channel or per-tensor weights, not groups"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

impl CompressOptions {
    /// A file name stem that says what the file is: `resnet18-c30-int8`,
    /// `resnet18-s50-int8a8-bn` (c: channels pruned %, s: sparsity %, a8: u8 activations,
    /// bn: recalibrated batch norms).
    pub fn file_stem(&self, architecture: &str) -> String {
        let pct = |r: f32| (r * 100.0).round() as u32;
        let mut parts = vec![architecture.to_string()];
        if self.prune.ratio > 0.0 {
            parts.push(format!("c{}", pct(self.prune.ratio)));
        }
        if self.sparsity.sparsity > 0.0 {
            parts.push(format!("s{}", pct(self.sparsity.sparsity)));
        }
        if self.reconstruct {
            parts.push("refit".into());
        }
        if self.quant.weights != Precision::F32 {
            let mut q = self.quant.weights.label().to_string();
            if self.quant.weights.bits().is_some() {
                match self.quant.granularity {
                    super::Granularity::PerTensor => q.push('t'),
                    super::Granularity::Group(n) => q.push_str(&format!("g{n}")),
                    super::Granularity::PerChannel => {}
                }
            }
            if self.act_quant.is_some() {
                q.push_str("a8");
            }
            parts.push(q);
            if self.quant_method == QuantMethod::Gptq {
                parts.push("gptq".into());
            }
        }
        if self.recalibrate_bn {
            parts.push("bn".into());
        }
        if parts.len() == 1 {
            parts.push("fp32".into());
        }
        parts.join("-")
    }
}

/// One step of a run, for progress reports.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// 1-based step number and the total.
    pub step: usize,
    pub steps: usize,
    /// What the step does, for people.
    pub label: String,
}

/// Tell `progress` about step `p` and wait for its answer: `false` cancels the run.
pub async fn report<P, F>(progress: &mut P, p: Progress) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if progress(p).await {
        Ok(())
    } else {
        Err(Error::Cancelled)
    }
}

/// Run every requested step on `model`. `bn_images` (batch-norm recalibration) and
/// `act_images` (activation calibration) are preprocessed images, used in batches of `batch`.
/// `progress` is told before each step and awaited (the page yields to its event loop there);
/// resolving to `false` cancels.
pub async fn compress<P, F>(
    model: &Model,
    opts: &CompressOptions,
    bn_images: &[Vec<f32>],
    act_images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    mut progress: P,
) -> Result<Model>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    opts.check(bn_images.len(), act_images.len())?;
    let batches_of = |images: &[Vec<f32>]| -> Vec<Vec<Vec<f32>>> {
        images.chunks(batch.max(1)).map(<[_]>::to_vec).collect()
    };
    // Only the layer statistics see the copies (see `CompressOptions::augment`).
    let statistics_batches = if opts.uses_layer_statistics() {
        batches_of(&opts.augment.apply(act_images)?)
    } else {
        Vec::new()
    };
    let prune = opts.prune.ratio > 0.0 || !opts.prune.overrides.is_empty();
    let mut labels: Vec<String> = Vec::new();
    if prune {
        let n = opts.prune.steps.max(1);
        labels.push(if opts.prune.importance.is_measured() {
            format!(
                "measuring channel importance ({}) and pruning channels",
                opts.prune.importance.label()
            )
        } else {
            format!(
                "pruning channels ({n} step{}, re-scoring between them)",
                if n == 1 { "" } else { "s" }
            )
        });
        if opts.reconstruct {
            labels.push("refitting the layers that read pruned channels".into());
        }
    }
    if opts.sparsity.sparsity > 0.0 {
        labels.push(if opts.reconstruct {
            "zeroing weights with SparseGPT, layer by layer".into()
        } else {
            "zeroing the smallest weights".into()
        });
    }
    if opts.recalibrate_bn {
        labels.push("recalibrating batch norms".into());
    }
    if opts.quant.weights != Precision::F32 || !opts.quant.overrides.is_empty() {
        labels.push(match opts.quant_method {
            QuantMethod::Rtn => format!("quantizing weights to {}", opts.quant.weights.label()),
            QuantMethod::Gptq => format!(
                "quantizing weights to {} with GPTQ, layer by layer",
                opts.quant.weights.label()
            ),
        });
    }
    if opts.bias_correction {
        labels.push("correcting biases for the rounding".into());
    }
    if opts.act_quant.is_some() {
        labels.push("calibrating activation ranges".into());
    }
    let steps = labels.len();
    let mut step = 0;
    let mut next = move || {
        let p = Progress {
            step: step + 1,
            steps,
            label: labels.get(step).cloned().unwrap_or_default(),
        };
        step += 1;
        p
    };

    let mut m = model.clone();
    if prune {
        report(&mut progress, next()).await?;
        let (pruned, kept) = if opts.prune.importance.is_measured() {
            let measured = MeasuredImportance::measure(
                &m,
                opts.prune.importance,
                backend,
                &statistics_batches,
            )
            .await?;
            m.pruned_by(&opts.prune, &measured)?
        } else {
            m.pruned_by(&opts.prune, opts.prune.importance.criterion()?)?
        };
        if opts.reconstruct {
            report(&mut progress, next()).await?;
            m = pruned
                .reconstructed(&m, &kept, None, backend, &statistics_batches, &mut progress)
                .await?;
        } else {
            m = pruned;
        }
    }
    if opts.sparsity.sparsity > 0.0 {
        report(&mut progress, next()).await?;
        m = if opts.reconstruct {
            m.sparsified_calibrated(&opts.sparsity, backend, &statistics_batches, &mut progress)
                .await?
                .with_sparse_marked()
        } else {
            m.sparsified(&opts.sparsity)?
        };
    }
    if opts.recalibrate_bn {
        report(&mut progress, next()).await?;
        m = recalibrate_bn(&m, backend.clone(), &batches_of(bn_images)).await?;
    }
    if opts.quant.weights != Precision::F32 || !opts.quant.overrides.is_empty() {
        report(&mut progress, next()).await?;
        // With quantized activations, weight scales go on the grid that keeps the exported
        // graph's arithmetic exact (see `ActQuant`).
        let quant = QuantOptions {
            exact_scales: opts.quant.exact_scales || opts.act_quant.is_some(),
            ..opts.quant.clone()
        };
        let quantized = match opts.quant_method {
            QuantMethod::Rtn => m.quantized(&quant)?,
            QuantMethod::Gptq => {
                m.quantized_gptq(
                    &quant,
                    GptqOptions::default(),
                    backend,
                    &statistics_batches,
                    &mut progress,
                )
                .await?
            }
        };
        if opts.bias_correction {
            report(&mut progress, next()).await?;
            // Input means are measured on the folded float model.
            let float = m.fold_bn()?;
            m = quantized
                .bias_corrected(&float, backend.clone(), &batches_of(act_images))
                .await?;
        } else {
            m = quantized;
        }
    }
    if let Some(method) = opts.act_quant {
        report(&mut progress, next()).await?;
        let act = m
            .calibrate_activations(backend.clone(), &batches_of(act_images), method)
            .await?;
        m = m.with_activation_quant(act)?;
    }
    Ok(m)
}

/// How a compressed model's outputs compare with the original's on the same images.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Agreement {
    pub n: usize,
    /// Fraction of images with the same top-1 class.
    pub agreement: f64,
    /// Mean KL divergence of the compressed softmax from the original's (nats).
    pub kl: f64,
}

/// Compare two sets of logits image by image.
pub fn agreement(reference: &[Vec<f32>], other: &[Vec<f32>]) -> Agreement {
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    let n = reference.len().min(other.len());
    let mut same = 0usize;
    let mut kl = 0f64;
    for (a, b) in reference.iter().zip(other) {
        same += usize::from(argmax(a) == argmax(b));
        let (p, q) = (softmax(a), softmax(b));
        kl += p
            .iter()
            .zip(&q)
            .filter(|(p, _)| **p > 0.0)
            .map(|(p, q)| *p as f64 * ((*p as f64) / (*q as f64).max(1e-30)).ln())
            .sum::<f64>();
    }
    Agreement {
        n,
        agreement: if n > 0 { same as f64 / n as f64 } else { 0.0 },
        kl: if n > 0 { kl / n as f64 } else { 0.0 },
    }
}

/// Logits of `model` for `images`, in batches.
pub async fn logits_of(
    model: &Model,
    backend: &Backend,
    images: &[Vec<f32>],
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let c = Classifier::for_logits(model, backend.clone())?;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        out.extend(c.logits(chunk).await?);
    }
    Ok(out)
}

/// One row of the sensitivity table: compressing only `layer` changed the outputs this much.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sensitivity {
    pub layer: String,
    pub params: usize,
    pub agreement: f64,
    pub kl: f64,
}

/// Per-layer sensitivity: quantize one conv/linear layer at a time to `precision` (all others
/// fp32) and measure the outputs against the original on `images`. Sorted most sensitive first.
pub async fn sensitivity<P, F>(
    model: &Model,
    precision: Precision,
    granularity: super::Granularity,
    images: &[Vec<f32>],
    backend: &Backend,
    mut progress: P,
) -> Result<Vec<Sensitivity>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if images.is_empty() {
        return Err(Error::Invalid(
            "sensitivity needs at least one calibration image".into(),
        ));
    }
    let reference = logits_of(model, backend, images, 16).await?;
    let graph = model.graph();
    let layers: Vec<(String, usize)> = graph
        .nodes
        .iter()
        .filter_map(|n| n.op.layer_name())
        .map(|name| {
            let params = model
                .weights
                .get(&format!("{name}.weight"))
                .map(|t| t.len())
                .unwrap_or(0);
            (name.to_string(), params)
        })
        .collect();
    let mut rows = Vec::with_capacity(layers.len());
    for (i, (layer, params)) in layers.iter().enumerate() {
        let p = Progress {
            step: i + 1,
            steps: layers.len(),
            label: format!("sensitivity of {layer}"),
        };
        report(&mut progress, p).await?;
        let opts = QuantOptions {
            weights: Precision::F32,
            granularity,
            keep_first_last: false,
            overrides: [(layer.clone(), precision)].into_iter().collect(),
            exact_scales: false,
        };
        let q = model.quantized(&opts)?;
        let a = agreement(&reference, &logits_of(&q, backend, images, 16).await?);
        rows.push(Sensitivity {
            layer: layer.clone(),
            params: *params,
            agreement: a.agreement,
            kl: a.kl,
        });
    }
    rows.sort_by(|a, b| b.kl.total_cmp(&a.kl));
    Ok(rows)
}
