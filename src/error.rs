//! Errors a user can cause: each message says what was wrong and what to do next.

use thiserror::Error;

/// Everything that can go wrong with a user's image, weights file or backend.
#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are not a photo the decoder can read.
    #[error("not a readable image ({0}); use a JPEG, PNG or WebP photo")]
    NotAnImage(String),
    /// The image is larger than the decoder is allowed to allocate.
    #[error("image is too large ({0}); the limit is {max} pixels per side", max = crate::limits::MAX_IMAGE_SIDE)]
    ImageTooLarge(String),
    /// The image's proportions would make its resized copy huge.
    #[error("image is {0}")]
    ImageShape(String),
    /// The weights file is not a safetensors file.
    #[error(
        "not a safetensors file or PyTorch checkpoint ({0}); use a .safetensors file or a .pth state_dict"
    )]
    NotSafetensors(String),
    /// The file ends before its header says it should.
    #[error("weights file is truncated: {0}; download it again")]
    Truncated(String),
    /// A tensor the network needs is not in the file.
    #[error(
        "weights: tensor {} (shape {expected:?}) is missing; is this {model}'s state_dict?", quoted(.key)
    )]
    MissingKey {
        key: String,
        expected: Vec<usize>,
        model: String,
    },
    /// The file holds a tensor the network has no place for.
    #[error(
        "weights: unexpected tensor {} with shape {found:?}; is this {model}'s state_dict?", quoted(.key)
    )]
    ExtraKey {
        key: String,
        found: Vec<usize>,
        model: String,
    },
    /// A tensor has the wrong shape.
    #[error("weights: tensor {} has shape {found:?}, expected {expected:?}", quoted(.key))]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor holds NaN or an infinity: no network computes with that.
    #[error(
        "weights: tensor {} holds NaN or an infinity (element {index}); the file is damaged, download or export it again", quoted(.key)
    )]
    NotFinite { key: String, index: usize },
    /// A tensor has a dtype the network cannot use.
    #[error("weights: tensor {} has dtype {dtype}; expected F32, F16 or BF16", quoted(.key))]
    DType { key: String, dtype: String },
    /// A PyTorch checkpoint that could not be read.
    #[error("PyTorch checkpoint: {0}")]
    Checkpoint(String),
    /// An ONNX file that could not be read as a network modelslim runs.
    #[error("ONNX: {0}")]
    Onnx(String),
    /// The model's description (metadata) is invalid.
    #[error("model structure: {0}")]
    Structure(String),
    /// The compute backend failed to start or to run.
    #[error("backend: {0}")]
    Backend(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// Anything the user asked for that cannot be done.
    #[error("{0}")]
    Invalid(String),
    /// The user cancelled a long run.
    #[error("cancelled")]
    Cancelled,
}

/// `text` from a file, fit to quote in a one-line message: control characters escaped, cut
/// to 60 characters, in quotes.
pub fn quoted(text: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error with the path it happened on.
    pub fn io(path: impl AsRef<std::path::Path>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            message: err.to_string(),
        }
    }
}
