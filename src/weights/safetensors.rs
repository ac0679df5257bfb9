//! safetensors files: read and write tensors as stored, or float tensors as a state dict.

use std::collections::{BTreeMap, HashMap};

pub use safetensors::tensor::Dtype;
use safetensors::tensor::{SafeTensorError, SafeTensors, TensorView};

use super::pth::decode_storage;
use crate::tensor::{HostTensor, StateDict, f32_le_bytes};
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
    /// f32 values, little-endian.
    pub fn from_f32(shape: Vec<usize>, data: &[f32]) -> Self {
        RawTensor {
            dtype: Dtype::F32,
            shape,
            bytes: f32_le_bytes(data),
        }
    }

    /// The values as f32 when the tensor is a float type (F32/F16/BF16/F64).
    pub fn float_values(&self, name: &str) -> Result<Vec<f32>> {
        let dtype = match self.dtype {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
            Dtype::F64 => "f64",
            other => {
                return Err(Error::DType {
                    key: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(decode_storage(&self.bytes, dtype))
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
    let raw = tensors
        .iter()
        .map(|(k, t)| (k.clone(), RawTensor::from_f32(t.shape.clone(), &t.data)))
        .collect();
    write_raw(&raw, metadata)
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
