//! What each layer's weights cost in each precision: bytes in the ONNX file, and the loss (mean
//! KL from the original's outputs) measured with only that layer stored so, every other layer
//! in fp32. One table per granularity; the knapsack of [`super::allocation`] chooses from it.

use std::collections::BTreeMap;
use std::future::Future;

use super::allocation::Choice;
use crate::backend::Backend;
use crate::compress::sensitivity::sensitivity;
use crate::compress::{Granularity, Progress, QuantOptions, agreement, logits_of};
use crate::export::to_onnx;
use crate::model::Model;
use crate::quant::{Precision, scale_shape};
use crate::{Error, Result};

/// The precisions a layer may be given, highest first (the knapsack prefers the earlier of two
/// equal losses).
pub const PRECISIONS: [Precision; 4] = [
    Precision::F32,
    Precision::F16,
    Precision::Int8,
    Precision::Int4,
];

/// One layer's options, in [`PRECISIONS`]' order.
#[derive(Debug, Clone)]
pub struct LayerCosts {
    pub layer: String,
    pub options: Vec<Choice>,
}

/// Every layer's options under one granularity, and the bytes of the file that are not any
/// layer's weights (graph, names, other tensors), so that a choice's file size is
/// `overhead + Σ bytes`.
#[derive(Debug, Clone)]
pub struct CostTable {
    pub granularity: Granularity,
    pub layers: Vec<LayerCosts>,
    pub overhead: u64,
}

impl CostTable {
    /// The predicted file size of choosing `picks` (indices into each layer's options).
    pub fn bytes(&self, picks: &[usize]) -> u64 {
        self.overhead
            + picks
                .iter()
                .zip(&self.layers)
                .map(|(&i, l)| l.options[i].bytes)
                .sum::<u64>()
    }

    /// This table with a TFLite file's bytes, whose file of fp32 weights takes `fp32_file`
    /// bytes: a TFLite file stores int4 integers as int8 ones, so an int4 option saves
    /// nothing over int8 there (and the knapsack, at equal bytes, takes the int8 with its
    /// lower loss); the rest of the file is what the fp32 file holds besides the weights.
    pub fn for_tflite(&self, fp32_file: u64) -> CostTable {
        let int8 = PRECISIONS.iter().position(|&p| p == Precision::Int8);
        let int4 = PRECISIONS.iter().position(|&p| p == Precision::Int4);
        let mut table = self.clone();
        for l in &mut table.layers {
            if let (Some(i8), Some(i4)) = (int8, int4)
                && let Some(bytes) = l.options.get(i8).map(|c| c.bytes)
                && let Some(c) = l.options.get_mut(i4)
            {
                c.bytes = bytes;
            }
        }
        table.overhead =
            fp32_file.saturating_sub(self.bytes(&vec![0; self.layers.len()]) - self.overhead);
        table
    }

    /// Per-layer precisions of `picks`, by layer name.
    pub fn precisions(&self, picks: &[usize]) -> BTreeMap<String, Precision> {
        picks
            .iter()
            .zip(&self.layers)
            .map(|(&i, l)| (l.layer.clone(), PRECISIONS[i]))
            .collect()
    }
}

/// The cost tables of a byte budget (per channel, then groups of 32) with a fingerprint of
/// the photos they were measured on: a later search of the same model on the same photos
/// (another budget or floor) takes them instead of measuring every layer again, which is most
/// of a byte budget's search. Its owner forgets it when the model changes.
#[derive(Debug, Clone, Default)]
pub struct CostCache {
    entry: Option<(u64, Vec<CostTable>)>,
}

impl CostCache {
    /// The tables measured on `photos`, if these are they.
    pub fn get(&self, photos: &[Vec<f32>]) -> Option<&[CostTable]> {
        let (key, tables) = self.entry.as_ref()?;
        (*key == fingerprint(photos)).then_some(tables.as_slice())
    }

    /// Keep `tables`, measured on `photos`.
    pub fn keep(&mut self, photos: &[Vec<f32>], tables: Vec<CostTable>) {
        self.entry = Some((fingerprint(photos), tables));
    }
}

/// A hash of every value of `photos`, in order.
fn fingerprint(photos: &[Vec<f32>]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    for p in photos {
        h.write_usize(p.len());
        p.iter().for_each(|v| h.write_u32(v.to_bits()));
    }
    h.finish()
}

/// Bytes a layer's weight (of `shape`) and bias (`bias` values) take in the ONNX file when
/// stored in `p` with `g`: integers (int4 packed two to a byte), an f32 scale and an integer
/// zero point per scale, and the bias in f32 (fp16 with fp16 weights).
pub fn layer_bytes(shape: &[usize], bias: usize, p: Precision, g: Granularity) -> u64 {
    let n: u64 = shape.iter().product::<usize>() as u64;
    let s: u64 = scale_shape(shape, g).iter().product::<usize>() as u64;
    let b = bias as u64;
    match p {
        Precision::F32 => 4 * n + 4 * b,
        Precision::F16 => 2 * n + 2 * b,
        Precision::Int8 => n + 5 * s + 4 * b,
        Precision::Int4 => n.div_ceil(2) + 4 * s + s.div_ceil(2) + 4 * b,
    }
}

