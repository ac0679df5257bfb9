//! ONNX export of a model as modelslim runs it: the graph node for node, fp32 or fp16 weights
//! (`Cast` back to float), int8/int4 weights as `DequantizeLinear` (per-tensor, per-axis or
//! blocked), and quantized activations as `QuantizeLinear` → `DequantizeLinear` pairs — a QDQ
//! graph that int8 runtimes fuse into integer kernels. Input `input` `[N, 3, S, S]` (S the
//! network's side, 224 for ResNet18 and EfficientNet-Lite0), output `logits` `[N, classes]`,
//! `N` dynamic; the preprocessing in the metadata.

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::proto::*;
use crate::model::{Model, Op};
use crate::quant::{ActQuant, Granularity, QuantizedTensor, bias_scales};
use crate::tensor::{HostTensor, LazyBytes, f32_le_bytes};
use crate::{Error, Result};

/// Serialise `model` as an ONNX file: the bytes of [`model_proto`], with each weight's bytes
/// made only as the file reaches it (a 100 MB network's weights are not copied whole into
/// initializers beside the file).
pub fn to_onnx(model: &Model) -> Result<Vec<u8>> {
    let (mut proto, inits) = proto_and_initializers(model)?;
    let graph = proto
        .graph
        .take()
        .ok_or_else(|| Error::Structure("the ONNX model has no graph".into()))?;
    // prost writes a message's fields in tag order, so the file is: the model's fields before
    // `graph` (7), the graph's length-delimited bytes — its fields before `initializer` (5),
    // each initializer, its fields after — and the model's fields after `graph`.
    let field = |tag: u32, len: usize| key_len(tag) + encoded_len_varint(len as u64) + len;
    let graph_head = GraphProto {
        node: graph.node,
        name: graph.name,
        ..Default::default()
    };
    let graph_tail = GraphProto {
        doc_string: graph.doc_string,
        input: graph.input,
        output: graph.output,
        ..Default::default()
    };
    let model_tail = ModelProto {
        opset_import: std::mem::take(&mut proto.opset_import),
        metadata_props: std::mem::take(&mut proto.metadata_props),
        ..Default::default()
    };
    let graph_len = graph_head.encoded_len()
        + inits
            .iter()
            .map(|i| field(5, i.encoded_len()))
            .sum::<usize>()
        + graph_tail.encoded_len();
    let total = proto.encoded_len() + field(7, graph_len) + model_tail.encoded_len();
    let mut out = Vec::with_capacity(total);
    let written = (|| -> std::result::Result<(), prost::EncodeError> {
        proto.encode(&mut out)?;
        encode_key(7, WireType::LengthDelimited, &mut out);
        encode_varint(graph_len as u64, &mut out);
        graph_head.encode(&mut out)?;
        for init in &inits {
            encode_key(5, WireType::LengthDelimited, &mut out);
            encode_varint(init.encoded_len() as u64, &mut out);
            init.proto().encode(&mut out)?;
        }
        graph_tail.encode(&mut out)?;
        model_tail.encode(&mut out)
    })();
    written.map_err(|e| Error::Invalid(format!("writing the ONNX file: {e}")))?;
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

/// One initializer: made, or a weight whose bytes are made when the file is written.
enum Initializer<'a> {
    Made(TensorProto),
    /// `proto` without its `raw_data`, which `bytes` makes.
    Deferred {
        proto: TensorProto,
        bytes: LazyBytes<'a>,
    },
}

impl Initializer<'_> {
    /// The encoded length of the whole tensor (an empty `raw_data` is not written).
    fn encoded_len(&self) -> usize {
        match self {
            Initializer::Made(t) => t.encoded_len(),
            Initializer::Deferred { proto, bytes } if bytes.len == 0 => proto.encoded_len(),
            Initializer::Deferred { proto, bytes } => {
                let len = bytes.len;
                proto.encoded_len() + key_len(9) + encoded_len_varint(len as u64) + len
            }
        }
    }

    /// The whole tensor.
    fn proto(&self) -> std::borrow::Cow<'_, TensorProto> {
        match self {
            Initializer::Made(t) => std::borrow::Cow::Borrowed(t),
            Initializer::Deferred { proto, bytes } => std::borrow::Cow::Owned(TensorProto {
                raw_data: bytes.make(),
                ..proto.clone()
            }),
        }
    }
}

