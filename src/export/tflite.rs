//! TFLite (LiteRT) export of a model as modelslim runs it, in NHWC: `CONV_2D` (weights
//! `[out, kh, kw, in]`), `DEPTHWISE_CONV_2D` (`[1, kh, kw, C]`), `ADD`, `MAX_POOL_2D`,
//! `AVERAGE_POOL_2D`, `MEAN` over height and width, `FULLY_CONNECTED`, `LOGISTIC`,
//! `HARD_SWISH`, `MUL`, with ReLU and ReLU6 fused into the operation before them where it is
//! their only reader. Input `input` `[1, H, W, 3]` float (the network's input size), output
//! `logits` `[1, classes]`.
//!
//! Padding: TFLite's `SAME` pads the bottom and right more when the total is odd, PyTorch's
//! symmetric padding of a stride-2 conv does not, so a layer whose pads differ from `SAME`'s
//! gets an explicit `PAD` and runs `VALID`. A max pool is padded with zeros only where its
//! input comes from a ReLU (never below zero, so a zero never wins over the window's values).
//!
//! Weights: fp32 as stored; fp16 and int8 (per tensor or per channel) stored as such and turned
//! to float by a `DEQUANTIZE` at the start, so the file computes with exactly the weights
//! modelslim computes with. Int4 weights are stored as int8, the same integers (TFLite's int8
//! kernels and `DEQUANTIZE` take any int8, so the file computes exactly what modelslim does,
//! but is no smaller than int8's). Scales per group of input channels have no TFLite form:
//! such models are refused with a message that says so.
//!
//! A model with quantized activations becomes a full-integer file, per TFLite's quantization
//! spec: int8 weights (zero point 0, per channel on the output axis), int32 biases at
//! `s_in · s_w`, int8 activations whose step and zero point are modelslim's (`u8` zero point
//! `z` becomes `z − 128`: the same real values), a value only a max pool reads in the step of
//! the pool's output (quantizing commutes with a maximum), and int8 logits in the step
//! calibration chose for them. The input and output are float around a `QUANTIZE` and a
//! `DEQUANTIZE`, or int8 themselves ([`TfliteIo::Int8`]). How its integers relate to
//! modelslim's: `docs/exactness.md`, "Full-integer TFLite files".

use super::arena::{Lifetime, arena_bytes};
use super::flatbuffer::{Builder, Field, Offset};
use crate::model::graph::{Hw, dilated};
use crate::model::{Model, Op};
use crate::quant::{ActQuant, Granularity, bias_scales};
use crate::tensor::{f16_le_bytes, f32_le_bytes};
use crate::{Error, Result};

/// TFLite's builtin operator codes (`BuiltinOperator` in its schema).
mod code {
    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEQUANTIZE: i32 = 6;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const LOGISTIC: i32 = 14;
    pub const MAX_POOL_2D: i32 = 17;
    pub const MUL: i32 = 18;
    pub const RELU: i32 = 19;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const TRANSPOSE: i32 = 39;
    pub const STRIDED_SLICE: i32 = 45;
    pub const PAD: i32 = 34;
    pub const MEAN: i32 = 40;
    pub const QUANTIZE: i32 = 114;
    pub const HARD_SWISH: i32 = 117;

    /// The schema's name of `code` (one of the above).
    pub fn name(code: i32) -> &'static str {
        match code {
            ADD => "ADD",
            AVERAGE_POOL_2D => "AVERAGE_POOL_2D",
            CONCATENATION => "CONCATENATION",
            RESHAPE => "RESHAPE",
            TRANSPOSE => "TRANSPOSE",
            STRIDED_SLICE => "STRIDED_SLICE",
            CONV_2D => "CONV_2D",
            DEPTHWISE_CONV_2D => "DEPTHWISE_CONV_2D",
            DEQUANTIZE => "DEQUANTIZE",
            FULLY_CONNECTED => "FULLY_CONNECTED",
            LOGISTIC => "LOGISTIC",
            MAX_POOL_2D => "MAX_POOL_2D",
            MUL => "MUL",
            HARD_SWISH => "HARD_SWISH",
            RELU => "RELU",
            RELU6 => "RELU6",
            PAD => "PAD",
            MEAN => "MEAN",
            QUANTIZE => "QUANTIZE",
            _ => "?",
        }
    }
}

/// `BuiltinOptions` union members.
mod options {
    pub const NONE: u8 = 0;
    pub const CONV_2D: u8 = 1;
    pub const DEPTHWISE_CONV_2D: u8 = 2;
    pub const POOL_2D: u8 = 5;
    pub const FULLY_CONNECTED: u8 = 8;
    pub const CONCATENATION: u8 = 10;
    pub const TRANSPOSE: u8 = 26;
    pub const STRIDED_SLICE: u8 = 32;
    pub const ADD: u8 = 11;
    pub const MUL: u8 = 21;
    pub const REDUCER: u8 = 27;
}

/// `TensorType`.
mod dtype {
    pub const FLOAT32: u8 = 0;
    pub const FLOAT16: u8 = 1;
    pub const INT32: u8 = 2;
    pub const INT8: u8 = 9;
}

/// `Padding`.
const SAME: u8 = 0;
const VALID: u8 = 1;

/// `ActivationFunctionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    None = 0,
    Relu = 1,
    Relu6 = 3,
}

/// The file's schema version.
const SCHEMA_VERSION: u32 = 3;

/// The type of a full-integer file's input and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TfliteIo {
    /// Float input and logits, quantized and dequantized inside the file.
    #[default]
    Float,
    /// int8 input and logits, with their scale and zero point in the file: what a
    /// microcontroller feeds and reads without a float unit.
    Int8,
}

impl std::str::FromStr for TfliteIo {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "float" => Ok(TfliteIo::Float),
            "int8" => Ok(TfliteIo::Int8),
            _ => Err(Error::Invalid(format!(
                "--tflite-io takes int8 or float, not {}",
                crate::error::quoted(s)
            ))),
        }
    }
}

/// A value in NHWC: `[1, h, w, c]`, or `[1, c]` once pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    h: usize,
    w: usize,
    c: usize,
    flat: bool,
}

impl Shape {
    fn dims(self) -> Vec<i32> {
        if self.flat {
            vec![1, self.c as i32]
        } else {
            vec![1, self.h as i32, self.w as i32, self.c as i32]
        }
    }
}

/// An operator before it is written.
struct Operator {
    opcode: usize,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    options: (u8, Option<Offset>),
}

struct Writer<'a> {
    model: &'a Model,
    fb: Builder,
    /// Buffer tables, in index order (the first is the empty one the format reserves).
    buffers: Vec<Offset>,
    tensors: Vec<Offset>,
    /// Each tensor's bytes when the interpreter plans it in its arena (`None`: a constant).
    planned: Vec<Option<usize>>,
    operators: Vec<Operator>,
    /// Builtin codes, in opcode index order.
    codes: Vec<i32>,
}

