//! Running the network on images and turning logits into ranked classes.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::backend::Backend;
use crate::labels::class_name;
use crate::model::Model;
use crate::model::exec::{BatchNormMode, Network, Pass};
use crate::model::graph::Hw;
use crate::preprocess::image_hw;
use crate::{Error, Result};

/// One ranked class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassScore {
    pub index: usize,
    pub label: String,
    pub prob: f32,
}

/// The network's answer for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub top5: Vec<ClassScore>,
    pub logits: Vec<f32>,
}

/// Softmax in f64 for stability; returns f32 probabilities.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// The class with the largest logit; of classes tied at the top, the first (the lower index),
/// as `top_k`, NumPy's `argmax` and TFLite's `ARG_MAX` choose.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate() {
        if l.total_cmp(&logits[best]).is_gt() {
            best = i;
        }
    }
    best
}

/// A network's output as class logits: a single logit `z` (a binary classifier's) is the two
/// classes `[0, z]`, so that softmax gives `[1 − σ(z), σ(z)]` and the top class is `z`'s sign
/// (`z > 0`: class 1). Wider outputs are their own classes.
pub fn class_logits(output: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    match output {
        [z] => std::borrow::Cow::Owned(vec![0.0, *z]),
        wide => std::borrow::Cow::Borrowed(wide),
    }
}

/// The `k` most probable classes, best first (ties keep the lower index first), named as
/// ImageNet's.
pub fn top_k(logits: &[f32], k: usize) -> Vec<ClassScore> {
    top_k_named(logits, k, None)
}

/// [`top_k`] with the classes named by `names` (class `i` is `names[i]`) instead of ImageNet's.
/// A single logit is a binary classifier's ([`class_logits`]).
pub fn top_k_named(output: &[f32], k: usize, names: Option<&[String]>) -> Vec<ClassScore> {
    let logits = &class_logits(output)[..];
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| ClassScore {
            index: i,
            label: match names.and_then(|n| n.get(i)) {
                Some(n) => n.clone(),
                None => class_name(i),
            },
            prob: probs[i],
        })
        .collect()
}

impl Prediction {
    pub fn from_logits(logits: Vec<f32>) -> Self {
        Prediction::from_logits_named(logits, None)
    }

    /// With the classes named by `names` (see [`top_k_named`]).
    pub fn from_logits_named(logits: Vec<f32>, names: Option<&[String]>) -> Self {
        Prediction {
            top5: top_k_named(&logits, 5, names),
            logits,
        }
    }
}

/// Read a tensor back to the host as f32.
/// Read a tensor back to the host (asynchronously: the only way on WebGPU).
pub async fn read_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| Error::Backend(format!("reading results back failed: {e:?}")))?;
    data.try_to_vec::<f32>()
        .map_err(|e| Error::Backend(format!("unexpected result type: {e:?}")))
}

/// Upload a batch of normalised CHW images of one size, as `[N, 3, H, W]`; their sides are in
/// the ratio of `aspect`, the network's input size (224×224 for photos; the network is
/// convolutional, and tests and synthesized images use other sizes).
pub fn image_batch(images: &[Vec<f32>], aspect: Hw, device: &Device) -> Result<Tensor<4>> {
    if images.is_empty() {
        return Err(Error::Invalid("no images were given".into()));
    }
    let [h, w] = image_hw(images[0].len(), aspect)?;
    if h.min(w) < 16 {
        return Err(Error::Invalid(format!(
            "input has {} values, not a 3-channel image of at least 16×16",
            images[0].len()
        )));
    }
    let per = 3 * h * w;
    if let Some(bad) = images.iter().find(|im| im.len() != per) {
        return Err(Error::Invalid(format!(
            "input has {} values, expected 3×{h}×{w}",
            bad.len()
        )));
    }
    let flat: Vec<f32> = images.concat();
    Ok(Tensor::<4>::from_data(
        TensorData::new(flat, [images.len(), 3, h, w]),
        device,
    ))
}

/// One graph value read back by [`Classifier::capture`]: `[N, C, H, W]` values in row-major
/// order.
pub struct Captured {
    pub value: usize,
    pub dims: [usize; 4],
    pub data: Vec<f32>,
}

/// [`Network::build`] or [`Network::build_for_inference`].
type BuildNetwork = fn(
    &crate::model::graph::Graph,
    &crate::tensor::StateDict,
    &crate::quant::Quantization,
    &Device,
) -> Result<Network>;

/// `[N, classes]` logits read back to the host, one row per image.
async fn read_logits(out: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let classes = out.dims()[1];
    let values = read_values(out).await?;
    // Finite weights can still overflow (a weight of 1e30); a NaN must not reach a report.
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::Invalid(
            "the model computed NaN or an infinity: its weights or activation scales are out of range (a damaged file?)".into(),
        ));
    }
    Ok(values.chunks(classes).map(<[f32]>::to_vec).collect())
}

/// A model uploaded to a backend, ready to classify preprocessed images.
pub struct Classifier {
    pub backend: Backend,
    net: Network,
    /// The network's input `[height, width]`: the shape of the images it is given.
    aspect: Hw,
}

impl Classifier {
    /// Upload `model` to `backend`.
    pub fn new(model: &Model, backend: Backend) -> Result<Self> {
        Self::built_by(Network::build, model, backend)
    }

