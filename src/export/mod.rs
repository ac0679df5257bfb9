//! Files for other runtimes: ONNX (fp32, fp16, int8/int4 QDQ).

pub mod onnx;
pub mod proto;

pub use onnx::to_onnx;
