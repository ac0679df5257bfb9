//! Channel importance measured on calibration photos rather than read from the weights: what
//! a channel contributes to the outputs of the dense layers that read it. A channel with large
//! weights but small or rarely active inputs matters little, which L1/L2 cannot see.
//!
//! - `output`: `Σ ‖X_c W_cᵀ‖²` over the consumers — the output energy the channel carries,
//!   i.e. the output error its removal causes before any refit (from the `k² × k²` Gram block
//!   of the channel's input patches).
//! - `hessian`: the same with only the block's diagonal, `Σ w² · E[x²]` (Optimal Brain
//!   Damage's diagonal Hessian saliency): blind to how a kernel's positions correlate.

use std::collections::BTreeMap;

use super::importance::{ChannelImportance, Importance, group_width};
use crate::backend::Backend;
use crate::compress::calibration::layer_statistics::ChannelBlocks;
use crate::model::Model;
use crate::model::channels::Group;
use crate::predict::Classifier;
use crate::tensor::StateDict;
use crate::{Error, Result};

/// A measured criterion: the per-channel input statistics of every dense layer, by weight key.
pub struct MeasuredImportance {
    diagonal_only: bool,
    blocks: BTreeMap<String, ChannelBlocks>,
}

impl MeasuredImportance {
    /// Measure `model`'s dense layers' inputs on `batches` of calibration images, for the
    /// measured criterion `importance` (`output` or `hessian`).
    pub async fn measure(
        model: &Model,
        importance: Importance,
        backend: &Backend,
        batches: &[Vec<Vec<f32>>],
    ) -> Result<MeasuredImportance> {
        if !importance.is_measured() {
            return Err(Error::Invalid(format!(
                "importance '{}' is read from the weights, not measured",
                importance.label()
            )));
        }
        let images: usize = batches.iter().map(Vec::len).sum();
        if images == 0 {
            return Err(Error::Invalid(format!(
                "importance '{}' is measured on calibration images: give some",
                importance.label()
            )));
        }
        let graph = model.graph();
        let layers: Vec<_> = graph
            .nodes
            .iter()
            .filter(|n| n.op.layer_name().is_some())
            .collect();
        let inputs: Vec<usize> = layers.iter().map(|n| n.inputs[0]).collect();
        let classifier = Classifier::new(model, backend.clone())?;
        let mut blocks: BTreeMap<String, ChannelBlocks> = BTreeMap::new();
        for batch in batches.iter().filter(|b| !b.is_empty()) {
            let captured = classifier.capture(batch, &inputs).await?;
            for node in &layers {
                let Some(cap) = captured.iter().find(|c| c.value == node.inputs[0]) else {
                    continue;
                };
                let key = format!("{}.weight", node.op.layer_name().unwrap_or_default());
                if !blocks.contains_key(&key) {
                    match ChannelBlocks::new(&node.op, images, cap.dims[2], cap.dims[3]) {
                        Some(b) => blocks.insert(key.clone(), b),
                        None => continue,
                    };
                }
                if let Some(b) = blocks.get_mut(&key) {
                    b.add(cap);
                }
            }
        }
        Ok(MeasuredImportance {
            diagonal_only: importance == Importance::Hessian,
            blocks,
        })
    }
}

impl ChannelImportance for MeasuredImportance {
    fn scores(&self, g: &Group, w: &StateDict) -> Vec<f64> {
        let width = group_width(g, w);
        let mut scores = vec![0f64; width];
        // The group's consumers: the dense layers that read its channels (axis 1), at their
        // offset where they read a concatenation.
        for m in g.members.iter().filter(|m| m.axis == 1) {
            let (Some(t), Some(stats)) = (w.get(&m.key), self.blocks.get(&m.key)) else {
                continue;
            };
            let [rows, channels] = [t.shape[0], t.shape[1]];
            let at = m.positions(w, width);
            if at.iter().any(|&(c, _)| c >= channels) || channels != stats.blocks.len() {
                continue;
            }
            let k2 = t.data.len() / (rows * channels).max(1);
            for (c, k) in at {
                let score = &mut scores[k];
                let b = &stats.blocks[c];
                for r in 0..rows {
                    let v = &t.data[(r * channels + c) * k2..(r * channels + c + 1) * k2];
                    for i in 0..k2 {
                        if self.diagonal_only {
                            *score += (v[i] as f64).powi(2) * b[i * k2 + i];
                        } else {
                            for j in 0..k2 {
                                *score += v[i] as f64 * b[i * k2 + j] * v[j] as f64;
                            }
                        }
                    }
                }
            }
        }
        scores
    }
}
