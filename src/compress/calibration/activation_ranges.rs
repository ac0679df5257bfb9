//! Activation quantization: which values a QDQ graph quantizes, their `u8` steps estimated on
//! calibration images, and the biases snapped to the int32 grid the exported graph uses — so
//! that the forward pass computes what the exported file computes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::model::{Model, Op};
use crate::predict::Classifier;
use crate::quant::{ActQuant, EXACT_WEIGHT_SCALE_BITS, Granularity, bias_scales, round_up_to_bits};

/// The largest bias, in units of its int32 grid, an integer layer may have: 2^30 leaves half of
/// int32's range to the accumulator (at most `255 · 127 · inputs`, below 2^30 for any layer
/// with fewer than 33,000 inputs), so that no kernel's sum wraps around.
pub const MAX_BIAS_UNITS: f32 = (1u32 << 30) as f32;
use crate::{Error, Result};

/// How activation ranges are estimated from calibration images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Calibration {
    /// The smallest and largest value seen.
    MinMax,
    /// The given percentile of the values seen (and its mirror for the low end), which
    /// ignores rare outliers: e.g. 99.99.
    Percentile(f32),
}

impl std::str::FromStr for Calibration {
    type Err = Error;

    /// `minmax` or `percentile[:P]` (P defaults to 99.99).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minmax" => Ok(Calibration::MinMax),
            "percentile" => Ok(Calibration::Percentile(99.99)),
            _ => match s.strip_prefix("percentile:").map(str::parse::<f32>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(Calibration::Percentile(p)),
                _ => Err(Error::Invalid(format!(
                    "calibration '{s}' is not one of minmax, percentile, percentile:P (50 < P ≤ 100)"
                ))),
            },
        }
    }
}

/// What activation calibration measured: the step of every quantized value, and the step the
/// logits take where a file must write them as integers too.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationSteps {
    pub values: BTreeMap<String, ActQuant>,
    pub logits: ActQuant,
}

impl Model {
    /// The values whose activations are quantized: inputs of integer-weight convs and linear
    /// layers, both inputs of every add and product, and the inputs of global pooling and of
    /// the curved activations (sigmoid, hard sigmoid, hard swish, SiLU), as an integer engine
    /// reads them.
    pub fn activation_points(&self) -> Vec<usize> {
        let graph = self.graph();
        let mut points = Vec::new();
        let mut moved = Vec::new();
        for n in &graph.nodes {
            let reads: &[usize] = match (&n.op, n.op.layer_name()) {
                (_, Some(name)) => {
                    if self.quant.int.contains_key(&format!("{name}.weight")) {
                        &n.inputs
                    } else {
                        &[]
                    }
                }
                (
                    Op::Add
                    | Op::Mul
                    | Op::AvgPool { .. }
                    | Op::GlobalAvgPool
                    | Op::Sigmoid
                    | Op::HardSigmoid { .. }
                    | Op::HardSwish
                    | Op::Silu,
                    None,
                ) => &n.inputs,
                // Channels moved, not computed: inputs and output on one step (below), as
                // an int8 concatenation, slice or transpose keeps its values' integers.
                (
                    Op::Concat
                    | Op::Channels { .. }
                    | Op::ChannelShuffle { .. }
                    | Op::Flatten { .. },
                    None,
                ) => {
                    moved.push(n.output);
                    &n.inputs
                }
                (
                    Op::Conv { .. }
                    | Op::Linear { .. }
                    | Op::BatchNorm { .. }
                    | Op::Relu
                    | Op::Relu6
                    | Op::MaxPool { .. },
                    None,
                ) => &[],
            };
            for &v in reads.iter().chain(&moved) {
                if !points.contains(&v) {
                    points.push(v);
                }
            }
            moved.clear();
        }
        points
    }

