//! safetensors files: read and write tensors as stored, or float tensors as a state dict.

use std::collections::{BTreeMap, HashMap};

pub use safetensors::tensor::Dtype;
use safetensors::tensor::{SafeTensorError, SafeTensors, TensorView};

use super::pth::decode_storage;
use crate::error::quoted;
use crate::tensor::{HostTensor, LazyBytes, StateDict};
use crate::{Error, Result};

/// The metadata key under which modelslim stores its model description (JSON).
pub const METADATA_KEY: &str = "modelslim";

/// One tensor as the file stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// The values as f32 when the tensor is a float type (F32/F16/BF16/F64).
    pub fn float_values(&self, name: &str) -> Result<Vec<f32>> {
        Ok(decode_storage(&self.bytes, self.float_dtype(name)?))
    }

    /// The storage's float type (`f32`, `f16`, `bf16`, `f64`), or the error that names tensor
    /// `name` and its type.
    pub fn float_dtype(&self, name: &str) -> Result<&'static str> {
        match self.dtype {
            Dtype::F32 => Ok("f32"),
            Dtype::F16 => Ok("f16"),
            Dtype::BF16 => Ok("bf16"),
            Dtype::F64 => Ok("f64"),
            other => Err(Error::DType {
                key: name.to_string(),
                dtype: format!("{other:?}"),
            }),
        }
    }
}

/// Every tensor of a safetensors file as stored, and the file's string metadata.
pub fn read_raw(bytes: &[u8]) -> Result<(BTreeMap<String, RawTensor>, HashMap<String, String>)> {
    check_header(bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(map_error)?;
    let metadata = SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone())
        .unwrap_or_default();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let raw = RawTensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (name, raw)
        })
        .collect();
    Ok((tensors, metadata))
}

/// Read every float tensor of a safetensors file into a state dict (F32/F16/BF16/F64 become
/// f32; an integer tensor is an error unless its name ends with `num_batches_tracked`, which
/// is dropped). Returns the tensors and the file's string metadata.
pub fn read_safetensors(bytes: &[u8]) -> Result<(StateDict, HashMap<String, String>)> {
    let (raw, metadata) = read_raw(bytes)?;
    let mut out = StateDict::new();
    for (name, t) in raw {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let data = t.float_values(&name)?;
        out.insert(name, HostTensor::new(t.shape, data));
    }
    Ok((out, metadata))
}

