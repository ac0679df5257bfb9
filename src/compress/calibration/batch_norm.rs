//! Batch-norm recalibration: after pruning, re-estimate every batch norm's running statistics
//! from calibration images (PyTorch: `momentum=None`, `train()`, forward the data, `eval()`).
//! No training, and often most of the accuracy pruning cost.

use crate::backend::Backend;
use crate::model::Model;
use crate::predict::Classifier;
use crate::{Error, Result};

/// Re-estimate running means and variances from `batches` of preprocessed images; each batch's
/// statistics count equally (PyTorch's cumulative average).
pub async fn recalibrate_bn(
    model: &Model,
    backend: Backend,
    batches: &[Vec<Vec<f32>>],
) -> Result<Model> {
    if batches.iter().all(|b| b.is_empty()) {
        return Err(Error::Invalid(
            "batch-norm recalibration needs at least one calibration image".into(),
        ));
    }
    let classifier = Classifier::new(model, backend)?;
    let mut sums: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut n = 0usize;
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        let stats = classifier.batch_norm_statistics(batch).await?;
        if sums.is_empty() {
            sums = stats
                .iter()
                .map(|(name, m, _)| (name.clone(), vec![0.0; m.len()], vec![0.0; m.len()]))
                .collect();
        }
        for ((_, sm, sv), (_, m, v)) in sums.iter_mut().zip(&stats) {
            sm.iter_mut().zip(m).for_each(|(a, b)| *a += *b as f64);
            sv.iter_mut().zip(v).for_each(|(a, b)| *a += *b as f64);
        }
        n += 1;
    }
    let mut out = model.clone();
    for (name, sm, sv) in sums {
        for (suffix, sum) in [("running_mean", sm), ("running_var", sv)] {
            let key = format!("{name}.{suffix}");
            let t = out
                .weights
                .get_mut(&key)
                .ok_or_else(|| Error::Structure(format!("'{key}' is missing")))?;
            t.data = sum.iter().map(|v| (v / n as f64) as f32).collect();
        }
    }
    Ok(out)
}
