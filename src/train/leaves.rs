//! A model's parameters as tensors that training differentiates: flat leaves on an autodiff
//! device, each with what keeps it storable in the compressed file — a mask that holds pruned
//! weights at zero, and the integer grid its stored values lie on (fake quantization with a
//! straight-through estimator). Pruned channels need nothing: they are absent from the shapes.
//!
//! A grid's scales (one per channel or group, as the file stores them) train too, as LSQ does
//! (Esser et al. 2020): the rounding passes gradients straight through, so the loss tells each
//! scale whether its channel clips too much or rounds too coarsely. A scale is trained as
//! `s₀ · exp(θ)`: Adam moves every parameter by about the learning rate per step, which for a
//! scale of 0.002 would be a jolt; in θ it is a relative change, and θ gets a larger rate
//! ([`SCALE_RATE`]). Where activations are quantized the scales stay as they are: there they
//! sit on the grid that keeps the exported integer arithmetic exact (see `ActQuant`).

use std::collections::BTreeMap;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::model::Model;
use crate::model::layers::Params;
use crate::model::stored::scale_key;
use crate::quant::{Quantization, QuantizedTensor, qmax, round_to_f16};
use crate::tensor::{HostTensor, StateDict};
use crate::{Error, Result};

/// Where a grid's scales come from.
enum Scales {
    /// Fixed: one value per scale.
    Fixed(Tensor<1>),
    /// `initial · exp(θ)`, θ the leaf of this name (`{weight}_scale`).
    Learned { initial: Tensor<1>, leaf: String },
}

/// How much faster a scale's log moves than a weight: a relative change of the weights'
/// learning rate per step would leave the scales where they started.
pub const SCALE_RATE: f32 = 20.0;

/// The integer grid of a quantized weight: its scales, which scale serves each element, and
/// the largest integer.
struct Grid {
    scales: Scales,
    index: Tensor<1, Int>,
    qmax: f32,
}

/// One trainable tensor.
struct Leaf {
    value: Tensor<1>,
    shape: Vec<usize>,
    /// 1 where the weight may move, 0 where it was pruned.
    mask: Option<Tensor<1>>,
    grid: Option<Grid>,
    /// The log of a grid's scales relative to their start (θ).
    is_scale: bool,
}

/// The trainable and fixed tensors of one model on a device with autodiff.
pub struct Leaves {
    leaves: BTreeMap<String, Leaf>,
    /// Batch-norm running statistics: part of the network, not trained.
    fixed: BTreeMap<String, (Tensor<1>, Vec<usize>)>,
}

/// What one step's forward pass reads: the leaves as the network sees them (masked,
/// fake-quantized), still connected to the leaves for the backward pass.
pub struct Effective<'a> {
    tensors: BTreeMap<&'a str, (Tensor<1>, &'a [usize])>,
}

impl Params for Effective<'_> {
    fn get<const D: usize>(&self, key: &str) -> Result<Tensor<D>> {
        let (t, shape) = self
            .tensors
            .get(key)
            .ok_or_else(|| Error::Structure(format!("the trained model lacks '{key}'")))?;
        let dims: [usize; D] = shape
            .to_vec()
            .try_into()
            .map_err(|_| Error::Structure(format!("'{key}' has shape {shape:?}, not rank {D}")))?;
        Ok(t.clone().reshape(dims))
    }
}

fn is_running_statistic(key: &str) -> bool {
    key.ends_with("running_mean") || key.ends_with("running_var")
}