/// The 1×1 depthwise conv that computes `clamp(αx + β, 0, 1)` on int8 `x` (step `in_step`)
/// into steps `out_step`: its weight integer and scale, and its bias in steps of
/// `in_step · scale`. The weight is the integer 1 in steps of α, unless β in those steps passes
/// int32's range (inputs of a tiny step, as random weights give): then `x` moves the sum by
/// less than 2⁻²³, far below an output step, and the conv adds β alone (weight 0, a coarser
/// scale). Either way every input integer is checked to give what modelslim computes, or the
/// export is refused.
fn hard_sigmoid_conv(
    name: &str,
    in_step: ActQuant,
    out_step: ActQuant,
    alpha: f32,
    beta: f32,
) -> Result<(i8, f32, i32)> {
    const FITS: f64 = (1u64 << 30) as f64;
    let units = |scale: f32| beta as f64 / (in_step.scale as f64 * scale as f64);
    let (w_int, scale) = if units(alpha).abs() <= FITS {
        (1i8, alpha)
    } else {
        let k = (units(alpha).abs() / FITS).log2().ceil() as i32;
        (0, alpha * 2f32.powi(k))
    };
    let b = units(scale).round();
    // What the file computes for each input integer, against modelslim's float gate.
    let q = |v: f64| {
        ((v / out_step.scale as f64).round() + out_step.zero_point as f64).clamp(0.0, 255.0)
    };
    let zero = in_step.zero_point as i32;
    let differs = (0..=255).find(|&xi: &i32| {
        let x = (xi - zero) as f32 * in_step.scale;
        let ours = q((alpha * x + beta).clamp(0.0, 1.0) as f64);
        let sum = (w_int as i32 * (xi - zero)) as f64 + b;
        let file = q(sum * in_step.scale as f64 * scale as f64);
        ours != file
    });
    match (differs, b.abs() <= FITS) {
        (None, true) => Ok((w_int, scale, b as i32)),
        _ => Err(Error::Invalid(format!(
            "'{name}': an int8 hard sigmoid of inputs in steps of {:e} cannot be computed as modelslim does; export this network as ONNX",
            in_step.scale
        ))),
    }
}

