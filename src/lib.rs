//! modelslim: compress a pretrained CNN where its user is — in the browser on WebGPU, or natively.
//!
//! The data path reads top to bottom in this module list: an image is decoded and
//! preprocessed, weights are read into a host-side [`tensor::StateDict`], the network is built
//! on a [`backend::Backend`] and run, and the logits become a [`predict::Prediction`].
//! Nothing in the core knows about the browser; `web` is the only wasm-bindgen layer.

pub mod backend;
pub mod compress;
pub mod error;
pub mod export;
pub mod labels;
pub mod limits;
pub mod model;
mod parallel;
pub mod predict;
pub mod preprocess;
pub mod quant;
pub mod rng;
pub mod scores;
pub mod session;
pub mod spec;
pub mod tensor;
pub mod timing;
pub mod train;
pub mod weights;

#[cfg(target_family = "wasm")]
pub mod web;

pub use error::{Error, Result};
