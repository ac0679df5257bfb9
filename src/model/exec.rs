//! Runs a [`Graph`] on a Burn device. Activation fake-quantization happens here, at the same
//! values and with the same rounding and clamping as the exported QDQ graph's
//! `QuantizeLinear` → `DequantizeLinear` pairs, the logits' included where a full-integer
//! file stores them as integers.

use burn::tensor::activation::sigmoid;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};

use super::cpu_kernels;
use super::graph::{Graph, Op};
use super::layers::{Activation, BatchNorm, BatchStats, Conv, Linear, Params, Upload};
use crate::quant::{ActQuant, Quantization};
use crate::tensor::StateDict;
use crate::{Error, Result};

enum Compiled {
    Conv(Box<Conv>),
    BatchNorm(Box<BatchNorm>),
    /// A clamp, which inference folds into the conv before it.
    Activation(Activation),
    /// Any other element-wise function of one value.
    Unary(Unary),
    Add,
    /// Element-wise product, the second value broadcast (a `[N, C, 1, 1]` gate).
    Mul,
    MaxPool(MaxPoolOptions<2>),
    AvgPool(AvgPoolOptions<2>),
    GlobalAvgPool,
    Concat,
    Channels {
        start: usize,
        len: usize,
    },
    ChannelShuffle {
        groups: usize,
    },
    Flatten,
    Linear(Box<Linear>),
}

struct Step {
    op: Compiled,
    inputs: Vec<usize>,
    output: usize,
    /// The conv or linear layer the step applies, by name.
    layer: Option<String>,
}

/// A run of a [`Network`] over one batch that can stop at a value and go on later: the values
/// computed so far that later steps still read, and the next step. Layer-by-layer calibration
/// measures the input of one layer after the other; going on from the previous layer's input
/// costs one forward pass in all instead of one per layer.
#[derive(Clone)]
pub struct Pass {
    values: Vec<Option<Tensor<4>>>,
    next_step: usize,
    /// The [`Network::structure`] of the network that started it: another network may go on
    /// with it only if it has the same steps.
    structure: u64,
}

impl Pass {
    /// Bytes of the values held (what keeping the pass costs in device memory).
    pub fn bytes(&self) -> usize {
        self.values
            .iter()
            .flatten()
            .map(|t| t.shape().num_elements() * 4)
            .sum()
    }
}

/// A graph uploaded to a device.
pub struct Network {
    steps: Vec<Step>,
    /// A hash of every step's kind, inputs and output (see [`Pass::structure`]).
    structure: u64,
    /// Per value: fake-quantize it right after it is computed.
    fake_quant: Vec<Option<ActQuant>>,
    /// Per value: the index of the last step that reads it (to free it early).
    last_use: Vec<usize>,
    output: usize,
}

/// How batch norms normalise in a pass, and whether they record what they saw.
pub enum BatchNormMode<'a> {
    /// With their running statistics (inference).
    Running,
    /// With the batch's own statistics, recorded (PyTorch's `train()`: recalibration).
    Batch(&'a mut Vec<BatchStats>),
    /// With their running statistics, recording the batch's statistics of their inputs (what
    /// data-free synthesis compares with the running ones).
    Observe(&'a mut Vec<BatchStats>),
}

/// A hash of what each step does (its kind, not its weights), reads and writes: two networks
/// with the same one run the same steps on the same values.
fn structure(steps: &[Step]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    for s in steps {
        std::mem::discriminant(&s.op).hash(&mut h);
        s.inputs.hash(&mut h);
        s.output.hash(&mut h);
    }
    h.finish()
}

/// Per value: the index of the last step that reads it (`usize::MAX` for the output, which
/// is never freed).
fn last_uses(steps: &[Step], values: usize, output: usize) -> Vec<usize> {
    let mut last_use = vec![0usize; values];
    for (i, s) in steps.iter().enumerate() {
        for &v in &s.inputs {
            last_use[v] = i;
        }
    }
    last_use[output] = usize::MAX;
    last_use
}

/// The element-wise functions that are not clamps.
#[derive(Debug, Clone, Copy)]
enum Unary {
    Sigmoid,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// With the gate's step where it is quantized ([`Quantization::gate_step`]).
    HardSwish {
        gate: Option<ActQuant>,
    },
    Silu {
        gate: Option<ActQuant>,
    },
}

impl Unary {
    /// As ONNX Runtime computes them: `clamp(αx + β, 0, 1)`, `x · clamp(x/6 + 1/2, 0, 1)` (the
    /// gate quantized where it has a step).
    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        let hard_sigmoid = |x: Tensor<4>, a: f32, b: f32| {
            x.mul_scalar(a).add_scalar(b).clamp_min(0.0).clamp_max(1.0)
        };
        let quantized = |g: Tensor<4>, step: Option<ActQuant>| match step {
            Some(q) => fake_quantize(g, q),
            None => g,
        };
        match self {
            Unary::Sigmoid => sigmoid(x),
            Unary::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha, beta),
            Unary::HardSwish { gate } => {
                let g = hard_sigmoid(x.clone(), 1.0 / 6.0, 0.5);
                x * quantized(g, gate)
            }
            Unary::Silu { gate } => x.clone() * quantized(sigmoid(x), gate),
        }
    }
}

