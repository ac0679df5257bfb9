//! Constants while reading an ONNX file: tensors decoded with every size checked first,
//! the shape arithmetic exporters leave around a flatten, and the hard-swish pattern Paddle
//! writes as four nodes.

use std::collections::HashMap;
use std::sync::Arc;

use super::err;
use crate::Result;
use crate::export::proto::{NodeProto, TensorProto, data_type};
use crate::limits::MAX_DECODED_VALUES;

#[derive(Debug, Clone)]
pub(super) struct Const {
    pub(super) shape: Vec<usize>,
    pub(super) data: Data,
}

#[derive(Debug, Clone)]
pub(super) enum Data {
    F32(Arc<Vec<f32>>),
    I64(Arc<Vec<i64>>),
}

impl Const {
    pub(super) fn ints(&self) -> Vec<i64> {
        match &self.data {
            Data::I64(v) => v.to_vec(),
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    pub(super) fn floats(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.to_vec(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    pub(super) fn ints1(shape: Vec<usize>, v: Vec<i64>) -> Const {
        Const {
            shape,
            data: Data::I64(Arc::new(v)),
        }
    }

    /// The same values under `shape` (whose size must match).
    pub(super) fn reshaped(&self, shape: Vec<usize>) -> Result<Const> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(err(format!(
                "cannot reshape {} values to {shape:?}",
                self.len()
            )));
        }
        Ok(Const {
            shape,
            data: self.data.clone(),
        })
    }

    /// Elements `idx` of this 1-D (or scalar) constant.
    pub(super) fn pick(&self, idx: &[usize]) -> Result<Const> {
        let n = self.len();
        if let Some(&i) = idx.iter().find(|&&i| i >= n) {
            return Err(err(format!("index {i} out of {n} values")));
        }
        let data = match &self.data {
            Data::F32(v) => Data::F32(Arc::new(idx.iter().map(|&i| v[i]).collect())),
            Data::I64(v) => Data::I64(Arc::new(idx.iter().map(|&i| v[i]).collect())),
        };
        Ok(Const {
            shape: vec![idx.len()],
            data,
        })
    }
}

/// A tensor's values, every size checked against the file's length and the caps first.
pub(super) fn decode_tensor(t: &TensorProto, budget: &mut usize) -> Result<Const> {
    let name = crate::error::quoted(&t.name);
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(err(format!(
            "tensor {name} is stored in a separate file; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))"
        )));
    }
    let mut shape = Vec::with_capacity(t.dims.len().min(8));
    let mut n: usize = 1;
    if t.dims.len() > 8 {
        return Err(err(format!(
            "tensor {name} has {} dimensions",
            t.dims.len()
        )));
    }
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| err(format!("tensor {name} has dimension {d}")))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_DECODED_VALUES)
            .ok_or_else(|| {
                err(format!(
                    "tensor {name} claims more than {MAX_DECODED_VALUES} values"
                ))
            })?;
        shape.push(d);
    }
    *budget = budget.checked_sub(n).ok_or_else(|| {
        err(format!(
            "the tensors hold more than {MAX_DECODED_VALUES} values in all"
        ))
    })?;
    let raw = &t.raw_data;
    let lying = |have: usize| {
        err(format!(
            "tensor {name} has shape {shape:?} ({n} values) but holds {have}"
        ))
    };
    let chunks = |size: usize| -> Result<std::slice::ChunksExact<'_, u8>> {
        if raw.len() != n * size {
            return Err(lying(raw.len() / size));
        }
        Ok(raw.chunks_exact(size))
    };
    let data = match t.data_type {
        data_type::FLOAT if !raw.is_empty() => Data::F32(Arc::new(
            chunks(4)?
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )),
        data_type::FLOAT => {
            if t.float_data.len() != n {
                return Err(lying(t.float_data.len()));
            }
            Data::F32(Arc::new(t.float_data.clone()))
        }
        data_type::FLOAT16 if !raw.is_empty() => Data::F32(Arc::new(
            chunks(2)?
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        )),
        data_type::FLOAT16 => {
            if t.int32_data.len() != n {
                return Err(lying(t.int32_data.len()));
            }
            Data::F32(Arc::new(
                t.int32_data
                    .iter()
                    .map(|&b| half::f16::from_bits(b as u16).to_f32())
                    .collect(),
            ))
        }
        data_type::DOUBLE if !raw.is_empty() => Data::F32(Arc::new(
            chunks(8)?
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
        )),
        data_type::DOUBLE => {
            if t.double_data.len() != n {
                return Err(lying(t.double_data.len()));
            }
            Data::F32(Arc::new(t.double_data.iter().map(|&v| v as f32).collect()))
        }
        data_type::INT64 if !raw.is_empty() => Data::I64(Arc::new(
            chunks(8)?
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        )),
        data_type::INT64 => {
            if t.int64_data.len() != n {
                return Err(lying(t.int64_data.len()));
            }
            Data::I64(Arc::new(t.int64_data.clone()))
        }
        data_type::INT32 if !raw.is_empty() => Data::I64(Arc::new(
            chunks(4)?
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        )),
        data_type::INT32 => {
            if t.int32_data.len() != n {
                return Err(lying(t.int32_data.len()));
            }
            Data::I64(Arc::new(t.int32_data.iter().map(|&v| v as i64).collect()))
        }
        other => {
            return Err(err(format!(
                "tensor {name} has data type {other}; modelslim reads float, float16, double, int32 and int64 tensors"
            )));
        }
    };
    Ok(Const { shape, data })
}

