//! Knowledge distillation: the compressed model (the student) learns to give the original's
//! (the teacher's) output distribution on random views of the user's photos — no labels
//! needed. The loss is the KL divergence of temperature-softened outputs (Hinton et al.),
//! optimised with Adam on a warm-up + cosine schedule. Training keeps the student storable as
//! it is (see [`Leaves`]); a few photos are held back to measure agreement before and after,
//! and the best model on them so far is what a run returns, cancelled or not.

use std::future::Future;

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, softmax};
use serde::Serialize;
use web_time::Instant;

use super::adam::{Adam, Schedule};
use super::jitter::{mix, random_view};
use super::leaves::Leaves;
pub use super::options::DistillOptions;
use crate::backend::Backend;
use crate::compress::agreement::logits_of;
use crate::compress::{Agreement, agreement};
use crate::model::Model;
use crate::model::exec::{BatchNormMode, Network};
use crate::predict::{image_batch, read_values};
use crate::rng::Rng;
use crate::{Error, Result};

/// Told after every step; resolving to `false` stops the run (the best model so far is kept).
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub steps: usize,
    /// The step's distillation loss (KL, scaled by the temperature's square).
    pub loss: f64,
    pub learning_rate: f32,
    /// Mean time per step so far.
    pub ms_per_step: f64,
    /// Time the remaining steps will take at that pace.
    pub remaining_s: f64,
    /// The held-back photos, when they were measured after this step.
    pub held_out: Option<Agreement>,
}

/// What a run did (the model it returns comes beside it).
#[derive(Debug, Clone, Serialize)]
pub struct Distilled {
    /// Steps run (fewer than asked when cancelled).
    pub steps: usize,
    /// Loss per step.
    pub loss: Vec<f64>,
    pub ms_per_step: f64,
    pub seconds: f64,
    pub train_images: usize,
    pub held_out_images: usize,
    /// The held-back photos before training and with the returned model.
    pub before: Agreement,
    pub after: Agreement,
    /// The step whose model is returned (0: none improved on the start).
    pub best_step: usize,
    /// Every measurement of the held-back photos during the run.
    pub held_out_curve: Vec<HeldOut>,
    pub cancelled: bool,
}

/// The held-back photos measured after `step`.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    pub step: usize,
    #[serde(flatten)]
    pub agreement: Agreement,
}

/// The distillation loss: `T² · KL(softmax(t/T) ‖ softmax(s/T))`, averaged over the batch.
pub fn distillation_loss(teacher: Tensor<2>, student: Tensor<2>, temperature: f32) -> Tensor<1> {
    let n = teacher.dims()[0].max(1) as f32;
    let t = teacher.div_scalar(temperature);
    let (p, log_p) = (softmax(t.clone(), 1), log_softmax(t, 1));
    let log_q = log_softmax(student.div_scalar(temperature), 1);
    (p * (log_p - log_q))
        .sum()
        .mul_scalar(temperature * temperature / n)
}