impl Writer<'_> {
    fn opcode(&mut self, code: i32) -> usize {
        match self.codes.iter().position(|&c| c == code) {
            Some(i) => i,
            None => {
                self.codes.push(code);
                self.codes.len() - 1
            }
        }
    }

    /// A tensor of `shape` and type `ty`, holding `data` when constant.
    fn tensor(
        &mut self,
        name: &str,
        shape: &[i32],
        ty: u8,
        data: Option<&[u8]>,
        quantization: Option<Offset>,
    ) -> i32 {
        let elements: usize = shape.iter().map(|&d| d.max(0) as usize).product();
        let size = match ty {
            dtype::FLOAT32 | dtype::INT32 => 4,
            dtype::FLOAT16 => 2,
            _ => 1,
        };
        self.planned.push(data.is_none().then_some(elements * size));
        let buffer = match data {
            Some(bytes) => {
                let d = self.fb.data(bytes);
                self.buffers.push(self.fb.table(&[(0, Field::Offset(d))]));
                self.buffers.len() - 1
            }
            None => 0,
        };
        let shape = self.fb.i32s(shape);
        let name = self.fb.string(name);
        let mut fields = vec![
            (0, Field::Offset(shape)),
            (1, Field::U8(ty)),
            (2, Field::U32(buffer as u32)),
            (3, Field::Offset(name)),
        ];
        if let Some(q) = quantization {
            fields.push((4, Field::Offset(q)));
        }
        self.tensors.push(self.fb.table(&fields));
        self.tensors.len() as i32 - 1
    }

    /// An activation: float, or int8 in `step` (a `u8` step; TFLite's int8 zero point is 128
    /// lower, for the same real values).
    fn activation(&mut self, name: &str, shape: Shape, step: Option<ActQuant>) -> i32 {
        self.activation_dims(name, &shape.dims(), step)
    }

    /// [`Writer::activation`] of any shape (a channel shuffle's five axes).
    fn activation_dims(&mut self, name: &str, dims: &[i32], step: Option<ActQuant>) -> i32 {
        match step {
            None => self.tensor(name, dims, dtype::FLOAT32, None, None),
            Some(q) => {
                let quant = self.quantization(&[q.scale], &[q.zero_point as i64 - 128], 0);
                self.tensor(name, dims, dtype::INT8, None, Some(quant))
            }
        }
    }

    /// An operator that only moves values (a concatenation, slice or shuffle) keeps int8
    /// integers only when its input and output share a step.
    fn same_step(
        &self,
        name: &str,
        input: Option<ActQuant>,
        output: Option<ActQuant>,
    ) -> Result<()> {
        if input != output {
            return Err(Error::Invalid(format!(
                "'{name}' moves channels between quantization steps ({input:?} and {output:?}), which an int8 file cannot do exactly; recompress with --act-quant"
            )));
        }
        Ok(())
    }

    /// A `QuantizationParameters` table.
    fn quantization(&mut self, scales: &[f32], zero_points: &[i64], axis: usize) -> Offset {
        let scale = self.fb.f32s(scales);
        let zero = self.fb.i64s(zero_points);
        self.fb.table(&[
            (2, Field::Offset(scale)),
            (3, Field::Offset(zero)),
            (6, Field::I32(axis as i32)),
        ])
    }

    fn int32_constant(&mut self, name: &str, shape: &[i32], values: &[i32]) -> i32 {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, shape, dtype::INT32, Some(&bytes), None)
    }

    /// A pooling operator `code` (`MAX_POOL_2D`, `AVERAGE_POOL_2D`) of `x` into `out`.
    fn pool(&mut self, code: i32, x: i32, out: i32, padding: u8, kernel: Hw, stride: Hw) {
        let opts = self.fb.table(&[
            (0, Field::U8(padding)),
            (1, Field::I32(stride[1] as i32)),
            (2, Field::I32(stride[0] as i32)),
            (3, Field::I32(kernel[1] as i32)),
            (4, Field::I32(kernel[0] as i32)),
        ]);
        self.op(code, &[x], out, (options::POOL_2D, Some(opts)));
    }

    /// `out = a · b` (`MUL`, no fused activation; `b` may broadcast).
    fn mul(&mut self, a: i32, b: i32, out: i32) {
        let opts = self.fb.table(&[(0, Field::U8(Activation::None as u8))]);
        self.op(code::MUL, &[a, b], out, (options::MUL, Some(opts)));
    }

    /// A float scalar constant (broadcast by the element-wise operators).
    fn float_scalar(&mut self, name: &str, value: f32) -> i32 {
        self.tensor(name, &[1], dtype::FLOAT32, Some(&value.to_le_bytes()), None)
    }

    /// `out = clamp(αx + β, 0, 1)` on int8 `x` (step `in_step`, shape `s`) into `out` (step
    /// 1/256 from zero), as a 1×1 depthwise conv of weight α (the integer 1 in steps of α) and
    /// bias β (in steps of `in_step · α`); the output's range does the clamp. Its
    /// requantization multiplier is `in_step · α · 256`: for modelslim's power-of-two steps,
    /// α·2ᵏ, and β / (`in_step` · α) is an integer for Paddle's α = 0.2, β = 0.5 and PyTorch's
    /// 1/6, 1/2, so the conv computes αx + β before its one rounding, as modelslim does.
    /// A flat value (`[1, C]`, a classifier's hidden layer) goes through the conv as
    /// `[1, 1, 1, C]` (`RESHAPE`s on either side move no integer); `out_step` is `out`'s.
    #[allow(clippy::too_many_arguments)]
    fn int8_hard_sigmoid(
        &mut self,
        x: i32,
        (out, out_step): (i32, ActQuant),
        name: &str,
        s: Shape,
        in_step: ActQuant,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        let c = s.c;
        let (x, conv_out) = if s.flat {
            let dims =
                self.int32_constant(&format!("{name}_image_shape"), &[4], &[1, 1, 1, c as i32]);
            let image = self.activation_dims(
                &format!("{name}_image"),
                &[1, 1, 1, c as i32],
                Some(in_step),
            );
            self.op(code::RESHAPE, &[x, dims], image, (options::NONE, None));
            let gate = self.activation_dims(
                &format!("{name}_image_out"),
                &[1, 1, 1, c as i32],
                Some(out_step),
            );
            (image, gate)
        } else {
            (x, out)
        };
        let (w_int, w_scale, b) = hard_sigmoid_conv(name, in_step, out_step, alpha, beta)?;
        let weight_q = self.quantization(&vec![w_scale; c], &vec![0; c], 3);
        let weight = self.tensor(
            &format!("{name}_alpha"),
            &[1, 1, 1, c as i32],
            dtype::INT8,
            Some(&vec![w_int as u8; c]),
            Some(weight_q),
        );
        let bias_step = in_step.scale * w_scale;
        let bias_q = self.quantization(&vec![bias_step; c], &vec![0; c], 0);
        let bytes: Vec<u8> = (0..c).flat_map(|_| b.to_le_bytes()).collect();
        let bias = self.tensor(
            &format!("{name}_beta"),
            &[c as i32],
            dtype::INT32,
            Some(&bytes),
            Some(bias_q),
        );
        let opts = self.fb.table(&[
            (0, Field::U8(VALID)),
            (1, Field::I32(1)),
            (2, Field::I32(1)),
            (3, Field::I32(1)),
            (4, Field::U8(Activation::None as u8)),
        ]);
        self.op(
            code::DEPTHWISE_CONV_2D,
            &[x, weight, bias],
            conv_out,
            (options::DEPTHWISE_CONV_2D, Some(opts)),
        );
        if s.flat {
            let dims = self.int32_constant(&format!("{name}_flat_shape"), &[2], &s.dims());
            self.op(code::RESHAPE, &[conv_out, dims], out, (options::NONE, None));
        }
        Ok(())
    }

    fn op(&mut self, code: i32, inputs: &[i32], output: i32, options: (u8, Option<Offset>)) {
        let opcode = self.opcode(code);
        self.operators.push(Operator {
            opcode,
            inputs: inputs.to_vec(),
            outputs: vec![output],
            options,
        });
    }

    /// The float tensor of parameter `key` in TFLite's layout: `perm(i)` is the stored index
    /// of the `i`-th element of the TFLite tensor of `shape`; `channel_axis` is the axis of
    /// the output channels there (for per-channel scales). fp16 and int8 parameters are stored
    /// so and dequantized by an operator.
    fn parameter(
        &mut self,
        key: &str,
        shape: &[usize],
        perm: impl Fn(usize) -> usize,
        channel_axis: usize,
    ) -> Result<i32> {
        let n: usize = shape.iter().product();
        let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        let m = self.model;
        if m.quant.int.contains_key(key) {
            let stored =
                self.int8_weights(&format!("{key}_int8"), key, shape, perm, channel_axis)?;
            let float = self.tensor(key, &dims, dtype::FLOAT32, None, None);
            self.op(code::DEQUANTIZE, &[stored], float, (options::NONE, None));
            return Ok(float);
        }
        let t = m
            .weights
            .get(key)
            .ok_or_else(|| Error::Structure(format!("'{key}' is missing")))?;
        if t.data.len() != n {
            return Err(Error::Structure(format!(
                "'{key}' has {} values, not {n}",
                t.data.len()
            )));
        }
        let values: Vec<f32> = (0..n).map(|i| t.data[perm(i)]).collect();
        if m.quant.f16.contains(key) {
            let stored = self.tensor(
                &format!("{key}_fp16"),
                &dims,
                dtype::FLOAT16,
                Some(&f16_le_bytes(&values)),
                None,
            );
            let float = self.tensor(key, &dims, dtype::FLOAT32, None, None);
            self.op(code::DEQUANTIZE, &[stored], float, (options::NONE, None));
            return Ok(float);
        }
        Ok(self.tensor(
            key,
            &dims,
            dtype::FLOAT32,
            Some(&f32_le_bytes(&values)),
            None,
        ))
    }

    /// A layer's weights: int8, as its operator reads them, in a full-integer file (`in_step`,
    /// the step of the layer's input, is set there); else float as [`Writer::parameter`]
    /// writes them.
    fn weights(
        &mut self,
        key: &str,
        shape: &[usize],
        perm: impl Fn(usize) -> usize,
        channel_axis: usize,
        in_step: Option<ActQuant>,
    ) -> Result<i32> {
        match in_step {
            Some(_) => self.int8_weights(key, key, shape, perm, channel_axis),
            None => self.parameter(key, shape, perm, channel_axis),
        }
    }

    /// A layer's bias: int32 in a full-integer file, else float.
    fn layer_bias(&mut self, name: &str, out: usize, in_step: Option<ActQuant>) -> Result<i32> {
        match in_step {
            Some(q) => self.int32_bias(name, out, q),
            None => self.bias(name, out),
        }
    }

    /// The int8 tensor `name` of integer parameter `key`, laid out as [`Writer::parameter`]
    /// says, with its scales on `channel_axis` (one scale: per tensor).
    fn int8_weights(
        &mut self,
        name: &str,
        key: &str,
        shape: &[usize],
        perm: impl Fn(usize) -> usize,
        channel_axis: usize,
    ) -> Result<i32> {
        let n: usize = shape.iter().product();
        let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        let q = self.model.quant.int.get(key).ok_or_else(|| {
            Error::Invalid(format!(
                "'{key}' has float weights: a full-integer file needs int8 weights in every layer (compress with --quant int8 and no layer kept float)"
            ))
        })?;
        // Int4 integers are int8 integers too; wider ones are not.
        if q.bits > 8 {
            return Err(Error::Invalid(format!(
                "'{key}' holds int{} weights, which a TFLite file cannot store: compress with int8 or int4 for TFLite",
                q.bits
            )));
        }
        if q.values.len() != n {
            return Err(Error::Structure(format!(
                "'{key}' has {} values, not {n}",
                q.values.len()
            )));
        }
        if let Granularity::Group(_) = q.granularity {
            return Err(Error::Invalid(format!(
                "'{key}' has scales per group of input channels, which TFLite cannot store: compress per channel or per tensor for TFLite"
            )));
        }
        let bytes: Vec<u8> = (0..n).map(|i| q.values[perm(i)] as u8).collect();
        let scales = q.scales.clone();
        let quant = self.quantization(&scales, &vec![0; scales.len()], channel_axis);
        Ok(self.tensor(name, &dims, dtype::INT8, Some(&bytes), Some(quant)))
    }

    /// Layer `name`'s bias as int32 on the grid `s_in · s_w[c]` of its input's step `input`
    /// (where modelslim put it when it quantized the activations), zeros when it has none.
    fn int32_bias(&mut self, name: &str, out: usize, input: ActQuant) -> Result<i32> {
        let (wkey, key) = (format!("{name}.weight"), format!("{name}.bias"));
        let q = self
            .model
            .quant
            .int
            .get(&wkey)
            .ok_or_else(|| Error::Structure(format!("'{wkey}' is not quantized")))?;
        let scales: Vec<f32> = bias_scales(q, &input);
        let scales = if scales.len() == out {
            scales
        } else {
            return Err(Error::Structure(format!(
                "'{wkey}' has {} output channels, not {out}",
                scales.len()
            )));
        };
        let values: Vec<i32> = match self.model.weights.get(&key) {
            Some(b) if b.data.len() == out => b
                .data
                .iter()
                .zip(&scales)
                .map(|(&v, &s)| {
                    (v / s)
                        .round_ties_even()
                        .clamp(i32::MIN as f32, i32::MAX as f32) as i32
                })
                .collect(),
            Some(b) => {
                return Err(Error::Structure(format!(
                    "'{key}' has {} values, not {out}",
                    b.data.len()
                )));
            }
            None => vec![0; out],
        };
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        // One scale for weights quantized per tensor, as the converter writes it.
        let scales = match q.granularity {
            Granularity::PerTensor => &scales[..1],
            _ => &scales[..],
        };
        let quant = self.quantization(scales, &vec![0; scales.len()], 0);
        Ok(self.tensor(&key, &[out as i32], dtype::INT32, Some(&bytes), Some(quant)))
    }

    /// Layer `name`'s bias (`out` values), zeros when it has none.
    fn bias(&mut self, name: &str, out: usize) -> Result<i32> {
        let key = format!("{name}.bias");
        if self.model.weights.contains_key(&key) {
            return self.parameter(&key, &[out], |i| i, 0);
        }
        let zeros = f32_le_bytes(&vec![0.0; out]);
        Ok(self.tensor(&key, &[out as i32], dtype::FLOAT32, Some(&zeros), None))
    }

    /// How a `kh × kw` window at `stride` (`[vertical, horizontal]`) with PyTorch's `pads` (`[top, left, bottom, right]`)
    /// runs over `x` of shape `s`: `VALID` without pads, `SAME` where the pads are TFLite's
    /// `SAME`, else after an explicit zero `PAD` — only where `zeros_allowed` (a zero then
    /// changes nothing the window computes). Returns the tensor the operation reads, its
    /// padding, and the output's height and width.
    #[allow(clippy::too_many_arguments)]
    fn window(
        &mut self,
        x: i32,
        name: &str,
        s: Shape,
        pads: [usize; 4],
        k: Hw,
        stride: Hw,
        zeros_allowed: bool,
        step: Option<ActQuant>,
    ) -> Result<(i32, u8, (usize, usize))> {
        let (x, s, padding, before) = if pads == [0; 4] {
            (x, s, VALID, [0; 4])
        } else if pads == same_pads(s.h, s.w, k, stride) {
            (x, s, SAME, pads)
        } else if zeros_allowed {
            let (x, s) = self.pad(x, name, s, pads, step);
            (x, s, VALID, [0; 4])
        } else {
            return Err(Error::Invalid(format!(
                "'{name}': a max pool padded differently from TFLite's SAME needs an input that is never below zero"
            )));
        };
        let h = out_side(s.h, before[0], before[2], k[0], stride[0])?;
        let w = out_side(s.w, before[1], before[3], k[1], stride[1])?;
        Ok((x, padding, (h, w)))
    }

    /// `x` padded by `pads` (`[top, left, bottom, right]`) with zeros (an int8 `PAD` writes
    /// the zero point: zero in `step`, which it keeps).
    fn pad(
        &mut self,
        x: i32,
        name: &str,
        s: Shape,
        pads: [usize; 4],
        step: Option<ActQuant>,
    ) -> (i32, Shape) {
        let p: Vec<i32> = [0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0]
            .iter()
            .map(|&v| v as i32)
            .collect();
        let paddings = self.int32_constant(&format!("{name}_paddings"), &[4, 2], &p);
        let shape = Shape {
            h: s.h + pads[0] + pads[2],
            w: s.w + pads[1] + pads[3],
            ..s
        };
        let out = self.activation(&format!("{name}_padded"), shape, step);
        self.op(code::PAD, &[x, paddings], out, (options::NONE, None));
        (out, shape)
    }
}

