//! A model's parameters as tensors that training differentiates: flat leaves on an autodiff
//! device, each with what keeps it storable in the compressed file — a mask that holds pruned
//! weights at zero, and the integer grid its stored values lie on (fake quantization with a
//! straight-through estimator). Pruned channels need nothing: they are absent from the shapes.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::Model;
use crate::model::layers::Params;
use crate::quant::{Quantization, QuantizedTensor, qmax, round_to_f16};
use crate::tensor::{HostTensor, StateDict};
use crate::{Error, Result};

/// The integer grid of a quantized weight: one scale per element (expanded from the tensor's
/// scales, so any granularity is one element-wise product) and the largest integer.
struct Grid {
    scales: Tensor<1>,
    qmax: f32,
}

/// One trainable tensor.
struct Leaf {
    value: Tensor<1>,
    shape: Vec<usize>,
    /// 1 where the weight may move, 0 where it was pruned.
    mask: Option<Tensor<1>>,
    grid: Option<Grid>,
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

/// Each element's scale, for a quantized tensor of any granularity.
fn element_scales(q: &QuantizedTensor) -> Vec<f32> {
    let ones = QuantizedTensor {
        values: vec![1; q.values.len()],
        ..q.clone()
    };
    ones.dequantize().data
}

impl Leaves {
    /// The tensors of a model (`weights`, stored as `quant` says) on `device`, which must
    /// have autodiff enabled.
    pub fn new(weights: &StateDict, quant: &Quantization, device: &Device) -> Result<Self> {
        if !device.is_autodiff() {
            return Err(Error::Backend(
                "training needs a device with autodiff enabled".into(),
            ));
        }
        let mut leaves = BTreeMap::new();
        let mut fixed = BTreeMap::new();
        for (key, t) in weights {
            if is_running_statistic(key) {
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
            let grid = quantized.map(|q| Grid {
                scales: flat(element_scales(q), device),
                qmax: qmax(q.bits) as f32,
            });
            leaves.insert(
                key.clone(),
                Leaf {
                    value: flat(t.data.clone(), device).require_grad(),
                    shape: t.shape.clone(),
                    mask,
                    grid,
                },
            );
        }
        Ok(Leaves { leaves, fixed })
    }

    /// The tensors one forward pass reads. A quantized weight is its nearest grid value in the
    /// forward pass and the latent weight in the backward pass (`w + (q(w) − w)` with the
    /// difference detached: the straight-through estimator).
    pub fn effective(&self) -> Effective<'_> {
        let mut tensors = BTreeMap::new();
        for (key, leaf) in &self.leaves {
            let w = leaf.value.clone();
            let t = match &leaf.grid {
                Some(g) => {
                    let latent = w.clone().detach();
                    let q = latent
                        .clone()
                        .div(g.scales.clone())
                        .round()
                        .clamp(-g.qmax, g.qmax)
                        .mul(g.scales.clone());
                    w + (q - latent)
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

    /// The names of the trainable tensors, in a fixed order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.leaves.keys().map(String::as_str)
    }

    /// The current value of leaf `key` (a leaf that tracks its gradient).
    pub fn value(&self, key: &str) -> Option<&Tensor<1>> {
        self.leaves.get(key).map(|l| &l.value)
    }

    /// The mask of leaf `key`, when some of its weights are pruned.
    pub fn mask(&self, key: &str) -> Option<&Tensor<1>> {
        self.leaves.get(key).and_then(|l| l.mask.as_ref())
    }

    /// Replace leaf `key`'s value (after an optimizer step); it becomes a new leaf.
    pub fn set(&mut self, key: &str, value: Tensor<1>) {
        if let Some(l) = self.leaves.get_mut(key) {
            l.value = value.detach().require_grad();
        }
    }

    /// The trained model: `like`'s structure and quantization with the trained values, each
    /// quantized tensor re-quantized on its own scales (exactly what the forward pass used),
    /// fp16 tensors rounded again, pruned weights exactly zero.
    pub async fn to_model(&self, like: &Model) -> Result<Model> {
        let mut out = like.clone();
        for (key, leaf) in &self.leaves {
            let mut data = crate::predict::read_values(leaf.value.clone().inner()).await?;
            if let Some(q) = out.quant.int.get_mut(key) {
                let scales = element_scales(q);
                let m = qmax(q.bits) as f32;
                q.values = data
                    .iter()
                    .zip(&scales)
                    .map(|(v, s)| (v / s).round_ties_even().clamp(-m, m) as i8)
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
