//! Reading a CNN classifier from an ONNX file into an [`Arch`] (its graph) and its tensors.
//!
//! The file's nodes are read in order. Constants (initializers, `Constant` and
//! `ConstantOfShape` nodes) and the shape arithmetic exporters leave around a flatten
//! (`Shape`, `Gather`, `Slice`, `Concat`, `Unsqueeze`, `Squeeze`, `Cast`, `Reshape` of
//! constants) are computed here against the static input shape; what reads the image becomes
//! a graph op. Identity and dropout vanish, a trailing softmax is dropped (the logits are its
//! input), a constant added after a conv or a linear layer becomes its bias, `Clip(0, 6)` is
//! ReLU6, `Gemm` and `MatMul` are linear layers, an average pool over the whole image is a
//! global one, and the forms exporters write a hard swish or a SiLU in (`x · HardSigmoid(x)`,
//! Paddle's `Add`/`Clip`/`Mul`/`Div`, `x · Sigmoid(x)`) are one op. Any other op is refused in
//! one line that names it and its node. Every size is checked before anything is allocated;
//! tensors stored in another file are refused.

mod channels;
mod constants;
mod layers;

use constants::{Const, Data, decode_tensor, hard_swish_parts, reshape_target};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use prost::Message;

use super::arch::INPUT_SIDES;
use super::graph::{Graph, Op};
use super::imported::default_resize;
use super::{Arch, Model};
use crate::export::proto::{
    AttributeProto, DimensionValue, ModelProto, NodeProto, TensorProto, data_type,
};
use crate::limits::MAX_DECODED_VALUES;
use crate::preprocess::Preprocess;
use crate::tensor::{HostTensor, StateDict};
use crate::{Error, Result};

/// The metadata key under which modelslim's ONNX export stores the preprocessing.
pub const PREPROCESS_KEY: &str = "modelslim.preprocess";

/// The input side used when the file leaves it dynamic and nobody chose one.
pub const DEFAULT_SIDE: u32 = 224;

/// The ops a network may be built of, for the message that refuses another.
const READ_OPS: &str = "Conv, BatchNormalization, Relu, Clip, HardSwish, HardSigmoid, Sigmoid, Add, Sum, Mul, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Concat, Split, Slice, a channel shuffle (Reshape, Transpose, Reshape), Flatten, Reshape, Gemm, MatMul, Softmax, Identity, Dropout and constant shape arithmetic";

/// Whether `bytes` look like an ONNX model (a protobuf starting with its `ir_version`), not
/// a safetensors file (whose 8-byte header length is followed by `{`).
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x08) && bytes.get(8) != Some(&b'{')
}

fn err(msg: impl Into<String>) -> Error {
    Error::Onnx(msg.into())
}

/// A value computed while reading: a constant, or one the graph computes from the image.
#[derive(Debug, Clone)]
enum Val {
    Const(Const),
    /// Graph value `id`; `shape` as ONNX sees it with batch 1. `flat` when the graph's value
    /// is `[N, C]` (after global pooling) while ONNX may still call it `[N, C, 1, 1]`.
    Run {
        id: usize,
        shape: Vec<usize>,
        flat: bool,
    },
}

/// A node's attributes by name.
struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map(|a| a.f).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> String {
        self.get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_default()
    }
}

/// What comes out of an ONNX file.
struct Reader {
    /// Values by ONNX name.
    vals: HashMap<String, Val>,
    /// Initializers not decoded yet.
    inits: HashMap<String, TensorProto>,
    /// How many nodes read each ONNX name.
    readers: HashMap<String, usize>,
    /// The graph's outputs and the values that reach them through `Identity` or `Dropout`
    /// only (Paddle copies its softmax into the output).
    outputs: BTreeSet<String>,
    graph: Graph,
    weights: StateDict,
    used_names: BTreeSet<String>,
    budget: usize,
    opset: i64,
    /// Values a zero `Pad` wrote, by ONNX name: the padding `[top, left, bottom, right]` the
    /// conv that reads them adds to its own (the value itself is the unpadded one).
    padded: HashMap<String, [usize; 4]>,
}