/// Quantize to `u8` and back, as `QuantizeLinear` (round half to even, saturate) followed by
/// `DequantizeLinear` compute it. In training (autodiff) the rounding passes gradients
/// straight through: the forward value is the quantized one, the backward the identity.
pub fn fake_quantize(x: Tensor<4>, q: ActQuant) -> Tensor<4> {
    if x.is_autodiff() {
        let plain = x.clone().detach();
        return x + (quantize_dequantize(plain.clone(), q) - plain);
    }
    quantize_dequantize(x, q)
}

fn quantize_dequantize(x: Tensor<4>, q: ActQuant) -> Tensor<4> {
    let zp = q.zero_point as f32;
    x.div_scalar(q.scale)
        .round()
        .add_scalar(zp)
        .clamp(0.0, 255.0)
        .sub_scalar(zp)
        .mul_scalar(q.scale)
}

impl Network {
    /// Upload `weights` for `graph`; `quant` says which values are quantized (its
    /// activations by name, and the logits).
    pub fn build(
        graph: &Graph,
        weights: &StateDict,
        quant: &Quantization,
        device: &Device,
    ) -> Result<Self> {
        Network::build_from(graph, &Upload { weights, device }, quant)
    }

    /// [`Network::build`] from any source of tensors (the device leaves of training).
    pub fn build_from(graph: &Graph, params: &impl Params, quant: &Quantization) -> Result<Self> {
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            let op = match &n.op {
                Op::Conv {
                    name,
                    stride,
                    pads,
                    groups,
                    bias,
                    dilation,
                    ..
                } => Compiled::Conv(Box::new(Conv::load(
                    params, name, *stride, *dilation, *pads, *groups, *bias,
                )?)),
                Op::BatchNorm { name, eps, .. } => {
                    Compiled::BatchNorm(Box::new(BatchNorm::load(params, name, *eps)?))
                }
                Op::Relu => Compiled::Activation(Activation::Relu),
                Op::Relu6 => Compiled::Activation(Activation::Relu6),
                Op::Sigmoid => Compiled::Unary(Unary::Sigmoid),
                Op::HardSigmoid { alpha, beta } => Compiled::Unary(Unary::HardSigmoid {
                    alpha: *alpha,
                    beta: *beta,
                }),
                Op::HardSwish => Compiled::Unary(Unary::HardSwish {
                    gate: quant.gate_step(&graph.values[n.inputs[0]]),
                }),
                Op::Silu => Compiled::Unary(Unary::Silu {
                    gate: quant.gate_step(&graph.values[n.inputs[0]]),
                }),
                Op::Add => Compiled::Add,
                Op::Mul => Compiled::Mul,
                Op::MaxPool {
                    kernel,
                    stride,
                    pads: [top, left, bottom, right],
                } => Compiled::MaxPool(
                    MaxPoolOptions::new(*kernel)
                        .with_stride(*stride)
                        .with_padding_pairs([(*top, *bottom), (*left, *right)]),
                ),
                Op::AvgPool {
                    kernel,
                    stride,
                    pads: [top, left, bottom, right],
                    count_include_pad,
                } => Compiled::AvgPool(
                    AvgPoolOptions::new(*kernel)
                        .with_stride(*stride)
                        .with_padding_pairs([(*top, *bottom), (*left, *right)])
                        .with_count_include_pad(*count_include_pad),
                ),
                Op::GlobalAvgPool => Compiled::GlobalAvgPool,
                Op::Concat => Compiled::Concat,
                Op::Channels { start, len } => Compiled::Channels {
                    start: *start,
                    len: *len,
                },
                Op::ChannelShuffle { groups } => Compiled::ChannelShuffle { groups: *groups },
                Op::Flatten { .. } => Compiled::Flatten,
                Op::Linear { name, .. } => Compiled::Linear(Box::new(Linear::load(params, name)?)),
            };
            steps.push(Step {
                op,
                inputs: n.inputs.clone(),
                output: n.output,
                layer: n.op.layer_name().map(str::to_string),
            });
        }
        let mut fake_quant = vec![None; graph.values.len()];
        for (name, q) in &quant.activations {
            let i = graph.values.iter().position(|v| v == name).ok_or_else(|| {
                Error::Structure(format!(
                    "activation quantization names '{name}', which this network does not have"
                ))
            })?;
            fake_quant[i] = Some(*q);
        }
        // The logits on the step a full-integer file stores them in: the file's integers are
        // then the page's, and so are its ties (the first class wins everywhere).
        if let Some(q) = quant.logits {
            fake_quant[graph.output] = Some(q);
        }
        Ok(Network {
            last_use: last_uses(&steps, graph.values.len(), graph.output),
            structure: structure(&steps),
            steps,
            fake_quant,
            output: graph.output,
        })
    }

    /// [`Network::build`] for inference only: every batch norm that alone reads a
    /// convolution's output is folded into that convolution (see [`Conv::fused_with`]), then
    /// a residual addition that follows and alone reads the result (its other operand
    /// becomes the convolution's second input), then a ReLU or ReLU6 likewise (see
    /// [`Conv::with_activation`]). On the CPU backend each batch norm was two more passes over
    /// its activation, each addition and activation one or two. The folded network has no
    /// batch norm statistics to measure and no value between the steps to capture:
    /// calibration builds the plain one.
    pub fn build_for_inference(
        graph: &Graph,
        weights: &StateDict,
        quant: &Quantization,
        device: &Device,
    ) -> Result<Self> {
        let net = Network::build(graph, weights, quant, device)?;
        let mut readers = vec![0usize; net.last_use.len()];
        for s in &net.steps {
            for &v in &s.inputs {
                readers[v] += 1;
            }
        }
        // A value the next step alone reads, that nothing else sees (the output, a fake-quant).
        let alone = |v: usize| readers[v] == 1 && v != net.output && net.fake_quant[v].is_none();
        let mut steps = Vec::with_capacity(net.steps.len());
        let mut rest = net.steps.into_iter().peekable();
        while let Some(step) = rest.next() {
            let Compiled::Conv(mut conv) = step.op else {
                steps.push(step);
                continue;
            };
            let mut output = step.output;
            if alone(output) {
                let v = output;
                if let Some(Step {
                    op: Compiled::BatchNorm(bn),
                    output: bn_output,
                    ..
                }) = rest.next_if(|n| matches!(n.op, Compiled::BatchNorm(_)) && n.inputs == [v])
                {
                    conv = Box::new(conv.fused_with(&bn));
                    output = bn_output;
                }
            }
            // A residual addition right after, that alone reads the result: the other
            // operand (computed before the convolution, as the addition comes next) joins
            // the product as its starting value.
            let mut inputs = step.inputs;
            if alone(output) {
                let v = output;
                if let Some(Step {
                    inputs: operands,
                    output: add_output,
                    ..
                }) = rest.next_if(|n| {
                    // Not when the other operand is the convolution's own input: one step
                    // would read a value twice, and its last read takes it.
                    matches!(n.op, Compiled::Add)
                        && n.inputs.len() == 2
                        && n.inputs.contains(&v)
                        && n.inputs[0] != n.inputs[1]
                        && n.inputs.iter().all(|o| *o == v || !inputs.contains(o))
                }) {
                    inputs.extend(operands.into_iter().filter(|&o| o != v));
                    output = add_output;
                }
            }
            if alone(output) {
                let v = output;
                if let Some(Step {
                    op: Compiled::Activation(a),
                    output: act_output,
                    ..
                }) = rest.next_if(|n| matches!(n.op, Compiled::Activation(_)) && n.inputs == [v])
                {
                    conv = Box::new(conv.with_activation(a));
                    output = act_output;
                }
            }
            steps.push(Step {
                op: Compiled::Conv(conv),
                inputs,
                output,
                layer: step.layer,
            });
        }
        Ok(Network {
            last_use: last_uses(&steps, readers.len(), net.output),
            structure: structure(&steps),
            steps,
            fake_quant: net.fake_quant,
            output: net.output,
        })
    }

    /// Run the graph, batch norms as `bn` says; `capture` lists values to return as computed (after fake-quant).
    pub fn run(
        &self,
        x: Tensor<4>,
        mut bn: BatchNormMode,
        capture: &[usize],
    ) -> (Tensor<4>, Vec<(usize, Tensor<4>)>) {
        let mut captured = Vec::new();
        let mut pass = self.started(x, capture, &mut captured);
        // Captures only: nothing after the last captured value needs computing (GPTQ
        // measures one layer's input at a time, early layers most often).
        let stop = match (capture.iter().max(), &bn) {
            (Some(&last), BatchNormMode::Running) => Some(last),
            _ => None,
        };
        self.advance(&mut pass, &mut bn, capture, &mut captured, stop);
        let out = match stop {
            Some(v) => pass.values[v].take(),
            None => pass.values[self.output].take(),
        };
        // Graphs are built in order, so the output (or the last capture) is computed.
        (out.expect("the graph's output is computed last"), captured)
    }

    /// A pass over a batch `x` that has computed nothing yet.
    pub fn start(&self, x: Tensor<4>) -> Pass {
        self.started(x, &[], &mut Vec::new())
    }

    /// [`Network::start`], capturing the input itself when `capture` lists it (value 0).
    fn started(
        &self,
        x: Tensor<4>,
        capture: &[usize],
        captured: &mut Vec<(usize, Tensor<4>)>,
    ) -> Pass {
        let mut pass = Pass {
            values: vec![None; self.fake_quant.len()],
            next_step: 0,
            structure: self.structure,
        };
        self.store(&mut pass, 0, x, capture, captured);
        pass
    }

    /// Go on with `pass` until value `value` is computed, and return it; the pass can go on
    /// later from there (to a later value). A pass that already went beyond `value` and no
    /// longer holds it gives `None`: start another.
    pub fn resume_until(&self, pass: &mut Pass, value: usize) -> Option<Tensor<4>> {
        if let Some(t) = pass.values.get(value).cloned().flatten() {
            return Some(t);
        }
        if self.computed(pass, value) {
            return None;
        }
        self.advance(
            pass,
            &mut BatchNormMode::Running,
            &[],
            &mut Vec::new(),
            Some(value),
        );
        pass.values.get(value).cloned().flatten()
    }

    /// Go on with `pass` until the step that applies layer `layer` is next. False, with the
    /// pass as it was, when no step applies it or the pass has gone beyond it.
    pub fn resume_before_layer(&self, pass: &mut Pass, layer: &str) -> bool {
        let Some(k) = self
            .steps
            .iter()
            .position(|s| s.layer.as_deref() == Some(layer))
        else {
            return false;
        };
        if pass.next_step > k || pass.structure != self.structure {
            return false;
        }
        // The step before computes its output last: stop there.
        if let Some(before) = k.checked_sub(1)
            && pass.next_step <= before
        {
            let stop = Some(self.steps[before].output);
            self.advance(
                pass,
                &mut BatchNormMode::Running,
                &[],
                &mut Vec::new(),
                stop,
            );
        }
        pass.next_step == k
    }

    /// The logits `[N, classes]` of a pass that a network with the same steps (another
    /// precision of the same graph) started and took part of the way: the rest of the steps
    /// with this network's weights. `None` when its steps differ.
    pub fn finish(&self, mut pass: Pass) -> Option<Tensor<2>> {
        if pass.structure != self.structure {
            return None;
        }
        self.advance(
            &mut pass,
            &mut BatchNormMode::Running,
            &[],
            &mut Vec::new(),
            None,
        );
        let out = pass.values[self.output].take()?;
        let [n, k, _, _] = out.dims();
        Some(out.reshape([n, k]))
    }

    /// Whether `pass` has gone beyond the step that computes `value`.
    fn computed(&self, pass: &Pass, value: usize) -> bool {
        value == 0
            || self.steps[..pass.next_step.min(self.steps.len())]
                .iter()
                .any(|s| s.output == value)
    }

    /// Keep `t` as value `i` of `pass`, fake-quantized where activations are quantized.
    fn store(
        &self,
        pass: &mut Pass,
        i: usize,
        mut t: Tensor<4>,
        capture: &[usize],
        captured: &mut Vec<(usize, Tensor<4>)>,
    ) {
        if let Some(q) = self.fake_quant[i] {
            t = fake_quantize(t, q);
        }
        if capture.contains(&i) {
            captured.push((i, t.clone()));
        }
        pass.values[i] = Some(t);
    }

    /// Run `pass`'s remaining steps, or until the one that computes value `stop`.
    fn advance(
        &self,
        pass: &mut Pass,
        bn_mode: &mut BatchNormMode,
        capture: &[usize],
        captured: &mut Vec<(usize, Tensor<4>)>,
        stop: Option<usize>,
    ) {
        if stop.is_some_and(|v| self.computed(pass, v)) {
            return;
        }
        while let Some(step) = self.steps.get(pass.next_step) {
            let si = pass.next_step;
            let get = |values: &mut Vec<Option<Tensor<4>>>, k: usize| -> Tensor<4> {
                let v = step.inputs[k];
                let t = if self.last_use[v] == si {
                    values[v].take()
                } else {
                    values[v].clone()
                };
                // Graphs are built in order, so every input exists.
                t.expect("graph value read before it was computed")
            };
            let x = get(&mut pass.values, 0);
            let y = match &step.op {
                Compiled::Conv(c) => {
                    let skip = (step.inputs.len() == 2).then(|| get(&mut pass.values, 1));
                    c.forward(x, skip)
                }
                Compiled::BatchNorm(bn) => match bn_mode {
                    BatchNormMode::Running => bn.forward(x),
                    BatchNormMode::Batch(s) => bn.forward_batch(x, s),
                    BatchNormMode::Observe(s) => {
                        bn.record(x.clone(), s);
                        bn.forward(x)
                    }
                },
                Compiled::Activation(a) => a.apply(x),
                Compiled::Unary(u) => u.apply(x),
                Compiled::Add => x + get(&mut pass.values, 1),
                Compiled::Mul => x * get(&mut pass.values, 1),
                Compiled::MaxPool(o) => {
                    // modelslim's own on the CPU (see `cpu_kernels`): flex's also records
                    // where every maximum came from.
                    match cpu_kernels::max_pool2d_on_cpu(&x, o) {
                        Some(y) => y,
                        None => max_pool2d(x, o.clone()),
                    }
                }
                Compiled::AvgPool(o) => avg_pool2d(x, o.clone()),
                Compiled::GlobalAvgPool => adaptive_avg_pool2d(x, [1, 1]),
                Compiled::Concat => {
                    let mut parts = vec![x];
                    for k in 1..step.inputs.len() {
                        // A value read twice was taken at its first read.
                        let again = step.inputs[..k].iter().position(|&v| v == step.inputs[k]);
                        let t = match again {
                            Some(j) => parts[j].clone(),
                            None => get(&mut pass.values, k),
                        };
                        parts.push(t);
                    }
                    Tensor::cat(parts, 1)
                }
                Compiled::Channels { start, len } => x.narrow(1, *start, *len),
                Compiled::ChannelShuffle { groups } => {
                    let [n, c, h, w] = x.dims();
                    x.reshape([n, *groups, c / groups, h, w])
                        .swap_dims(1, 2)
                        .reshape([n, c, h, w])
                }
                // Flat values are `[N, F, 1, 1]` here.
                Compiled::Flatten => {
                    let [n, c, h, w] = x.dims();
                    x.reshape([n, c * h * w, 1, 1])
                }
                Compiled::Linear(l) => {
                    let [n, c, _, _] = x.dims();
                    let y = l.forward(x.reshape([n, c]));
                    let [n, k] = y.dims();
                    y.reshape([n, k, 1, 1])
                }
            };
            pass.next_step += 1;
            self.store(pass, step.output, y, capture, captured);
            if stop == Some(step.output) {
                return;
            }
        }
    }

    /// The index of the value that holds the logits.
    pub fn output(&self) -> usize {
        self.output
    }

    /// `[N, 3, H, W]` normalised images → `[N, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let (out, _) = self.run(x, BatchNormMode::Running, &[]);
        let [n, k, _, _] = out.dims();
        out.reshape([n, k])
    }

    /// Training-mode pass for batch-norm recalibration: every batch norm normalises with the
    /// batch's statistics (as PyTorch's `train()` does) and records them.
    pub fn batch_statistics(&self, x: Tensor<4>) -> Vec<BatchStats> {
        let mut stats = Vec::new();
        self.run(x, BatchNormMode::Batch(&mut stats), &[]);
        stats
    }

    /// Inference pass that also records every batch norm's input statistics over the batch:
    /// the logits and the statistics.
    pub fn observe_batch_statistics(&self, x: Tensor<4>) -> (Tensor<2>, Vec<BatchStats>) {
        let mut stats = Vec::new();
        let (out, _) = self.run(x, BatchNormMode::Observe(&mut stats), &[]);
        let [n, k, _, _] = out.dims();
        (out.reshape([n, k]), stats)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Tensor, TensorData};

    use super::*;
    use crate::backend::Backend;
    use crate::model::Model;
    use crate::rng::Rng;

    fn logits(net: &Network, x: Tensor<4>) -> Vec<f32> {
        net.forward(x).into_data().try_to_vec::<f32>().unwrap()
    }

    /// With a logits step, the network's output is its float logits rounded to that step (as
    /// `QuantizeLinear` → `DequantizeLinear` compute it), folded or not.
    #[test]
    fn logits_are_rounded_to_their_step() {
        let model = Model::seeded_resnet18(7);
        let graph = model.graph();
        let device = Backend::cpu().device;
        let mut rng = Rng::new(2);
        let pixels: Vec<f32> = (0..2 * 3 * 48 * 48).map(|_| rng.normal() as f32).collect();
        let x = || Tensor::<4>::from_data(TensorData::new(pixels.clone(), [2, 3, 48, 48]), &device);
        let q = ActQuant {
            scale: 0.25,
            zero_point: 128,
        };
        let rounded = Quantization {
            logits: Some(q),
            ..Default::default()
        };
        for build in [Network::build, Network::build_for_inference] {
            let run = |quant: &Quantization| {
                logits(&build(&graph, &model.weights, quant, &device).unwrap(), x())
            };
            let float = run(&Quantization::default());
            let spread = float.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(spread > 1.0, "logits {spread}: too narrow to round");
            for (r, f) in run(&rounded).iter().zip(&float) {
                assert_eq!(*r, q.fake(*f), "{r} is not {f} rounded");
            }
        }
    }

    /// Folding changes float rounding only: the logits stay within 1e-4 of their spread, and
    /// a convolution output that is fake-quantized keeps its batch norm and activation apart.
    #[test]
    fn folded_batch_norms_give_the_same_logits() {
        let model = Model::seeded_resnet18(7);
        let graph = model.graph();
        let device = Backend::cpu().device;
        let mut rng = Rng::new(1);
        let side = 48;
        let pixels: Vec<f32> = (0..2 * 3 * side * side)
            .map(|_| rng.normal() as f32)
            .collect();
        let x =
            || Tensor::<4>::from_data(TensorData::new(pixels.clone(), [2, 3, side, side]), &device);
        let first_conv = graph.nodes[0].output;
        let mut quant = Quantization::default();
        quant.activations.insert(
            graph.values[first_conv].clone(),
            ActQuant {
                scale: 0.05,
                zero_point: 128,
            },
        );
        for quant in [Quantization::default(), quant] {
            let act = &quant.activations;
            let plain = Network::build(&graph, &model.weights, &quant, &device).unwrap();
            let folded =
                Network::build_for_inference(&graph, &model.weights, &quant, &device).unwrap();
            let batch_norms = |n: &Network| {
                n.steps
                    .iter()
                    .filter(|s| matches!(s.op, Compiled::BatchNorm(_)))
                    .count()
            };
            let activations = |n: &Network| {
                n.steps
                    .iter()
                    .filter(|s| matches!(s.op, Compiled::Activation(_)))
                    .count()
            };
            // ResNet18: 20 batch norms, each after its convolution; one kept when quantized.
            assert_eq!(batch_norms(&plain), 20);
            assert_eq!(batch_norms(&folded), if act.is_empty() { 0 } else { 1 });
            let additions = |n: &Network| {
                n.steps
                    .iter()
                    .filter(|s| matches!(s.op, Compiled::Add))
                    .count()
            };
            // 17 ReLUs and 8 residual additions, all folded into the convolutions before
            // them (an addition into the block's second convolution, or into its downsample
            // when that comes last), except the stem's ReLU when its batch norm stays.
            assert_eq!((activations(&plain), additions(&plain)), (17, 8));
            let kept = if act.is_empty() { 0 } else { 1 };
            assert_eq!((activations(&folded), additions(&folded)), (kept, 0));
            let (a, b) = (logits(&plain, x()), logits(&folded, x()));
            let spread = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(spread > 0.1, "logits {spread}");
            assert!(
                diff <= 1e-4 * spread,
                "folded logits differ by {diff} (spread {spread})"
            );
        }
    }

    /// A pass of the float network stopped before a layer and finished by the network with
    /// that layer alone in int4 gives that network's own logits, bit for bit: at the first
    /// layer, at one whose residual addition is fused into it, and at the classifier. A pass
    /// that went beyond a layer, or a network with other steps, is refused.
    #[test]
    fn a_pass_stopped_before_a_layer_goes_on_with_that_layer_quantized() {
        use crate::compress::QuantOptions;
        use crate::quant::Precision;
        let folded = Model::seeded_resnet18(3).fold_bn().unwrap();
        let graph = folded.graph();
        let device = Backend::cpu().device;
        let mut rng = Rng::new(4);
        let pixels: Vec<f32> = (0..2 * 3 * 40 * 40).map(|_| rng.normal() as f32).collect();
        let x = || Tensor::<4>::from_data(TensorData::new(pixels.clone(), [2, 3, 40, 40]), &device);
        let base = Network::build_for_inference(
            &graph,
            &folded.weights,
            &Quantization::default(),
            &device,
        )
        .unwrap();
        let mut pass = base.start(x());
        for layer in ["conv1", "layer2.0.conv2", "layer3.1.conv2", "fc"] {
            let opts = QuantOptions {
                weights: Precision::F32,
                overrides: [(layer.to_string(), Precision::Int4)].into_iter().collect(),
                ..QuantOptions::default()
            };
            let q = folded.quantized(&opts).unwrap();
            let net =
                Network::build_for_inference(&q.graph(), &q.weights, &q.quant, &device).unwrap();
            let whole = logits(&net, x());
            assert_ne!(whole, logits(&base, x()), "{layer} in int4 changed nothing");
            assert!(base.resume_before_layer(&mut pass, layer), "{layer}");
            let resumed = net.finish(pass.clone()).unwrap();
            assert_eq!(
                resumed.into_data().try_to_vec::<f32>().unwrap(),
                whole,
                "{layer}"
            );
        }
        assert!(!base.resume_before_layer(&mut pass, "conv1"));
        assert!(!base.resume_before_layer(&mut pass, "no.such.layer"));
        let plain =
            Network::build(&graph, &folded.weights, &Quantization::default(), &device).unwrap();
        assert!(plain.finish(base.start(x())).is_none());
    }
}