/// The opset the model needs: 21 for int4 or blocked weights, else 13 (read by more runtimes).
pub fn opset_for(model: &Model) -> i64 {
    let modern = model
        .quant
        .int
        .values()
        .any(|q| q.bits != 8 || matches!(q.granularity, Granularity::Group(_)));
    if modern { 21 } else { 13 }
}

/// How a layer's 8-bit weight integers are written.
///
/// A layer whose input is quantized too becomes an integer kernel in ONNX Runtime
/// (`QLinearConv`, `QGemm`). On x86 CPUs without AVX-512 VNNI, its kernel for u8 activations ×
/// s8 weights multiplies with `VPMADDUBSW`, which adds each pair of products into a *saturating*
/// int16: `2 × 255 × 127` does not fit, and the sum is clipped (a conv of 64 inputs at 255 × 127
/// gave half its value). The u8 × u8 kernel widens both operands to int16 first and is exact on
/// every CPU. So such a layer's weights are written as u8 with zero point 128 — the same
/// integers, the same dequantized values, the same arithmetic by the ONNX spec — and the
/// runtime picks its exact kernel. The stored (safetensors) format keeps symmetric i8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightInts {
    /// i8, zero point 0: weight-only layers (runtimes dequantize them to float).
    Signed,
    /// u8, zero point 128: layers that run as integer kernels.
    Offset,
}

impl WeightInts {
    /// For a layer reading an input quantized as `input` (or not quantized).
    fn reading(input: Option<&ActQuant>) -> Self {
        if input.is_some() {
            WeightInts::Offset
        } else {
            WeightInts::Signed
        }
    }
}

struct Builder<'a> {
    model: &'a Model,
    nodes: Vec<NodeProto>,
    initializers: Vec<Initializer<'a>>,
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attribute_type::INT,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.iter().map(|&v| v as i64).collect(),
        r#type: attribute_type::INTS,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: attribute_type::FLOAT,
        ..Default::default()
    }
}