/// TFLite's `SAME` padding `[top, left, bottom, right]` of a `kh × kw` window at `stride` on
/// an `h × w` input.
fn same_pads(h: usize, w: usize, k: Hw, stride: Hw) -> [usize; 4] {
    let total =
        |n: usize, a: usize| ((n.div_ceil(stride[a]) - 1) * stride[a] + k[a]).saturating_sub(n);
    let (th, tw) = (total(h, 0), total(w, 1));
    [th / 2, tw / 2, th - th / 2, tw - tw / 2]
}

/// The output side of a window of `k` at `stride` over `n` padded by `before + after`.
fn out_side(n: usize, before: usize, after: usize, k: usize, stride: usize) -> Result<usize> {
    (n + before + after)
        .checked_sub(k)
        .map(|v| v / stride.max(1) + 1)
        .ok_or_else(|| Error::Structure(format!("a {k}×{k} window does not fit a side of {n}")))
}

/// Serialise `model` as a TFLite flatbuffer with float input and output.
pub fn to_tflite(model: &Model) -> Result<Vec<u8>> {
    to_tflite_with_io(model, TfliteIo::Float)
}

/// Serialise `model` as a TFLite flatbuffer with input and output of type `io` (int8 only for
/// a model with quantized activations, which becomes a full-integer file).
pub fn to_tflite_with_io(model: &Model, io: TfliteIo) -> Result<Vec<u8>> {
    Ok(build(model, io)?.0)
}

/// The bytes of activation memory an interpreter needs to run `model`'s TFLite file (as
/// [`tflite_summary`] writes it), planned as TFLite Micro plans its tensor arena (see
/// [`arena_bytes`]).
pub fn peak_activation_bytes(model: &Model) -> Result<usize> {
    Ok(tflite_summary(model)?.peak_activation_bytes)
}

/// Whether `model` becomes a full-integer TFLite file.
pub fn is_full_integer(model: &Model) -> bool {
    !model.quant.activations.is_empty()
}

/// The input and output a device takes `model`'s file with: int8 for a full-integer file (no
/// float input to hold in RAM), float otherwise.
pub fn device_io(model: &Model) -> TfliteIo {
    if is_full_integer(model) {
        TfliteIo::Int8
    } else {
        TfliteIo::Float
    }
}

/// What a deployment target needs to know of `model`'s TFLite file.
#[derive(Debug, Clone, PartialEq)]
pub struct TfliteSummary {
    pub file_bytes: usize,
    pub peak_activation_bytes: usize,
    /// The operators in the file, by TFLite's names, each once.
    pub operators: Vec<&'static str>,
    /// Whether every operator computes in integers (a full-integer file).
    pub full_integer: bool,
    /// The bytes a weight takes in the file, on average over the layers' weights (4 for fp32,
    /// 2 for fp16, 1 for int8).
    pub bytes_per_weight: f64,
}

/// [`TfliteSummary`] of `model`'s file as a device would take it: int8 input and output for a
/// full-integer file (no float input to hold in RAM), float otherwise.
pub fn tflite_summary(model: &Model) -> Result<TfliteSummary> {
    Ok(tflite_file(model, device_io(model))?.0)
}

