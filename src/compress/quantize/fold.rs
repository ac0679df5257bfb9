//! Batch-norm folding: every batch norm merged into the conv before it, the first step of
//! weight quantization (the exported integer convs carry the folded weights and biases).

use crate::model::{Model, Op};
use crate::tensor::HostTensor;
use crate::{Error, Result};

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
            labels: self.labels.clone(),
        };
        crate::model::check_state_dict(
            &out.graph().param_shapes(),
            &out.weights,
            out.arch.display(),
        )?;
        Ok(out)
    }
}