fn flat(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Which scale serves each element of a quantized tensor.
fn scale_indices(q: &QuantizedTensor, device: &Device) -> Tensor<1, Int> {
    let index: Vec<i64> = (0..q.values.len())
        .map(|i| q.scale_index_of(i) as i64)
        .collect();
    let n = index.len();
    Tensor::from_data(TensorData::new(index, [n]), device)
}

/// How far training may move a scale from where it started (a factor either way): keeps
/// `w / s` finite whatever the optimizer does.
const MAX_SCALE_CHANGE: f32 = 16.0;

impl Leaves {
    /// The tensors of a model (`weights`, stored as `quant` says) on `device`, which must
    /// have autodiff enabled; integer grids' scales train with `learn_scales` (never where
    /// activations are quantized). Tensors `frozen` names stay as they are, like the
    /// batch-norm statistics.
    pub fn new(
        weights: &StateDict,
        quant: &Quantization,
        learn_scales: bool,
        frozen: &[String],
        device: &Device,
    ) -> Result<Self> {
        if !device.is_autodiff() {
            return Err(Error::Backend(
                "training needs a device with autodiff enabled".into(),
            ));
        }
        let learn_scales = learn_scales && quant.activations.is_empty();
        let mut leaves = BTreeMap::new();
        let mut fixed = BTreeMap::new();
        for (key, t) in weights {
            if is_running_statistic(key) || frozen.contains(key) {
                fixed.insert(key.clone(), (flat(t.data.clone(), device), t.shape.clone()));
                continue;
            }
            let quantized = quant.int.get(key);
            // Zeros of a float weight are pruned weights (a trained float is never exactly
            // zero); in an integer tensor only the file's list says so (values round to zero).
            let masked = if quantized.is_some() {
                quant.sparse.contains(key)
            } else {
                key.ends_with(".weight") && t.data.contains(&0.0)
            };
            let mask = masked.then(|| {
                let m = t.data.iter().map(|&v| f32::from(v != 0.0)).collect();
                flat(m, device)
            });
            let grid = quantized.map(|q| {
                let initial = flat(q.scales.clone(), device);
                let scales = if learn_scales {
                    let name = scale_key(key);
                    leaves.insert(
                        name.clone(),
                        Leaf {
                            value: flat(vec![0.0; q.scales.len()], device).require_grad(),
                            shape: vec![q.scales.len()],
                            mask: None,
                            grid: None,
                            is_scale: true,
                        },
                    );
                    Scales::Learned {
                        initial,
                        leaf: name,
                    }
                } else {
                    Scales::Fixed(initial)
                };
                Grid {
                    scales,
                    index: scale_indices(q, device),
                    qmax: qmax(q.bits) as f32,
                }
            });
            leaves.insert(
                key.clone(),
                Leaf {
                    value: flat(t.data.clone(), device).require_grad(),
                    shape: t.shape.clone(),
                    mask,
                    grid,
                    is_scale: false,
                },
            );
        }
        Ok(Leaves { leaves, fixed })
    }

    /// The tensors one forward pass reads. A quantized weight is `clamp(round(w / s)) · s`,
    /// the rounding's gradient passed straight through (`x + (round(x) − x)` with the
    /// difference detached): the latent weight and its scale both learn.
    pub fn effective(&self) -> Effective<'_> {
        let mut tensors = BTreeMap::new();
        for (key, leaf) in &self.leaves {
            if leaf.is_scale {
                continue;
            }
            let w = leaf.value.clone();
            let t = match &leaf.grid {
                Some(g) => {
                    let scales = match &g.scales {
                        Scales::Fixed(s) => s.clone(),
                        Scales::Learned { initial, leaf } => {
                            initial.clone() * self.leaves[leaf].value.clone().exp()
                        }
                    };
                    let s = scales.select(0, g.index.clone());
                    let x = w / s.clone();
                    let rounded = x.clone().detach().round() - x.clone().detach();
                    (x + rounded).clamp(-g.qmax, g.qmax) * s
                }
                None => w,
            };
            tensors.insert(key.as_str(), (t, leaf.shape.as_slice()));
        }
        for (key, (t, shape)) in &self.fixed {
            tensors.insert(key.as_str(), (t.clone(), shape.as_slice()));
        }
        Effective { tensors }
    }

    /// The names of the trainable tensors (weights, biases and learned scales), in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.leaves.keys().map(String::as_str)
    }

    /// The current value of leaf `key` (a leaf that tracks its gradient).
    pub fn value(&self, key: &str) -> Option<&Tensor<1>> {
        self.leaves.get(key).map(|l| &l.value)
    }

    /// Leaf `key`'s learning rate relative to the weights' ([`SCALE_RATE`] for scales).
    pub fn rate_factor(&self, key: &str) -> f32 {
        match self.leaves.get(key) {
            Some(l) if l.is_scale => SCALE_RATE,
            _ => 1.0,
        }
    }

    /// The mask of leaf `key`, when some of its weights are pruned.
    pub fn mask(&self, key: &str) -> Option<&Tensor<1>> {
        self.leaves.get(key).and_then(|l| l.mask.as_ref())
    }

    /// Replace leaf `key`'s value (after an optimizer step; without autodiff); it becomes a
    /// new leaf. A scale may shrink or grow at most [`MAX_SCALE_CHANGE`]-fold.
    pub fn set(&mut self, key: &str, value: Tensor<1>) {
        if let Some(l) = self.leaves.get_mut(key) {
            let value = if l.is_scale {
                let bound = MAX_SCALE_CHANGE.ln();
                value.clamp(-bound, bound)
            } else {
                value
            };
            l.value = value.autodiff().detach().require_grad();
        }
    }

    /// The trained model: `like`'s structure and quantization with the trained values, each
    /// quantized tensor re-quantized on its trained scales (exactly what the forward pass
    /// used), fp16 tensors rounded again, pruned weights exactly zero.
    pub async fn to_model(&self, like: &Model) -> Result<Model> {
        let mut out = like.clone();
        for (key, leaf) in &self.leaves {
            if leaf.is_scale {
                continue;
            }
            let mut data = crate::predict::read_values(leaf.value.clone().inner()).await?;
            if let Some(q) = out.quant.int.get_mut(key) {
                if let Some(Grid {
                    scales: Scales::Learned { initial, leaf },
                    ..
                }) = &leaf.grid
                {
                    let scales = initial.clone() * self.leaves[leaf].value.clone().inner().exp();
                    q.scales = crate::predict::read_values(scales).await?;
                }
                let m = qmax(q.bits) as f32;
                q.values = data
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v / q.scale_of(i)).round_ties_even().clamp(-m, m) as i8)
                    .collect();
                data = q.dequantize().data;
            }
            if let Some(mask) = &leaf.mask {
                for (v, m) in data
                    .iter_mut()
                    .zip(crate::predict::read_values(mask.clone()).await?)
                {
                    *v *= m;
                }
            }
            let mut t = HostTensor::new(leaf.shape.clone(), data);
            if out.quant.f16.contains(key) {
                t = round_to_f16(&t);
            }
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NotFinite {
                    key: key.clone(),
                    index: i,
                });
            }
            out.weights.insert(key.clone(), t);
        }
        Ok(out)
    }
}
