//! safetensors files: read any float tensors into a state dict, write f32 tensors with metadata.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};

use super::pth::decode_storage;
use crate::tensor::{HostTensor, StateDict};
use crate::{Error, Result};

/// The metadata key under which modelslim stores its model description (JSON).
pub const METADATA_KEY: &str = "modelslim";

/// Read every tensor of a safetensors file (F32/F16/BF16/F64 become f32; integer tensors are
/// kept only when their name ends with `num_batches_tracked`, which callers drop). Returns the
/// tensors and the file's string metadata.
pub fn read_safetensors(bytes: &[u8]) -> Result<(StateDict, HashMap<String, String>)> {
    check_header(bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(map_error)?;
    let metadata = SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone())
        .unwrap_or_default();
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
            Dtype::F64 => "f64",
            Dtype::I64 if name.ends_with("num_batches_tracked") => "i64",
            other => {
                return Err(Error::DType {
                    key: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        let data = decode_storage(view.data(), dtype);
        out.insert(name, HostTensor::new(view.shape().to_vec(), data));
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
    let bytes: Vec<(&String, Vec<u8>, &Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (k, b, &t.shape)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, shape)| {
            TensorView::new(Dtype::F32, shape.to_vec(), b)
                .map(|v| (k.as_str(), v))
                .map_err(|e| Error::Invalid(format!("tensor '{k}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Invalid(e.to_string()))
}
