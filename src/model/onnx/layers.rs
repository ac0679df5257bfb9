//! The ops of an ONNX file that become graph layers: convs (their pads), pools, linear
//! layers, products, and a per-channel constant that multiplies or is added to a layer's
//! output, folded into that layer.

use std::sync::Arc;

use super::constants::{Const, Data};
use super::{Attrs, Reader, Val, err};
use crate::Result;
use crate::export::proto::NodeProto;
use crate::model::arch::INPUT_SIDES;
use crate::model::graph::{Hw, Op, dilated, window_output};
use crate::model::graph_edit::MAX_STRIDE;
use crate::tensor::HostTensor;

impl Reader {
    /// `x · g`: a squeeze-excitation gate (`g` pooled, `[N, C, 1, 1]`) or a value of `x`'s
    /// shape; `x · sigmoid(x)` is a SiLU and `x · HardSigmoid(x; 1/6, 1/2)` a hard swish.
    pub(super) fn mul(&mut self, n: &NodeProto) -> Result<()> {
        let (a, b) = (self.running(n, 0)?, self.running(n, 1)?);
        let (Some((a, sa, fa)), Some((b, sb, fb))) = (a.clone(), b.clone()) else {
            return match (a, b) {
                (Some(_), None) => self.scale_channels(n, 0, 1),
                (None, Some(_)) => self.scale_channels(n, 1, 0),
                _ => Err(err("multiplies two constants")),
            };
        };
        // The function of the other operand whose only reader is this product.
        let function_of = |s: &Self, gi: usize, g: usize, x: usize| {
            let reads_once = n.input.get(gi).and_then(|i| s.readers.get(i)) == Some(&1);
            // Value g > 0 is node g − 1's.
            g.checked_sub(1)
                .and_then(|i| s.graph.nodes.get(i))
                .filter(|m| m.inputs == [x] && reads_once)
                .map(|m| m.op.clone())
        };
        for (gi, x, g, shape, flat) in [(1, a, b, &sa, fa), (0, b, a, &sb, fb)] {
            let op = match function_of(self, gi, g, x) {
                Some(Op::Sigmoid) => Op::Silu,
                Some(Op::HardSigmoid { alpha, beta })
                    if (alpha - 1.0 / 6.0).abs() < 1e-6 && beta == 0.5 =>
                {
                    Op::HardSwish
                }
                _ => continue,
            };
            let shape = shape.clone();
            self.push(n, op, &[x], shape, flat);
            return Ok(());
        }
        // The full value first, the gate second.
        let pooled = |s: &[usize], f: bool| f || s.iter().skip(2).all(|&d| d == 1);
        let same_channels = sa.get(1) == sb.get(1);
        let (x, g, shape, flat) = if sa == sb || (same_channels && pooled(&sb, fb)) {
            (a, b, sa, fa)
        } else if same_channels && pooled(&sa, fa) {
            (b, a, sb, fb)
        } else {
            return Err(err(format!(
                "multiplies values of shapes {sa:?} and {sb:?}; modelslim reads equal shapes or a per-channel gate"
            )));
        };
        self.push(n, Op::Mul, &[x, g], shape, flat);
        Ok(())
    }

    pub(super) fn conv(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let (x, shape, flat) = self
            .running_padded(n, 0)?
            .ok_or_else(|| err("convolves a constant"))?;
        let padded = n.input.first().and_then(|v| self.padded.get(v)).copied();
        // After global pooling the value is a 1×1 image (squeeze-excitation, a conv head).
        if shape.len() != 4 {
            return Err(err(format!("convolves values of shape {shape:?}")));
        }
        let w = self.required_constant(n, 1, "weight")?;
        let [out_c, in_per_group, kh, kw] = w.shape[..] else {
            return Err(err(format!("weight of shape {:?}, not 4-D", w.shape)));
        };
        let groups = usize::try_from(a.int("group", 1)).unwrap_or(0).max(1);
        let in_c = shape[1];
        if in_per_group * groups != in_c {
            return Err(err(format!(
                "a weight for {} input channels in {groups} groups, but its input has {in_c}",
                in_per_group * groups
            )));
        }
        let kernel = [kh, kw];
        let stride = window_strides(a)?;
        let dilation = pair(a, "dilations", MAX_STRIDE)?;
        let extent = dilated(kernel, dilation);
        let input = [shape[2], shape[3]];
        let mut pads = self.pads(a, extent, stride, input)?;
        if let Some(extra) = padded {
            if a.string("auto_pad").starts_with("SAME") {
                return Err(err("a Pad before a conv that pads itself SAME"));
            }
            for (p, e) in pads.iter_mut().zip(extra) {
                *p += e;
            }
        }
        let bias = self.constant(n, 2, "bias")?;
        let name = self.name_for(n, n.input.get(1).map(String::as_str));
        let has_bias = bias.is_some();
        let shape = w.shape.clone();
        self.param(format!("{name}.weight"), w, shape, n.input.get(1))?;
        if let Some(b) = bias {
            self.param(format!("{name}.bias"), b, vec![out_c], n.input.get(2))?;
        }
        let [oh, ow] = window_output(input, extent, stride, &pads);
        self.push(
            n,
            Op::Conv {
                name,
                in_channels: in_c,
                out_channels: out_c,
                kernel,
                stride,
                pads,
                groups,
                bias: has_bias,
                dilation,
            },
            &[x],
            vec![1, out_c, oh, ow],
            flat,
        );
        Ok(())
    }

