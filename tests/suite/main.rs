//! The integration tests, one module a file, in one test binary: linked once instead of once a
//! file, and the two test threads shared by all of them (`docs/testing.md` says what each file
//! checks). `cargo test --release --test suite -- gptq::` runs one file's tests.
//!
//! `fuzz.rs` and `hostile_memory.rs` stay binaries of their own: each installs a global
//! allocator that counts the whole process's memory.

#[path = "../common/mod.rs"]
mod common;

mod auto;
mod blocks;
mod calibration_photos;
mod cli;
mod compressed;
mod efficientnet;
mod golden;
mod gptq;
mod hostile;
mod imported;
mod imported_concat;
mod imported_ops;
mod imported_paddle;
mod labels;
mod mac_target;
mod onnx;
mod preprocess;
mod prune;
mod quantize;
mod recalibrate;
mod reconstruct;
mod session;
mod settings;
mod tflite;
mod train;
mod weights;
