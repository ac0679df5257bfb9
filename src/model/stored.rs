//! The modelslim safetensors file: tensors as stored — int8 values (`I8`) or int4 values packed
//! two per byte (`U8`, first element in the low nibble, as ONNX packs `INT4`) each with its
//! `{name}_scale` (`F32`), fp16 (`F16`) or fp32 — and, in the metadata, the network (its graph,
//! name and preprocessing), whether batch norms are folded, each stored tensor's format and the activations'
//! quantization. Loading dequantizes exactly as `DequantizeLinear` does, so a reloaded model
//! computes what the saved one did.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::arch::STORED_AS;
use super::{Arch, Model, check_state_dict};
use crate::quant::{ActQuant, Granularity, Quantization, QuantizedTensor, qmax, scale_shape};
use crate::tensor::{HostTensor, LazyBytes, StateDict};
use std::sync::Arc;

use crate::weights::safetensors::{
    Dtype, LazyTensor, METADATA_KEY, RawTensor, read_raw, write_lazy,
};
use crate::{Error, Result};

/// How one tensor is stored, when not fp32.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorFormat {
    F16,
    Int { bits: u32, granularity: Granularity },
}

/// The version of [`FileMetadata`] this modelslim writes and the newest it reads: 1 stores
/// the network as its graph (files without a version store a ResNet18's or
/// EfficientNet-Lite0's config, or, read from ONNX, a graph).
pub const FORMAT_VERSION: u32 = 1;

/// What a modelslim file says about itself in its safetensors metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileMetadata {
    /// The metadata's version ([`FORMAT_VERSION`]; 0 in files written before versions).
    #[serde(default)]
    pub format: u32,
    /// How the network is stored: `graph` (older files: `resnet18`, `efficientnet-lite0`).
    pub architecture: String,
    /// The network: its graph, name and preprocessing (older files: a config of every
    /// width).
    pub config: serde_json::Value,
    /// Batch norms folded into conv biases.
    #[serde(default)]
    pub folded: bool,
    /// Tensors not stored as fp32.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tensors: BTreeMap<String, TensorFormat>,
    /// Quantized activations, by value name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub activations: BTreeMap<String, ActQuant>,
    /// The step of the logits where activations are quantized (modelslim rounds them to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits: Option<ActQuant>,
    /// Weights whose zeros are pruned weights (kept at zero when the model is trained).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sparse: BTreeSet<String>,
    /// The class names, when they are not ImageNet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// The name of a quantized tensor's scales.
pub fn scale_key(key: &str) -> String {
    format!("{key}_scale")
}

/// Pack signed 4-bit values two per byte, the first in the low nibble.
pub fn pack_int4(values: &[i8]) -> Vec<u8> {
    values
        .chunks(2)
        .map(|p| {
            let lo = (p[0] as u8) & 0x0f;
            let hi = p.get(1).map(|&v| (v as u8) & 0x0f).unwrap_or(0);
            lo | (hi << 4)
        })
        .collect()
}

/// Unpack `n` signed 4-bit values.
pub fn unpack_int4(bytes: &[u8], n: usize) -> Vec<i8> {
    let sign = |v: u8| ((v << 4) as i8) >> 4;
    bytes
        .iter()
        .flat_map(|&b| [sign(b & 0x0f), sign(b >> 4)])
        .take(n)
        .collect()
}

/// Serialise `model` as a modelslim safetensors file.
pub fn write_model(model: &Model) -> Result<Vec<u8>> {
    let q = &model.quant;
    // Each tensor's bytes are made as the writer reaches it (see `LazyTensor`).
    let mut tensors: Vec<(String, LazyTensor)> = Vec::new();
    let mut formats = BTreeMap::new();
    for (key, t) in &model.weights {
        if let Some(qt) = q.int.get(key) {
            let tensor = if qt.bits == 8 {
                LazyTensor::new(
                    key,
                    Dtype::I8,
                    qt.shape.clone(),
                    LazyBytes::int8(&qt.values, 0),
                )?
            } else {
                let packed = LazyBytes::int4(&qt.values);
                LazyTensor::new(key, Dtype::U8, vec![packed.len], packed)?
            };
            tensors.push((key.clone(), tensor));
            let scales = scale_key(key);
            let tensor = LazyTensor::f32(&scales, vec![qt.scales.len()], &qt.scales)?;
            tensors.push((scales, tensor));
            formats.insert(
                key.clone(),
                TensorFormat::Int {
                    bits: qt.bits,
                    granularity: qt.granularity,
                },
            );
        } else if q.f16.contains(key) {
            let tensor =
                LazyTensor::new(key, Dtype::F16, t.shape.clone(), LazyBytes::f16(&t.data))?;
            tensors.push((key.clone(), tensor));
            formats.insert(key.clone(), TensorFormat::F16);
        } else {
            tensors.push((key.clone(), LazyTensor::f32(key, t.shape.clone(), &t.data)?));
        }
    }
    let card = FileMetadata {
        format: FORMAT_VERSION,
        architecture: STORED_AS.into(),
        config: model.arch.config_json(),
        folded: model.folded,
        tensors: formats,
        activations: q.activations.clone(),
        logits: q.logits,
        sparse: q.sparse.clone(),
        labels: model.labels.as_deref().cloned(),
    };
    let json = serde_json::to_string(&card).map_err(|e| Error::Invalid(e.to_string()))?;
    write_lazy(tensors, HashMap::from([(METADATA_KEY.to_string(), json)]))
}

