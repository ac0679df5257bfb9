//! Batch-norm folding: every batch norm merged into the conv before it (or, after anything
//! else, made a 1×1 depthwise conv), and every average pool after a 1×1 conv merged into it
//! (DenseNet's transitions): the first step of weight quantization (the exported integer convs
//! carry the folded weights and biases).

use crate::model::{Model, Op};
use crate::tensor::HostTensor;
use crate::{Error, Result};

impl Model {
    /// The same network with every batch norm folded into the conv before it:
    /// `w' = w · γ/√(σ²+ε)` per output channel, `b' = β − μ · γ/√(σ²+ε)`. A batch norm
    /// that follows no conv (or one whose output something else reads too) becomes a 1×1
    /// depthwise conv of weight `γ/√(σ²+ε)` and that bias. An average pool after a 1×1 conv
    /// joins it ([`Graph::foldable_pools`](crate::model::graph::Graph::foldable_pools)).
    pub fn fold_bn(&self) -> Result<Model> {
        self.clone().into_folded()
    }

    /// [`Model::fold_bn`] in place: no second copy of the weights.
    pub fn into_folded(self) -> Result<Model> {
        if self.folded {
            return Ok(self);
        }
        let graph = self.graph();
        let mut w = self.weights;
        let into_conv: std::collections::BTreeMap<String, String> =
            graph.foldable_batch_norms().into_iter().collect();
        for n in &graph.nodes {
            let Op::BatchNorm { name, eps, .. } = &n.op else {
                continue;
            };
            let mut take = |p: &str| -> Result<Vec<f32>> {
                let key = format!("{name}.{p}");
                w.remove(&key)
                    .map(|t| t.data)
                    .ok_or_else(|| Error::Structure(format!("'{key}' is missing")))
            };
            let (gamma, beta, mean, var) = (
                take("weight")?,
                take("bias")?,
                take("running_mean")?,
                take("running_var")?,
            );
            // The same arithmetic as the eval-mode batch norm (scale, then shift).
            let scale: Vec<f32> = (0..gamma.len())
                .map(|i| gamma[i] / (var[i] + eps).sqrt())
                .collect();
            let Some(conv) = into_conv.get(name) else {
                // After anything but a conv: a 1×1 depthwise conv of its name
                // (`Graph::folded`), `x·s + (β − μ·s)`.
                let shift: Vec<f32> = (0..gamma.len())
                    .map(|i| beta[i] - mean[i] * scale[i])
                    .collect();
                let c = scale.len();
                w.insert(
                    format!("{name}.weight"),
                    HostTensor::new(vec![c, 1, 1, 1], scale),
                );
                w.insert(format!("{name}.bias"), HostTensor::new(vec![c], shift));
                continue;
            };
            // A conv that had a bias: `(b − μ)·s + β`.
            let old_bias = w.get(&format!("{conv}.bias")).map(|t| t.data.clone());
            let shift: Vec<f32> = (0..gamma.len())
                .map(|i| match &old_bias {
                    Some(b) => (b[i] - mean[i]) * scale[i] + beta[i],
                    None => beta[i] - mean[i] * scale[i],
                })
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
        }
        // A 1×1 conv and the average pool after it: one conv over the pool's window.
        for (_, conv, [kh, kw]) in graph.foldable_pools() {
            let wkey = format!("{conv}.weight");
            let cw = w
                .get(&wkey)
                .ok_or_else(|| Error::Structure(format!("'{wkey}' is missing")))?;
            let taps = (kh * kw) as f32;
            let data = (cw.data.iter())
                .flat_map(|&v| std::iter::repeat_n(v / taps, kh * kw))
                .collect();
            let shape = vec![cw.shape[0], cw.shape[1], kh, kw];
            w.insert(wkey, HostTensor::new(shape, data));
        }
        let out = Model {
            arch: self.arch,
            folded: true,
            weights: w,
            quant: self.quant,
            labels: self.labels,
        };
        crate::model::check_state_dict(
            &out.graph().param_shapes(),
            &out.weights,
            out.arch.display(),
        )?;
        Ok(out)
    }
}
