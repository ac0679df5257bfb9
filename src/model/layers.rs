//! The building blocks of an inference graph on a Burn device, made from host tensors.
//!
//! Plain tensors rather than `nn` modules: the graph is inference-only and its widths change
//! when it is pruned, so each layer is rebuilt from the host-side state dict in one step.

use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, linear};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use super::cpu_kernels;
use crate::tensor::{HostTensor, StateDict};
use crate::{Error, Result};

/// Fetch a host tensor by name.
pub fn param<'a>(weights: &'a StateDict, key: &str) -> Result<&'a HostTensor> {
    weights.get(key).ok_or_else(|| Error::MissingKey {
        key: key.to_string(),
        expected: Vec::new(),
        model: "the network".into(),
    })
}

/// Upload a host tensor of rank `D`.
pub fn upload<const D: usize>(t: &HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
}

/// Where a layer's tensors come from: host weights uploaded once for inference, or tensors
/// already on the device — the leaves that training differentiates.
pub trait Params {
    /// Tensor `key` with rank `D` (its shape as the graph says).
    fn get<const D: usize>(&self, key: &str) -> Result<Tensor<D>>;
}

/// Host weights, uploaded to `device` as they are read.
pub struct Upload<'a> {
    pub weights: &'a StateDict,
    pub device: &'a Device,
}

impl Params for Upload<'_> {
    fn get<const D: usize>(&self, key: &str) -> Result<Tensor<D>> {
        Ok(upload(param(self.weights, key)?, self.device))
    }
}

/// The activations the two networks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Relu6,
}

impl Activation {
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Activation::Relu => relu(x),
            // Two passes, not `clamp(0, 6)`: Burn flex's clamp runs a scalar loop (its
            // per-element bound checks keep LLVM from vectorising it) and took a fifth of
            // EfficientNet-Lite0's time on the CPU; clamp_min and clamp_max vectorise.
            Activation::Relu6 => x.clamp_min(0.0).clamp_max(6.0),
        }
    }

    /// `[low, high]`: the activation is a clamp.
    fn bounds(self) -> [f32; 2] {
        match self {
            Activation::Relu => [0.0, f32::INFINITY],
            Activation::Relu6 => [0.0, 6.0],
        }
    }
}

/// A convolution, with an optional bias (a folded batch norm's shift), asymmetric zero
/// padding applied before it when the pads differ (TF-"same"), and an optional activation
/// after it (fused for inference).
pub struct Conv {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    /// `(left, right, top, bottom)` explicit padding, when not symmetric.
    pad: Option<(usize, usize, usize, usize)>,
    activation: Option<Activation>,
}

impl Conv {
    /// Load `{name}.weight` (and `{name}.bias` when `bias`); `pads` are `[top, left, bottom, right]`.
    pub fn load(
        params: &impl Params,
        name: &str,
        stride: [usize; 2],
        dilation: [usize; 2],
        pads: [usize; 4],
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let bias = if bias {
            Some(params.get(&format!("{name}.bias"))?)
        } else {
            None
        };
        let [t, l, b, r] = pads;
        let symmetric = t == b && l == r;
        let padding = if symmetric { [t, l] } else { [0, 0] };
        Ok(Self {
            weight: params.get(&format!("{name}.weight"))?,
            bias,
            options: ConvOptions::new(stride, padding, dilation, groups.max(1)),
            pad: (!symmetric).then_some((l, r, t, b)),
            activation: None,
        })
    }

    /// This convolution followed by `bn` in inference, as one convolution: the batch norm's
    /// per-channel scale multiplies the weights and its shift becomes the bias. The same
    /// function up to float rounding, with two passes over the output fewer (what ONNX Runtime
    /// does to the exported graph too).
    pub fn fused_with(self, bn: &BatchNorm) -> Conv {
        let out = self.weight.dims()[0];
        let scale = bn.scale.clone().reshape([out]);
        let shift = bn.shift.clone().reshape([out]);
        let weight = self.weight * scale.clone().reshape([out, 1, 1, 1]);
        let bias = match self.bias {
            Some(b) => b * scale + shift,
            None => shift,
        };
        Conv {
            weight,
            bias: Some(bias),
            ..self
        }
    }

    /// This convolution with `activation` applied to its output: on the CPU the kernel clamps
    /// each tile of the output while it is in cache instead of in another pass (two for
    /// ReLU6) over the whole activation.
    pub fn with_activation(self, activation: Activation) -> Conv {
        Conv {
            activation: Some(activation),
            ..self
        }
    }

