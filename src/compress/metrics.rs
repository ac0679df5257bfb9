//! What a model costs: parameters, non-zero parameters, MACs, file sizes (raw and gzip).

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::export::to_onnx;
use crate::model::Model;

/// Bytes of one file format, as written and after gzip (where zeros pay off).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct FileSize {
    pub raw: usize,
    pub gzip: usize,
}

impl FileSize {
    /// Measure `data`.
    pub fn of(data: &[u8]) -> Self {
        FileSize {
            raw: data.len(),
            gzip: gzip_size(data),
        }
    }
}

/// Bytes per written format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bytes {
    pub safetensors: FileSize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnx: Option<FileSize>,
}

/// The measured cost of a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub params: usize,
    pub nonzero_params: usize,
    /// Multiply-accumulates at the network's input side.
    pub macs: u64,
    pub bytes: Bytes,
}

/// After / before for each measure of [`Metrics`] (0 where before is 0), so that no front end
/// divides on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ratios {
    pub params: f64,
    pub nonzero_params: f64,
    pub macs: f64,
    pub safetensors_raw: f64,
    pub safetensors_gzip: f64,
    pub onnx_raw: Option<f64>,
    pub onnx_gzip: Option<f64>,
}

impl Metrics {
    /// `self` (after) relative to `before`.
    pub fn ratios_to(&self, before: &Metrics) -> Ratios {
        let r = |after: f64, before: f64| if before > 0.0 { after / before } else { 0.0 };
        let onnx = |f: fn(&FileSize) -> usize| {
            Some(r(
                f(&self.bytes.onnx?) as f64,
                f(&before.bytes.onnx?) as f64,
            ))
        };
        Ratios {
            params: r(self.params as f64, before.params as f64),
            nonzero_params: r(self.nonzero_params as f64, before.nonzero_params as f64),
            macs: r(self.macs as f64, before.macs as f64),
            safetensors_raw: r(
                self.bytes.safetensors.raw as f64,
                before.bytes.safetensors.raw as f64,
            ),
            safetensors_gzip: r(
                self.bytes.safetensors.gzip as f64,
                before.bytes.safetensors.gzip as f64,
            ),
            onnx_raw: onnx(|f| f.raw),
            onnx_gzip: onnx(|f| f.gzip),
        }
    }
}

/// gzip (level 6, as `gzip` does by default) size of `data`, counted as it is written: the
/// compressed bytes are never held (a 100 MB file of weights compresses to nearly its size).
pub fn gzip_size(data: &[u8]) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Counter(0), flate2::Compression::default());
    // Writing into a counter cannot fail.
    let _ = enc.write_all(data);
    enc.finish().map(|c| c.0).unwrap_or(0)
}

/// Weights (as f32) up to which a model's two files are written and gzipped side by side:
/// gzip is a single-threaded pass of about a second per 50 MB natively, a few in the page.
pub const FILES_TOGETHER_BYTES: usize = 64 << 20;

/// A sink that keeps only the number of bytes written to it.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Model {
    /// Learnable parameters that are not zero.
    pub fn num_nonzero_params(&self) -> usize {
        self.learnable()
            .map(|t| t.data.iter().filter(|v| **v != 0.0).count())
            .sum()
    }

    /// Measure the model; `safetensors` is the file as it would be written.
    pub fn metrics(&self) -> Result<Metrics> {
        let safetensors = FileSize::of(&self.to_safetensors()?);
        Ok(self.metrics_of_sizes(Bytes {
            safetensors,
            onnx: None,
        }))
    }

    /// Measure the model given its files' sizes.
    pub fn metrics_of_sizes(&self, bytes: Bytes) -> Metrics {
        Metrics {
            params: self.num_params(),
            nonzero_params: self.num_nonzero_params(),
            macs: crate::compress::prune::blocks::network_macs(self),
            bytes,
        }
    }

    /// Measure the model with both of its files serialised: side by side (on two threads where
    /// there are) when its weights are at most [`FILES_TOGETHER_BYTES`], else one file at a
    /// time (a large network's two files are not held together).
    pub fn metrics_with_onnx(&self) -> Result<Metrics> {
        let safetensors = || -> Result<FileSize> { Ok(FileSize::of(&self.to_safetensors()?)) };
        let onnx = || -> Result<FileSize> { Ok(FileSize::of(&to_onnx(self)?)) };
        let (safetensors, onnx) = if self.num_params() * 4 <= FILES_TOGETHER_BYTES {
            crate::parallel::join(safetensors, onnx)
        } else {
            (safetensors(), onnx())
        };
        Ok(self.metrics_of_sizes(Bytes {
            safetensors: safetensors?,
            onnx: Some(onnx?),
        }))
    }
}

/// One conv or linear layer before and after compression.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerStat {
    pub layer: String,
    /// Output channels (features for the classifier).
    pub width_before: usize,
    pub width_after: usize,
    /// Fraction of the layer's weights that are zero after compression.
    pub sparsity: f64,
    /// How the layer's weights are stored after compression (`fp32`, `int8 channel`, …).
    pub format: String,
    /// Removed with its block (then `width_after` is 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
    /// Why no pruning may remove its output channels, where none may (a channel shuffle or
    /// a grouped conv reads them, they are the classes, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
}

/// Per conv/linear layer of `original`: widths in `compressed`, sparsity and format; the
/// layers of dropped blocks marked.
pub fn layer_report(original: &Model, compressed: &Model) -> Vec<LayerStat> {
    let width = |m: &Model, key: &str| m.weights.get(key).map(|t| t.shape[0]).unwrap_or(0);
    // The fixed groups by the tensor whose output channels are wholly theirs.
    let groups = original.channel_groups();
    let fixed = |key: &str| {
        groups.iter().find_map(|g| {
            let owns = g
                .members
                .iter()
                .any(|m| m.key == key && m.axis == 0 && m.after.is_none());
            g.fixed.clone().filter(|_| owns)
        })
    };
    original
        .graph()
        .nodes
        .iter()
        .filter_map(|n| n.op.layer_name().map(str::to_string))
        .map(|layer| {
            let key = format!("{layer}.weight");
            let t = compressed.weights.get(&key);
            let dropped = t.is_none();
            let zeros = t
                .map(|t| t.data.iter().filter(|v| **v == 0.0).count())
                .unwrap_or(0);
            let n = t.map(|t| t.len()).unwrap_or(0).max(1);
            let format = match compressed.quant.int.get(&key) {
                Some(q) => format!("int{} {}", q.bits, q.granularity),
                None if dropped => "dropped".into(),
                None if compressed.quant.f16.contains(&key) => "fp16".into(),
                None => "fp32".into(),
            };
            LayerStat {
                width_before: width(original, &key),
                width_after: width(compressed, &key),
                sparsity: zeros as f64 / n as f64,
                format,
                fixed: fixed(&key),
                layer,
                dropped,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_size_is_the_length_of_the_gzip_file() {
        // Half zeros, half a ramp: compressible, but not to nothing.
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| if i % 2 == 0 { 0 } else { (i / 7) as u8 })
            .collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).expect("writing into a Vec");
        let file = enc.finish().expect("finishing into a Vec");
        assert_eq!(gzip_size(&data), file.len());
        assert!(file.len() < data.len() && file.len() > 1000);
    }
}
