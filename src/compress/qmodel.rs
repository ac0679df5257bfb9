//! Quantizing a whole model: fold batch norms, store each layer's weights in its precision,
//! calibrate activation ranges on images, and snap biases to the int32 grid the exported QDQ
//! graph uses — so that the forward pass computes what the exported file computes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quantize::{
    ActQuant, EXACT_WEIGHT_SCALE_BITS, Granularity, Precision, Quantization, QuantizedTensor,
    quantize_with_scale_bits, round_to_f16,
};
use crate::backend::Backend;
use crate::model::{Model, Op};
use crate::predict::Classifier;
use crate::tensor::HostTensor;
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

/// What to quantize and how.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOptions {
    /// The precision of every conv and linear layer's weights.
    pub weights: Precision,
    /// Which weights share a scale (integer precisions).
    pub granularity: Granularity,
    /// Keep the first conv and the classifier one step higher (int4 → int8, else fp32).
    pub keep_first_last: bool,
    /// Per-layer precision, by layer name (`layer1.0.conv1`, `fc`).
    pub overrides: BTreeMap<String, Precision>,
    /// Round integer weight scales up to [`EXACT_WEIGHT_SCALE_BITS`] significant bits, so that
    /// with quantized activations the exported graph's arithmetic is exact (see [`ActQuant`]).
    /// The pipeline sets it whenever activations are quantized.
    pub exact_scales: bool,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            weights: Precision::F32,
            granularity: Granularity::PerChannel,
            keep_first_last: false,
            overrides: BTreeMap::new(),
            exact_scales: false,
        }
    }
}

