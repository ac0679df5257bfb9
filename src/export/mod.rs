//! Files for other runtimes: ONNX (fp32, fp16, int8/int4 QDQ) and TFLite (fp32, fp16 and int8
//! weights).

pub mod arena;
pub mod c_array;
pub mod flatbuffer;
pub mod onnx;
pub mod proto;
pub mod targets;
pub mod tflite;

pub use onnx::to_onnx;
pub use tflite::{peak_activation_bytes, to_tflite, to_tflite_with_io};