/// `model`'s TFLite file with input and output of type `io`, and its [`TfliteSummary`].
pub fn tflite_file(model: &Model, io: TfliteIo) -> Result<(TfliteSummary, Vec<u8>)> {
    let full_integer = is_full_integer(model);
    let (file, lifetimes, codes) = build(model, io)?;
    let summary = TfliteSummary {
        file_bytes: file.len(),
        peak_activation_bytes: arena_bytes(&lifetimes),
        operators: codes.iter().map(|&c| code::name(c)).collect(),
        full_integer,
        bytes_per_weight: bytes_per_weight(model),
    };
    Ok((summary, file))
}

/// `model`'s TFLite file with input and output of type `io` as a C header for a
/// microcontroller's firmware, its arrays named after `name` (see [`super::c_array`]).
pub fn tflite_c_header(model: &Model, io: TfliteIo, name: &str) -> Result<String> {
    let (summary, file) = tflite_file(model, io)?;
    Ok(super::c_array::c_header(
        &file,
        name,
        summary.peak_activation_bytes,
    ))
}

/// The bytes a conv or linear weight takes in `model`'s file, averaged over them.
fn bytes_per_weight(model: &Model) -> f64 {
    let (mut bytes, mut count) = (0.0, 0.0);
    for (key, t) in &model.weights {
        if !key.ends_with(".weight") || t.shape.len() < 2 {
            continue;
        }
        let n = t.data.len() as f64;
        let each = if model.quant.int.contains_key(key) {
            1.0
        } else if model.quant.f16.contains(key) {
            2.0
        } else {
            4.0
        };
        bytes += each * n;
        count += n;
    }
    if count > 0.0 { bytes / count } else { 4.0 }
}

/// The step every value of `model`'s graph has in a full-integer file: its own where modelslim
/// quantizes it; the logits' for the output; for a value only max pools read, the pool's
/// output step (a maximum commutes with quantizing, and the pool's zero padding is the zero
/// point). `None` where a value has none: it cannot be an int8 tensor.
fn integer_steps(model: &Model, graph: &crate::model::Graph) -> Vec<Option<ActQuant>> {
    let mut steps: Vec<Option<ActQuant>> = graph
        .values
        .iter()
        .map(|v| model.quant.activations.get(v).copied())
        .collect();
    steps[graph.output] = model.quant.logits;
    // Later values first, so that a pool's output step is known before its input's.
    for n in graph.nodes.iter().rev() {
        if let Op::MaxPool { .. } = n.op {
            let v = n.inputs[0];
            let readers = graph.nodes.iter().filter(|m| m.inputs.contains(&v)).count();
            if steps[v].is_none() && readers == 1 {
                steps[v] = steps[n.output];
            }
        }
    }
    steps
}

