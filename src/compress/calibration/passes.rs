//! The forward passes layer-by-layer calibration reads each layer's input from, kept between
//! layers: the layers are visited in graph order, so each batch's pass goes on from the
//! previous layer's input instead of starting again from the photos (one forward pass over
//! the photos in all, not one per layer). Passes whose values do not fit the budget start
//! again for each layer: slower, never more memory.

use crate::Result;
use crate::model::exec::Pass;
use crate::predict::{Captured, Classifier};

/// Device memory the kept passes may hold: their live activations for every calibration
/// photo at once. The browser's wasm memory and WebGPU buffers are far smaller than a
/// native process's.
#[cfg(target_arch = "wasm32")]
const BUDGET_BYTES: usize = 256 << 20;
#[cfg(not(target_arch = "wasm32"))]
const BUDGET_BYTES: usize = 4 << 30;

/// One kept pass (or none) per calibration batch.
pub(crate) struct Passes {
    kept: Vec<Option<Pass>>,
}

impl Passes {
    pub fn new(batches: usize) -> Passes {
        Passes {
            kept: (0..batches).map(|_| None).collect(),
        }
    }

    /// Hand `each` value `value` of every non-empty batch, computed by `classifier`. Going on
    /// from a kept pass is only right when the layers it already ran are the ones
    /// `classifier` has: the walk changes a layer only after its input was read, and goes
    /// forward.
    pub async fn capture(
        &mut self,
        classifier: &Classifier,
        batches: &[Vec<Vec<f32>>],
        value: usize,
        mut each: impl FnMut(&Captured) -> Result<()>,
    ) -> Result<()> {
        let mut held = 0usize;
        for (batch, kept) in batches.iter().zip(&mut self.kept) {
            if batch.is_empty() {
                continue;
            }
            let (captured, pass) = classifier
                .capture_resumed(kept.take(), batch, value)
                .await?;
            each(&captured)?;
            let bytes = pass.bytes();
            if held + bytes <= BUDGET_BYTES {
                held += bytes;
                *kept = Some(pass);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::model::Model;

    /// Two small deterministic "photos".
    fn images() -> Vec<Vec<f32>> {
        (0..2)
            .map(|i| {
                (0..3 * 224 * 224)
                    .map(|k| ((k * 7 + i * 13) % 17) as f32 / 8.0 - 1.0)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn resumed_captures_equal_fresh_ones_forward_and_backward() {
        let model = Model::seeded_resnet18(3);
        let classifier = Classifier::new(&model, Backend::cpu()).unwrap();
        let batches = vec![images()];
        let mut passes = Passes::new(1);
        // Forward (goes on), the same value again (held), then an earlier one (starts again).
        for value in [0, 4, 9, 9, 23, 5] {
            let fresh = pollster::block_on(classifier.capture(&batches[0], &[value])).unwrap();
            let mut resumed = Vec::new();
            pollster::block_on(passes.capture(&classifier, &batches, value, |c| {
                resumed.push((c.dims, c.data.clone()));
                Ok(())
            }))
            .unwrap();
            assert_eq!(resumed.len(), 1);
            assert_eq!(resumed[0].0, fresh[0].dims, "value {value}");
            assert_eq!(resumed[0].1, fresh[0].data, "value {value}");
        }
    }
}