    /// A zero `Pad` of the image's height and width (as TensorFlow's converters write a
    /// conv's padding): the conv after it takes it as its own.
    pub(super) fn pad(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let (id, shape, flat) = self.running(n, 0)?.ok_or_else(|| err("pads a constant"))?;
        let mode = a.string("mode");
        let (pads, value) = if self.opset < 11 {
            (a.ints("pads"), a.float("value", 0.0))
        } else {
            let value = self
                .constant(n, 2, "padding value")?
                .and_then(|c| c.floats().first().copied())
                .unwrap_or(0.0);
            (self.constant(n, 1, "pads")?.map(|c| c.ints()), value)
        };
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            return Err(err("a Pad with axes"));
        }
        let pads = pads.unwrap_or_default();
        let side = |v: i64| usize::try_from(v).ok().filter(|&v| v < MAX_STRIDE);
        let [0, 0, t, l, 0, 0, b, r] = pads[..] else {
            return Err(err(format!(
                "pads {pads:?}; modelslim reads a Pad of the height and width only"
            )));
        };
        let (Some(t), Some(l), Some(b), Some(r)) = (side(t), side(l), side(b), side(r)) else {
            return Err(err(format!("pads {pads:?} (each 0 to {})", MAX_STRIDE - 1)));
        };
        if !(mode.is_empty() || mode == "constant") || value != 0.0 || flat || shape.len() != 4 {
            return Err(err(format!(
                "a {} Pad of {value}; modelslim reads a zero Pad of an image, folded into the conv after it",
                if mode.is_empty() { "constant" } else { &mode }
            )));
        }
        let out = n.output.first().cloned().unwrap_or_default();
        self.padded.insert(out, [t, l, b, r]);
        self.set(n, Val::Run { id, shape, flat });
        Ok(())
    }

    /// `[top, left, bottom, right]` from `pads` or `auto_pad`.
    pub(super) fn pads(&self, a: &Attrs, kernel: Hw, stride: Hw, input: Hw) -> Result<[usize; 4]> {
        let auto = a.string("auto_pad");
        match auto.as_str() {
            "" | "NOTSET" => {
                let p = a.ints("pads").unwrap_or(vec![0; 4]);
                let [t, l, b, r] = p[..] else {
                    return Err(err(format!("pads {p:?}")));
                };
                let conv = |v: i64| usize::try_from(v).map_err(|_| err(format!("pads {p:?}")));
                Ok([conv(t)?, conv(l)?, conv(b)?, conv(r)?])
            }
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let split = |a: usize| {
                    let (side, s) = (input[a], stride[a]);
                    let total =
                        ((side.div_ceil(s).max(1) - 1) * s + kernel[a]).saturating_sub(side);
                    let (small, big) = (total / 2, total - total / 2);
                    if auto == "SAME_UPPER" {
                        (small, big)
                    } else {
                        (big, small)
                    }
                };
                let ((top, bottom), (left, right)) = (split(0), split(1));
                Ok([top, left, bottom, right])
            }
            other => Err(err(format!("auto_pad {other}"))),
        }
    }

    pub(super) fn pool(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let (x, shape, flat) = self.running(n, 0)?.ok_or_else(|| err("pools a constant"))?;
        if flat || shape.len() != 4 {
            return Err(err("pools flat values"));
        }
        if a.ints("kernel_shape").is_none() {
            return Err(err("no kernel_shape"));
        }
        // As wide as the largest input (a global average); a pool that is not one meets the
        // graph's own bound on windows later.
        let kernel = pair(a, "kernel_shape", *INPUT_SIDES.end() as usize)?;
        let [kh, kw] = kernel;
        let input = [shape[2], shape[3]];
        let stride = window_strides(a)?;
        let mut pads = self.pads(a, kernel, stride, input)?;
        let average = n.op_type == "AveragePool";
        let count_include_pad = average && a.int("count_include_pad", 0) != 0;
        // Over the whole image: a global average.
        if average && kernel == input && pads == [0; 4] {
            self.push(n, Op::GlobalAvgPool, &[x], vec![1, shape[1], 1, 1], true);
            return Ok(());
        }
        if a.ints("dilations")
            .is_some_and(|d| d.iter().any(|&v| v != 1))
        {
            return Err(err("a dilated pool"));
        }
        // `ceil_mode` rounds the output up: one more window along an axis whose last one
        // would start inside the image (or its leading padding), as more padding at the end,
        // which never wins a maximum and which an average that leaves padding out ignores.
        if a.int("ceil_mode", 0) != 0 {
            for axis in 0..2 {
                let span = input[axis] + pads[axis] + pads[axis + 2];
                let rest = span.saturating_sub(kernel[axis]) % stride[axis];
                let last_start =
                    (span.saturating_sub(kernel[axis]) / stride[axis] + 1) * stride[axis];
                if rest != 0 && last_start < input[axis] + pads[axis] {
                    if count_include_pad {
                        return Err(err(
                            "ceil_mode with count_include_pad changes this average pool's windows; modelslim reads it without one or the other",
                        ));
                    }
                    pads[axis + 2] += stride[axis] - rest;
                }
            }
        }
        if pads.iter().enumerate().any(|(i, &p)| p >= kernel[i % 2]) {
            return Err(err(format!(
                "pool pads {pads:?} as wide as its {kh}×{kw} window (a window of padding only)"
            )));
        }
        let [oh, ow] = window_output(input, kernel, stride, &pads);
        let op = if average {
            Op::AvgPool {
                kernel,
                stride,
                pads,
                count_include_pad,
            }
        } else {
            Op::MaxPool {
                kernel,
                stride,
                pads,
            }
        };
        self.push(n, op, &[x], vec![1, shape[1], oh, ow], false);
        Ok(())
    }

    pub(super) fn linear(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let (x, shape, flat) = self
            .running(n, 0)?
            .ok_or_else(|| err("multiplies two constants"))?;
        let k = shape.get(1).copied().unwrap_or(0);
        if shape.len() != 2 || !(flat || shape.len() == 2) {
            return Err(err(format!(
                "multiplies values of shape {shape:?}; modelslim reads linear layers on [N, C]"
            )));
        }
        if !flat {
            return Err(err("a linear layer on values not pooled to [N, C]"));
        }
        let b = self.required_constant(n, 1, "weight")?;
        let gemm = n.op_type == "Gemm";
        if gemm && a.int("transA", 0) != 0 {
            return Err(err("transA"));
        }
        let trans_b = gemm && a.int("transB", 0) != 0;
        let [r0, r1] = b.shape[..] else {
            return Err(err(format!("weight of shape {:?}", b.shape)));
        };
        let (out, inp) = if trans_b { (r0, r1) } else { (r1, r0) };
        if inp != k {
            return Err(err(format!(
                "a weight for {inp} inputs, but its input has {k}"
            )));
        }
        let alpha = if gemm { a.float("alpha", 1.0) } else { 1.0 };
        let beta = if gemm { a.float("beta", 1.0) } else { 1.0 };
        let mut w = b.floats();
        if !trans_b {
            let mut t = vec![0f32; w.len()];
            for i in 0..inp {
                for o in 0..out {
                    t[o * inp + i] = w[i * out + o];
                }
            }
            w = t;
        }
        w.iter_mut().for_each(|v| *v *= alpha);
        let bias = match (gemm, self.constant(n, 2, "bias")?) {
            (true, Some(c)) => {
                let v = c.floats();
                match v.len() {
                    1 => vec![v[0] * beta; out],
                    l if l == out => v.iter().map(|x| x * beta).collect(),
                    l => return Err(err(format!("a bias of {l} values for {out} outputs"))),
                }
            }
            _ => vec![0.0; out],
        };
        let name = self.name_for(n, n.input.get(1).map(String::as_str));
        let wc = Const {
            shape: vec![out, inp],
            data: Data::F32(Arc::new(w)),
        };
        self.param(format!("{name}.weight"), wc, vec![out, inp], None)?;
        let bc = Const {
            shape: vec![out],
            data: Data::F32(Arc::new(bias)),
        };
        self.param(format!("{name}.bias"), bc, vec![out], None)?;
        self.push(
            n,
            Op::Linear {
                name,
                in_features: inp,
                out_features: out,
            },
            &[x],
            vec![1, out],
            true,
        );
        Ok(())
    }

    /// `x · c` where `x` (input `xi`) is a conv's or a batch norm's output that nothing else
    /// reads and `c` (input `ci`) holds one value per channel (Caffe's `Scale` after a batch
    /// norm): `c` scales that layer's weights and bias.
    pub(super) fn scale_channels(&mut self, n: &NodeProto, xi: usize, ci: usize) -> Result<()> {
        let (li, id, shape, flat, c) = self.per_channel_after_layer(n, xi, ci, "multiplies by")?;
        let name = match &self.graph.nodes[li].op {
            Op::Conv { name, .. } | Op::BatchNorm { name, .. } => name.clone(),
            _ => {
                return Err(err(
                    "multiplies by a constant something other than a conv's or batch norm's output",
                ));
            }
        };
        // A conv's weight rows or a batch norm's γ, and either's bias.
        for p in ["weight", "bias"] {
            if let Some(t) = self.weights.get_mut(&format!("{name}.{p}")) {
                let per = t.data.len() / c.len().max(1);
                for (i, v) in t.data.iter_mut().enumerate() {
                    *v *= c[i / per.max(1)];
                }
            }
        }
        self.set(n, Val::Run { id, shape, flat });
        Ok(())
    }

    /// The node of the layer whose output `x` (input `xi` of `n`) only `n` reads, `x`'s id,
    /// ONNX shape and flatness, and constant input `ci` as one value per channel.
    #[allow(clippy::type_complexity)]
    fn per_channel_after_layer(
        &mut self,
        n: &NodeProto,
        xi: usize,
        ci: usize,
        what: &str,
    ) -> Result<(usize, usize, Vec<usize>, bool, Vec<f32>)> {
        let Some(Val::Run { id, shape, flat }) = self.input(n, xi)? else {
            return Err(err("no input"));
        };
        let c = self.required_constant(n, ci, "constant")?;
        let channels = shape.get(1).copied().unwrap_or(0);
        // Broadcast as ONNX does (shapes aligned at the right): C on the channel axis, 1
        // elsewhere; or a single value.
        let per_channel = c.shape.len() <= shape.len() && {
            let mut padded = vec![1usize; shape.len() - c.shape.len()];
            padded.extend(&c.shape);
            padded
                .iter()
                .enumerate()
                .all(|(i, &d)| d == if i == 1 { channels } else { 1 })
        };
        let values = match c.floats() {
            v if per_channel => v,
            v if v.len() == 1 => vec![v[0]; channels],
            _ => {
                return Err(err(format!(
                    "{what} a constant of shape {:?} values of shape {shape:?}; modelslim folds a per-channel constant into the layer before it only",
                    c.shape
                )));
            }
        };
        let read_once = n
            .input
            .get(xi)
            .is_some_and(|s| self.readers.get(s) == Some(&1));
        let layer = self.graph.nodes.iter().position(|m| m.output == id);
        match layer.filter(|_| read_once) {
            Some(li) => Ok((li, id, shape, flat, values)),
            None => Err(err(format!(
                "{what} a constant values that more than this node reads, or that no layer wrote; modelslim folds a per-channel constant into the layer before it only"
            ))),
        }
    }

    /// `x + c` where `x` (input `xi`) is a conv's, a linear layer's or a batch norm's output
    /// that nothing else reads and `c` (input `ci`) holds one value per channel: `c` joins
    /// the bias.
    pub(super) fn add_bias(&mut self, n: &NodeProto, xi: usize, ci: usize) -> Result<()> {
        let (li, id, shape, flat, add) = self.per_channel_after_layer(n, xi, ci, "adds")?;
        let channels = add.len();
        let (name, has_bias) = match &mut self.graph.nodes[li].op {
            Op::Conv { name, bias, .. } => {
                let had = *bias;
                *bias = true;
                (name.clone(), had)
            }
            Op::Linear { name, .. } | Op::BatchNorm { name, .. } => (name.clone(), true),
            _ => {
                return Err(err(
                    "adds a constant to something other than a conv, linear layer or batch norm's output",
                ));
            }
        };
        let key = format!("{name}.bias");
        let mut b = if has_bias {
            self.weights
                .get(&key)
                .map(|t| t.data.clone())
                .unwrap_or(vec![0.0; channels])
        } else {
            vec![0.0; channels]
        };
        for (v, a) in b.iter_mut().zip(&add) {
            *v += a;
        }
        self.weights.insert(key, HostTensor::new(vec![channels], b));
        self.set(n, Val::Run { id, shape, flat });
        Ok(())
    }
}

/// A window's `strides` (1, 1 when absent).
fn window_strides(a: &Attrs) -> Result<Hw> {
    pair(a, "strides", MAX_STRIDE)
}

/// Attribute `name`: a height and a width, each 1 to `max` (1, 1 when absent), checked before
/// any arithmetic uses them.
fn pair(a: &Attrs, name: &str, max: usize) -> Result<Hw> {
    let v = a.ints(name).unwrap_or(vec![1, 1]);
    let side = |x: i64| usize::try_from(x).ok().filter(|x| (1..=max).contains(x));
    match v[..] {
        [h, w] => match (side(h), side(w)) {
            (Some(h), Some(w)) => Ok([h, w]),
            _ => Err(err(format!("{name} {v:?} (each 1 to {max})"))),
        },
        _ => Err(err(format!("{name} {v:?}"))),
    }
}