    /// The convolution of `x`, plus `skip` when given (a residual addition fused into it),
    /// then the activation.
    pub fn forward(&self, x: Tensor<4>, skip: Option<Tensor<4>>) -> Tensor<4> {
        // On the CPU, modelslim's own kernels (see `cpu_kernels`), which also read the asymmetric
        // padding without a padded copy; dilated convs go to Burn's.
        let [(top, bottom), (left, right)] = self.options.padding;
        let pads = match self.pad {
            Some((left, right, top, bottom)) => [top, left, bottom, right],
            None => [top, left, bottom, right],
        };
        if self.options.dilation == [1, 1]
            && let Some(y) = cpu_kernels::conv2d_on_cpu(
                &x,
                &self.weight,
                self.bias.as_ref(),
                self.options.stride,
                pads,
                skip.as_ref(),
                self.activation.map(Activation::bounds),
            )
        {
            return y;
        }
        let x = match self.pad {
            Some(p) => x.pad(p, PadMode::Constant(0.0)),
            None => x,
        };
        let y = conv2d(
            x,
            self.weight.clone(),
            self.bias.clone(),
            self.options.clone(),
        );
        let y = match skip {
            Some(s) => y + s,
            None => y,
        };
        match self.activation {
            Some(a) => a.apply(y),
            None => y,
        }
    }
}

/// Batch norm in eval mode, as PyTorch computes it: `(x - mean) / sqrt(var + eps) * γ + β`,
/// applied as one per-channel scale and shift.
pub struct BatchNorm {
    name: String,
    scale: Tensor<4>,
    shift: Tensor<4>,
    gamma: Tensor<4>,
    beta: Tensor<4>,
    eps: f32,
}

/// The statistics one batch norm saw over one batch (training mode).
pub struct BatchStats {
    /// The batch norm's name (`layer1.0.bn1`).
    pub name: String,
    /// Per-channel mean, `[C]`.
    pub mean: Tensor<1>,
    /// Per-channel biased variance, `[C]`.
    pub var: Tensor<1>,
    /// Values per channel (N·H·W), for the unbiased correction.
    pub count: usize,
}

impl BatchNorm {
    /// Load `{prefix}.weight/bias/running_mean/running_var`. The scale and shift are computed
    /// on the device, so that training differentiates through them.
    pub fn load(params: &impl Params, prefix: &str, eps: f32) -> Result<Self> {
        let gamma: Tensor<1> = params.get(&format!("{prefix}.weight"))?;
        let beta: Tensor<1> = params.get(&format!("{prefix}.bias"))?;
        let mean: Tensor<1> = params.get(&format!("{prefix}.running_mean"))?;
        let var: Tensor<1> = params.get(&format!("{prefix}.running_var"))?;
        let c = gamma.dims()[0];
        let to4 = |t: Tensor<1>| t.reshape([1, c, 1, 1]);
        let scale = gamma.clone() / var.add_scalar(eps).sqrt();
        let shift = beta.clone() - mean * scale.clone();
        Ok(Self {
            name: prefix.to_string(),
            scale: to4(scale),
            shift: to4(shift),
            gamma: to4(gamma),
            beta: to4(beta),
            eps,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        x * self.scale.clone() + self.shift.clone()
    }

    /// Record this batch's per-channel mean and biased variance of `x`; returns them as
    /// `[1, C, 1, 1]`.
    pub fn record(&self, x: Tensor<4>, stats: &mut Vec<BatchStats>) -> (Tensor<4>, Tensor<4>) {
        let [n, c, h, w] = x.dims();
        let flat = x.swap_dims(0, 1).reshape([c, n * h * w]);
        let (var, mean) = flat.var_mean_bias(1);
        let (mean4, var4) = (
            mean.clone().reshape([1, c, 1, 1]),
            var.clone().reshape([1, c, 1, 1]),
        );
        stats.push(BatchStats {
            name: self.name.clone(),
            mean: mean.reshape([c]),
            var: var.reshape([c]),
            count: n * h * w,
        });
        (mean4, var4)
    }

    /// Training mode: normalise with this batch's own statistics, and record them.
    pub fn forward_batch(&self, x: Tensor<4>, stats: &mut Vec<BatchStats>) -> Tensor<4> {
        let (mean4, var4) = self.record(x.clone(), stats);
        (x - mean4) / var4.add_scalar(self.eps).sqrt() * self.gamma.clone() + self.beta.clone()
    }
}

/// A fully connected layer with PyTorch's `[out, in]` weight layout on the host.
pub struct Linear {
    weight_t: Tensor<2>,
    bias: Tensor<1>,
}

impl Linear {
    pub fn load(params: &impl Params, prefix: &str) -> Result<Self> {
        let w: Tensor<2> = params.get(&format!("{prefix}.weight"))?;
        Ok(Self {
            // Burn's linear takes `[in, out]`.
            weight_t: w.transpose(),
            bias: params.get(&format!("{prefix}.bias"))?,
        })
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        linear(x, self.weight_t.clone(), Some(self.bias.clone()))
    }
}