/// Distil `student` (a compression of `teacher`) on `images` (preprocessed for their
/// network). `report` hears about every step. Returns what the run did and the model: the best
/// on the held-back photos (the last without any).
pub async fn distill<R, F>(
    teacher: &Model,
    student: &Model,
    images: &[Vec<f32>],
    opts: &DistillOptions,
    backend: &Backend,
    eval_batch: usize,
    mut report: R,
) -> Result<(Distilled, Model)>
where
    R: FnMut(StepReport) -> F,
    F: Future<Output = bool>,
{
    opts.check(images.len())?;
    if teacher.arch.name() != student.arch.name() {
        return Err(Error::Invalid(format!(
            "the teacher is {} and the student {}: give the original of the compressed model",
            teacher.arch.display(),
            student.arch.display()
        )));
    }
    let pre = student.preprocess();
    let mut rng = Rng::new(opts.seed);
    // A seeded shuffle, then the last photos are held back.
    let mut order: Vec<usize> = (0..images.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let held = opts.held_out(images.len());
    let (train, held_idx) = order.split_at(images.len() - held);
    let held_images: Vec<Vec<f32>> = held_idx.iter().map(|&i| images[i].clone()).collect();

    let device = &backend.device;
    let teacher_net = Network::build_for_inference(
        &teacher.graph(),
        &teacher.weights,
        &teacher.quant.activations,
        device,
    )?;
    let measure = |m: Model| {
        let held = &held_images;
        async move {
            let logits = logits_of(&m, backend, held, eval_batch).await?;
            Ok::<_, Error>((m, logits))
        }
    };
    let teacher_held = logits_of(teacher, backend, &held_images, eval_batch).await?;
    let (_, start_logits) = measure(student.clone()).await?;
    let before = agreement(&teacher_held, &start_logits);
    let mut best = (before.clone(), 0usize, student.clone());

    // The residual block outputs both graphs have, for feature matching.
    let teacher_graph = teacher.graph();
    let mut matched = (Vec::new(), Vec::new());
    if opts.features > 0.0 {
        for (i, name) in graph_values(&student.graph()) {
            if let Some(t) = teacher_graph.values.iter().position(|v| v == &name) {
                matched.0.push(t);
                matched.1.push(i);
            }
        }
    }
    let ad = device.clone().autodiff();
    let mut leaves = Leaves::new(&student.weights, &student.quant, opts.learn_scales, &ad)?;
    let graph = student.graph();
    let schedule = Schedule::new(opts.lr, opts.steps);
    let mut adam = Adam::default();
    let mut losses = Vec::with_capacity(opts.steps);
    let start = Instant::now();
    let mut cursor = train.len();
    let mut shuffled = train.to_vec();
    let mut cancelled = false;
    let mut held_out_curve = Vec::new();
    for step in 0..opts.steps {
        // Epochs over the training photos in a new order each time.
        let mut picks = Vec::with_capacity(opts.batch);
        while picks.len() < opts.batch.min(train.len().max(1)) {
            if cursor >= shuffled.len() {
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, rng.below(i + 1));
                }
                cursor = 0;
            }
            picks.push(shuffled[cursor]);
            cursor += 1;
        }
        let view = |i: usize, rng: &mut Rng| {
            if opts.augment {
                random_view(&images[i], &pre, rng)
            } else {
                Ok(images[i].clone())
            }
        };
        let mut views: Vec<Vec<f32>> = picks
            .iter()
            .map(|&i| view(i, &mut rng))
            .collect::<Result<_>>()?;
        if opts.mixup {
            for v in views.iter_mut() {
                let other = view(train[rng.below(train.len())], &mut rng)?;
                mix(v, &other, rng.uniform() as f32);
            }
        }
        let x = image_batch(&views, device)?;
        let net = Network::build_from(&graph, &leaves.effective(), &student.quant.activations)?;
        let (target, teacher_features) = run_to_logits(&teacher_net, x.clone(), &matched.0);
        let (out, student_features) = run_to_logits(&net, x.autodiff(), &matched.1);
        let mut loss = distillation_loss(target.autodiff(), out, opts.temperature);
        if opts.features > 0.0
            && let Some(f) = feature_loss(teacher_features, student_features)
        {
            loss = loss + f.mul_scalar(opts.features);
        }
        let value = read_values(loss.clone().inner()).await?;
        let loss_value = value.first().copied().unwrap_or(f32::NAN) as f64;
        if !loss_value.is_finite() {
            return Err(Error::Invalid(format!(
                "the loss became {loss_value} at step {}: use a smaller learning rate",
                step + 1
            )));
        }
        let mut grads = loss.backward();
        adam.next_step();
        let rate = schedule.rate(step);
        let names: Vec<String> = leaves.names().map(str::to_string).collect();
        for key in names {
            let Some(value) = leaves.value(&key).cloned() else {
                continue;
            };
            let Some(mut grad) = value.grad_remove(&mut grads) else {
                continue;
            };
            if let Some(mask) = leaves.mask(&key) {
                grad = grad * mask.clone().inner();
            }
            let updated = adam.update(&key, value.inner(), grad, rate * leaves.rate_factor(&key));
            leaves.set(&key, updated.autodiff());
        }
        losses.push(loss_value);
        let done = step + 1;
        let ms_per_step = start.elapsed().as_secs_f64() * 1e3 / done as f64;
        let held_out =
            if !held_images.is_empty() && (done % opts.eval_every() == 0 || done == opts.steps) {
                let (m, logits) = measure(leaves.to_model(student).await?).await?;
                let a = agreement(&teacher_held, &logits);
                if better(&a, &best.0) {
                    best = (a.clone(), done, m);
                }
                held_out_curve.push(HeldOut {
                    step: done,
                    agreement: a.clone(),
                });
                Some(a)
            } else {
                None
            };
        let go_on = report(StepReport {
            step: done,
            steps: opts.steps,
            loss: loss_value,
            learning_rate: rate,
            ms_per_step,
            remaining_s: ms_per_step * (opts.steps - done) as f64 / 1e3,
            held_out,
        })
        .await;
        if !go_on {
            cancelled = true;
            break;
        }
    }
    let steps = losses.len();
    let (after, best_step, model) = if held_images.is_empty() {
        // Nothing to choose by: the last model.
        let m = leaves.to_model(student).await?;
        (before.clone(), steps, m)
    } else {
        best
    };
    let seconds = start.elapsed().as_secs_f64();
    let summary = Distilled {
        steps,
        ms_per_step: if steps > 0 {
            seconds * 1e3 / steps as f64
        } else {
            0.0
        },
        loss: losses,
        seconds,
        train_images: train.len(),
        held_out_images: held_images.len(),
        before,
        after,
        best_step,
        held_out_curve,
        cancelled,
    };
    Ok((summary, model))
}

