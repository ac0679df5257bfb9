//! Calibration images synthesized from the network itself, for users without photos (ZeroQ,
//! Cai et al. 2020; DeepInversion, Yin et al. 2020): starting from noise, the pixels are
//! optimised until every batch norm sees, over the batch, inputs whose per-channel mean and
//! variance are its running statistics — the statistics of ImageNet as the trained network
//! remembers them. Activation ranges, batch-norm recalibration and layer statistics measured
//! on such images resemble those on photos, which is all calibration needs.

use std::future::Future;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use web_time::Instant;

pub use super::options::SynthOptions;
use crate::backend::Backend;
use crate::model::exec::Network;
use crate::model::layers::param;
use crate::model::{Model, Op};
use crate::predict::{image_batch, read_values};
use crate::preprocess::Preprocess;
use crate::preprocess::image_hw;
use crate::rng::Rng;
use crate::{Error, Result};

/// Weight of the smoothness prior (total variation between neighbouring pixels): without it
/// the statistics are met by high-frequency noise.
const SMOOTHNESS: f32 = 1e-3;

/// What a synthesis did: the images (normalised CHW squares of the side the network's
/// preprocessing resizes to) and the statistics loss of each batch before and after.
#[derive(Debug, Clone, Serialize)]
pub struct Synthesized {
    #[serde(skip)]
    pub images: Vec<Vec<f32>>,
    pub side: usize,
    pub loss_before: Vec<f64>,
    pub loss_after: Vec<f64>,
    pub seconds: f64,
}

/// Progress of a synthesis, after each step.
#[derive(Debug, Clone, Serialize)]
pub struct SynthStep {
    pub batch: usize,
    pub batches: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
}

/// The batch norms' running statistics on the device.
struct Running {
    mean: Vec<Tensor<1>>,
    var: Vec<Tensor<1>>,
}

fn running_statistics(model: &Model, backend: &Backend) -> Result<Running> {
    if model.folded {
        return Err(Error::Invalid(
            "synthesizing images needs the batch norms' running statistics, which a quantized (folded) model no longer has: use the original model".into(),
        ));
    }
    let [h, w] = model.arch.input_size();
    if h != w {
        return Err(Error::Invalid(format!(
            "synthesized images are squares, saved as photos, and this network's input is {h}×{w}: calibrate on photos instead"
        )));
    }
    let device = backend.device.clone().autodiff();
    let upload = |key: String| -> Result<Tensor<1>> {
        let t = param(&model.weights, &key)?;
        Ok(Tensor::from_data(
            TensorData::new(t.data.clone(), [t.len()]),
            &device,
        ))
    };
    let mut running = Running {
        mean: Vec::new(),
        var: Vec::new(),
    };
    for n in &model.graph().nodes {
        if let Op::BatchNorm { name, .. } = &n.op {
            running.mean.push(upload(format!("{name}.running_mean"))?);
            running.var.push(upload(format!("{name}.running_var"))?);
        }
    }
    if running.mean.is_empty() {
        return Err(Error::Invalid(
            "this network has no batch norms (folded into its convs when it was exported?), and synthesis makes images from their statistics: calibrate on photos instead".into(),
        ));
    }
    Ok(running)
}

/// The statistics loss of a batch `x` (on an autodiff device): per batch norm, the distance of
/// the batch's mean and variance from the running ones (DeepInversion's
/// `‖μ − μ̂‖₂ + ‖σ² − σ̂²‖₂`), summed; plus the smoothness prior when `prior`.
fn loss(net: &Network, running: &Running, x: Tensor<4>, prior: bool) -> Tensor<1> {
    let (_, stats) = net.observe_batch_statistics(x.clone());
    let mut total: Option<Tensor<1>> = None;
    for (s, (mean, var)) in stats.iter().zip(running.mean.iter().zip(&running.var)) {
        let d = (s.mean.clone() - mean.clone()).square().sum().sqrt()
            + (s.var.clone() - var.clone()).square().sum().sqrt();
        total = Some(match total {
            Some(t) => t + d,
            None => d,
        });
    }
    let mut total = total.unwrap_or_else(|| x.clone().sum().mul_scalar(0.0));
    if prior {
        let [_, _, h, w] = x.dims();
        let dx = x.clone().narrow(3, 1, w - 1) - x.clone().narrow(3, 0, w - 1);
        let dy = x.clone().narrow(2, 1, h - 1) - x.narrow(2, 0, h - 1);
        let tv = dx.square().mean() + dy.square().mean();
        total = total + tv.mul_scalar(SMOOTHNESS);
    }
    total
}