/// Read `bytes` as an ONNX classifier called `name`; a dynamic input size becomes `size`
/// (`[height, width]`; else the other side where one is fixed, else 224). The model is
/// returned unfolded and unquantized, checked like any other.
pub fn read_onnx(bytes: &[u8], name: &str, size: Option<[u32; 2]>) -> Result<Model> {
    let proto = ModelProto::decode(bytes).map_err(|e| {
        err(format!(
            "not a readable ONNX file ({e}); is it complete? export it again or check the download"
        ))
    })?;
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1);
    let preprocess_meta = proto
        .metadata_props
        .iter()
        .find(|p| p.key == PREPROCESS_KEY)
        .map(|p| p.value.clone());
    let graph = proto.graph.ok_or_else(|| err("the file holds no graph"))?;
    if graph.node.len() > super::graph_edit::MAX_NODES * 8 {
        return Err(err(format!(
            "the graph has {} nodes; modelslim reads up to {}",
            graph.node.len(),
            super::graph_edit::MAX_NODES * 8
        )));
    }
    let mut r = Reader {
        vals: HashMap::new(),
        inits: HashMap::new(),
        readers: HashMap::new(),
        outputs: graph.output.iter().map(|o| o.name.clone()).collect(),
        graph: Graph::new(),
        weights: StateDict::new(),
        used_names: ["input", "logits", "relu6_min", "relu6_max"]
            .into_iter()
            .map(String::from)
            .collect(),
        budget: MAX_DECODED_VALUES,
        opset,
        padded: HashMap::new(),
    };
    for t in graph.initializer {
        r.inits.insert(t.name.clone(), t);
    }
    let mut nodes = hard_swish_parts(graph.node, &r.inits);
    for n in nodes.iter().rev() {
        if matches!(n.op_type.as_str(), "Identity" | "Dropout")
            && n.output.first().is_some_and(|o| r.outputs.contains(o))
            && let Some(i) = n.input.first()
        {
            r.outputs.insert(i.clone());
        }
    }
    for n in &nodes {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *r.readers.entry(i.clone()).or_default() += 1;
        }
    }
    // The image: the one graph input that is not an initializer.
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !r.inits.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(err(format!(
            "the graph has {} inputs; modelslim reads classifiers of one image",
            inputs.len()
        )));
    };
    let dims: Vec<Option<i64>> = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(DimensionValue::DimValue(v)) if v > 0 => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    // The name the NCHW image goes by: the input's, or that of the Transpose to NCHW that
    // TensorFlow's exporters put after a channels-last input (the node is then dropped).
    let mut image_name = input.name.clone();
    let fixed: [Option<i64>; 2] = match dims.as_slice() {
        [_, Some(3), h, w] => [*h, *w],
        [_, h, w, Some(3)] => {
            let to_nchw = |n: &NodeProto| {
                n.op_type == "Transpose"
                    && n.input.first() == Some(&input.name)
                    && Attrs(&n.attribute).ints("perm").as_deref() == Some(&[0, 3, 1, 2])
            };
            let alone = r.readers.get(&input.name) == Some(&1);
            let Some(at) = nodes.iter().position(to_nchw).filter(|_| alone) else {
                return Err(err(format!(
                    "input {} is NHWC ({dims:?}) and not turned to NCHW by one leading Transpose; modelslim reads NCHW networks (export with the channels first)",
                    crate::error::quoted(&input.name)
                )));
            };
            let transpose = nodes.remove(at);
            image_name = transpose.output.first().cloned().unwrap_or_default();
            [*h, *w]
        }
        _ => {
            return Err(err(format!(
                "input {} has shape {dims:?}; modelslim reads [N, 3, H, W] images",
                crate::error::quoted(&input.name)
            )));
        }
    };
    // Each side as the file fixes it, else as chosen, else as the other side or 224.
    let mut hw = [0u32; 2];
    for axis in 0..2 {
        let chosen = size.map(|s| s[axis]);
        hw[axis] = match (fixed[axis], chosen) {
            (Some(f), Some(c)) if f != i64::from(c) => {
                let side = |d: Option<i64>| d.map_or("?".to_string(), |v| v.to_string());
                return Err(err(format!(
                    "the file fixes the input at {}×{}; --input-size {}x{} does not fit it",
                    side(fixed[0]),
                    side(fixed[1]),
                    size.map_or(0, |s| s[0]),
                    size.map_or(0, |s| s[1])
                )));
            }
            (Some(f), _) => u32::try_from(f).unwrap_or(u32::MAX),
            (None, Some(c)) => c,
            (None, None) => fixed[1 - axis]
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(DEFAULT_SIDE),
        };
        if !INPUT_SIDES.contains(&hw[axis]) {
            return Err(err(format!(
                "input side {}: modelslim reads {} to {} pixels",
                hw[axis],
                INPUT_SIDES.start(),
                INPUT_SIDES.end()
            )));
        }
    }
    let [h, w] = hw;
    r.vals.insert(
        image_name,
        Val::Run {
            id: 0,
            shape: vec![1, 3, h as usize, w as usize],
            flat: false,
        },
    );
    for n in &nodes {
        r.node(n).map_err(|e| match e {
            Error::Onnx(m) => err(format!(
                "node {} ({}): {m}",
                crate::error::quoted(&n.name),
                n.op_type
            )),
            other => other,
        })?;
    }
    let out_name = graph
        .output
        .first()
        .map(|o| o.name.clone())
        .ok_or_else(|| err("the graph has no output"))?;
    let out = match r.vals.get(&out_name) {
        Some(Val::Run { id, flat: true, .. }) => *id,
        Some(Val::Run { shape, .. }) if shape.len() == 2 => {
            return Err(err(format!(
                "output {} is not computed by a classifier modelslim reads",
                crate::error::quoted(&out_name)
            )));
        }
        _ => {
            return Err(err(format!(
                "output {} is not a vector of logits [N, classes]",
                crate::error::quoted(&out_name)
            )));
        }
    };
    r.graph.output = out;
    let mut g = r.graph.reachable();
    // The output is called `logits`, as in every network modelslim writes.
    let o = g.output;
    g.values[o] = "logits".into();
    let keep: BTreeSet<String> = g.param_shapes().into_iter().map(|(k, _)| k).collect();
    r.weights.retain(|k, _| keep.contains(k));
    let preprocess = match preprocess_meta {
        Some(json) => {
            let p: Preprocess = serde_json::from_str(&json)
                .map_err(|e| err(format!("unreadable {PREPROCESS_KEY} metadata: {e}")))?;
            if p.input_hw() != [h as usize, w as usize] {
                let [ph, pw] = p.input_hw();
                return Err(err(format!(
                    "the file's preprocessing crops {ph}×{pw} but its input is {h}×{w}"
                )));
            }
            p
        }
        None => Preprocess {
            crop: h,
            crop_width: (w != h).then_some(w),
            resize: default_resize(hw),
            ..Preprocess::IMAGENET
        },
    };
    let net = Arch {
        name: name.into(),
        graph: g,
        preprocess,
        fixed_size: fixed.iter().all(Option::is_some),
    };
    Model::new(net, r.weights)
}