    /// Upload `model` to `backend` to compute logits only, batch norms folded into their
    /// convolutions ([`Network::build_for_inference`]): faster, but it cannot capture values
    /// or measure batch statistics.
    pub fn for_logits(model: &Model, backend: Backend) -> Result<Self> {
        Self::built_by(Network::build_for_inference, model, backend)
    }

    fn built_by(build: BuildNetwork, model: &Model, backend: Backend) -> Result<Self> {
        let net = build(
            &model.graph(),
            &model.weights,
            &model.quant,
            &backend.device,
        )?;
        Ok(Classifier {
            backend,
            net,
            aspect: model.arch.input_size(),
        })
    }

    fn input(&self, images: &[Vec<f32>]) -> Result<Tensor<4>> {
        image_batch(images, self.aspect, &self.backend.device)
    }

    /// Logits for a batch of normalised CHW images, read back asynchronously (the only way on
    /// WebGPU).
    pub async fn logits(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.input(images)?;
        read_logits(crate::parallel::on_threads(|| self.net.forward(input))).await
    }

    /// A pass over `images` that has computed nothing yet, for [`Classifier::advance_to_layer`].
    pub fn start(&self, images: &[Vec<f32>]) -> Result<Pass> {
        Ok(self.net.start(self.input(images)?))
    }

    /// Go on with `pass` up to the input of layer `layer` (every step before it). False when
    /// the pass has gone beyond it or this network has no such layer.
    pub fn advance_to_layer(&self, pass: &mut Pass, layer: &str) -> bool {
        crate::parallel::on_threads(|| self.net.resume_before_layer(pass, layer))
    }

    /// The logits of passes another upload of the same graph (another precision of one of
    /// its layers) took part of the way, each the rest of the way with these weights: what
    /// [`Classifier::logits`] gives where everything before agrees, for the steps after only.
    /// One row per image, the passes' images in order; the passes side by side where there
    /// are threads.
    pub async fn logits_from(&self, passes: &[Pass]) -> Result<Vec<Vec<f32>>> {
        let outs = crate::parallel::on_threads(|| {
            crate::parallel::map_each(passes, |p| self.net.finish(p.clone()))
        });
        let mut rows = Vec::new();
        for out in outs {
            let out = out.ok_or_else(|| {
                Error::Structure("a pass was resumed by a network with other steps".into())
            })?;
            rows.extend(read_logits(out).await?);
        }
        Ok(rows)
    }

    /// Per batch norm: the mean and unbiased variance of its input over `images` (one batch,
    /// training mode), read back to the host.
    pub async fn batch_norm_statistics(
        &self,
        images: &[Vec<f32>],
    ) -> Result<Vec<(String, Vec<f32>, Vec<f32>)>> {
        let x = self.input(images)?;
        let mut out = Vec::new();
        for s in self.net.batch_statistics(x) {
            let mean = read_values(s.mean).await?;
            let var = read_values(s.var).await?;
            let unbias = s.count as f32 / (s.count.max(2) - 1) as f32;
            out.push((s.name, mean, var.iter().map(|v| v * unbias).collect()));
        }
        Ok(out)
    }

    /// Run a batch and read the given values back to the host as computed (activation
    /// calibration, bias correction).
    pub async fn capture(&self, images: &[Vec<f32>], values: &[usize]) -> Result<Vec<Captured>> {
        let input = self.input(images)?;
        let (_, captured) =
            crate::parallel::on_threads(|| self.net.run(input, BatchNormMode::Running, values));
        let mut out = Vec::with_capacity(captured.len());
        for (value, t) in captured {
            let dims = t.dims();
            out.push(Captured {
                value,
                dims,
                data: read_values(t).await?,
            });
        }
        Ok(out)
    }

    /// Value `value` for `images`, read back, going on with `pass` where it stopped (at an
    /// earlier value, over the same images); a new pass when there is none or it already went
    /// beyond `value`. Returns the pass, stopped at `value`, to go on with.
    pub async fn capture_resumed(
        &self,
        pass: Option<Pass>,
        images: &[Vec<f32>],
        value: usize,
    ) -> Result<(Captured, Pass)> {
        let mut pass = match pass {
            Some(p) => p,
            None => self.net.start(self.input(images)?),
        };
        let resume =
            |pass: &mut Pass| crate::parallel::on_threads(|| self.net.resume_until(pass, value));
        let t = match resume(&mut pass) {
            Some(t) => t,
            None => {
                pass = self.net.start(self.input(images)?);
                resume(&mut pass).ok_or_else(|| {
                    Error::Structure(format!("value {value} is not computed by this network"))
                })?
            }
        };
        let dims = t.dims();
        let data = read_values(t).await?;
        Ok((Captured { value, dims, data }, pass))
    }

    /// Classify one preprocessed image.
    pub async fn predict(&self, image: Vec<f32>) -> Result<Prediction> {
        let mut l = self.logits(&[image]).await?;
        let logits = l.pop().unwrap_or_default();
        Ok(Prediction::from_logits(logits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_normalises() {
        let logits = vec![0.0, 3.0, 1.0, 3.0, -2.0, 0.5];
        let top = top_k(&logits, 5);
        assert_eq!(
            top.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![1, 3, 2, 5, 0]
        );
        // A tie at the top goes to the first class, in `argmax` as in `top_k`.
        assert_eq!(argmax(&logits), 1);
        assert_eq!(argmax(&[-1.0, -1.0]), 0);
        let total: f32 = softmax(&logits).iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((top[0].prob - top[1].prob).abs() < 1e-7);
    }
}