/// The residual block outputs (`….add`) of a graph: index and name.
fn graph_values(graph: &crate::model::Graph) -> Vec<(usize, String)> {
    graph
        .values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.ends_with(".add"))
        .map(|(i, v)| (i, v.clone()))
        .collect()
}

/// A full forward pass that also returns the values `capture` lists, in that order.
fn run_to_logits(net: &Network, x: Tensor<4>, capture: &[usize]) -> (Tensor<2>, Vec<Tensor<4>>) {
    if capture.is_empty() {
        return (net.forward(x), Vec::new());
    }
    // Capturing the output too makes the pass run to the end.
    let mut wanted = capture.to_vec();
    wanted.push(net.output());
    let (out, mut captured) = net.run(x, BatchNormMode::Running, &wanted);
    let [n, k, _, _] = out.dims();
    let values = capture
        .iter()
        .filter_map(|v| {
            let i = captured.iter().position(|(c, _)| c == v)?;
            Some(captured.swap_remove(i).1)
        })
        .collect();
    (out.reshape([n, k]), values)
}

/// Feature matching: per pair of same-shaped block outputs, `mean((s − t)²) / mean(t²)`,
/// averaged; `None` when no pair has the same shape (a pruned residual stream).
fn feature_loss(teacher: Vec<Tensor<4>>, student: Vec<Tensor<4>>) -> Option<Tensor<1>> {
    let mut total: Option<Tensor<1>> = None;
    let mut pairs = 0;
    for (t, s) in teacher.into_iter().zip(student) {
        if t.dims() != s.dims() {
            continue;
        }
        let t = t.autodiff();
        let scale = t.clone().square().mean().add_scalar(1e-12);
        let term = (s - t).square().mean() / scale;
        total = Some(match total {
            Some(a) => a + term,
            None => term,
        });
        pairs += 1;
    }
    total.map(|t| t.div_scalar(pairs as f32))
}

/// Lower KL is better; agreement breaks exact ties (a few photos give coarse agreement, KL is
/// the paired measure that moves with every photo).
fn better(a: &Agreement, b: &Agreement) -> bool {
    a.kl < b.kl || (a.kl == b.kl && a.agreement > b.agreement)
}
