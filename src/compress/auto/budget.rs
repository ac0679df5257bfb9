//! What an automatic compression must fit: bytes of the file deployed (ONNX or TFLite), a
//! share of the original's multiply-accumulates, or milliseconds per image on the backend in
//! use.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The file a model is deployed as: the one whose bytes a byte budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployFormat {
    /// ONNX, int8 QDQ where quantized.
    #[default]
    Onnx,
    /// TFLite as a device takes it: full integer (int8 input and output) when the activations
    /// are quantized, float otherwise.
    Tflite,
}

impl DeployFormat {
    pub fn label(self) -> &'static str {
        match self {
            DeployFormat::Onnx => "ONNX",
            DeployFormat::Tflite => "TFLite",
        }
    }
}

impl std::str::FromStr for DeployFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "onnx" => Ok(DeployFormat::Onnx),
            "tflite" => Ok(DeployFormat::Tflite),
            _ => Err(Error::Invalid(format!(
                "the deployed format is onnx or tflite (got '{s}')"
            ))),
        }
    }
}

/// The budget a compressed model must fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Budget {
    /// At most this many bytes of the deployed file.
    Bytes(u64),
    /// At most this share of the original's MACs (0 < share ≤ 1).
    Macs(f64),
    /// At most this many milliseconds per image, measured on the backend in use.
    Ms(f64),
}

impl Budget {
    /// The budget, or why it cannot be met by any model.
    pub fn checked(self) -> Result<Budget> {
        let bad = |m: String| Err(Error::Invalid(m));
        match self {
            Budget::Bytes(0) => bad("a byte budget must be at least 1 byte".into()),
            Budget::Macs(r) if !(r > 0.0 && r <= 1.0) => bad(format!(
                "a MAC budget is the share of the MACs to keep, above 0 and at most 1 (got {r})"
            )),
            Budget::Ms(ms) if !(ms > 0.0 && ms.is_finite()) => bad(format!(
                "a latency budget must be a positive number of milliseconds (got {ms})"
            )),
            b => Ok(b),
        }
    }

    /// For people: `3.50 MB of ONNX`, `70 % of the MACs`, `25.0 ms per image`.
    pub fn label(&self, format: DeployFormat) -> String {
        match self {
            Budget::Bytes(b) => format!("{:.2} MB of {}", *b as f64 / 1e6, format.label()),
            Budget::Macs(r) => format!("{:.0} % of the MACs", r * 100.0),
            Budget::Ms(ms) => format!("{ms:.1} ms per image"),
        }
    }

    /// This budget's measure of a model: its file's bytes, its MACs, or its ms per image.
    pub fn measure(&self, bytes: u64, macs: u64, ms: Option<f64>) -> f64 {
        match self {
            Budget::Bytes(_) => bytes as f64,
            Budget::Macs(_) => macs as f64,
            Budget::Ms(_) => ms.unwrap_or(f64::INFINITY),
        }
    }

    /// How far `measured` (this budget's measure of a model: bytes, MACs or ms) is over the
    /// budget, as a share of it (0 or less: within). `macs0` is the original's MACs.
    pub fn excess(&self, measured: f64, macs0: u64) -> f64 {
        let limit = match self {
            Budget::Bytes(b) => *b as f64,
            Budget::Macs(r) => r * macs0 as f64,
            Budget::Ms(ms) => *ms,
        };
        measured / limit - 1.0
    }
}
