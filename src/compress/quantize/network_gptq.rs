//! Weight quantization calibrated on photos: GPTQ over the whole network, layer after layer in
//! graph order (the walk of [`crate::compress::calibration::layerwise`]).

use std::future::Future;

use super::gptq::{Gptq, GptqOptions, layer_row_output_errors};
use super::weights::QuantOptions;
use crate::backend::Backend;
use crate::compress::calibration::layer_statistics::Gram;
use crate::compress::calibration::layerwise::walk_layers;
use crate::compress::progress::Progress;
use crate::model::Model;
use crate::parallel::map_each;
use crate::quant::{EXACT_WEIGHT_SCALE_BITS, Granularity, QuantizedTensor, qmax, round_up_to_bits};
use crate::{Error, Result};

impl Model {
    /// `self` quantized as [`Model::quantized`] does, with every integer layer's values chosen
    /// by GPTQ on `batches` of calibration images instead of rounded to nearest (same scales,
    /// same stored format). `progress` is told before each layer and may cancel. `self` becomes
    /// the quantized model (one float copy is kept, for the weights GPTQ starts from).
    pub async fn quantized_gptq<P, F>(
        self,
        opts: &QuantOptions,
        gptq_opts: GptqOptions,
        backend: &Backend,
        batches: &[Vec<Vec<f32>>],
        progress: &mut P,
    ) -> Result<Model>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let scale_bits = opts.exact_scales.then_some(EXACT_WEIGHT_SCALE_BITS);
        // Round-to-nearest first: the folded batch norms, the fp16 layers and every integer
        // layer's scales. Later layers do not change an earlier layer's input, so the layers
        // not yet visited may stay rounded while the walk goes on.
        let float = self.fold_bn()?;
        let out = self.into_quantized(opts)?;
        let integer = out.quant.int.clone();
        walk_layers(
            out,
            |name| integer.contains_key(&format!("{name}.weight")),
            "GPTQ",
            backend,
            batches,
            progress,
            |out, name, gram| gptq_layer(out, &float, name, gram, gptq_opts, scale_bits),
        )
        .await
    }
}

/// Clipping ratios tried for each 4-bit scale: 1 (the largest weight sets the scale) and two
/// smaller ones. Each ratio costs one more GPTQ pass over the layer, so the list is short; a
/// finer or longer grid was not measured.
const CLIP_RATIOS: [f32; 3] = [1.0, 0.9, 0.8];

/// `out` with layer `name`'s integers chosen by GPTQ from `float`'s weights and `gram`. At
/// 4 bits the largest weight of a channel wastes levels on a value few weights reach, so each
/// row (output channel) keeps the clipping ratio of [`CLIP_RATIOS`] whose GPTQ result has the
/// least output error on the calibration photos; ratio 1 is among them, so clipping is used
/// only where it lowers that error.
fn gptq_layer(
    mut out: Model,
    float: &Model,
    name: &str,
    gram: &Gram,
    gptq_opts: GptqOptions,
    scale_bits: Option<u32>,
) -> Result<Model> {
    let key = format!("{name}.weight");
    let (Some(qt), Some(w)) = (out.quant.int.get(&key).cloned(), float.weights.get(&key)) else {
        return Ok(out);
    };
    // Too few input samples per column and GPTQ fits the calibration photos rather than the
    // layer. At 8 bits rounding moves outputs so little that this estimation noise outweighs
    // the gain below 8 samples per column (EfficientNet-Lite0's 7×7 layers with 64 photos: mean
    // KL 0.036 with GPTQ there vs 0.0024 without), so such layers keep round-to-nearest. At 4
    // bits the rounding error dominates: GPTQ paid even from fewer samples than columns
    // (ResNet18 calibrated on 16 photos, scored on 50 others: KL 0.0002 with every layer vs
    // 0.013 with the sparse ones left rounded).
    if qt.bits >= 8 && gram.rows < 8 * gram.columns {
        return Ok(out);
    }
    let groups = gram.groups();
    let rows = qt.shape[0] / groups.max(1);
    let cols = gram.columns;
    if rows * groups * cols != w.data.len() {
        return Err(Error::Structure(format!(
            "'{key}': {} weights do not make {groups} groups of {rows}×{cols}",
            w.data.len()
        )));
    }
    let solvers = (0..groups)
        .map(|g| Gptq::for_layer(gram, g, gptq_opts))
        .collect::<Result<Vec<_>>>()?;
    let ratios: &[f32] = if qt.bits <= 4 { &CLIP_RATIOS } else { &[1.0] };
    // The ratios' candidates are independent: on several threads where there are.
    let candidates = map_each(ratios, |&ratio| {
        let mut cand = qt.clone();
        for s in &mut cand.scales {
            *s *= ratio;
            if let Some(b) = scale_bits {
                *s = round_up_to_bits(*s, b);
            }
        }
        let mut values = Vec::with_capacity(w.data.len());
        for (g, solver) in solvers.iter().enumerate() {
            let at = g * rows * cols;
            let scale = |r: usize, c: usize| cand.scale_of(at + r * cols + c);
            values.extend(solver.quantize(
                &w.data[at..at + rows * cols],
                rows,
                scale,
                qmax(qt.bits),
            ));
        }
        cand.values = values;
        let deq = cand.dequantize();
        let mut errors = Vec::with_capacity(qt.shape[0]);
        for g in 0..groups {
            let r = g * rows * cols..(g + 1) * rows * cols;
            errors.extend(layer_row_output_errors(
                &w.data[r.clone()],
                &deq.data[r],
                rows,
                gram,
                g,
            ));
        }
        (cand, errors)
    });
    // In the ratios' order, whatever order they finished in.
    let best = candidates
        .into_iter()
        .reduce(|a, b| keep_better_rows(a, b, cols));
    let Some((qt, _)) = best else {
        return Ok(out);
    };
    out.weights.insert(key.clone(), qt.dequantize());
    out.quant.int.insert(key, qt);
    Ok(out)
}

/// Row by row (output channel), the candidate with the lower output error: its integers and
/// its scales. A per-tensor scale is shared by every row, so there the totals decide.
fn keep_better_rows(
    (mut a, mut a_err): (QuantizedTensor, Vec<f64>),
    (b, b_err): (QuantizedTensor, Vec<f64>),
    cols: usize,
) -> (QuantizedTensor, Vec<f64>) {
    if a.granularity == Granularity::PerTensor {
        return if b_err.iter().sum::<f64>() < a_err.iter().sum::<f64>() {
            (b, b_err)
        } else {
            (a, a_err)
        };
    }
    for (r, (ea, eb)) in a_err.iter_mut().zip(&b_err).enumerate() {
        if eb < ea {
            *ea = *eb;
            for i in r * cols..(r + 1) * cols {
                a.values[i] = b.values[i];
                let k = a.scale_index_of(i);
                a.scales[k] = b.scales[k];
            }
        }
    }
    (a, a_err)
}