/// The TFLite file of `model`, the lifetimes of the tensors its interpreter plans, and the
/// builtin codes of its operators.
fn build(model: &Model, io: TfliteIo) -> Result<(Vec<u8>, Vec<Lifetime>, Vec<i32>)> {
    let integer = is_full_integer(model);
    if io == TfliteIo::Int8 && !integer {
        return Err(Error::Invalid(
            "int8 input and output need a full-integer file: compress with --quant int8 --act-quant (and calibration photos), or use --tflite-io float".into(),
        ));
    }
    let folded = model.fold_bn()?;
    let graph = folded.graph();
    let steps = if integer {
        integer_steps(&folded, &graph)
    } else {
        vec![None; graph.values.len()]
    };
    // The step of value `v`'s int8 tensor (`None` in a float file).
    let step = |v: usize| -> Result<Option<ActQuant>> {
        match (integer, steps[v]) {
            (false, _) => Ok(None),
            (true, Some(q)) => Ok(Some(q)),
            (true, None) => Err(Error::Invalid(format!(
                "'{}' has no quantization step, so a full-integer file cannot hold it: recompress with --act-quant (and calibration photos)",
                graph.values[v]
            ))),
        }
    };
    let mut w = Writer {
        model: &folded,
        fb: Builder::default(),
        buffers: Vec::new(),
        tensors: Vec::new(),
        planned: Vec::new(),
        operators: Vec::new(),
        codes: Vec::new(),
    };
    // Buffer 0: empty, for every tensor without data.
    let empty = w.fb.table(&[]);
    w.buffers.push(empty);
    let readers = |v: usize| graph.nodes.iter().filter(|n| n.inputs.contains(&v)).count();
    // Each value's tensor and shape; a fused activation's output is its producer's tensor.
    let mut tensor: Vec<Option<(i32, Shape)>> = vec![None; graph.values.len()];
    let [height, width] = model.arch.input_size();
    let input_shape = Shape {
        h: height,
        w: width,
        c: 3,
        flat: false,
    };
    let (input, first) = match (integer, io) {
        (false, _) => {
            let t = w.activation("input", input_shape, None);
            (t, t)
        }
        (true, TfliteIo::Int8) => {
            let t = w.activation("input", input_shape, step(0)?);
            (t, t)
        }
        (true, TfliteIo::Float) => {
            let t = w.activation("input", input_shape, None);
            let q = w.activation("input_int8", input_shape, step(0)?);
            w.op(code::QUANTIZE, &[t], q, (options::NONE, None));
            (t, q)
        }
    };
    tensor[0] = Some((first, input_shape));
    let mut fused: Vec<bool> = vec![false; graph.nodes.len()];
    let mut from_relu: Vec<bool> = vec![false; graph.values.len()];
    // Values flattened from an image: its channels and pixels. TFLite flattens NHWC, pixel by
    // pixel, where the graph (NCHW) goes channel by channel.
    let mut flattened: Vec<Option<(usize, usize)>> = vec![None; graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        if fused[i] {
            continue;
        }
        let read = |tensor: &[Option<(i32, Shape)>], v: usize| {
            tensor[v].ok_or_else(|| {
                Error::Structure(format!(
                    "'{}' is read before it is written",
                    graph.values[v]
                ))
            })
        };
        let (x, s) = read(&tensor, n.inputs[0])?;
        let name = graph.values[n.output].clone();
        // The ReLU that only this node's output feeds, fused into it.
        let next_relu = graph
            .nodes
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, m)| m.inputs.contains(&n.output))
            .filter(|_| readers(n.output) == 1)
            .and_then(|(j, m)| match m.op {
                Op::Relu => Some((j, Activation::Relu)),
                Op::Relu6 => Some((j, Activation::Relu6)),
                _ => None,
            });
        let fusable = matches!(n.op, Op::Conv { .. } | Op::Add | Op::Linear { .. });
        let (act, out_value) = match next_relu {
            Some((j, a)) if fusable => {
                fused[j] = true;
                (a, graph.nodes[j].output)
            }
            _ => (Activation::None, n.output),
        };
        let mut out_name = graph.values[out_value].clone();
        if integer && io == TfliteIo::Float && out_value == graph.output {
            out_name.push_str("_int8");
        }
        let out_step = step(out_value)?;
        let shape = match &n.op {
            Op::Conv {
                name: layer,
                in_channels,
                out_channels,
                kernel,
                stride,
                pads,
                groups,
                dilation,
                ..
            } => {
                let ([kh, kw], o, c) = (*kernel, *out_channels, *in_channels);
                let taps = kh * kw;
                if s.flat || s.c != c {
                    return Err(Error::Structure(format!(
                        "'{layer}' reads {} channels, not {c}",
                        s.c
                    )));
                }
                let key = format!("{layer}.weight");
                let depthwise = Op::is_depthwise(c, o, *groups);
                let in_step = step(n.inputs[0])?;
                let filter = if depthwise {
                    // [C, 1, kh, kw] → [1, kh, kw, C].
                    w.weights(
                        &key,
                        &[1, kh, kw, c],
                        |i| (i % c) * taps + i / c,
                        3,
                        in_step,
                    )?
                } else {
                    // [o, c/g, kh, kw] → [o, kh, kw, c/g]: a grouped conv's filter reads its
                    // group's channels (TFLite infers the groups from the input's channels).
                    let cg = c / groups;
                    w.weights(
                        &key,
                        &[o, kh, kw, cg],
                        |i| {
                            let (oi, rest) = (i / (taps * cg), i % (taps * cg));
                            let (pos, ci) = (rest / cg, rest % cg);
                            (oi * cg + ci) * taps + pos
                        },
                        0,
                        in_step,
                    )?
                };
                let bias = w.layer_bias(layer, o, in_step)?;
                // A conv's padding is zeros by definition.
                let (x, padding, (h, wd)) = w.window(
                    x,
                    &name,
                    s,
                    *pads,
                    dilated(*kernel, *dilation),
                    *stride,
                    true,
                    in_step,
                )?;
                let shape = Shape {
                    h,
                    w: wd,
                    c: o,
                    flat: false,
                };
                let out = w.activation(&out_name, shape, out_step);
                let (code, opts) = if depthwise {
                    let t = w.fb.table(&[
                        (0, Field::U8(padding)),
                        (1, Field::I32(stride[1] as i32)),
                        (2, Field::I32(stride[0] as i32)),
                        (3, Field::I32(1)),
                        (4, Field::U8(act as u8)),
                        (5, Field::I32(dilation[1] as i32)),
                        (6, Field::I32(dilation[0] as i32)),
                    ]);
                    (
                        code::DEPTHWISE_CONV_2D,
                        (options::DEPTHWISE_CONV_2D, Some(t)),
                    )
                } else {
                    let t = w.fb.table(&[
                        (0, Field::U8(padding)),
                        (1, Field::I32(stride[1] as i32)),
                        (2, Field::I32(stride[0] as i32)),
                        (3, Field::U8(act as u8)),
                        (4, Field::I32(dilation[1] as i32)),
                        (5, Field::I32(dilation[0] as i32)),
                    ]);
                    (code::CONV_2D, (options::CONV_2D, Some(t)))
                };
                w.op(code, &[x, filter, bias], out, opts);
                (out, shape)
            }
            Op::BatchNorm { name, .. } => {
                return Err(Error::Structure(format!(
                    "batch norm '{name}' is left after folding"
                )));
            }
            Op::Relu | Op::Relu6 => {
                step(n.inputs[0])?;
                let out = w.activation(&out_name, s, out_step);
                let code = if matches!(n.op, Op::Relu) {
                    code::RELU
                } else {
                    code::RELU6
                };
                w.op(code, &[x], out, (options::NONE, None));
                (out, s)
            }
            Op::Add => {
                let (y, t) = read(&tensor, n.inputs[1])?;
                if s != t {
                    return Err(Error::Structure(format!(
                        "'{name}' adds values of different shapes"
                    )));
                }
                step(n.inputs[0])?;
                step(n.inputs[1])?;
                let out = w.activation(&out_name, s, out_step);
                let opts = w.fb.table(&[(0, Field::U8(act as u8))]);
                w.op(code::ADD, &[x, y], out, (options::ADD, Some(opts)));
                (out, s)
            }
            Op::MaxPool {
                kernel,
                stride,
                pads,
            } => {
                let (k, st) = (*kernel, *stride);
                // An int8 max pool keeps its input's step.
                let in_step = step(n.inputs[0])?;
                if in_step != out_step {
                    return Err(Error::Invalid(format!(
                        "max pool '{name}' changes the quantization step, which an int8 max pool cannot"
                    )));
                }
                // A zero never wins over the window's values when none is below zero.
                let (x, padding, (h, wd)) =
                    w.window(x, &name, s, *pads, k, st, from_relu[n.inputs[0]], in_step)?;
                let shape = Shape { h, w: wd, ..s };
                let out = w.activation(&out_name, shape, out_step);
                w.pool(code::MAX_POOL_2D, x, out, padding, k, st);
                (out, shape)
            }
            // TFLite's SAME leaves the padding out of the mean; VALID after an explicit zero PAD
            // counts it.
            Op::AvgPool {
                kernel,
                stride,
                pads,
                count_include_pad,
            } => {
                let in_step = step(n.inputs[0])?;
                if in_step != out_step {
                    return Err(Error::Invalid(format!(
                        "average pool '{name}' changes the quantization step, which an int8 average pool cannot"
                    )));
                }
                let same = same_pads(s.h, s.w, *kernel, *stride);
                let (x, s, pads) = if *count_include_pad && *pads != [0; 4] {
                    let (x, s) = w.pad(x, &name, s, *pads, in_step);
                    (x, s, [0; 4])
                } else if *pads == [0; 4] || *pads == same {
                    (x, s, *pads)
                } else {
                    return Err(Error::Invalid(format!(
                        "'{name}': TFLite's average pool leaves padding out of its mean only with SAME padding, and this one is padded {pads:?}; export it as ONNX"
                    )));
                };
                let (x, padding, (h, wd)) =
                    w.window(x, &name, s, pads, *kernel, *stride, false, in_step)?;
                let shape = Shape { h, w: wd, ..s };
                let out = w.activation(&out_name, shape, out_step);
                w.pool(code::AVERAGE_POOL_2D, x, out, padding, *kernel, *stride);
                (out, shape)
            }
            Op::GlobalAvgPool => {
                let axes = w.int32_constant(&format!("{name}_axes"), &[2], &[1, 2]);
                step(n.inputs[0])?;
                // `[1, 1, 1, C]` for a squeeze-excitation conv or product, else `[1, C]`.
                let keep = graph
                    .nodes
                    .iter()
                    .any(|m| m.inputs.contains(&n.output) && !matches!(m.op, Op::Linear { .. }));
                let shape = if keep {
                    Shape { h: 1, w: 1, ..s }
                } else {
                    Shape { flat: true, ..s }
                };
                let out = w.activation(&out_name, shape, out_step);
                let opts = w.fb.table(&[(0, Field::Bool(keep))]);
                w.op(code::MEAN, &[x, axes], out, (options::REDUCER, Some(opts)));
                (out, shape)
            }
            Op::Mul => {
                let (y, t) = read(&tensor, n.inputs[1])?;
                let gate = Shape { h: 1, w: 1, ..s };
                if t != s && t != gate {
                    return Err(Error::Structure(format!(
                        "'{name}' multiplies values of shapes TFLite cannot broadcast"
                    )));
                }
                step(n.inputs[0])?;
                step(n.inputs[1])?;
                let out = w.activation(&out_name, s, out_step);
                w.mul(x, y, out);
                (out, s)
            }
            Op::Sigmoid => {
                step(n.inputs[0])?;
                // An int8 LOGISTIC writes steps of 1/256 from zero, and nothing else.
                if integer && out_step != Some(ActQuant::UNIT) {
                    return Err(Error::Invalid(format!(
                        "'{name}': an int8 sigmoid needs the output step 1/256 from zero; recompress with --act-quant"
                    )));
                }
                let out = w.activation(&out_name, s, out_step);
                w.op(code::LOGISTIC, &[x], out, (options::NONE, None));
                (out, s)
            }
            Op::HardSwish if !integer => {
                let out = w.activation(&out_name, s, None);
                w.op(code::HARD_SWISH, &[x], out, (options::NONE, None));
                (out, s)
            }
            // In a full-integer file, x times its gate (quantized as modelslim quantizes it):
            // the gate a hard sigmoid (below) or a LOGISTIC, then a MUL.
            Op::HardSwish | Op::Silu => {
                let in_step = step(n.inputs[0])?;
                let gate_step = w
                    .model
                    .quant
                    .gate_step(&graph.values[n.inputs[0]])
                    .filter(|_| integer);
                if integer && gate_step.is_none() {
                    return Err(Error::Structure(format!("'{name}' has no gate step")));
                }
                let gate = w.activation(&format!("{name}_gate"), s, gate_step);
                match (&n.op, in_step) {
                    (Op::HardSwish, Some(in_step)) => {
                        let gate = (gate, gate_step.unwrap_or(ActQuant::UNIT));
                        w.int8_hard_sigmoid(x, gate, &name, s, in_step, 1.0 / 6.0, 0.5)?
                    }
                    _ => w.op(code::LOGISTIC, &[x], gate, (options::NONE, None)),
                }
                let out = w.activation(&out_name, s, out_step);
                w.mul(x, gate, out);
                (out, s)
            }
            // TFLite has no hard sigmoid: in a full-integer file a 1×1 depthwise conv (see
            // `int8_hard_sigmoid`); in float relu6(6αx + 6β) / 6, as a product, a sum with a
            // fused ReLU6 and a product.
            Op::HardSigmoid { alpha, beta } if integer => {
                let in_step = step(n.inputs[0])?
                    .ok_or_else(|| Error::Structure(format!("'{name}' has no input step")))?;
                if out_step != Some(ActQuant::UNIT) {
                    return Err(Error::Invalid(format!(
                        "'{name}': an int8 hard sigmoid needs the output step 1/256 from zero; recompress with --act-quant"
                    )));
                }
                let out = w.activation(&out_name, s, out_step);
                let out_q = (out, ActQuant::UNIT);
                w.int8_hard_sigmoid(x, out_q, &name, s, in_step, *alpha, *beta)?;
                (out, s)
            }
            Op::HardSigmoid { alpha, beta } => {
                let scaled = w.activation(&format!("{name}_scaled"), s, None);
                let a = w.float_scalar(&format!("{name}_6alpha"), 6.0 * alpha);
                w.mul(x, a, scaled);
                let shifted = w.activation(&format!("{name}_relu6"), s, None);
                let b = w.float_scalar(&format!("{name}_6beta"), 6.0 * beta);
                let relu6 = w.fb.table(&[(0, Field::U8(Activation::Relu6 as u8))]);
                w.op(
                    code::ADD,
                    &[scaled, b],
                    shifted,
                    (options::ADD, Some(relu6)),
                );
                let out = w.activation(&out_name, s, out_step);
                let sixth = w.float_scalar(&format!("{name}_sixth"), 1.0 / 6.0);
                w.mul(shifted, sixth, out);
                (out, s)
            }
            // Channels moved, not computed: an int8 file's integers move unchanged when
            // every input is on the output's step (as calibration puts them).
            Op::Concat => {
                let mut parts = Vec::with_capacity(n.inputs.len());
                let mut c = 0;
                for &i in &n.inputs {
                    let (t, si) = read(&tensor, i)?;
                    if si.flat || (si.h, si.w) != (s.h, s.w) {
                        return Err(Error::Structure(format!(
                            "'{name}' concatenates values of different sizes"
                        )));
                    }
                    w.same_step(&name, step(i)?, out_step)?;
                    parts.push(t);
                    c += si.c;
                }
                let shape = Shape { c, ..s };
                let out = w.activation(&out_name, shape, out_step);
                let opts = w.fb.table(&[(0, Field::I32(3))]);
                w.op(
                    code::CONCATENATION,
                    &parts,
                    out,
                    (options::CONCATENATION, Some(opts)),
                );
                (out, shape)
            }
            Op::Channels { start, len } => {
                w.same_step(&name, step(n.inputs[0])?, out_step)?;
                let shape = Shape { c: *len, ..s };
                let at = |v: usize| v as i32;
                let begin =
                    w.int32_constant(&format!("{name}_begin"), &[4], &[0, 0, 0, at(*start)]);
                let end = w.int32_constant(
                    &format!("{name}_end"),
                    &[4],
                    &[1, at(s.h), at(s.w), at(start + len)],
                );
                let strides = w.int32_constant(&format!("{name}_strides"), &[4], &[1; 4]);
                let out = w.activation(&out_name, shape, out_step);
                let opts = w.fb.table(&[]);
                w.op(
                    code::STRIDED_SLICE,
                    &[x, begin, end, strides],
                    out,
                    (options::STRIDED_SLICE, Some(opts)),
                );
                (out, shape)
            }
            // In NHWC: `[1, H, W, g, k]`, the last two axes swapped, and back.
            Op::ChannelShuffle { groups } => {
                let in_step = step(n.inputs[0])?;
                w.same_step(&name, in_step, out_step)?;
                let (h, wd, g) = (s.h as i32, s.w as i32, *groups as i32);
                let k = s.c as i32 / g;
                let split =
                    w.int32_constant(&format!("{name}_split_shape"), &[5], &[1, h, wd, g, k]);
                let grouped =
                    w.activation_dims(&format!("{name}_grouped"), &[1, h, wd, g, k], in_step);
                w.op(code::RESHAPE, &[x, split], grouped, (options::NONE, None));
                let perm = w.int32_constant(&format!("{name}_perm"), &[5], &[0, 1, 2, 4, 3]);
                let swapped =
                    w.activation_dims(&format!("{name}_swapped"), &[1, h, wd, k, g], in_step);
                let opts = w.fb.table(&[]);
                w.op(
                    code::TRANSPOSE,
                    &[grouped, perm],
                    swapped,
                    (options::TRANSPOSE, Some(opts)),
                );
                let merged =
                    w.int32_constant(&format!("{name}_shape"), &[4], &[1, h, wd, s.c as i32]);
                let out = w.activation(&out_name, s, out_step);
                w.op(
                    code::RESHAPE,
                    &[swapped, merged],
                    out,
                    (options::NONE, None),
                );
                (out, s)
            }
            Op::Flatten { pixels } => {
                w.same_step(&name, step(n.inputs[0])?, out_step)?;
                if s.flat || s.h * s.w != *pixels {
                    return Err(Error::Structure(format!(
                        "'{name}' flattens {}×{} pixels, not {pixels}",
                        s.h, s.w
                    )));
                }
                let shape = Shape {
                    c: s.c * pixels,
                    flat: true,
                    ..s
                };
                let dims = w.int32_constant(&format!("{name}_shape"), &[2], &shape.dims());
                let out = w.activation(&out_name, shape, out_step);
                w.op(code::RESHAPE, &[x, dims], out, (options::NONE, None));
                flattened[n.output] = Some((s.c, *pixels));
                (out, shape)
            }
            Op::Linear {
                name: layer,
                in_features,
                out_features,
            } => {
                let (i, o) = (*in_features, *out_features);
                let s = if !s.flat && s.h == 1 && s.w == 1 {
                    Shape { flat: true, ..s }
                } else {
                    s
                };
                if !s.flat || s.c != i {
                    return Err(Error::Structure(format!(
                        "'{layer}' reads {} features, not {i}",
                        s.c
                    )));
                }
                let in_step = step(n.inputs[0])?;
                // A row's features in TFLite's order: pixel `p`, channel `c` at `p·C + c`.
                let weight = match flattened[n.inputs[0]] {
                    Some((c, pixels)) => w.weights(
                        &format!("{layer}.weight"),
                        &[o, i],
                        |e| {
                            let (row, t) = (e / i, e % i);
                            row * i + (t % c) * pixels + t / c
                        },
                        0,
                        in_step,
                    )?,
                    None => w.weights(&format!("{layer}.weight"), &[o, i], |j| j, 0, in_step)?,
                };
                let bias = w.layer_bias(layer, o, in_step)?;
                let shape = Shape { c: o, ..s };
                let out = w.activation(&out_name, shape, out_step);
                let opts = w.fb.table(&[(0, Field::U8(act as u8))]);
                w.op(
                    code::FULLY_CONNECTED,
                    &[x, weight, bias],
                    out,
                    (options::FULLY_CONNECTED, Some(opts)),
                );
                (out, shape)
            }
        };
        tensor[out_value] = Some(shape);
        from_relu[out_value] = act != Activation::None || matches!(n.op, Op::Relu | Op::Relu6);
    }
    let Some((mut output, out_shape)) = tensor[graph.output] else {
        return Err(Error::Structure("the network writes no output".into()));
    };
    if integer && io == TfliteIo::Float {
        let logits = w.activation(&graph.values[graph.output], out_shape, None);
        w.op(code::DEQUANTIZE, &[output], logits, (options::NONE, None));
        output = logits;
    }
    if graph.values[graph.output] != "logits" {
        return Err(Error::Structure(
            "the network's output must be the classifier's logits".into(),
        ));
    }
    finish(w, input, output, model)
}

