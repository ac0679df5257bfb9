//! Host-side tensors: the product's own representation of weights, independent of any backend.

use std::collections::BTreeMap;

/// A dense f32 tensor in row-major (C) order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its shape and data; the data length must equal the shape's product.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// f32 values as little-endian bytes (safetensors `F32`, ONNX `FLOAT` raw data).
pub fn f32_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Values rounded to IEEE half precision, as little-endian bytes (safetensors `F16`, ONNX
/// `FLOAT16` raw data).
pub fn f16_le_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect()
}

/// A tensor's bytes in a file, made only when the writer reaches them, with their length known
/// before: the safetensors and ONNX writers hold one tensor's bytes at a time, not a second copy
/// of a whole network.
pub struct LazyBytes<'a> {
    pub len: usize,
    make: Box<dyn Fn() -> Vec<u8> + 'a>,
}

impl<'a> LazyBytes<'a> {
    /// The bytes.
    pub fn make(&self) -> Vec<u8> {
        (self.make)()
    }

    /// f32 values, little-endian.
    pub fn f32(values: &'a [f32]) -> Self {
        LazyBytes {
            len: values.len() * 4,
            make: Box::new(move || f32_le_bytes(values)),
        }
    }

    /// f32 values rounded to half precision, little-endian.
    pub fn f16(values: &'a [f32]) -> Self {
        LazyBytes {
            len: values.len() * 2,
            make: Box::new(move || f16_le_bytes(values)),
        }
    }

    /// Signed 8-bit integers, plus `offset` (wrapping: 128 writes them as `u8` around 128).
    pub fn int8(values: &'a [i8], offset: u8) -> Self {
        LazyBytes {
            len: values.len(),
            make: Box::new(move || {
                values
                    .iter()
                    .map(|&v| (v as u8).wrapping_add(offset))
                    .collect()
            }),
        }
    }

    /// Signed 4-bit integers, two per byte (the first in the low half).
    pub fn int4(values: &'a [i8]) -> Self {
        LazyBytes {
            len: values.len().div_ceil(2),
            make: Box::new(move || crate::model::stored::pack_int4(values)),
        }
    }
}

/// Named tensors, sorted by name: a PyTorch-style `state_dict`.
pub type StateDict = BTreeMap<String, HostTensor>;

/// Gather a strided view (PyTorch storage + offset + size + stride) into a contiguous tensor;
/// `None` when the view reaches outside `storage`. Never allocates more values than `storage`
/// holds: a state_dict's tensors are plain views, and a huge size over a stride of 0 (a view
/// that repeats one value) is how a few bytes would otherwise claim terabytes.
pub fn gather_strided(
    storage: &[f32],
    offset: usize,
    size: &[usize],
    stride: &[usize],
) -> Option<Vec<f32>> {
    if size.len() != stride.len() {
        return None;
    }
    let numel = size.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s))?;
    if numel == 0 {
        return Some(Vec::new());
    }
    if numel > storage.len() {
        return None;
    }
    let mut last = offset;
    for (&s, &st) in size.iter().zip(stride) {
        last = last.checked_add((s - 1).checked_mul(st)?)?;
    }
    if last >= storage.len() {
        return None;
    }
    let mut out = Vec::with_capacity(numel);
    let mut index = vec![0usize; size.len()];
    for _ in 0..numel {
        // In bounds: every index is below its size, so the position is at most `last`.
        let pos = offset
            + index
                .iter()
                .zip(stride)
                .map(|(i, st)| i * st)
                .sum::<usize>();
        out.push(storage[pos]);
        for d in (0..size.len()).rev() {
            index[d] += 1;
            if index[d] < size[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_transpose_is_gathered() {
        // storage holds a 2x3 row-major matrix; view it transposed (3x2, strides 1,3).
        let storage = [0., 1., 2., 3., 4., 5.];
        let t = gather_strided(&storage, 0, &[3, 2], &[1, 3]).unwrap();
        assert_eq!(t, vec![0., 3., 1., 4., 2., 5.]);
        assert_eq!(
            gather_strided(&storage, 2, &[2], &[1]).unwrap(),
            vec![2., 3.]
        );
        assert!(gather_strided(&storage, 5, &[2], &[1]).is_none());
        // More values than the storage holds (a stride-0 view), overflowing sizes or
        // offsets, and mismatched ranks are refused without allocating.
        assert!(gather_strided(&storage, 0, &[1 << 40, 1 << 20], &[0, 0]).is_none());
        assert!(gather_strided(&storage, usize::MAX, &[2], &[1]).is_none());
        assert!(gather_strided(&storage, 0, &[2, 3], &[usize::MAX, 1]).is_none());
        assert!(gather_strided(&storage, 0, &[2, 3], &[3]).is_none());
    }
}
