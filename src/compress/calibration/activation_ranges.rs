//! Activation quantization: which values a QDQ graph quantizes, their `u8` steps estimated on
//! calibration images, and the biases snapped to the int32 grid the exported graph uses — so
//! that the forward pass computes what the exported file computes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::model::{Model, Op};
use crate::predict::Classifier;
use crate::quant::{ActQuant, Granularity, bias_scales};
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

impl Model {
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
