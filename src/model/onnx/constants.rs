//! Constants while reading an ONNX file: tensors decoded with every size checked first,
//! the shape arithmetic exporters leave around a flatten, and the hard-swish pattern Paddle
//! writes as four nodes.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Attrs, Reader, Val, err};
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
    // Each value's writer, found once (not a search per node: a file may hold many nodes).
    let writers: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.output.first().map(|o| (o.as_str(), i)))
        .collect();
    let producer = |name: &str| writers.get(name).copied();
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

/// `x op y` for constants of one shape, or one of them a single value; integers stay
/// integers (`Div` truncates, as ONNX's does), and an overflow or a division by zero is refused.
fn arithmetic(op: &str, x: &Const, y: &Const) -> Result<Const> {
    let (nx, ny) = (x.len(), y.len());
    let (shape, n) = if x.shape == y.shape || ny == 1 {
        (x.shape.clone(), nx)
    } else if nx == 1 {
        (y.shape.clone(), ny)
    } else {
        return Err(err(format!(
            "{op} of constants of shapes {:?} and {:?}; modelslim computes equal shapes or a single value",
            x.shape, y.shape
        )));
    };
    let at = |len: usize, i: usize| if len == 1 { 0 } else { i };
    let data = match (&x.data, &y.data) {
        (Data::I64(a), Data::I64(b)) => {
            let v = (0..n)
                .map(|i| {
                    let (p, q) = (a[at(nx, i)], b[at(ny, i)]);
                    match op {
                        "Add" => p.checked_add(q),
                        "Sub" => p.checked_sub(q),
                        "Mul" => p.checked_mul(q),
                        _ => p.checked_div(q),
                    }
                    .ok_or_else(|| err(format!("{op} of {p} and {q} overflows or divides by zero")))
                })
                .collect::<Result<Vec<i64>>>()?;
            Data::I64(Arc::new(v))
        }
        _ => {
            let (a, b) = (x.floats(), y.floats());
            let v = (0..n)
                .map(|i| {
                    let (p, q) = (a[at(nx, i)], b[at(ny, i)]);
                    match op {
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Mul" => p * q,
                        _ => p / q,
                    }
                })
                .collect();
            Data::F32(Arc::new(v))
        }
    };
    Ok(Const { shape, data })
}

