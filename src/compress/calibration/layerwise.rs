//! The sequential walk the calibrated methods share: visit a model's conv and linear layers in
//! graph order, and hand each one the Gram matrix of its input measured with the layers before
//! it already changed — so each layer also absorbs the error that reaches it (GPTQ's and
//! SparseGPT's order). One layer's statistics are in memory at a time.

use std::future::Future;

use crate::backend::Backend;
use crate::compress::calibration::layer_statistics::Gram;
use crate::compress::calibration::passes::Passes;
use crate::compress::progress::{Progress, report};
use crate::model::Model;
use crate::model::graph::Node;
use crate::predict::Classifier;
use crate::{Error, Result};

/// Walk the layers of `model` that `wanted` selects (by layer name), in graph order:
/// `visit(model, name, gram)` returns the model with that layer changed. `what` names the
/// method in progress labels ("GPTQ"); `progress` is told before each layer and may cancel.
pub(crate) async fn walk_layers<P, F>(
    mut model: Model,
    wanted: impl Fn(&str) -> bool,
    what: &str,
    backend: &Backend,
    batches: &[Vec<Vec<f32>>],
    progress: &mut P,
    mut visit: impl FnMut(Model, &str, &Gram) -> Result<Model> + Send,
) -> Result<Model>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let images: usize = batches.iter().map(Vec::len).sum();
    if images == 0 {
        return Err(Error::Invalid(format!(
            "{what} needs calibration images to measure each layer's inputs on"
        )));
    }
    // Changing a layer never changes an earlier layer's input, so one graph serves the walk.
    let graph = model.graph();
    let layers: Vec<&Node> = graph
        .nodes
        .iter()
        .filter(|n| n.op.layer_name().is_some_and(&wanted))
        .collect();
    // Layers that read the same value (a block's first conv and its downsample) share one
    // capture: the layers between them do not change that value.
    let mut inputs: Vec<usize> = Vec::new();
    for n in &layers {
        if !inputs.contains(&n.inputs[0]) {
            inputs.push(n.inputs[0]);
        }
    }
    let mut passes = Passes::new(batches.len());
    let mut done = 0;
    for input in inputs {
        let readers: Vec<&Node> = layers
            .iter()
            .copied()
            .filter(|n| n.inputs[0] == input)
            .collect();
        let classifier = Classifier::new(&model, backend.clone())?;
        let mut grams: Vec<Gram> = Vec::new();
        passes
            .capture(&classifier, batches, input, |cap| {
                if grams.is_empty() {
                    for node in &readers {
                        grams.push(
                            Gram::new(&node.op, images, cap.dims[2], cap.dims[3]).ok_or_else(
                                || Error::Structure("a layer without weights".into()),
                            )?,
                        );
                    }
                }
                crate::parallel::on_threads(|| grams.iter_mut().for_each(|g| g.add(cap)));
                Ok(())
            })
            .await?;
        drop(classifier);
        for (node, gram) in readers.iter().zip(grams) {
            let name = node.op.layer_name().unwrap_or_default();
            done += 1;
            let p = Progress {
                step: done,
                steps: layers.len(),
                label: format!("{what}: {name} (layer {done} of {})", layers.len()),
            };
            report(progress, p).await?;
            model = crate::parallel::on_threads(|| visit(model, name, &gram))?;
        }
    }
    Ok(model)
}