/// `model` on `backend`'s device with autodiff (gradients reach the input), its batch norms'
/// running statistics there, and the device.
fn on_autodiff(model: &Model, backend: &Backend) -> Result<(Network, Running, Device)> {
    let running = running_statistics(model, backend)?;
    let device = backend.device.clone().autodiff();
    let net = Network::build(&model.graph(), &model.weights, &model.quant, &device)?;
    Ok((net, running, device))
}

/// The statistics loss (without the prior) of `images` as one batch: how far their batch-norm
/// statistics are from the running ones.
pub async fn statistics_loss(model: &Model, images: &[Vec<f32>], backend: &Backend) -> Result<f64> {
    let (net, running, device) = on_autodiff(model, backend)?;
    let x = image_batch(images, model.arch.input_size(), &device)?;
    let v = read_values(loss(&net, &running, x, false).inner()).await?;
    Ok(v.first().copied().unwrap_or(f32::NAN) as f64)
}

/// Synthesize `opts.n` images from `model`'s batch norms. `report` hears about every step
/// (`false` cancels).
pub async fn synthesize<R, F>(
    model: &Model,
    opts: &SynthOptions,
    backend: &Backend,
    mut report: R,
) -> Result<Synthesized>
where
    R: FnMut(SynthStep) -> F,
    F: Future<Output = bool>,
{
    opts.check()?;
    let (net, running, device) = on_autodiff(model, backend)?;
    // The side the preprocessing resizes to: the saved image is then center-cropped as a
    // photo would be, and the crop's statistics are those optimised (the network is
    // convolutional; its statistics barely depend on the input's size).
    let side = opts.side.unwrap_or(model.preprocess().resize as usize);
    let mut rng = Rng::new(opts.seed);
    let start = Instant::now();
    let batches = opts.n.div_ceil(opts.batch);
    let mut out = Synthesized {
        images: Vec::with_capacity(opts.n),
        side,
        loss_before: Vec::new(),
        loss_after: Vec::new(),
        seconds: 0.0,
    };
    for b in 0..batches {
        let count = opts.batch.min(opts.n - b * opts.batch);
        let init: Vec<f32> = (0..count * 3 * side * side)
            .map(|_| rng.normal() as f32)
            .collect();
        let shape = [count, 3, side, side];
        let mut x: Tensor<4> =
            Tensor::from_data(TensorData::new(init, shape), &device).require_grad();
        let mut adam = super::adam::Adam::default();
        let mut last = f64::NAN;
        for step in 0..opts.steps {
            let l = loss(&net, &running, x.clone(), true);
            let value = read_values(l.clone().inner()).await?;
            last = value.first().copied().unwrap_or(f32::NAN) as f64;
            if !last.is_finite() {
                return Err(Error::Invalid(format!(
                    "the synthesis loss became {last}: use a smaller learning rate"
                )));
            }
            if step == 0 {
                out.loss_before.push(last);
            }
            let mut grads = l.backward();
            let g = x
                .grad_remove(&mut grads)
                .ok_or_else(|| Error::Backend("no gradient reached the images".into()))?;
            adam.next_step();
            let n = g.shape().num_elements();
            let flat = adam.update("x", x.clone().inner().reshape([n]), g.reshape([n]), opts.lr);
            x = flat.reshape(shape).autodiff().require_grad();
            let go_on = report(SynthStep {
                batch: b + 1,
                batches,
                step: step + 1,
                steps: opts.steps,
                loss: last,
            })
            .await;
            if !go_on {
                return Err(Error::Cancelled);
            }
        }
        out.loss_after.push(last);
        let values = read_values(x.inner()).await?;
        out.images
            .extend(values.chunks(3 * side * side).map(<[f32]>::to_vec));
    }
    out.seconds = start.elapsed().as_secs_f64();
    Ok(out)
}

/// A synthesized image as a PNG that any photo input reads (pixels clamped to 0–255).
pub fn to_png(image: &[f32], pre: &Preprocess) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let side = image_hw(image.len(), [1, 1])?[0];
    let plane = side * side;
    let mut rgb = vec![0u8; 3 * plane];
    for i in 0..plane {
        for c in 0..3 {
            let p = (image[c * plane + i] * pre.std[c] + pre.mean[c]) * 255.0;
            rgb[3 * i + c] = p.round().clamp(0.0, 255.0) as u8;
        }
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            &rgb,
            side as u32,
            side as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Invalid(format!("could not encode a PNG: {e}")))?;
    Ok(png)
}