impl Reader {
    /// The value named `name`: computed before, or an initializer decoded now.
    fn val(&mut self, name: &str) -> Result<Val> {
        if let Some(v) = self.vals.get(name) {
            return Ok(v.clone());
        }
        let Some(t) = self.inits.remove(name) else {
            return Err(err(format!(
                "reads {}, which no earlier node writes (are the nodes out of order, or the file damaged?)",
                crate::error::quoted(name)
            )));
        };
        let c = Val::Const(decode_tensor(&t, &mut self.budget)?);
        self.vals.insert(name.into(), c.clone());
        Ok(c)
    }

    /// Input `i` of `n`, or `None` when absent (an empty name is an omitted optional input).
    fn input(&mut self, n: &NodeProto, i: usize) -> Result<Option<Val>> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            Some(name) => self.val(name).map(Some),
            None => Ok(None),
        }
    }

    fn constant(&mut self, n: &NodeProto, i: usize, what: &str) -> Result<Option<Const>> {
        match self.input(n, i)? {
            Some(Val::Const(c)) => Ok(Some(c)),
            Some(Val::Run { .. }) => Err(err(format!(
                "its {what} is computed from the image; modelslim needs it constant"
            ))),
            None => Ok(None),
        }
    }

    /// A node's `axes`: an attribute before opset 13 (18 for reductions), a constant second
    /// input after.
    fn axes(&mut self, n: &NodeProto, a: &Attrs) -> Result<Vec<i64>> {
        match a.ints("axes") {
            Some(x) => Ok(x),
            None => Ok(self
                .constant(n, 1, "axes")?
                .map(|c| c.ints())
                .unwrap_or_default()),
        }
    }

    fn required_constant(&mut self, n: &NodeProto, i: usize, what: &str) -> Result<Const> {
        self.constant(n, i, what)?
            .ok_or_else(|| err(format!("its {what} is missing")))
    }

    /// Input `i` when the image reaches it (`None` for a constant).
    fn running(&mut self, n: &NodeProto, i: usize) -> Result<Option<(usize, Vec<usize>, bool)>> {
        if n.input.get(i).is_some_and(|v| self.padded.contains_key(v)) {
            return Err(err(
                "reads a Pad's output; modelslim folds a zero Pad into a conv that reads it",
            ));
        }
        self.running_padded(n, i)
    }

    /// [`Reader::running`] of a value a `Pad` wrote too (its padding in `padded`).
    fn running_padded(
        &mut self,
        n: &NodeProto,
        i: usize,
    ) -> Result<Option<(usize, Vec<usize>, bool)>> {
        match self.input(n, i)? {
            Some(Val::Run { id, shape, flat }) => Ok(Some((id, shape, flat))),
            Some(Val::Const(_)) => Ok(None),
            None => Err(err(format!("input {i} is missing"))),
        }
    }

    fn set(&mut self, n: &NodeProto, v: Val) {
        if let Some(o) = n.output.first() {
            self.vals.insert(o.clone(), v);
        }
    }

    /// A fresh, short, unique name for what node `n` computes: the PyTorch module path in the
    /// node's name (`/features/features.1/conv/conv.0/Conv` → `features.1.conv.0`), else the
    /// weight's or the output's name.
    fn name_for(&mut self, n: &NodeProto, weight: Option<&str>) -> String {
        let from_weight = weight
            .filter(|w| !w.contains("::"))
            .and_then(|w| {
                [".weight", "_weights", ".w_0", "_w_0", "_weight"]
                    .iter()
                    .find_map(|s| w.strip_suffix(s))
            })
            .map(String::from);
        let from_path = || {
            let parts: Vec<&str> = n.name.split('/').filter(|p| !p.is_empty()).collect();
            if parts.len() < 2 {
                return None;
            }
            let mut path: Vec<&str> = Vec::new();
            for p in &parts[..parts.len() - 1] {
                match path.last() {
                    Some(last) if p.starts_with(&format!("{last}.")) => {
                        if let Some(l) = path.last_mut() {
                            *l = p;
                        }
                    }
                    _ => path.push(p),
                }
            }
            Some(path.join("."))
        };
        let raw = from_weight
            .or_else(from_path)
            .or_else(|| n.output.first().cloned())
            .unwrap_or_default();
        let mut base: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect();
        if base.is_empty() || base.starts_with('.') {
            base = format!("{}{base}", n.op_type.to_ascii_lowercase());
        }
        let mut name = base.clone();
        let mut k = 2;
        while self.used_names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used_names.insert(name.clone());
        name
    }

    /// Add `op` to the graph reading `inputs`; its value has ONNX shape `shape`.
    fn push(&mut self, n: &NodeProto, op: Op, inputs: &[usize], shape: Vec<usize>, flat: bool) {
        let name = match op.layer_name() {
            Some(l) => l.to_string(),
            None => self.name_for(n, None),
        };
        let id = self.graph.push(op, inputs, name);
        self.set(n, Val::Run { id, shape, flat });
    }

    /// Keep a constant as parameter `key`. When the file's value `source` has no other
    /// reader, its values move instead of being copied: a large file is not held twice.
    fn param(
        &mut self,
        key: String,
        c: Const,
        shape: Vec<usize>,
        source: Option<&String>,
    ) -> Result<()> {
        if c.len() != shape.iter().product::<usize>() {
            return Err(err(format!("{key} has {} values, not {shape:?}", c.len())));
        }
        if let Some(name) = source
            && self.readers.get(name) == Some(&1)
        {
            self.vals.remove(name);
        }
        let data = match c.data {
            Data::F32(v) => Arc::try_unwrap(v).unwrap_or_else(|shared| shared.to_vec()),
            Data::I64(_) => return Err(err(format!("{key} holds integers, not weights"))),
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NotFinite { key, index: i });
        }
        self.weights.insert(key, HostTensor::new(shape, data));
        Ok(())
    }

    fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(err(format!(
                "operators of domain {} are not supported (only the standard ONNX ops)",
                crate::error::quoted(&n.domain)
            )));
        }
        let a = Attrs(&n.attribute);
        if self.constant_op(n, &a)? {
            return Ok(());
        }
        match n.op_type.as_str() {
            "Identity" | "Dropout" => {
                let v = self.input(n, 0)?.ok_or_else(|| err("no input"))?;
                self.set(n, v);
            }
            "Cast" => {
                let v = self.input(n, 0)?.ok_or_else(|| err("no input"))?;
                let to = a.int("to", data_type::FLOAT as i64) as i32;
                let v = match v {
                    Val::Const(c) => Val::Const(match to {
                        data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 => Const {
                            shape: c.shape.clone(),
                            data: Data::F32(Arc::new(c.floats())),
                        },
                        _ => Const::ints1(c.shape.clone(), c.ints()),
                    }),
                    run if to == data_type::FLOAT => run,
                    Val::Run { .. } => {
                        return Err(err("casts the image's values to a type other than float"));
                    }
                };
                self.set(n, v);
            }
            "Reshape" | "Flatten" => {
                let target: Option<Vec<i64>> = if n.op_type == "Reshape" {
                    Some(match self.opset {
                        ..5 => a.ints("shape").unwrap_or_default(),
                        _ => self.required_constant(n, 1, "shape")?.ints(),
                    })
                } else {
                    None
                };
                let v = self.input(n, 0)?.ok_or_else(|| err("no input"))?;
                let in_shape = match &v {
                    Val::Const(c) => c.shape.clone(),
                    Val::Run { shape, .. } => shape.clone(),
                };
                let total = in_shape.iter().product::<usize>();
                let shape = match &target {
                    Some(t) => reshape_target(&in_shape, t)?,
                    None => {
                        let axis = a.int("axis", 1);
                        let axis = (if axis < 0 {
                            axis + in_shape.len() as i64
                        } else {
                            axis
                        })
                        .clamp(0, in_shape.len() as i64)
                            as usize;
                        let lead = in_shape[..axis].iter().product::<usize>();
                        vec![lead, total / lead.max(1)]
                    }
                };
                match v {
                    Val::Const(c) => self.set(n, Val::Const(c.reshaped(shape)?)),
                    Val::Run { id, shape: s, flat } => {
                        let channels = s.get(1).copied().unwrap_or(0);
                        let spatial: usize = s.iter().skip(2).product();
                        let to_flat = shape.len() == 2 && shape[0] == 1 && shape[1] == channels;
                        let same = shape == s;
                        // A flat value may be called [N, C, 1, 1] again (as ONNX keeps it).
                        let unflat = flat
                            && shape.len() == 4
                            && shape[..2] == s[..2]
                            && shape[2] * shape[3] == 1;
                        let view = !flat && channels::shuffle_view(&s, &shape);
                        // An image flattened, pixels and all, into a classifier's features.
                        let image_to_flat = !flat
                            && s.len() == 4
                            && shape.len() == 2
                            && shape[0] == 1
                            && shape[1] == channels * spatial;
                        if same || (to_flat && (flat || spatial == 1)) || unflat || view {
                            self.set(n, Val::Run { id, shape, flat });
                        } else if image_to_flat {
                            self.push(n, Op::Flatten { pixels: spatial }, &[id], shape, true);
                        } else {
                            return Err(err(format!(
                                "reshapes the image's values from {s:?} to {shape:?}; modelslim reads a flatten to [N, features] and a channel shuffle's reshapes only"
                            )));
                        }
                    }
                }
            }
            "Conv" => self.conv(n, &a)?,
            "BatchNormalization" => {
                let (x, shape, flat) = self
                    .running(n, 0)?
                    .ok_or_else(|| err("normalizes a constant"))?;
                if flat || shape.len() != 4 {
                    return Err(err("a batch norm on flat values"));
                }
                let c = shape[1];
                let name = self.name_for(n, n.input.get(1).map(String::as_str));
                for (i, p) in ["weight", "bias", "running_mean", "running_var"]
                    .into_iter()
                    .enumerate()
                {
                    let t = self.required_constant(n, i + 1, p)?;
                    self.param(format!("{name}.{p}"), t, vec![c], n.input.get(i + 1))?;
                }
                let eps = a.float("epsilon", 1e-5);
                self.push(
                    n,
                    Op::BatchNorm {
                        name,
                        channels: c,
                        eps,
                    },
                    &[x],
                    shape,
                    false,
                );
            }
            "Relu" | "Clip" => {
                let (x, shape, flat) =
                    self.running(n, 0)?.ok_or_else(|| err("clips a constant"))?;
                let op = if n.op_type == "Relu" {
                    Op::Relu
                } else {
                    let (lo, hi) = if self.opset < 11 {
                        (a.float("min", f32::MIN), a.float("max", f32::MAX))
                    } else {
                        let bound = |s: &mut Self, i: usize, d: f32| -> Result<f32> {
                            Ok(s.constant(n, i, "bound")?
                                .and_then(|c| c.floats().first().copied())
                                .unwrap_or(d))
                        };
                        (bound(self, 1, f32::MIN)?, bound(self, 2, f32::MAX)?)
                    };
                    match (lo, hi) {
                        (0.0, 6.0) => Op::Relu6,
                        (0.0, h) if h >= f32::MAX => Op::Relu,
                        _ => {
                            return Err(err(format!(
                                "clips to [{lo}, {hi}]; modelslim reads Clip(0, 6) (ReLU6) and Clip(0) (ReLU)"
                            )));
                        }
                    }
                };
                self.push(n, op, &[x], shape, flat);
            }
            "Add" | "Sum" => {
                if n.input.len() != 2 {
                    return Err(err(format!(
                        "sums {} inputs; modelslim reads sums of two",
                        n.input.len()
                    )));
                }
                match (self.running(n, 0)?, self.running(n, 1)?) {
                    (Some((x, sx, fx)), Some((y, sy, fy))) => {
                        if sx != sy || fx != fy {
                            return Err(err(format!(
                                "adds values of shapes {sx:?} and {sy:?}; modelslim adds equal shapes"
                            )));
                        }
                        self.push(n, Op::Add, &[x, y], sx, fx);
                    }
                    (Some(_), None) => self.add_bias(n, 0, 1)?,
                    (None, Some(_)) => self.add_bias(n, 1, 0)?,
                    (None, None) => return Err(err("adds two constants")),
                }
            }
            "MaxPool" | "AveragePool" => self.pool(n, &a)?,
            "GlobalAveragePool" | "ReduceMean" => {
                let (x, shape, flat) =
                    self.running(n, 0)?.ok_or_else(|| err("pools a constant"))?;
                if flat || shape.len() != 4 {
                    return Err(err("pools flat values"));
                }
                let keep = if n.op_type == "ReduceMean" {
                    let axes = self.axes(n, &a)?;
                    let mut ax: Vec<i64> = axes
                        .iter()
                        .map(|&x| if x < 0 { x + 4 } else { x })
                        .collect();
                    ax.sort();
                    if ax != [2, 3] {
                        return Err(err(format!(
                            "averages over axes {axes:?}; modelslim reads the mean over height and width"
                        )));
                    }
                    a.int("keepdims", 1) != 0
                } else {
                    true
                };
                let out = if keep {
                    vec![1, shape[1], 1, 1]
                } else {
                    vec![1, shape[1]]
                };
                self.push(n, Op::GlobalAvgPool, &[x], out, true);
            }
            "Gemm" | "MatMul" => self.linear(n, &a)?,
            "Sigmoid" | "HardSigmoid" | "HardSwish" => {
                let (x, shape, flat) = self
                    .running(n, 0)?
                    .ok_or_else(|| err("a function of a constant"))?;
                let op = match n.op_type.as_str() {
                    "Sigmoid" => Op::Sigmoid,
                    "HardSwish" => Op::HardSwish,
                    _ => Op::HardSigmoid {
                        alpha: a.float("alpha", 0.2),
                        beta: a.float("beta", 0.5),
                    },
                };
                self.push(n, op, &[x], shape, flat);
            }
            "Mul" => self.mul(n)?,
            "Concat" => self.concat(n, &a)?,
            "Split" => self.split(n, &a)?,
            "Slice" => self.slice(n, &a)?,
            "Transpose" => self.transpose(n, &a)?,
            "Pad" => self.pad(n, &a)?,
            "HardSwishParts" => {
                // The four nodes of `x · clip(x + 3, 0, 6) / 6` (see `hard_swish_parts`).
                let (x, shape, flat) = self
                    .running(n, 0)?
                    .ok_or_else(|| err("a function of a constant"))?;
                self.push(n, Op::HardSwish, &[x], shape, flat);
            }
            "Softmax" | "LogSoftmax" => {
                let v = self.input(n, 0)?.ok_or_else(|| err("no input"))?;
                if !n.output.first().is_some_and(|o| self.outputs.contains(o)) {
                    return Err(err(
                        "a softmax inside the network; modelslim drops only a trailing one (logits are its input)",
                    ));
                }
                self.set(n, v);
            }
            other => {
                return Err(err(format!(
                    "{other} is not supported; modelslim reads networks of {READ_OPS}"
                )));
            }
        }
        Ok(())
    }
}
