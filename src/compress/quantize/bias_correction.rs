//! Bias correction: the mean output shift that rounding a layer's weights causes, measured on
//! calibration images, removed from the layer's bias.

use std::collections::BTreeMap;

use crate::Result;
use crate::backend::Backend;
use crate::model::{Model, Op};
use crate::predict::Classifier;

impl Model {
    /// Bias correction: for every integer layer, the mean change of its outputs caused by
    /// rounding its weights, `Σ (W_q − W)[o, i, k] · E[x_i]` with `E[x]` each input channel's
    /// mean on `batches` (measured on `float`, the folded unquantized model), is subtracted from
    /// its bias. `self` is changed in place (a large network is not copied).
    pub async fn bias_corrected(
        mut self,
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
            let mut shifts = vec![0f64; o_n];
            for (o, shift) in shifts.iter_mut().enumerate() {
                let g = o / per_group_out.max(1);
                for i in 0..i_n {
                    let m = mean.get(g * i_n + i).copied().unwrap_or(0.0);
                    for j in 0..k {
                        let idx = (o * i_n + i) * k + j;
                        *shift += (wq.data[idx] - wf.data[idx]) as f64 * m;
                    }
                }
            }
            let Some(bias) = self.weights.get_mut(&format!("{name}.bias")) else {
                continue;
            };
            for (b, shift) in bias.data.iter_mut().zip(shifts) {
                *b -= shift as f32;
            }
        }
        Ok(self)
    }
}
