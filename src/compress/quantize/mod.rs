//! Storing weights in fewer bits: batch norms folded first ([`fold`]), integers by rounding
//! ([`weights`]) or by GPTQ ([`gptq`] for one layer, [`network_gptq`] over the network), and
//! the biases corrected for the rounding ([`bias_correction`]).

pub mod bias_correction;
pub mod fold;
pub mod gptq;
pub mod network_gptq;
pub mod weights;

pub use weights::{QuantMethod, QuantOptions};