impl Reader {
    /// The ops that compute constants — `Constant`, `ConstantOfShape`, and the shape
    /// arithmetic of `Shape`, `Gather`, `Slice`, `Concat`, `Unsqueeze`, `Squeeze`, and
    /// `Add`, `Sub`, `Mul`, `Div` of two constants (a split's sizes, as torch's TorchScript
    /// exporter writes `chunk`) — computed now. Returns whether `n` was one.
    pub(super) fn constant_op(&mut self, n: &NodeProto, a: &Attrs) -> Result<bool> {
        // A concatenation, slice or arithmetic of the image's values is a graph op.
        if matches!(
            n.op_type.as_str(),
            "Concat" | "Slice" | "Add" | "Sub" | "Mul" | "Div"
        ) && (0..n.input.len()).any(|i| matches!(self.is_running(n, i), Ok(true)))
        {
            return Ok(false);
        }
        match n.op_type.as_str() {
            op @ ("Add" | "Sub" | "Mul" | "Div") if n.input.len() == 2 => {
                let x = self.required_constant(n, 0, "first input")?;
                let y = self.required_constant(n, 1, "second input")?;
                self.set(n, Val::Const(arithmetic(op, &x, &y)?));
            }
            "Constant" => {
                let c = if let Some(t) = a.get("value").and_then(|v| v.t.as_ref()) {
                    decode_tensor(t, &mut self.budget)?
                } else if let Some(v) = a.get("value_float") {
                    Const {
                        shape: vec![],
                        data: Data::F32(Arc::new(vec![v.f])),
                    }
                } else if let Some(v) = a.get("value_floats") {
                    Const {
                        shape: vec![v.floats.len()],
                        data: Data::F32(Arc::new(v.floats.clone())),
                    }
                } else if let Some(v) = a.get("value_int") {
                    Const::ints1(vec![], vec![v.i])
                } else if let Some(v) = a.get("value_ints") {
                    Const::ints1(vec![v.ints.len()], v.ints.clone())
                } else {
                    return Err(err("a constant without a value modelslim reads"));
                };
                self.set(n, Val::Const(c));
            }
            "ConstantOfShape" => {
                let shape = self.required_constant(n, 0, "shape")?.ints();
                let shape = dims(&shape)?;
                let count = checked_count(&shape)?;
                self.budget = self
                    .budget
                    .checked_sub(count)
                    .ok_or_else(|| err("the constants hold too many values"))?;
                let fill = match a.get("value").and_then(|v| v.t.as_ref()) {
                    Some(t) => decode_tensor(t, &mut usize::MAX.clone())?,
                    None => Const {
                        shape: vec![1],
                        data: Data::F32(Arc::new(vec![0.0])),
                    },
                };
                let data = match fill.data {
                    Data::F32(v) => {
                        Data::F32(Arc::new(vec![v.first().copied().unwrap_or(0.0); count]))
                    }
                    Data::I64(v) => {
                        Data::I64(Arc::new(vec![v.first().copied().unwrap_or(0); count]))
                    }
                };
                self.set(n, Val::Const(Const { shape, data }));
            }
            "Shape" => {
                let Some((_, shape, _)) = self.running(n, 0)? else {
                    let c = self.required_constant(n, 0, "input")?;
                    let s: Vec<i64> = c.shape.iter().map(|&d| d as i64).collect();
                    self.set(n, Val::Const(Const::ints1(vec![s.len()], s)));
                    return Ok(true);
                };
                let rank = shape.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let start = clamp(a.int("start", 0));
                let end = clamp(a.int("end", rank)).max(start);
                let s: Vec<i64> = shape[start..end].iter().map(|&d| d as i64).collect();
                self.set(n, Val::Const(Const::ints1(vec![s.len()], s)));
            }
            "Gather" => {
                let data = self.required_constant(n, 0, "data")?;
                let idx = self.required_constant(n, 1, "indices")?;
                if data.shape.len() > 1 || a.int("axis", 0) != 0 {
                    return Err(err("gathers from a constant of more than one dimension"));
                }
                let len = data.len() as i64;
                let picks: Vec<usize> = idx
                    .ints()
                    .iter()
                    .map(|&i| (if i < 0 { i + len } else { i }).max(0) as usize)
                    .collect();
                let mut c = data.pick(&picks)?;
                c.shape = idx.shape.clone();
                self.set(n, Val::Const(c));
            }
            "Slice" => {
                let data = self.required_constant(n, 0, "data")?;
                if data.shape.len() != 1 {
                    return Err(err("slices a constant of more than one dimension"));
                }
                let (starts, ends, axes, steps) = if self.opset < 10 {
                    (a.ints("starts"), a.ints("ends"), a.ints("axes"), None)
                } else {
                    let g = |s: &mut Self, i: usize| -> Result<Option<Vec<i64>>> {
                        Ok(s.constant(n, i, "slice bound")?.map(|c| c.ints()))
                    };
                    (g(self, 1)?, g(self, 2)?, g(self, 3)?, g(self, 4)?)
                };
                let (Some([start]), Some([end])) = (starts.as_deref(), ends.as_deref()) else {
                    return Err(err("a slice without one start and one end"));
                };
                if axes.is_some_and(|x| x.as_slice() != [0] && x.as_slice() != [-1])
                    || steps.is_some_and(|s| s.as_slice() != [1])
                {
                    return Err(err("a slice other than along its only axis, step 1"));
                }
                let len = data.len() as i64;
                let at = |v: i64| (if v < 0 { v + len } else { v }).clamp(0, len) as usize;
                let (s, e) = (at(*start), at(*end));
                let picks: Vec<usize> = (s..e.max(s)).collect();
                self.set(n, Val::Const(data.pick(&picks)?));
            }
            "Concat" => {
                let mut parts = Vec::new();
                for i in 0..n.input.len() {
                    let c = self.required_constant(n, i, "input")?;
                    if c.shape.len() > 1 {
                        return Err(err("concatenates constants of more than one dimension"));
                    }
                    parts.push(c);
                }
                let data = if parts.iter().all(|c| matches!(c.data, Data::I64(_))) {
                    let v: Vec<i64> = parts.iter().flat_map(|c| c.ints()).collect();
                    Const::ints1(vec![v.len()], v)
                } else {
                    let v: Vec<f32> = parts.iter().flat_map(|c| c.floats()).collect();
                    Const {
                        shape: vec![v.len()],
                        data: Data::F32(Arc::new(v)),
                    }
                };
                self.set(n, Val::Const(data));
            }
            "Unsqueeze" | "Squeeze" => {
                let c = self.required_constant(n, 0, "input")?;
                let axes = self.axes(n, a)?;
                let mut shape = c.shape.clone();
                if n.op_type == "Unsqueeze" {
                    let rank = (shape.len() + axes.len()) as i64;
                    let mut ax: Vec<usize> = axes
                        .iter()
                        .map(|&x| (if x < 0 { x + rank } else { x }).clamp(0, rank) as usize)
                        .collect();
                    ax.sort();
                    for x in ax {
                        shape.insert(x.min(shape.len()), 1);
                    }
                } else {
                    let rank = shape.len() as i64;
                    let ax: Vec<usize> = axes
                        .iter()
                        .map(|&x| (if x < 0 { x + rank } else { x }).max(0) as usize)
                        .collect();
                    shape = shape
                        .iter()
                        .enumerate()
                        .filter(|(i, d)| !(**d == 1 && (ax.is_empty() || ax.contains(i))))
                        .map(|(_, d)| *d)
                        .collect();
                }
                self.set(n, Val::Const(c.reshaped(shape)?));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[i64]) -> Const {
        Const::ints1(vec![v.len()], v.to_vec())
    }

    #[test]
    fn constant_arithmetic_keeps_integers_and_refuses_what_it_cannot_compute() {
        // torch's `chunk(2)` of 116 channels: (116 + 1) / 2 · 1 and · 2.
        let half = arithmetic(
            "Div",
            &arithmetic("Add", &ints(&[116]), &ints(&[1])).unwrap(),
            &ints(&[2]),
        )
        .unwrap();
        assert_eq!(half.ints(), [58]);
        assert!(matches!(half.data, Data::I64(_)));
        assert_eq!(arithmetic("Mul", &half, &ints(&[2])).unwrap().ints(), [116]);
        assert_eq!(
            arithmetic("Sub", &ints(&[1]), &ints(&[5, 7]))
                .unwrap()
                .ints(),
            [-4, -6]
        );
        assert_eq!(
            arithmetic("Div", &ints(&[-7]), &ints(&[2])).unwrap().ints(),
            [-3]
        );
        let f = Const {
            shape: vec![2],
            data: Data::F32(Arc::new(vec![1.0, 3.0])),
        };
        assert_eq!(
            arithmetic("Div", &f, &ints(&[2])).unwrap().floats(),
            [0.5, 1.5]
        );
        assert!(arithmetic("Div", &ints(&[1]), &ints(&[0])).is_err());
        assert!(arithmetic("Add", &ints(&[i64::MAX]), &ints(&[1])).is_err());
        assert!(arithmetic("Add", &ints(&[1, 2]), &ints(&[1, 2, 3])).is_err());
    }
}