impl Model {
    /// The same network with every batch norm folded into the conv before it:
    /// `w' = w · γ/√(σ²+ε)` per output channel, `b' = β − μ · γ/√(σ²+ε)`.
    pub fn fold_bn(&self) -> Result<Model> {
        if self.folded {
            return Ok(self.clone());
        }
        let graph = self.graph();
        let mut w = self.weights.clone();
        for n in &graph.nodes {
            let Op::BatchNorm { name, eps, .. } = &n.op else {
                continue;
            };
            let conv = graph
                .nodes
                .iter()
                .find(|m| m.output == n.inputs[0])
                .and_then(|m| match &m.op {
                    Op::Conv { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .ok_or_else(|| Error::Structure(format!("batch norm {name} follows no conv")))?;
            let get = |p: &str| -> Result<Vec<f32>> {
                let key = format!("{name}.{p}");
                w.get(&key)
                    .map(|t| t.data.clone())
                    .ok_or_else(|| Error::Structure(format!("'{key}' is missing")))
            };
            let (gamma, beta, mean, var) = (
                get("weight")?,
                get("bias")?,
                get("running_mean")?,
                get("running_var")?,
            );
            // The same arithmetic as the eval-mode batch norm (scale, then shift).
            let scale: Vec<f32> = (0..gamma.len())
                .map(|i| gamma[i] / (var[i] + eps).sqrt())
                .collect();
            let shift: Vec<f32> = (0..gamma.len())
                .map(|i| beta[i] - mean[i] * scale[i])
                .collect();
            let wkey = format!("{conv}.weight");
            let cw = w
                .get_mut(&wkey)
                .ok_or_else(|| Error::Structure(format!("'{wkey}' is missing")))?;
            let per = cw.len() / scale.len().max(1);
            for (i, v) in cw.data.iter_mut().enumerate() {
                *v *= scale[i / per];
            }
            w.insert(
                format!("{conv}.bias"),
                HostTensor::new(vec![shift.len()], shift),
            );
            for p in ["weight", "bias", "running_mean", "running_var"] {
                w.remove(&format!("{name}.{p}"));
            }
        }
        let out = Model {
            arch: self.arch.clone(),
            folded: true,
            weights: w,
            quant: self.quant.clone(),
        };
        crate::model::check_state_dict(
            &out.graph().param_shapes(),
            &out.weights,
            out.arch.display(),
        )?;
        Ok(out)
    }

    /// Each conv/linear layer and the precision `opts` gives it.
    pub fn layer_precisions(&self, opts: &QuantOptions) -> Vec<(String, Precision)> {
        let graph = self.graph();
        let (first, last) = (graph.first_conv(), graph.classifier());
        graph
            .nodes
            .iter()
            .filter_map(|n| n.op.layer_name())
            .map(|name| {
                let edge = Some(name) == first || Some(name) == last;
                let p = match opts.overrides.get(name) {
                    Some(p) => *p,
                    None if opts.keep_first_last && edge => opts.weights.higher(),
                    None => opts.weights,
                };
                (name.to_string(), p)
            })
            .collect()
    }

    /// Batch norms folded and every layer's weights stored in its precision; the weights the
    /// forward pass uses become exactly the dequantized values.
    pub fn quantized(&self, opts: &QuantOptions) -> Result<Model> {
        if !self.quant.is_empty() {
            return Err(Error::Invalid(
                "this model is already quantized: compress the original instead".into(),
            ));
        }
        let layers = self.layer_precisions(opts);
        if let Some(name) = opts
            .overrides
            .keys()
            .find(|name| !layers.iter().any(|(l, _)| l == *name))
        {
            return Err(Error::Invalid(format!("no layer named '{name}'")));
        }
        if layers.iter().all(|(_, p)| *p == Precision::F32) {
            return Ok(self.clone());
        }
        let mut out = self.fold_bn()?;
        for (name, p) in layers {
            let wkey = format!("{name}.weight");
            let bkey = format!("{name}.bias");
            match p {
                Precision::F32 => {}
                Precision::F16 => {
                    for key in [wkey, bkey] {
                        if let Some(t) = out.weights.get_mut(&key) {
                            *t = round_to_f16(t);
                            out.quant.f16.insert(key);
                        }
                    }
                }
                Precision::Int8 | Precision::Int4 => {
                    let bits = p.bits().unwrap_or(8);
                    let t = out
                        .weights
                        .get(&wkey)
                        .ok_or_else(|| Error::Structure(format!("'{wkey}' is missing")))?;
                    // A linear layer has no kernel positions: groups run along its inputs too.
                    let scale_bits = opts.exact_scales.then_some(EXACT_WEIGHT_SCALE_BITS);
                    let qt = quantize_with_scale_bits(t, bits, opts.granularity, scale_bits)?;
                    out.weights.insert(wkey.clone(), qt.dequantize());
                    out.quant.int.insert(wkey, qt);
                }
            }
        }
        Ok(out)
    }

    /// The values whose activations are quantized: inputs of integer-weight convs and linear
    /// layers, both inputs of every add, and the input of the global pooling.
    pub fn activation_points(&self) -> Vec<usize> {
        let graph = self.graph();
        let mut points = Vec::new();
        for n in &graph.nodes {
            let reads: &[usize] = match (&n.op, n.op.layer_name()) {
                (_, Some(name)) => {
                    if self.quant.int.contains_key(&format!("{name}.weight")) {
                        &n.inputs
                    } else {
                        &[]
                    }
                }
                (Op::Add | Op::GlobalAvgPool, None) => &n.inputs,
                _ => &[],
            };
            for &v in reads {
                if !points.contains(&v) {
                    points.push(v);
                }
            }
        }
        points
    }

    /// Estimate every activation point's range from `batches` of preprocessed images (the
    /// model as it is, activations in float) and return the `u8` quantization of each: a
    /// power-of-two step fitted to that range and a sample of the values ([`ActQuant::fit`]).
    pub async fn calibrate_activations(
        &self,
        backend: Backend,
        batches: &[Vec<Vec<f32>>],
        method: Calibration,
    ) -> Result<BTreeMap<String, ActQuant>> {
        if batches.iter().all(|b| b.is_empty()) {
            return Err(Error::Invalid(
                "activation calibration needs at least one calibration image".into(),
            ));
        }
        let points = self.activation_points();
        let names = self.graph().values;
        let classifier = Classifier::new(self, backend)?;
        // Per point: exact min and max, and a bounded sample (percentiles, step choice).
        const SAMPLE: usize = 1 << 18;
        let mut ranges: Vec<(f32, f32, Vec<f32>)> =
            vec![(f32::INFINITY, f32::NEG_INFINITY, Vec::new()); points.len()];
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            for cap in classifier.capture(batch, &points).await? {
                let Some(k) = points.iter().position(|&p| p == cap.value) else {
                    continue;
                };
                let values = cap.data;
                let r = &mut ranges[k];
                for &x in &values {
                    r.0 = r.0.min(x);
                    r.1 = r.1.max(x);
                }
                let stride = values.len().div_ceil(SAMPLE / batches.len().max(1)).max(1);
                r.2.extend(values.iter().step_by(stride));
            }
        }
        let mut out = BTreeMap::new();
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
            out.insert(names[v].clone(), ActQuant::fit(lo, hi, sample));
        }
        Ok(out)
    }

    /// Bias correction: for every integer layer, the mean change of its outputs caused by
    /// rounding its weights, `Σ (W_q − W)[o, i, k] · E[x_i]` with `E[x]` each input channel's
    /// mean on `batches` (measured on `float`, the folded unquantized model), is subtracted from
    /// its bias.
    pub async fn bias_corrected(
        &self,
        float: &Model,
        backend: Backend,
        batches: &[Vec<Vec<f32>>],
    ) -> Result<Model> {
        let graph = self.graph();
        let layers: Vec<(String, usize, usize)> = graph
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Conv { name, groups, .. } => Some((name.clone(), n.inputs[0], *groups)),
                Op::Linear { name, .. } => Some((name.clone(), n.inputs[0], 1)),
                _ => None,
            })
            .filter(|(name, _, _)| self.quant.int.contains_key(&format!("{name}.weight")))
            .collect();
        let points: Vec<usize> = layers.iter().map(|l| l.1).collect();
        let classifier = Classifier::new(float, backend)?;
        // Per captured value: the sum of each channel's values and the count per channel.
        let mut sums: BTreeMap<usize, (Vec<f64>, usize)> = BTreeMap::new();
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            for cap in classifier.capture(batch, &points).await? {
                let [n, c, h, w] = cap.dims;
                let e = sums.entry(cap.value).or_insert_with(|| (vec![0.0; c], 0));
                for (i, x) in cap.data.iter().enumerate() {
                    e.0[(i / (h * w)) % c] += *x as f64;
                }
                e.1 += n * h * w;
            }
        }
        let mut out = self.clone();
        for (name, input, groups) in layers {
            let (Some((sum, count)), Some(q), Some(wf)) = (
                sums.get(&input),
                self.quant.int.get(&format!("{name}.weight")),
                float.weights.get(&format!("{name}.weight")),
            ) else {
                continue;
            };
            let mean: Vec<f64> = sum.iter().map(|s| s / (*count).max(1) as f64).collect();
            let wq = &self.weights[&format!("{name}.weight")];
            let (o_n, i_n) = (q.shape[0], q.shape[1]);
            let k: usize = q.shape[2..].iter().product::<usize>().max(1);
            let per_group_out = o_n / groups.max(1);
            let Some(bias) = out.weights.get_mut(&format!("{name}.bias")) else {
                continue;
            };
            for o in 0..o_n {
                let g = o / per_group_out.max(1);
                let mut shift = 0f64;
                for i in 0..i_n {
                    let m = mean.get(g * i_n + i).copied().unwrap_or(0.0);
                    for j in 0..k {
                        let idx = (o * i_n + i) * k + j;
                        shift += (wq.data[idx] - wf.data[idx]) as f64 * m;
                    }
                }
                bias.data[o] -= shift as f32;
            }
        }
        Ok(out)
    }

    /// Quantize activations with `act`, and put every bias of an integer layer whose input is
    /// quantized on the int32 grid `scale_in × scale_w[c]` (as the QDQ graph stores it).
    pub fn with_activation_quant(&self, act: BTreeMap<String, ActQuant>) -> Result<Model> {
        let mut out = self.clone();
        let graph = self.graph();
        for n in &graph.nodes {
            let Some(name) = n.op.layer_name() else {
                continue;
            };
            let (Some(qt), Some(a)) = (
                self.quant.int.get(&format!("{name}.weight")),
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
            if let Some(b) = out.weights.get_mut(&bkey) {
                let scales = bias_scales(qt, a);
                for (c, v) in b.data.iter_mut().enumerate() {
                    let s = scales[c];
                    let q = (*v / s)
                        .round_ties_even()
                        .clamp(i32::MIN as f32, i32::MAX as f32);
                    *v = q * s;
                }
            }
        }
        out.quant.activations = act;
        Ok(out)
    }
}

/// The int32 bias scales of a layer: input scale × each output channel's weight scale.
pub fn bias_scales(weight: &QuantizedTensor, input: &ActQuant) -> Vec<f32> {
    let out = weight.shape[0];
    (0..out)
        .map(|c| {
            let ws = match weight.granularity {
                Granularity::PerTensor => weight.scales[0],
                _ => weight.scales[c.min(weight.scales.len() - 1)],
            };
            input.scale * ws
        })
        .collect()
}

impl Quantization {
    /// A one-line description (`int8 per-channel weights, u8 activations`).
    pub fn describe(&self) -> String {
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for q in self.int.values() {
            *kinds
                .entry(format!("int{} {}", q.bits, q.granularity))
                .or_default() += 1;
        }
        let mut parts: Vec<String> = kinds
            .into_iter()
            .map(|(k, n)| format!("{n} tensors {k}"))
            .collect();
        if !self.f16.is_empty() {
            parts.push(format!("{} tensors fp16", self.f16.len()));
        }
        if !self.activations.is_empty() {
            parts.push(format!("{} activations u8", self.activations.len()));
        }
        if parts.is_empty() {
            "fp32".into()
        } else {
            parts.join(", ")
        }
    }
}