    /// Estimate every activation point's range from `batches` of preprocessed images (the
    /// model as it is, activations in float) and return the `u8` quantization of each: a
    /// power-of-two step fitted to that range and a sample of the values ([`ActQuant::fit`]);
    /// and the step of the logits in a full-integer file.
    pub async fn calibrate_activations(
        &self,
        backend: Backend,
        batches: &[Vec<Vec<f32>>],
        method: Calibration,
    ) -> Result<ActivationSteps> {
        if batches.iter().all(|b| b.is_empty()) {
            return Err(Error::Invalid(
                "activation calibration needs at least one calibration image".into(),
            ));
        }
        let points = self.activation_points();
        let graph = self.graph();
        let names = &graph.values;
        let mut captured = points.clone();
        captured.push(graph.output);
        // Activations and logits in float, also where the model was quantized before (its
        // rounded logits would otherwise keep their old range).
        let classifier = if self.quant.activations.is_empty() && self.quant.logits.is_none() {
            Classifier::new(self, backend)?
        } else {
            let mut float = self.clone();
            float.quant.activations.clear();
            float.quant.logits = None;
            Classifier::new(&float, backend)?
        };
        // Per point: exact min and max, and a bounded sample (percentiles, step choice).
        const SAMPLE: usize = 1 << 18;
        let mut ranges: Vec<(f32, f32, Vec<f32>)> =
            vec![(f32::INFINITY, f32::NEG_INFINITY, Vec::new()); points.len()];
        let mut logits = (f32::INFINITY, f32::NEG_INFINITY);
        let mut logit_sample: Vec<f32> = Vec::new();
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            for cap in classifier.capture(batch, &captured).await? {
                let values = cap.data;
                if cap.value == graph.output {
                    for &x in &values {
                        logits = (logits.0.min(x), logits.1.max(x));
                    }
                    if cap.dims[1] == 1 {
                        logit_sample.extend(&values);
                    }
                }
                let Some(k) = points.iter().position(|&p| p == cap.value) else {
                    continue;
                };
                let r = &mut ranges[k];
                for &x in &values {
                    r.0 = r.0.min(x);
                    r.1 = r.1.max(x);
                }
                let stride = values.len().div_ceil(SAMPLE / batches.len().max(1)).max(1);
                r.2.extend(values.iter().step_by(stride));
            }
        }
        let mut fitted: Vec<Option<ActQuant>> = vec![None; names.len()];
        for (k, &v) in points.iter().enumerate() {
            let (lo, hi, sample) = &mut ranges[k];
            let (lo, hi) = match method {
                Calibration::MinMax => (*lo, *hi),
                Calibration::Percentile(p) => {
                    sample.sort_by(f32::total_cmp);
                    let at = |q: f32| {
                        let i = ((sample.len().saturating_sub(1)) as f32 * q / 100.0).round();
                        sample.get(i as usize).copied().unwrap_or(0.0)
                    };
                    (at(100.0 - p), at(p))
                }
            };
            fitted[v] = Some(ActQuant::fit(lo, hi, sample));
        }
        // A gate's values lie in [0, 1]: the step integer engines give them, whatever this
        // calibration saw.
        for n in &graph.nodes {
            if matches!(n.op, Op::Sigmoid | Op::HardSigmoid { .. }) && fitted[n.output].is_some() {
                fitted[n.output] = Some(ActQuant::UNIT);
            }
        }
        // Both rules only coarsen steps, so they settle; each pass may unsettle the other.
        for _ in 0..16 {
            let before = fitted.clone();
            self.align_add_steps(&mut fitted);
            self.align_moved_steps(&mut fitted);
            if fitted == before {
                break;
            }
        }
        // An average keeps its input's step, as an int8 average pool must.
        for n in &graph.nodes {
            if matches!(n.op, Op::AvgPool { .. }) && fitted[n.output].is_some() {
                fitted[n.output] = fitted[n.inputs[0]];
            }
        }
        let out: BTreeMap<String, ActQuant> = names
            .iter()
            .zip(fitted)
            .filter_map(|(name, q)| Some((name.clone(), q?)))
            .collect();
        // Headroom of an eighth of the range beyond each end seen: a photo more confident
        // than every calibration photo would otherwise saturate, and two classes at the top of
        // the range would tie; the low end, so that the file's logits stay comparable. A
        // power-of-two step like every other activation's: the last layer's requantization
        // multiplier is then exact, and every engine rounds the logits to the same integers.
        //
        // A single logit (a binary classifier) decides by its sign alone: saturating at the
        // ends never changes a decision, while every logit within half a step of zero rounds to
        // exactly zero, a tie. Its step is fitted like an activation's instead (the least
        // squared error on the calibration logits, no headroom), which may clip the rare
        // largest logits to take a finer step: on a photo-orientation detector the step went
        // from 1/16 to 1/32, and half as many photos near the boundary tied.
        let (lo, hi) = logits;
        let logits = if logit_sample.is_empty() {
            let margin = (hi - lo).max(0.0) / 8.0;
            ActQuant::from_range(lo - margin, hi + margin)
        } else {
            ActQuant::fit(lo, hi, &logit_sample)
        };
        Ok(ActivationSteps {
            values: out,
            logits,
        })
    }

    /// Give both inputs of every addition at least the step of its sum (the sum's own, or
    /// that of the ReLU alone reading it).
    ///
    /// Why: an addition whose input is finer than its sum meets exact halves (with an input
    /// at half the sum's step, half of all sums), and engines round them differently — ONNX's
    /// `QuantizeLinear` to even, LiteRT's integer `ADD` up. A quarter of EfficientNet-Lite0's
    /// fifth residual sum then came out one step apart in LiteRT, and the step carried on to
    /// the logits (top-1 differed on 11 of 250 photos). With inputs as coarse as the sum
    /// (power-of-two steps, so a multiple of it), every sum is a whole number of steps: no
    /// rounding, the same integers in every engine. A value that an addition reads and that is
    /// also another addition's sum passes the step on, so this repeats until nothing changes.
    fn align_add_steps(&self, steps: &mut [Option<ActQuant>]) {
        let graph = self.graph();
        let readers = |v: usize| graph.nodes.iter().filter(|m| m.inputs.contains(&v)).count();
        loop {
            let mut changed = false;
            for n in graph.nodes.iter().filter(|n| matches!(n.op, Op::Add)) {
                let relu = graph
                    .nodes
                    .iter()
                    .find(|m| m.inputs == [n.output] && matches!(m.op, Op::Relu | Op::Relu6))
                    .filter(|_| readers(n.output) == 1);
                let sum = relu.map_or(n.output, |m| m.output);
                let Some(target) = steps[sum].map(|q| q.scale) else {
                    continue;
                };
                for &v in &n.inputs {
                    if let Some(q) = &mut steps[v]
                        && q.scale < target
                    {
                        *q = q.coarsened(target);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Put the inputs and outputs of every concatenation, slice and channel shuffle (and
    /// average or max pool), and everything joined to them through another, on one step: the union
    /// of their ranges.
    /// An int8 concatenation whose inputs have other steps than its output requantizes them,
    /// and engines round that differently; on one step the integers only move.
    fn align_moved_steps(&self, steps: &mut [Option<ActQuant>]) {
        let graph = self.graph();
        let mut parent: Vec<usize> = (0..steps.len()).collect();
        fn root(p: &mut [usize], mut v: usize) -> usize {
            while p[v] != v {
                p[v] = p[p[v]];
                v = p[v];
            }
            v
        }
        for n in &graph.nodes {
            // An int8 average or max pool keeps its input's step too.
            let moves = matches!(
                n.op,
                Op::Concat | Op::Channels { .. } | Op::ChannelShuffle { .. } | Op::Flatten { .. }
            );
            let pools = matches!(n.op, Op::AvgPool { .. } | Op::MaxPool { .. })
                && steps[n.output].is_some();
            if moves || pools {
                for &i in &n.inputs {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, n.output));
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
        let roots: Vec<usize> = (0..steps.len()).map(|v| root(&mut parent, v)).collect();
        let mut range: BTreeMap<usize, (f32, f32)> = BTreeMap::new();
        let mut size: BTreeMap<usize, usize> = BTreeMap::new();
        for (q, &r) in steps.iter().zip(&roots) {
            *size.entry(r).or_default() += 1;
            if let Some(q) = q {
                let lo = -(q.zero_point as f32) * q.scale;
                let hi = (255.0 - q.zero_point as f32) * q.scale;
                let e = range.entry(r).or_insert((lo, hi));
                *e = (e.0.min(lo), e.1.max(hi));
            }
        }
        // The union spans every member's whole range, so its step is at least each one's.
        for (q, r) in steps.iter_mut().zip(&roots) {
            if let (true, Some(_), Some(&(lo, hi))) = (size[r] > 1, &q, range.get(r)) {
                *q = Some(ActQuant::from_range(lo, hi));
            }
        }
    }

    /// Quantize activations with `steps`, and put every bias of an integer layer whose input is
    /// quantized on the int32 grid `scale_in × scale_w[c]` (as the QDQ graph stores it).
    ///
    /// A channel whose weights are all but zero has a tiny weight scale, and its bias in units
    /// of `scale_in × scale_w[c]` can pass int32's range; an integer kernel adding it to its
    /// accumulator then wraps around (TFLite's int32 accumulators did, on two of
    /// EfficientNet-Lite0's stem channels). Such a channel's weight scale is raised until the
    /// bias needs at most [`MAX_BIAS_UNITS`]: its weights are near zero at either step, and the
    /// bias keeps its value instead of being clipped.
    pub fn with_activation_quant(self, steps: ActivationSteps) -> Result<Model> {
        let act = steps.values;
        let graph = self.graph();
        let mut out = self;
        for n in &graph.nodes {
            let Some(name) = n.op.layer_name() else {
                continue;
            };
            let wkey = format!("{name}.weight");
            let (Some(qt), Some(a)) = (
                out.quant.int.get_mut(&wkey),
                act.get(&graph.values[n.inputs[0]]),
            ) else {
                continue;
            };
            if let Granularity::Group(_) = qt.granularity {
                return Err(Error::Invalid(
                    "activation quantization needs per-channel or per-tensor weights, not groups"
                        .into(),
                ));
            }
            let bkey = format!("{name}.bias");
            let Some(b) = out.weights.get_mut(&bkey) else {
                continue;
            };
            let mut raised = false;
            for (c, v) in b.data.iter().enumerate() {
                let k = match qt.granularity {
                    Granularity::PerTensor => 0,
                    _ => c.min(qt.scales.len() - 1),
                };
                let needed = v.abs() / (a.scale * MAX_BIAS_UNITS);
                if needed > qt.scales[k] {
                    qt.coarsen(k, round_up_to_bits(needed, EXACT_WEIGHT_SCALE_BITS));
                    raised = true;
                }
            }
            let scales = bias_scales(qt, a);
            for (c, v) in b.data.iter_mut().enumerate() {
                let s = scales[c];
                let q = (*v / s)
                    .round_ties_even()
                    .clamp(-MAX_BIAS_UNITS, MAX_BIAS_UNITS);
                *v = q * s;
            }
            if raised {
                let dequantized = qt.dequantize();
                out.weights.insert(wkey, dequantized);
            }
        }
        out.quant.activations = act;
        out.quant.logits = Some(steps.logits);
        Ok(out)
    }
}
