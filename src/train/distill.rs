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
use super::leaves::Leaves;
pub use super::options::DistillOptions;
use super::sampler::Sampler;
use crate::backend::Backend;
use crate::compress::agreement::logits_of;
use crate::compress::{Agreement, agreement};
use crate::model::Model;
use crate::model::exec::{BatchNormMode, Network};
use crate::predict::{image_batch, read_values};
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
    // A binary classifier's single logit `z` is the two classes `[0, z]` (its sigmoid).
    let (teacher, student) = match teacher.dims() {
        [rows, 1] => {
            let zero = || Tensor::<2>::zeros([rows, 1], &teacher.device());
            (
                Tensor::cat(vec![zero(), teacher.clone()], 1),
                Tensor::cat(vec![zero(), student], 1),
            )
        }
        _ => (teacher, student),
    };
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
    if !teacher.arch.same_network(&student.arch) {
        return Err(Error::Invalid(format!(
            "the teacher is {} and the student {}: give the original of the compressed model",
            teacher.arch.display(),
            student.arch.display()
        )));
    }
    let (mut sampler, held_idx) = Sampler::new(images, student.preprocess(), opts);
    let held_images: Vec<Vec<f32>> = held_idx.iter().map(|&i| images[i].clone()).collect();
    let mut keeper = BestKeeper::start(teacher, student, held_images, backend, eval_batch).await?;
    let trainer = Trainer::new(teacher, student, opts, backend)?;
    let frozen: Vec<String> = if opts.freeze_head {
        let head = student.graph().classifier().map(str::to_string);
        head.into_iter()
            .flat_map(|h| [format!("{h}.weight"), format!("{h}.bias")])
            .collect()
    } else {
        Vec::new()
    };
    let mut leaves = Leaves::new(
        &student.weights,
        &student.quant,
        opts.learn_scales,
        &frozen,
        &backend.device.clone().autodiff(),
    )?;
    let mut adam = Adam::default();
    let mut losses = Vec::with_capacity(opts.steps);
    let start = Instant::now();
    let mut cancelled = false;
    for step in 0..opts.steps {
        let views = sampler.batch(opts.batch)?;
        let (loss, rate) = trainer.step(&mut leaves, &mut adam, &views, step).await?;
        losses.push(loss);
        let done = step + 1;
        let ms_per_step = start.elapsed().as_secs_f64() * 1e3 / done as f64;
        let held_out = if done % opts.eval_every() == 0 || done == opts.steps {
            keeper.measure(done, &leaves, student).await?
        } else {
            None
        };
        let go_on = report(StepReport {
            step: done,
            steps: opts.steps,
            loss,
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
    let seconds = start.elapsed().as_secs_f64();
    let train_images = sampler.train_len();
    let (before, after, best_step, held_out_curve, model) =
        keeper.finish(steps, &leaves, student).await?;
    let summary = Distilled {
        steps,
        ms_per_step: if steps > 0 {
            seconds * 1e3 / steps as f64
        } else {
            0.0
        },
        loss: losses,
        seconds,
        train_images,
        held_out_images: held_idx.len(),
        before,
        after,
        best_step,
        held_out_curve,
        cancelled,
    };
    Ok((summary, model))
}

/// One optimizer step's parts that stay the same over a run: the teacher's network, the
/// block outputs matched between both, the student's graph and the schedule.
struct Trainer<'a> {
    opts: &'a DistillOptions,
    student: &'a Model,
    device: &'a burn::tensor::Device,
    teacher_net: Network,
    graph: crate::model::Graph,
    /// Teacher's and student's value indices of the residual block outputs both have.
    matched: (Vec<usize>, Vec<usize>),
    /// Teacher's and student's value the global pooling reads, with `head_features`.
    head: Option<(usize, usize)>,
    schedule: Schedule,
}

impl<'a> Trainer<'a> {
    fn new(
        teacher: &Model,
        student: &'a Model,
        opts: &'a DistillOptions,
        backend: &'a Backend,
    ) -> Result<Self> {
        let device = &backend.device;
        let teacher_net = Network::build_for_inference(
            &teacher.graph(),
            &teacher.weights,
            &teacher.quant,
            device,
        )?;
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
        let head = (opts.head_features > 0.0)
            .then(|| {
                Some((
                    pooled_value(&teacher_graph)?,
                    pooled_value(&student.graph())?,
                ))
            })
            .flatten();
        Ok(Trainer {
            opts,
            student,
            device,
            teacher_net,
            graph: student.graph(),
            matched,
            head,
            schedule: Schedule::new(opts.lr, opts.steps),
        })
    }

    /// One step on `views`: the loss before it, and the learning rate it used.
    async fn step(
        &self,
        leaves: &mut Leaves,
        adam: &mut Adam,
        views: &[Vec<f32>],
        step: usize,
    ) -> Result<(f64, f32)> {
        let x = image_batch(views, self.student.arch.input_size(), self.device)?;
        let net = Network::build_from(&self.graph, &leaves.effective(), &self.student.quant)?;
        // The block outputs, then (when matched) the pooled features, in one pass each.
        let with_head = |blocks: &[usize], head: Option<usize>| {
            let mut v = blocks.to_vec();
            v.extend(head);
            v
        };
        let (target, mut teacher_features) = run_to_logits(
            &self.teacher_net,
            x.clone(),
            &with_head(&self.matched.0, self.head.map(|h| h.0)),
        );
        let (out, mut student_features) = run_to_logits(
            &net,
            x.autodiff(),
            &with_head(&self.matched.1, self.head.map(|h| h.1)),
        );
        let mut loss = distillation_loss(target.autodiff(), out, self.opts.temperature);
        if self.head.is_some()
            && let (Some(t), Some(s)) = (teacher_features.pop(), student_features.pop())
            && let Some(f) = feature_loss(vec![t], vec![s])
        {
            loss = loss + f.mul_scalar(self.opts.head_features);
        }
        if self.opts.features > 0.0
            && let Some(f) = feature_loss(teacher_features, student_features)
        {
            loss = loss + f.mul_scalar(self.opts.features);
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
        let rate = self.schedule.rate(step);
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
        Ok((loss_value, rate))
    }
}

/// The held-back photos' agreement with the teacher, measured during the run, and the best
/// model on them so far.
struct BestKeeper<'a> {
    backend: &'a Backend,
    eval_batch: usize,
    held_images: Vec<Vec<f32>>,
    teacher_held: Vec<Vec<f32>>,
    before: Agreement,
    best: (Agreement, usize, Model),
    curve: Vec<HeldOut>,
}

impl<'a> BestKeeper<'a> {
    async fn start(
        teacher: &Model,
        student: &Model,
        held_images: Vec<Vec<f32>>,
        backend: &'a Backend,
        eval_batch: usize,
    ) -> Result<BestKeeper<'a>> {
        let teacher_held = logits_of(teacher, backend, &held_images, eval_batch).await?;
        let start = logits_of(student, backend, &held_images, eval_batch).await?;
        let before = agreement(&teacher_held, &start);
        Ok(BestKeeper {
            backend,
            eval_batch,
            held_images,
            teacher_held,
            best: (before.clone(), 0, student.clone()),
            before,
            curve: Vec::new(),
        })
    }

    /// Measure the model after step `done` (nothing without held-back photos), keeping it
    /// when it is the best so far.
    async fn measure(
        &mut self,
        done: usize,
        leaves: &Leaves,
        student: &Model,
    ) -> Result<Option<Agreement>> {
        if self.held_images.is_empty() {
            return Ok(None);
        }
        let m = leaves.to_model(student).await?;
        let logits = logits_of(&m, self.backend, &self.held_images, self.eval_batch).await?;
        let a = agreement(&self.teacher_held, &logits);
        if better(&a, &self.best.0) {
            self.best = (a.clone(), done, m);
        }
        self.curve.push(HeldOut {
            step: done,
            agreement: a.clone(),
        });
        Ok(Some(a))
    }

    /// Agreement before and after, the step of the model returned, the curve, and the model:
    /// the best on the held-back photos, or the last after `steps` without any.
    async fn finish(
        self,
        steps: usize,
        leaves: &Leaves,
        student: &Model,
    ) -> Result<(Agreement, Agreement, usize, Vec<HeldOut>, Model)> {
        if self.held_images.is_empty() {
            let m = leaves.to_model(student).await?;
            return Ok((self.before.clone(), self.before, steps, self.curve, m));
        }
        let (after, step, m) = self.best;
        Ok((self.before, after, step, self.curve, m))
    }
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

/// The value the last global pooling reads: the last convolutional features (earlier ones
/// pool for squeeze-excitation gates).
fn pooled_value(graph: &crate::model::Graph) -> Option<usize> {
    graph
        .nodes
        .iter()
        .rev()
        .find(|n| matches!(n.op, crate::model::Op::GlobalAvgPool))
        .and_then(|n| n.inputs.first().copied())
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
