//! Training, after compression: distillation of the compressed model from the original on
//! unlabelled photos ([`distill`]), and calibration images synthesized from the network's own
//! batch-norm statistics for users without photos ([`synth`]). Both differentiate the same
//! forward pass as inference ([`crate::model::exec::Network`]) with Burn's autodiff, on
//! whichever backend the session runs (WebGPU in the page, the CPU or wgpu natively). Their
//! [`options`] are described without the training feature, for forms.

#[cfg(feature = "training")]
pub mod adam;
#[cfg(feature = "training")]
pub mod distill;
#[cfg(feature = "training")]
pub mod jitter;
#[cfg(feature = "training")]
pub mod leaves;
pub mod options;
#[cfg(feature = "training")]
pub mod synth;

#[cfg(feature = "training")]
pub use distill::{Distilled, StepReport, distill, distillation_loss};
#[cfg(feature = "training")]
pub use leaves::Leaves;
pub use options::{DISTILL, DistillOptions, SYNTH, SynthOptions};
#[cfg(feature = "training")]
pub use synth::{SynthStep, Synthesized, statistics_loss, synthesize, to_png};