/// Each planned tensor's lifetime: from the operator that writes it (0 for the input) to the
/// last that reads it (the last operator for the output).
fn lifetimes(w: &Writer, input: i32, output: i32) -> Vec<Lifetime> {
    let last_op = w.operators.len().saturating_sub(1);
    let mut span: Vec<Option<(usize, usize)>> = vec![None; w.planned.len()];
    let mut touch = |t: i32, op: usize| {
        if let Some(s) = usize::try_from(t).ok().and_then(|t| span.get_mut(t)) {
            *s = Some(s.map_or((op, op), |(a, b)| (a.min(op), b.max(op))));
        }
    };
    touch(input, 0);
    touch(output, last_op);
    for (i, op) in w.operators.iter().enumerate() {
        op.inputs
            .iter()
            .chain(&op.outputs)
            .for_each(|&t| touch(t, i));
    }
    w.planned
        .iter()
        .zip(span)
        .filter_map(|(bytes, span)| {
            let (first, last) = span?;
            Some(Lifetime {
                bytes: (*bytes)?,
                first,
                last,
            })
        })
        .collect()
}

/// The operators, subgraph and model tables around what `w` wrote.
fn finish(
    mut w: Writer,
    input: i32,
    output: i32,
    model: &Model,
) -> Result<(Vec<u8>, Vec<Lifetime>, Vec<i32>)> {
    let planned = lifetimes(&w, input, output);
    let mut ops = Vec::with_capacity(w.operators.len());
    for op in std::mem::take(&mut w.operators) {
        let inputs = w.fb.i32s(&op.inputs);
        let outputs = w.fb.i32s(&op.outputs);
        let mut fields = vec![
            (0, Field::U32(op.opcode as u32)),
            (1, Field::Offset(inputs)),
            (2, Field::Offset(outputs)),
            (3, Field::U8(op.options.0)),
        ];
        if let Some(o) = op.options.1 {
            fields.push((4, Field::Offset(o)));
        }
        ops.push(w.fb.table(&fields));
    }
    let codes: Vec<Offset> = w
        .codes
        .iter()
        .map(|&c| {
            w.fb.table(&[
                (0, Field::U8(c.min(127) as u8)),
                (2, Field::I32(1)),
                (3, Field::I32(c)),
            ])
        })
        .collect();
    let tensors = w.fb.offsets(&w.tensors);
    let inputs = w.fb.i32s(&[input]);
    let outputs = w.fb.i32s(&[output]);
    let operators = w.fb.offsets(&ops);
    let name = w.fb.string("main");
    let subgraph = w.fb.table(&[
        (0, Field::Offset(tensors)),
        (1, Field::Offset(inputs)),
        (2, Field::Offset(outputs)),
        (3, Field::Offset(operators)),
        (4, Field::Offset(name)),
    ]);
    let subgraphs = w.fb.offsets(&[subgraph]);
    let codes = w.fb.offsets(&codes);
    let buffers = w.fb.offsets(&w.buffers);
    let description = w.fb.string(&format!(
        "modelslim {}: {}, {}",
        env!("CARGO_PKG_VERSION"),
        model.arch.display(),
        model.quant.describe()
    ));
    let root = w.fb.table(&[
        (0, Field::U32(SCHEMA_VERSION)),
        (1, Field::Offset(codes)),
        (2, Field::Offset(subgraphs)),
        (3, Field::Offset(description)),
        (4, Field::Offset(buffers)),
    ]);
    let codes = std::mem::take(&mut w.codes);
    Ok((w.fb.finish(root, b"TFL3"), planned, codes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_sigmoid_of_tiny_steps_adds_its_shift_alone_or_is_refused() {
        let unit = ActQuant::UNIT;
        let step = |scale: f32| ActQuant {
            scale,
            zero_point: 120,
        };
        // A usual step: x once in steps of α, β = 0.5 / (2⁻⁶ · α) = 192 of them.
        assert_eq!(
            hard_sigmoid_conv("g", step(1.0 / 64.0), unit, 1.0 / 6.0, 0.5).unwrap(),
            (1, 1.0 / 6.0, 192)
        );
        // Inputs within 2⁻²⁵ of zero: β's 2⁻²⁵·6 · 0.5 … ≈ 5·10⁷ units fit; at 2⁻³⁵ they do not,
        // and the conv adds 0.5 alone, in a bias that fits.
        let (w, scale, b) =
            hard_sigmoid_conv("g", step(2f32.powi(-35)), unit, 1.0 / 6.0, 0.5).unwrap();
        assert_eq!(w, 0);
        assert!(b > 0 && (b as f64 * 2f64.powi(-35) * scale as f64 - 0.5).abs() < 1e-9);
        // β on a rounding boundary (half an output step) and x large enough to move αx + β by
        // an f32 ulp: x's sign decides, which a constant cannot follow. (At 2⁻³⁵ x vanishes
        // in modelslim's f32 sum too, and the constant is right.)
        assert!(
            hard_sigmoid_conv("g", step(2f32.powi(-35)), unit, 1.0 / 6.0, 128.5 / 256.0).is_ok()
        );
        let e = hard_sigmoid_conv("g", step(2f32.powi(-29)), unit, 1.0 / 6.0, 128.5 / 256.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'g'") && e.contains("ONNX"), "{e}");
    }
}