fn tensor(name: &str, data_type: i32, dims: &[usize], raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        name: name.into(),
        raw_data,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => DimensionValue::DimValue(*v as i64),
                None => DimensionValue::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl<'a> Builder<'a> {
    fn init(&mut self, t: TensorProto) {
        self.initializers.push(Initializer::Made(t));
    }

    /// An initializer `name` whose bytes are made when the file is written.
    fn deferred(&mut self, name: &str, data_type: i32, dims: &[usize], bytes: LazyBytes<'a>) {
        self.initializers.push(Initializer::Deferred {
            proto: tensor(name, data_type, dims, Vec::new()),
            bytes,
        });
    }

    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: format!("{output}_{op}"),
            op_type: op.into(),
            attribute: attrs,
            domain: String::new(),
        });
    }

    fn host(&self, key: &str) -> Result<&'a HostTensor> {
        self.model
            .weights
            .get(key)
            .ok_or_else(|| Error::Structure(format!("'{key}' is missing")))
    }

    /// Emit the parameter `key` as stored; returns the name of its float value.
    fn param(&mut self, key: &str) -> Result<String> {
        self.param_for(key, WeightInts::Signed)
    }

    /// [`Builder::param`] for a weight whose 8-bit integers are written as `ints`.
    fn param_for(&mut self, key: &str, ints: WeightInts) -> Result<String> {
        let model = self.model;
        if let Some(q) = model.quant.int.get(key) {
            self.dequantize_weight(key, q, ints);
        } else if model.quant.f16.contains(key) {
            let t = self.host(key)?;
            let stored = format!("{key}_fp16");
            self.deferred(
                &stored,
                data_type::FLOAT16,
                &t.shape,
                LazyBytes::f16(&t.data),
            );
            self.node(
                "Cast",
                &[&stored],
                key,
                vec![attr_int("to", data_type::FLOAT as i64)],
            );
        } else {
            let t = self.host(key)?;
            self.deferred(key, data_type::FLOAT, &t.shape, LazyBytes::f32(&t.data));
        }
        Ok(key.to_string())
    }

    fn dequantize_weight(&mut self, key: &str, q: &'a QuantizedTensor, ints: WeightInts) {
        let (qn, sn, zn) = (
            format!("{key}_quantized"),
            format!("{key}_scale"),
            format!("{key}_zero_point"),
        );
        let (dtype, bytes, zeros) = match (q.bits, ints) {
            (8, WeightInts::Signed) => (
                data_type::INT8,
                LazyBytes::int8(&q.values, 0),
                vec![0u8; q.scales.len()],
            ),
            // The same integers shifted by the zero point: `(v + 128) − 128 = v`.
            (8, WeightInts::Offset) => (
                data_type::UINT8,
                LazyBytes::int8(&q.values, 128),
                vec![128u8; q.scales.len()],
            ),
            _ => (
                data_type::INT4,
                LazyBytes::int4(&q.values),
                vec![0u8; q.scales.len().div_ceil(2)],
            ),
        };
        self.deferred(&qn, dtype, &q.shape, bytes);
        self.init(tensor(
            &sn,
            data_type::FLOAT,
            &q.scale_shape,
            f32_le_bytes(&q.scales),
        ));
        self.init(tensor(&zn, dtype, &q.scale_shape, zeros));
        let attrs = match q.granularity {
            Granularity::PerTensor => vec![],
            Granularity::PerChannel => vec![attr_int("axis", 0)],
            Granularity::Group(n) => vec![attr_int("axis", 1), attr_int("block_size", n as i64)],
        };
        self.node("DequantizeLinear", &[&qn, &sn, &zn], key, attrs);
    }

    /// A bias on the int32 grid `scale_in × scale_w[c]`.
    fn int32_bias(
        &mut self,
        key: &str,
        weight: &QuantizedTensor,
        input: &ActQuant,
    ) -> Result<String> {
        let b = self.host(key)?;
        let scales = bias_scales(weight, input);
        let q: Vec<i32> = b
            .data
            .iter()
            .zip(&scales)
            .map(|(v, s)| (v / s).round_ties_even() as i32)
            .collect();
        let (qn, sn) = (format!("{key}_quantized"), format!("{key}_scale"));
        let bytes = q.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(tensor(&qn, data_type::INT32, &b.shape, bytes));
        self.init(tensor(
            &sn,
            data_type::FLOAT,
            &[scales.len()],
            f32_le_bytes(&scales),
        ));
        self.node(
            "DequantizeLinear",
            &[&qn, &sn],
            key,
            vec![attr_int("axis", 0)],
        );
        Ok(key.to_string())
    }

    /// The bias of layer `name` reading the activation `input`.
    fn bias(&mut self, name: &str, input: Option<&ActQuant>) -> Result<String> {
        let (wkey, bkey) = (format!("{name}.weight"), format!("{name}.bias"));
        match (self.model.quant.int.get(&wkey), input) {
            (Some(w), Some(a)) if !matches!(w.granularity, Granularity::Group(_)) => {
                let w = w.clone();
                self.int32_bias(&bkey, &w, a)
            }
            _ => self.param(&bkey),
        }
    }

    /// `QuantizeLinear` → `DequantizeLinear` on `value`; returns the dequantized name.
    fn qdq(&mut self, value: &str, q: &ActQuant) -> String {
        let dn = format!("{value}_dequantized");
        self.qdq_into(value, q, &dn);
        dn
    }

    /// [`Builder::qdq`] whose dequantized value is named `dn`.
    fn qdq_into(&mut self, value: &str, q: &ActQuant, dn: &str) {
        let (sn, zn) = (format!("{value}_scale"), format!("{value}_zero_point"));
        self.init(tensor(&sn, data_type::FLOAT, &[], f32_le_bytes(&[q.scale])));
        self.init(tensor(&zn, data_type::UINT8, &[], vec![q.zero_point]));
        let qn = format!("{value}_quantized");
        self.node("QuantizeLinear", &[value, &sn, &zn], &qn, vec![]);
        self.node("DequantizeLinear", &[&qn, &sn, &zn], dn, vec![]);
    }
}