/// Read a safetensors file: a modelslim file (structure and quantization from its metadata) or
/// a plain float state dict of network `model` (detected from the keys when `None`).
pub fn read_model(bytes: &[u8], model: Option<&str>) -> Result<Model> {
    let (mut raw, metadata) = read_raw(bytes)?;
    raw.retain(|k, _| !k.ends_with("num_batches_tracked"));
    let (arch, card) = match metadata.get(METADATA_KEY) {
        Some(json) => {
            let mut card = read_metadata(json)?;
            let config = std::mem::take(&mut card.config);
            (Arch::from_json(&card.architecture, config)?, card)
        }
        None => {
            // A tensor that is not a float says so before the network is guessed from names.
            for (key, t) in &raw {
                t.float_dtype(key)?;
            }
            let arch = match model {
                Some(name) => Arch::by_name(name)?,
                None => Arch::detect_names(|k| raw.contains_key(k))?,
            };
            let card = FileMetadata {
                format: FORMAT_VERSION,
                architecture: STORED_AS.into(),
                config: serde_json::Value::Null,
                folded: false,
                tensors: BTreeMap::new(),
                activations: BTreeMap::new(),
                logits: None,
                sparse: BTreeSet::new(),
                labels: None,
            };
            (arch, card)
        }
    };
    arch.validate()?;
    let graph = arch.graph(card.folded);
    let shapes: BTreeMap<String, Vec<usize>> = graph.param_shapes().into_iter().collect();
    let logits = card.logits.iter().map(|q| ("logits".to_string(), q));
    for (value, q) in card
        .activations
        .iter()
        .map(|(v, q)| (v.clone(), q))
        .chain(logits)
    {
        // The largest value a u8 activation reaches must be a finite number.
        if !(q.scale > 0.0 && (q.scale * 255.0).is_finite()) {
            return Err(Error::Structure(format!(
                "activation {} has scale {}, not a positive finite number (damaged metadata?)",
                crate::error::quoted(&value),
                q.scale
            )));
        }
    }
    if let Some(key) = card.sparse.iter().find(|k| !shapes.contains_key(*k)) {
        return Err(Error::Structure(format!(
            "the metadata calls {} sparse, which the network lacks",
            crate::error::quoted(key)
        )));
    }
    let mut quant = Quantization {
        activations: card.activations.clone(),
        logits: card.logits,
        sparse: card.sparse.clone(),
        ..Default::default()
    };
    let mut weights = StateDict::new();
    for (key, format) in &card.tensors {
        let shape = shapes.get(key).ok_or_else(|| {
            Error::Structure(format!(
                "the metadata describes '{key}', which the network lacks"
            ))
        })?;
        let t = raw.remove(key).ok_or_else(|| Error::MissingKey {
            key: key.clone(),
            expected: shape.clone(),
            model: arch.display().into(),
        })?;
        match *format {
            TensorFormat::F16 => {
                if t.dtype != Dtype::F16 {
                    return Err(dtype_error(key, "F16", t.dtype));
                }
                let data = t.float_values(key)?;
                weights.insert(key.clone(), HostTensor::new(t.shape, data));
            }
            TensorFormat::Int { bits, granularity } => {
                let qt = read_int(key, t, &mut raw, shape, (bits, granularity), arch.display())?;
                weights.insert(key.clone(), qt.dequantize());
                quant.int.insert(key.clone(), qt);
            }
        }
        if *format == TensorFormat::F16 {
            quant.f16.insert(key.clone());
        }
    }
    for (key, t) in raw {
        let data = t.float_values(&key)?;
        if t.shape.iter().product::<usize>() != data.len() {
            return Err(Error::Truncated(format!(
                "tensor '{key}' has too few values"
            )));
        }
        weights.insert(key, HostTensor::new(t.shape, data));
    }
    let expected: Vec<(String, Vec<usize>)> = shapes.into_iter().collect();
    check_state_dict(&expected, &weights, arch.display())?;
    let labels = match card.labels {
        Some(names) if names.len() != arch.num_classes() => {
            return Err(Error::Structure(format!(
                "the file names {} classes but its classifier has {}",
                names.len(),
                arch.num_classes()
            )));
        }
        names => names.map(Arc::new),
    };
    Ok(Model {
        arch,
        folded: card.folded,
        weights,
        quant,
        labels,
    })
}