/// The options of every conv and linear layer of `model` under `granularity`, their losses
/// measured on `images`: int8 and int4 each layer alone, by rounding (what GPTQ then improves
/// on); fp16 measured once for the whole network and shared by parameters (its loss is some
/// ten thousand times below int8's, but not nothing: fp32 stays the better of the two where
/// bytes allow). `int8_losses`, when given, are taken for int8 instead of measured (int8's
/// loss hardly depends on the granularity).
#[allow(clippy::too_many_arguments)]
pub async fn measure<P, F>(
    model: &Model,
    granularity: Granularity,
    int8_losses: Option<&BTreeMap<String, f64>>,
    images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    progress: &mut P,
) -> Result<(CostTable, BTreeMap<String, f64>)>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let folded = model.fold_bn()?;
    let layers: Vec<(String, Vec<usize>, usize)> = model
        .graph()
        .nodes
        .iter()
        .filter_map(|n| n.op.layer_name())
        .map(|name| {
            let shape = folded
                .weights
                .get(&format!("{name}.weight"))
                .map(|t| t.shape.clone())
                .ok_or_else(|| Error::Structure(format!("layer '{name}' has no weight")))?;
            let bias = folded
                .weights
                .get(&format!("{name}.bias"))
                .map_or(0, |t| t.len());
            Ok((name.to_string(), shape, bias))
        })
        .collect::<Result<_>>()?;
    let int8 = match int8_losses {
        Some(l) => l.clone(),
        None => {
            losses(
                model,
                Precision::Int8,
                granularity,
                images,
                batch,
                backend,
                progress,
            )
            .await?
        }
    };
    let int4 = losses(
        model,
        Precision::Int4,
        granularity,
        images,
        batch,
        backend,
        progress,
    )
    .await?;
    let all = |p: Precision| QuantOptions {
        weights: p,
        granularity,
        ..QuantOptions::default()
    };
    let reference = logits_of(model, backend, images, batch).await?;
    let half = model.quantized(&all(Precision::F16))?;
    let f16_kl = agreement(&reference, &logits_of(&half, backend, images, batch).await?)
        .kl
        .max(0.0);
    let total: usize = layers
        .iter()
        .map(|(_, s, _)| s.iter().product::<usize>())
        .sum();
    let table_layers: Vec<LayerCosts> = layers
        .iter()
        .map(|(name, shape, bias)| {
            let share = shape.iter().product::<usize>() as f64 / total.max(1) as f64;
            let loss = |p: Precision| match p {
                Precision::F32 => 0.0,
                // A floor keeps fp32 ahead of fp16 where fp16 measured nothing.
                Precision::F16 => (f16_kl * share).max(1e-12),
                Precision::Int8 => int8.get(name).copied().unwrap_or(f64::INFINITY),
                Precision::Int4 => int4.get(name).copied().unwrap_or(f64::INFINITY),
            };
            LayerCosts {
                layer: name.clone(),
                options: PRECISIONS
                    .iter()
                    .map(|&p| Choice {
                        bytes: layer_bytes(shape, *bias, p, granularity),
                        loss: loss(p),
                    })
                    .collect(),
            }
        })
        .collect();
    // The rest of the file, from one written with every layer at int8.
    let file = to_onnx(&model.quantized(&all(Precision::Int8))?)?.len() as u64;
    let weights: u64 = table_layers.iter().map(|l| l.options[2].bytes).sum();
    let table = CostTable {
        granularity,
        layers: table_layers,
        overhead: file.saturating_sub(weights),
    };
    Ok((table, int8))
}

/// Each layer's loss stored alone in `p`, by name.
async fn losses<P, F>(
    model: &Model,
    p: Precision,
    granularity: Granularity,
    images: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    progress: &mut P,
) -> Result<BTreeMap<String, f64>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let rows = sensitivity(model, p, granularity, images, batch, backend, progress).await?;
    Ok(rows.into_iter().map(|r| (r.layer, r.kl.max(0.0))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_of_each_precision() {
        let shape = [64, 32, 3, 3];
        let n = 64 * 32 * 9;
        let pc = Granularity::PerChannel;
        assert_eq!(layer_bytes(&shape, 64, Precision::F32, pc), 4 * n + 256);
        assert_eq!(layer_bytes(&shape, 64, Precision::F16, pc), 2 * n + 128);
        assert_eq!(
            layer_bytes(&shape, 64, Precision::Int8, pc),
            n + 5 * 64 + 256
        );
        assert_eq!(
            layer_bytes(&shape, 64, Precision::Int4, pc),
            n / 2 + 4 * 64 + 32 + 256
        );
        // Groups of 16 along the 32 inputs: 2 per output channel and kernel position.
        let s = 64 * 2 * 9;
        assert_eq!(
            layer_bytes(&shape, 64, Precision::Int4, Granularity::Group(16)),
            n / 2 + 4 * s + s / 2 + 256
        );
    }
}
