//! Runs a [`Graph`] on a Burn device. Activation fake-quantization happens here, at the same
//! values and with the same rounding and clamping as the exported QDQ graph's
//! `QuantizeLinear` → `DequantizeLinear` pairs.

use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::graph::{Graph, Op};
use super::layers::{BatchNorm, BatchStats, Conv, Linear};
use crate::quant::ActQuant;
use crate::tensor::StateDict;
use crate::{Error, Result};

enum Compiled {
    Conv(Box<Conv>),
    BatchNorm(Box<BatchNorm>),
    Relu,
    Relu6,
    Add,
    MaxPool(MaxPoolOptions<2>),
    GlobalAvgPool,
    Linear(Box<Linear>),
}

struct Step {
    op: Compiled,
    inputs: Vec<usize>,
    output: usize,
}

/// A graph uploaded to a device.
pub struct Network {
    steps: Vec<Step>,
    /// Per value: fake-quantize it right after it is computed.
    fake_quant: Vec<Option<ActQuant>>,
    /// Per value: the index of the last step that reads it (to free it early).
    last_use: Vec<usize>,
    output: usize,
}

/// Quantize to `u8` and back, as `QuantizeLinear` (round half to even, saturate) followed by
/// `DequantizeLinear` compute it.
pub fn fake_quantize(x: Tensor<4>, q: ActQuant) -> Tensor<4> {
    let zp = q.zero_point as f32;
    x.div_scalar(q.scale)
        .round()
        .add_scalar(zp)
        .clamp(0.0, 255.0)
        .sub_scalar(zp)
        .mul_scalar(q.scale)
}

impl Network {
    /// Upload `weights` for `graph`; `act` maps value names to their activation quantization.
    pub fn build(
        graph: &Graph,
        weights: &StateDict,
        act: &std::collections::BTreeMap<String, ActQuant>,
        device: &Device,
    ) -> Result<Self> {
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for n in &graph.nodes {
            let op = match &n.op {
                Op::Conv {
                    name,
                    stride,
                    pads,
                    groups,
                    bias,
                    ..
                } => Compiled::Conv(Box::new(Conv::load(
                    weights, name, *stride, *pads, *groups, *bias, device,
                )?)),
                Op::BatchNorm { name, eps, .. } => {
                    Compiled::BatchNorm(Box::new(BatchNorm::load(weights, name, *eps, device)?))
                }
                Op::Relu => Compiled::Relu,
                Op::Relu6 => Compiled::Relu6,
                Op::Add => Compiled::Add,
                Op::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => Compiled::MaxPool(
                    MaxPoolOptions::new([*kernel, *kernel])
                        .with_stride([*stride, *stride])
                        .with_padding([*pad, *pad]),
                ),
                Op::GlobalAvgPool => Compiled::GlobalAvgPool,
                Op::Linear { name, .. } => {
                    Compiled::Linear(Box::new(Linear::load(weights, name, device)?))
                }
            };
            steps.push(Step {
                op,
                inputs: n.inputs.clone(),
                output: n.output,
            });
        }
        let mut fake_quant = vec![None; graph.values.len()];
        for (name, q) in act {
            let i = graph.values.iter().position(|v| v == name).ok_or_else(|| {
                Error::Structure(format!(
                    "activation quantization names '{name}', which this network does not have"
                ))
            })?;
            fake_quant[i] = Some(*q);
        }
        let mut last_use = vec![0usize; graph.values.len()];
        for (i, s) in steps.iter().enumerate() {
            for &v in &s.inputs {
                last_use[v] = i;
            }
        }
        last_use[graph.output] = usize::MAX;
        Ok(Network {
            steps,
            fake_quant,
            last_use,
            output: graph.output,
        })
    }

    /// Run the graph. With `stats`, batch norms use and record the batch's statistics
    /// (training mode); `capture` lists values to return as computed (after fake-quant).
    pub fn run(
        &self,
        x: Tensor<4>,
        mut stats: Option<&mut Vec<BatchStats>>,
        capture: &[usize],
    ) -> (Tensor<4>, Vec<(usize, Tensor<4>)>) {
        let mut values: Vec<Option<Tensor<4>>> = vec![None; self.fake_quant.len()];
        let mut captured = Vec::new();
        let mut store = |values: &mut Vec<Option<Tensor<4>>>, i: usize, mut t: Tensor<4>| {
            if let Some(q) = self.fake_quant[i] {
                t = fake_quantize(t, q);
            }
            if capture.contains(&i) {
                captured.push((i, t.clone()));
            }
            values[i] = Some(t);
        };
        store(&mut values, 0, x);
        for (si, step) in self.steps.iter().enumerate() {
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
            let x = get(&mut values, 0);
            let y = match &step.op {
                Compiled::Conv(c) => c.forward(x),
                Compiled::BatchNorm(bn) => match stats.as_deref_mut() {
                    Some(s) => bn.forward_batch(x, s),
                    None => bn.forward(x),
                },
                Compiled::Relu => relu(x),
                Compiled::Relu6 => x.clamp(0.0, 6.0),
                Compiled::Add => x + get(&mut values, 1),
                Compiled::MaxPool(o) => max_pool2d(x, o.clone()),
                Compiled::GlobalAvgPool => adaptive_avg_pool2d(x, [1, 1]),
                Compiled::Linear(l) => {
                    let [n, c, _, _] = x.dims();
                    let y = l.forward(x.reshape([n, c]));
                    let [n, k] = y.dims();
                    y.reshape([n, k, 1, 1])
                }
            };
            store(&mut values, step.output, y);
            // Captures only: nothing after the last captured value needs computing (GPTQ
            // measures one layer's input at a time, early layers most often).
            // Values are numbered in the order they are computed.
            if !capture.is_empty()
                && stats.is_none()
                && capture.iter().all(|&v| v <= step.output)
                && let Some(last) = values[step.output].take()
            {
                return (last, captured);
            }
        }
        let out = values[self.output]
            .take()
            .expect("the graph output is computed last");
        (out, captured)
    }

    /// `[N, 3, H, W]` normalised images → `[N, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let (out, _) = self.run(x, None, &[]);
        let [n, k, _, _] = out.dims();
        out.reshape([n, k])
    }

    /// Training-mode pass for batch-norm recalibration: every batch norm normalises with the
    /// batch's statistics (as PyTorch's `train()` does) and records them.
    pub fn batch_statistics(&self, x: Tensor<4>) -> Vec<BatchStats> {
        let mut stats = Vec::new();
        self.run(x, Some(&mut stats), &[]);
        stats
    }
}
