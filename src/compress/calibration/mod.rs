//! What calibrated compression measures on photos: activation ranges, batch-norm statistics,
//! the layer-input statistics (Gram matrices) of GPTQ, SparseGPT, refitting and measured
//! importance, the layer-by-layer walk and forward passes they are read from, and the
//! augmented copies of the photos.

pub mod activation_ranges;
pub mod augment;
pub mod batch_norm;
pub mod layer_statistics;
pub mod layerwise;
pub mod passes;