/// Tell a truncated safetensors file from something that is not one at all, before parsing.
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 {
        return Err(Error::NotSafetensors(format!(
            "the file is only {} bytes long",
            bytes.len()
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    if bytes.len() > 8 && bytes[8] != b'{' {
        return Err(Error::NotSafetensors(
            "it does not start with a safetensors JSON header".into(),
        ));
    }
    if n > 100_000_000 {
        return Err(Error::NotSafetensors(format!(
            "its header claims {n} bytes"
        )));
    }
    if 8 + n > bytes.len() as u64 {
        return Err(Error::Truncated(format!(
            "the header needs {} bytes but the file has {}",
            8 + n,
            bytes.len()
        )));
    }
    check_entries(&bytes[8..8 + n as usize], bytes.len() - 8 - n as usize)
}

/// Bytes per value of a safetensors dtype name; `None` for names the reader does not use.
fn dtype_size(name: &str) -> Option<u64> {
    Some(match name {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" => 1,
        _ => return None,
    })
}

/// Each tensor's entry checked against the data it points at, naming the tensor: the
/// safetensors crate's own message ("invalid shape, data type, or offset for tensor") names
/// none. Sizes are multiplied with overflow checks, before anything is allocated.
fn check_entries(header: &[u8], data_len: usize) -> Result<()> {
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice(header) else {
        // Not JSON: the crate reports it.
        return Ok(());
    };
    for (name, entry) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let damaged = |why: String| {
            Err(Error::NotSafetensors(format!(
                "tensor {}: {why} (damaged file?)",
                quoted(name)
            )))
        };
        let (Some(dtype), Some(shape), Some(offsets)) = (
            entry.get("dtype").and_then(|d| d.as_str()),
            entry.get("shape").and_then(|s| s.as_array()),
            entry.get("data_offsets").and_then(|o| o.as_array()),
        ) else {
            return damaged("its entry lacks a dtype, shape or data offsets".into());
        };
        let Some(size) = dtype_size(dtype) else {
            continue;
        };
        let dims: Option<Vec<u64>> = shape.iter().map(serde_json::Value::as_u64).collect();
        let needed = dims.and_then(|d| d.iter().try_fold(size, |acc, &x| acc.checked_mul(x)));
        let (Some(begin), Some(end)) = (
            offsets.first().and_then(serde_json::Value::as_u64),
            offsets.get(1).and_then(serde_json::Value::as_u64),
        ) else {
            return damaged("its data offsets are not two numbers".into());
        };
        if end > data_len as u64 {
            return Err(Error::Truncated(format!(
                "tensor {}'s data ends at byte {end} of {data_len}",
                quoted(name)
            )));
        }
        if begin > end {
            return damaged(format!("its data offsets [{begin}, {end}) run backwards"));
        }
        match needed {
            Some(n) if n == end - begin => {}
            _ => {
                return damaged(format!(
                    "shape {} of {dtype} does not fill its {} bytes",
                    serde_json::Value::Array(shape.clone()),
                    end - begin
                ));
            }
        }
    }
    Ok(())
}

fn map_error(e: SafeTensorError) -> Error {
    match e {
        SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidHeaderLength => {
            Error::Truncated("the tensor data ends before the header says it should".into())
        }
        other => Error::NotSafetensors(other.to_string()),
    }
}

/// Serialise f32 tensors (in name order) with string metadata.
pub fn write_safetensors(
    tensors: &StateDict,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let lazy = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), LazyTensor::f32(k, t.shape.clone(), &t.data)?)))
        .collect::<Result<Vec<_>>>()?;
    write_lazy(lazy, metadata)
}

/// A tensor to write whose bytes are made only when the writer reaches it: a file's tensors
/// are not all converted at once beside the model that holds their values (for a 100 MB
/// network, a second copy of every weight).
pub struct LazyTensor<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: LazyBytes<'a>,
}

impl<'a> LazyTensor<'a> {
    /// A tensor of `dtype` and `shape` whose `bytes` are its little-endian values; refused when
    /// they are not as many as the shape needs.
    pub fn new(name: &str, dtype: Dtype, shape: Vec<usize>, bytes: LazyBytes<'a>) -> Result<Self> {
        let len = bytes.len;
        let bits = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.bitsize()));
        if bits != len.checked_mul(8) {
            return Err(Error::Invalid(format!(
                "tensor {}: {len} bytes do not fill shape {shape:?} of {dtype:?}",
                quoted(name)
            )));
        }
        Ok(LazyTensor {
            dtype,
            shape,
            bytes,
        })
    }

    /// f32 values, written little-endian.
    pub fn f32(name: &str, shape: Vec<usize>, data: &'a [f32]) -> Result<Self> {
        LazyTensor::new(name, Dtype::F32, shape, LazyBytes::f32(data))
    }
}

impl safetensors::tensor::View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.bytes.make())
    }

    fn data_len(&self) -> usize {
        self.bytes.len
    }
}

/// Serialise `tensors` (written in name order, each converted as it is written) with string
/// metadata.
pub fn write_lazy(
    tensors: Vec<(String, LazyTensor<'_>)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    safetensors::serialize(tensors, Some(metadata)).map_err(|e| Error::Invalid(e.to_string()))
}

/// Serialise tensors as stored (in name order) with string metadata.
pub fn write_raw(
    tensors: &BTreeMap<String, RawTensor>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(k, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (k.as_str(), v))
                .map_err(|e| Error::Invalid(format!("tensor '{k}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Invalid(e.to_string()))
}
