//! Training, after compression: distillation of the compressed model from the original on
//! unlabelled photos ([`distill`]), and calibration images synthesized from the network's own
//! batch-norm statistics for users without photos ([`synth`]). Both differentiate the same
//! forward pass as inference ([`crate::model::exec::Network`]) with Burn's autodiff, on
//! whichever backend the session runs (WebGPU in the page, the CPU or wgpu natively).

pub mod adam;
pub mod distill;
pub mod jitter;
pub mod leaves;
pub mod synth;

pub use distill::{DistillOptions, Distilled, StepReport, distill, distillation_loss};
pub use leaves::Leaves;
pub use synth::{SynthOptions, SynthStep, Synthesized, statistics_loss, synthesize, to_png};