/// `nodes` with each hard swish written as four nodes — `Add(x, 3)`, `Clip(·, 0, 6)`,
/// `Mul(x, ·)`, `Div(·, 6)` (Paddle's export; or `Mul(·, 1/6)`), each read only by the next —
/// replaced by one `HardSwishParts` node reading `x`.
pub(super) fn hard_swish_parts(
    nodes: Vec<NodeProto>,
    inits: &HashMap<String, TensorProto>,
) -> Vec<NodeProto> {
    // Scalars from initializers and `Constant` nodes.
    let scalar_of = |t: &TensorProto| {
        let mut budget = 16;
        decode_tensor(t, &mut budget)
            .ok()
            .filter(|c| c.len() == 1)
            .and_then(|c| c.floats().first().copied())
    };
    let mut scalars: HashMap<&str, f32> = HashMap::new();
    for (name, t) in inits {
        if let Some(v) = scalar_of(t) {
            scalars.insert(name, v);
        }
    }
    for n in &nodes {
        if n.op_type == "Constant"
            && let (Some(o), Some(t)) = (
                n.output.first(),
                n.attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref()),
            )
            && let Some(v) = scalar_of(t)
        {
            scalars.insert(o, v);
        }
    }
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for i in nodes.iter().flat_map(|n| &n.input) {
        *readers.entry(i).or_default() += 1;
    }
    let producer = |name: &str| {
        nodes
            .iter()
            .position(|n| n.output.first().map(String::as_str) == Some(name))
    };
    let is = |i: usize, op: &str| nodes[i].op_type == op;
    let scalar = |name: Option<&String>| name.and_then(|n| scalars.get(n.as_str()).copied());
    let alone = |i: usize| {
        nodes[i]
            .output
            .first()
            .is_some_and(|o| readers.get(o.as_str()) == Some(&1))
    };
    let mut drop = vec![false; nodes.len()];
    let mut replace: Vec<(usize, NodeProto)> = Vec::new();
    for (d, n) in nodes.iter().enumerate() {
        let by_six = match n.op_type.as_str() {
            "Div" => scalar(n.input.get(1)) == Some(6.0),
            "Mul" => scalar(n.input.get(1)).is_some_and(|v| (v - 1.0 / 6.0).abs() < 1e-6),
            _ => false,
        };
        if !by_six {
            continue;
        }
        let found = (|| {
            let m = producer(n.input.first()?)?;
            if !is(m, "Mul") || !alone(m) {
                return None;
            }
            for (xi, ci) in [(0, 1), (1, 0)] {
                let x = nodes[m].input.get(xi)?;
                let Some(c) = producer(nodes[m].input.get(ci)?) else {
                    continue;
                };
                if !is(c, "Clip") || !alone(c) {
                    continue;
                }
                let (lo, hi) = (scalar(nodes[c].input.get(1)), scalar(nodes[c].input.get(2)));
                let Some(a) = producer(nodes[c].input.first()?) else {
                    continue;
                };
                let adds_three = is(a, "Add")
                    && alone(a)
                    && nodes[a].input.first() == Some(x)
                    && scalar(nodes[a].input.get(1)) == Some(3.0);
                if adds_three && lo == Some(0.0) && hi == Some(6.0) {
                    return Some((x.clone(), [a, c, m]));
                }
            }
            None
        })();
        if let Some((x, parts)) = found {
            for p in parts {
                drop[p] = true;
            }
            replace.push((
                d,
                NodeProto {
                    op_type: "HardSwishParts".into(),
                    input: vec![x],
                    ..n.clone()
                },
            ));
        }
    }
    let mut out = nodes;
    for (d, node) in replace {
        out[d] = node;
    }
    out.into_iter()
        .enumerate()
        .filter(|(i, _)| !drop[*i])
        .map(|(_, n)| n)
        .collect()
}

/// Non-negative dims.
pub(super) fn dims(v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("dimension {d}"))))
        .collect()
}

pub(super) fn checked_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_DECODED_VALUES)
        .ok_or_else(|| err(format!("a constant of shape {shape:?} is too large")))
}

/// ONNX `Reshape`'s target: `0` copies the input's dimension, `-1` takes the rest.
pub(super) fn reshape_target(input: &[usize], target: &[i64]) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => out.push(input.get(i).copied().unwrap_or(0)),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            t if t > 0 => out.push(t as usize),
            _ => return Err(err(format!("reshape to {target:?}"))),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(err(format!("reshape of {input:?} to {target:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(err(format!("reshape of {input:?} to {target:?}")));
    }
    Ok(out)
}