/// A constant vector of 64-bit integers (shapes, slice bounds).
fn int64s(name: &str, values: &[i64]) -> TensorProto {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, data_type::INT64, &[values.len()], bytes)
}

/// The whole ONNX model, every initializer made.
pub fn model_proto(model: &Model) -> Result<ModelProto> {
    let (mut proto, inits) = proto_and_initializers(model)?;
    if let Some(g) = proto.graph.as_mut() {
        g.initializer = inits.iter().map(|i| i.proto().into_owned()).collect();
    }
    Ok(proto)
}

/// The ONNX model without its initializers, and the initializers in order.
fn proto_and_initializers(model: &Model) -> Result<(ModelProto, Vec<Initializer<'_>>)> {
    let graph = model.graph();
    let act = &model.quant.activations;
    let mut b = Builder {
        model,
        nodes: Vec::new(),
        initializers: Vec::new(),
    };
    // The name each value is read under (its dequantized copy when quantized).
    let mut read_as: Vec<String> = graph.values.clone();
    if let Some(q) = act.get(&graph.values[0]) {
        read_as[0] = b.qdq(&graph.values[0], q);
    }
    let mut relu6_bounds = false;
    let (sizes, channels) = (
        graph.spatial_sizes(model.arch.input_size()),
        graph.channels(),
    );
    // Values ONNX holds as `[N, C]`: a global pool's that only linear layers read (or that is
    // the output), and a linear layer's; the rest are `[N, C, H, W]` (a pool's read by a
    // squeeze-excitation conv or product is `[N, C, 1, 1]`).
    let mut flat = vec![false; graph.values.len()];
    for n in &graph.nodes {
        let value = &graph.values[n.output];
        // Logits rounded to their step: the classifier writes them unrounded, and the pair
        // after it writes the value under its own name.
        let rounded_logits = model.quant.logits.filter(|_| n.output == graph.output);
        let out = match rounded_logits {
            Some(_) => format!("{value}_unrounded"),
            None => value.clone(),
        };
        let x = read_as[n.inputs[0]].clone();
        let input_act = act.get(&graph.values[n.inputs[0]]);
        match &n.op {
            Op::Conv {
                name,
                kernel,
                stride,
                pads,
                groups,
                bias,
                dilation,
                ..
            } => {
                let w = b.param_for(&format!("{name}.weight"), WeightInts::reading(input_act))?;
                let mut inputs = vec![x, w];
                if *bias {
                    inputs.push(b.bias(name, input_act)?);
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                // Logits a conv computes on pooled values (a 1×1 image) are flattened.
                let logits = n.output == graph.output;
                let conv_out = if logits {
                    format!("{out}_4d")
                } else {
                    out.clone()
                };
                b.node(
                    "Conv",
                    &inputs,
                    &conv_out,
                    vec![
                        attr_ints("kernel_shape", kernel),
                        attr_ints("strides", stride),
                        attr_ints("pads", pads),
                        attr_ints("dilations", dilation),
                        attr_int("group", *groups as i64),
                    ],
                );
                if logits {
                    b.node("Flatten", &[&conv_out], &out, vec![attr_int("axis", 1)]);
                    flat[n.output] = true;
                }
            }
            Op::BatchNorm { name, eps, .. } => {
                let p: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|s| b.param(&format!("{name}.{s}")))
                    .collect::<Result<_>>()?;
                b.node(
                    "BatchNormalization",
                    &[&x, &p[0], &p[1], &p[2], &p[3]],
                    &out,
                    vec![attr_float("epsilon", *eps)],
                );
            }
            Op::Relu => b.node("Relu", &[&x], &out, vec![]),
            Op::Relu6 => {
                if !relu6_bounds {
                    b.init(tensor(
                        "relu6_min",
                        data_type::FLOAT,
                        &[],
                        f32_le_bytes(&[0.0]),
                    ));
                    b.init(tensor(
                        "relu6_max",
                        data_type::FLOAT,
                        &[],
                        f32_le_bytes(&[6.0]),
                    ));
                    relu6_bounds = true;
                }
                b.node("Clip", &[&x, "relu6_min", "relu6_max"], &out, vec![]);
            }
            Op::Add => {
                let y = read_as[n.inputs[1]].clone();
                b.node("Add", &[&x, &y], &out, vec![]);
            }
            Op::Mul => {
                let mut y = read_as[n.inputs[1]].clone();
                // A gate a linear layer wrote, `[N, C]`, scales an image as `[N, C, 1, 1]`.
                if flat[n.inputs[1]] && !flat[n.inputs[0]] {
                    let shape = format!("{out}_gate_shape");
                    b.init(tensor(
                        &shape,
                        data_type::INT64,
                        &[4],
                        [0i64, -1, 1, 1]
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect(),
                    ));
                    let g = format!("{out}_gate");
                    b.node("Reshape", &[&y, &shape], &g, vec![]);
                    y = g;
                }
                b.node("Mul", &[&x, &y], &out, vec![]);
            }
            Op::Sigmoid => b.node("Sigmoid", &[&x], &out, vec![]),
            Op::HardSigmoid { alpha, beta } => b.node(
                "HardSigmoid",
                &[&x],
                &out,
                vec![attr_float("alpha", *alpha), attr_float("beta", *beta)],
            ),
            // Opset 13 has no HardSwish (14 does): x · HardSigmoid(x; 1/6, 1/2), as the engine
            // computes it.
            // With int8 activations the gate is quantized too (see `Quantization::gate_step`).
            Op::HardSwish | Op::Silu => {
                let mut gate = format!("{out}_gate");
                if matches!(n.op, Op::HardSwish) {
                    b.node(
                        "HardSigmoid",
                        &[&x],
                        &gate,
                        vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)],
                    );
                } else {
                    b.node("Sigmoid", &[&x], &gate, vec![]);
                }
                if let Some(q) = model.quant.gate_step(&graph.values[n.inputs[0]]) {
                    gate = b.qdq(&gate, &q);
                }
                b.node("Mul", &[&x, &gate], &out, vec![]);
            }
            Op::MaxPool {
                kernel,
                stride,
                pads,
            }
            | Op::AvgPool {
                kernel,
                stride,
                pads,
                ..
            } => {
                let mut attrs = vec![
                    attr_ints("kernel_shape", kernel),
                    attr_ints("strides", stride),
                    attr_ints("pads", pads),
                ];
                let kind = match n.op {
                    Op::AvgPool {
                        count_include_pad, ..
                    } => {
                        attrs.push(attr_int("count_include_pad", i64::from(count_include_pad)));
                        "AveragePool"
                    }
                    _ => "MaxPool",
                };
                b.node(kind, &[&x], &out, attrs);
            }
            Op::GlobalAvgPool => {
                let only_linear = graph
                    .nodes
                    .iter()
                    .filter(|m| m.inputs.contains(&n.output))
                    .all(|m| matches!(m.op, Op::Linear { .. }));
                if only_linear || n.output == graph.output {
                    let pooled = format!("{out}_4d");
                    b.node("GlobalAveragePool", &[&x], &pooled, vec![]);
                    b.node("Flatten", &[&pooled], &out, vec![attr_int("axis", 1)]);
                    flat[n.output] = true;
                } else {
                    b.node("GlobalAveragePool", &[&x], &out, vec![]);
                }
            }
            Op::Concat => {
                let parts: Vec<&str> = n.inputs.iter().map(|&i| read_as[i].as_str()).collect();
                b.node("Concat", &parts, &out, vec![attr_int("axis", 1)]);
            }
            Op::Channels { start, len } => {
                let bounds = [
                    ("starts", *start as i64),
                    ("ends", (start + len) as i64),
                    ("axes", 1),
                ];
                let names: Vec<String> = bounds
                    .iter()
                    .map(|(what, v)| {
                        let name = format!("{out}_{what}");
                        b.init(int64s(&name, &[*v]));
                        name
                    })
                    .collect();
                b.node(
                    "Slice",
                    &[&x, &names[0], &names[1], &names[2]],
                    &out,
                    vec![],
                );
            }
            // `[N, g·k, H, W]` → `[N, g, k, H, W]`, the channel axes swapped, and back.
            Op::ChannelShuffle { groups } => {
                let (split, merged) = (format!("{out}_split_shape"), format!("{out}_shape"));
                let [h, w] = sizes[n.output].map(|s| s as i64);
                let (c, g) = (channels[n.output] as i64, *groups as i64);
                b.init(int64s(&split, &[0, g, c / g, h, w]));
                b.init(int64s(&merged, &[0, c, h, w]));
                let (grouped, swapped) = (format!("{out}_grouped"), format!("{out}_swapped"));
                b.node("Reshape", &[&x, &split], &grouped, vec![]);
                b.node(
                    "Transpose",
                    &[&grouped],
                    &swapped,
                    vec![attr_ints("perm", &[0, 2, 1, 3, 4])],
                );
                b.node("Reshape", &[&swapped, &merged], &out, vec![]);
            }
            Op::Flatten { .. } => {
                b.node("Flatten", &[&x], &out, vec![attr_int("axis", 1)]);
                flat[n.output] = true;
            }
            Op::Linear { name, .. } => {
                // A linear layer after a squeeze-excitation-style conv on pooled values.
                let x = if flat[n.inputs[0]] {
                    x
                } else {
                    let f = format!("{x}_flat");
                    b.node("Flatten", &[&x], &f, vec![attr_int("axis", 1)]);
                    f
                };
                flat[n.output] = true;
                let w = b.param_for(&format!("{name}.weight"), WeightInts::reading(input_act))?;
                let bias = b.bias(name, input_act)?;
                b.node("Gemm", &[&x, &w, &bias], &out, vec![attr_int("transB", 1)]);
            }
        }
        if n.op.is_unary_elementwise() || matches!(n.op, Op::Add | Op::Mul) {
            flat[n.output] = flat[n.inputs[0]];
        }
        if let Some(q) = act.get(value) {
            read_as[n.output] = b.qdq(&out, q);
        }
        if let Some(q) = rounded_logits {
            b.qdq_into(&out, &q, value);
        }
    }
    let classes = model.arch.output_width();
    let [height, width] = model.arch.input_size();
    let output_name = read_as[graph.output].clone();
    if output_name != "logits" {
        return Err(Error::Structure(
            "the network's output must be the classifier's logits".into(),
        ));
    }
    let opset = opset_for(model);
    let proto = ModelProto {
        ir_version: if opset >= 21 { 10 } else { 7 },
        producer_name: "modelslim".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: format!("{}, {}", model.arch.display(), model.quant.describe()),
        graph: Some(GraphProto {
            node: b.nodes,
            name: "modelslim".into(),
            initializer: Vec::new(),
            doc_string: String::new(),
            input: vec![value_info(
                "input",
                &[None, Some(3), Some(height), Some(width)],
            )],
            output: vec![value_info("logits", &[None, Some(classes)])],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        metadata_props: vec![
            StringStringEntryProto {
                key: "modelslim.quantization".into(),
                value: model.quant.describe(),
            },
            // How photos become the input: read back when the file is imported again.
            StringStringEntryProto {
                key: crate::model::onnx::PREPROCESS_KEY.into(),
                value: serde_json::to_string(&model.preprocess()).unwrap_or_default(),
            },
        ],
    };
    Ok((proto, b.initializers))
}