/// The metadata, or why this version cannot read it. The version is read first, so a newer
/// file says it is newer instead of naming a field this version does not know.
fn read_metadata(json: &str) -> Result<FileMetadata> {
    #[derive(Deserialize)]
    struct Format {
        #[serde(default)]
        format: u32,
    }
    let unreadable =
        |e: serde_json::Error| Error::Structure(format!("unreadable modelslim metadata: {e}"));
    let Format { format } = serde_json::from_str(json).map_err(unreadable)?;
    if format > FORMAT_VERSION {
        return Err(Error::Structure(format!(
            "this file was written by a newer modelslim (metadata format {format}; this version reads up to {FORMAT_VERSION}): update modelslim"
        )));
    }
    serde_json::from_str(json).map_err(unreadable)
}

fn unsupported_bits(bits: u32) -> Result<()> {
    Err(Error::Structure(format!(
        "{bits}-bit integers are not supported"
    )))
}

fn dtype_error(key: &str, want: &str, found: Dtype) -> Error {
    Error::Structure(format!(
        "'{key}' should be stored as {want} but the file has {found:?}"
    ))
}

/// Rebuild a quantized tensor from its stored values and scales.
fn read_int(
    key: &str,
    t: RawTensor,
    raw: &mut BTreeMap<String, RawTensor>,
    shape: &[usize],
    (bits, granularity): (u32, Granularity),
    model: &str,
) -> Result<QuantizedTensor> {
    if !(2..=8).contains(&bits) {
        unsupported_bits(bits)?;
    }
    granularity
        .check_for(shape)
        .map_err(|why| Error::Structure(format!("'{key}': {why} (damaged metadata?)")))?;
    let n: usize = shape.iter().product();
    let values: Vec<i8> = match (bits, t.dtype) {
        (8, Dtype::I8) => t.bytes.iter().map(|&b| b as i8).collect(),
        (b, Dtype::U8) if b < 8 => unpack_int4(&t.bytes, n),
        (_, found) => return Err(dtype_error(key, if bits == 8 { "I8" } else { "U8" }, found)),
    };
    if values.len() != n {
        return Err(Error::ShapeMismatch {
            key: key.to_string(),
            expected: shape.to_vec(),
            found: t.shape,
        });
    }
    let q = qmax(bits) as i8;
    if values.iter().any(|&v| v < -q || v > q) {
        return Err(Error::Structure(format!(
            "'{key}' holds values outside the symmetric {bits}-bit range"
        )));
    }
    let skey = scale_key(key);
    let s = raw.remove(&skey).ok_or_else(|| Error::MissingKey {
        key: skey.clone(),
        expected: scale_shape(shape, granularity),
        model: model.into(),
    })?;
    let scales = s.float_values(&skey)?;
    let sshape = scale_shape(shape, granularity);
    if scales.len() != sshape.iter().product::<usize>().max(1) {
        return Err(Error::ShapeMismatch {
            key: skey,
            expected: sshape,
            found: s.shape,
        });
    }
    if !scales.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(Error::Structure(format!(
            "'{skey}' holds a scale that is not a positive number"
        )));
    }
    Ok(QuantizedTensor {
        shape: shape.to_vec(),
        bits,
        granularity,
        values,
        scales,
        scale_shape: sshape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int4_packing_round_trips() {
        let v: Vec<i8> = vec![-7, 7, 0, -1, 3];
        let packed = pack_int4(&v);
        assert_eq!(packed.len(), 3);
        assert_eq!(packed[0], 0x79); // -7 → 0x9 low, 7 → 0x7 high
        assert_eq!(unpack_int4(&packed, v.len()), v);
    }

    #[test]
    fn a_newer_files_metadata_says_so_before_anything_else() {
        let newer = format!(
            r#"{{"format":{},"architecture":"graph","config":{{"ops":"of the future"}}}}"#,
            FORMAT_VERSION + 1
        );
        let e = read_metadata(&newer).unwrap_err().to_string();
        assert!(e.contains("newer modelslim"), "{e}");
        let older = r#"{"architecture":"resnet18","config":{}}"#;
        assert_eq!(read_metadata(older).unwrap().format, 0);
    }
}
