//! Block dropping: a residual block whose input and output have the same shape can be
//! removed whole — it becomes its shortcut, the identity. With a few hundred photos and no
//! labels, removing whole blocks recovers better than thinning every block by the same MACs
//! (PRACTISE, CVPR 2023), and a shorter network is faster in every runtime.
//!
//! Blocks are chosen greedily by what their absence costs on the calibration photos: the mean
//! KL of the network's outputs from the original's, re-measured after each removal (a block
//! that is cheap alone may not be once its neighbour is gone).

use std::future::Future;
use std::str::FromStr;

use serde::Serialize;

use crate::backend::Backend;
use crate::compress::agreement::agreement;
use crate::compress::progress::{Progress, report};
use crate::model::Model;
use crate::predict::Classifier;
use crate::{Error, Result};

/// Which blocks to drop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BlockDrop {
    #[default]
    None,
    /// This many, chosen on the calibration photos.
    Count(usize),
    /// These, by name (`layer3.1`, `_blocks.9`).
    Names(Vec<String>),
}

impl BlockDrop {
    /// The CLI's word: `none`, a count, or names separated by commas.
    pub fn label(&self) -> String {
        match self {
            BlockDrop::None => "none".into(),
            BlockDrop::Count(n) => n.to_string(),
            BlockDrop::Names(names) => names.join(","),
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, BlockDrop::None | BlockDrop::Count(0))
    }

    /// Whether the blocks are chosen on photos.
    pub fn is_measured(&self) -> bool {
        matches!(self, BlockDrop::Count(n) if *n > 0)
    }
}

impl FromStr for BlockDrop {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() || s == "none" || s == "0" {
            return Ok(BlockDrop::None);
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(BlockDrop::Count(n));
        }
        let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
        if names
            .iter()
            .any(|n| n.is_empty() || n.contains(char::is_whitespace))
        {
            return Err(Error::Invalid(format!(
                "blocks to drop '{s}': give a count (2) or block names separated by commas (layer3.1,layer4.1)"
            )));
        }
        Ok(BlockDrop::Names(names))
    }
}

/// One dropped block and why.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DroppedBlock {
    pub name: String,
    /// The MACs it cost (224×224 input).
    pub macs: u64,
    /// Mean KL of the outputs from the original's on the calibration photos once it (and
    /// the blocks chosen before it) were gone; `None` when it was named, not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// `named`, `measured` (the fewest KL of the candidates left) or `budget` (chosen with
    /// the channel ratios to meet a MAC target).
    pub chosen_by: String,
}

/// MACs the network computes at its input's side.
pub fn network_macs(model: &Model) -> u64 {
    model.graph().macs(model.arch.input_size())
}

/// What dropping `name` from `model` saves in MACs.
pub fn block_macs(model: &Model, name: &str) -> Result<u64> {
    let without = model.arch.with_blocks_dropped(&[name.to_string()])?;
    Ok(network_macs(model)
        .saturating_sub(without.graph(model.folded).macs(model.arch.input_size())))
}

/// The most calibration photos a candidate is measured on: the mean KL of 64 photos ranks
/// options steadily, and the search measures dozens of them.
pub const MEASURED_PHOTOS: usize = 64;

/// The first `n` photos of `batches`, in the same batches.
pub(crate) fn first_photos(batches: &[Vec<Vec<f32>>], n: usize) -> Vec<Vec<Vec<f32>>> {
    let mut left = n;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.len().min(left);
        out.push(b[..take].to_vec());
        left -= take;
    }
    out
}

/// Logits of `model` for `batches` of photos.
pub(crate) async fn logits_on(
    model: &Model,
    backend: &Backend,
    batches: &[Vec<Vec<f32>>],
) -> Result<Vec<Vec<f32>>> {
    let c = Classifier::for_logits(model, backend.clone())?;
    let mut out = Vec::new();
    for b in batches.iter().filter(|b| !b.is_empty()) {
        out.extend(c.logits(b).await?);
    }
    Ok(out)
}

/// Mean KL of `model`'s outputs on `batches` from `reference` (rounding can leave a KL of
/// identical outputs a hair below zero; it is 0).
pub(crate) async fn kl_on(
    reference: &[Vec<f32>],
    model: &Model,
    backend: &Backend,
    batches: &[Vec<Vec<f32>>],
) -> Result<f64> {
    Ok(
        agreement(reference, &logits_on(model, backend, batches).await?)
            .kl
            .max(0.0),
    )
}

/// Choose `count` blocks of `model` to drop, greedily by the KL their absence costs on
/// `batches` of calibration photos (at most [`MEASURED_PHOTOS`]; see the module's comment).
/// `progress` hears before each candidate is measured and may cancel.
pub async fn choose_blocks<P, F>(
    model: &Model,
    count: usize,
    backend: &Backend,
    batches: &[Vec<Vec<f32>>],
    progress: &mut P,
) -> Result<Vec<DroppedBlock>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let candidates = model.arch.blocks();
    if count > candidates.len() {
        return Err(Error::Invalid(format!(
            "{} has {} blocks that can be dropped ({}); {count} were asked for",
            model.arch.display(),
            candidates.len(),
            candidates.join(", ")
        )));
    }
    drop_greedily(
        model,
        count,
        |chosen| chosen.len() < count,
        backend,
        batches,
        progress,
    )
    .await
}

/// Drop blocks of `model` one at a time, each the one whose absence costs the least KL on
/// `batches` (at most [`MEASURED_PHOTOS`]) with the ones before it gone, while `more` says
/// so of the blocks chosen so far and candidates are left. `rounds`: how many rounds the
/// progress reports count on.
pub(crate) async fn drop_greedily<P, F>(
    model: &Model,
    rounds: usize,
    more: impl Fn(&[DroppedBlock]) -> bool,
    backend: &Backend,
    batches: &[Vec<Vec<f32>>],
    progress: &mut P,
) -> Result<Vec<DroppedBlock>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let candidates = model.arch.blocks();
    let batches = &first_photos(batches, MEASURED_PHOTOS);
    let reference = logits_on(model, backend, batches).await?;
    if reference.is_empty() {
        return Err(Error::Invalid(
            "choosing blocks to drop is measured on calibration photos, and none were given".into(),
        ));
    }
    let rounds = rounds.min(candidates.len());
    let total: usize = (0..rounds).map(|k| candidates.len() - k).sum();
    let mut measured = 0;
    let mut chosen: Vec<DroppedBlock> = Vec::new();
    let mut current = model.clone();
    while chosen.len() < candidates.len() && more(&chosen) {
        let mut best: Option<(f64, String, Model)> = None;
        for name in &candidates {
            if chosen.iter().any(|c| &c.name == name) {
                continue;
            }
            measured += 1;
            let label = format!(
                "measuring the network without {name} ({measured} of {})",
                total.max(measured)
            );
            report(
                progress,
                Progress::new(measured, total.max(measured), label),
            )
            .await?;
            let without = current.with_blocks_dropped(std::slice::from_ref(name))?;
            let kl = kl_on(&reference, &without, backend, batches).await?;
            if best.as_ref().is_none_or(|(b, _, _)| kl < *b) {
                best = Some((kl, name.clone(), without));
            }
        }
        let Some((kl, name, without)) = best else {
            break;
        };
        chosen.push(DroppedBlock {
            macs: block_macs(&current, &name)?,
            name,
            kl: Some(kl),
            chosen_by: "measured".into(),
        });
        current = without;
    }
    Ok(chosen)
}

/// The blocks `names`, as dropped by name.
pub fn named_blocks(model: &Model, names: &[String]) -> Result<Vec<DroppedBlock>> {
    let mut current = model.clone();
    let mut out = Vec::new();
    for name in names {
        let macs = block_macs(&current, name)?;
        current = current.with_blocks_dropped(std::slice::from_ref(name))?;
        out.push(DroppedBlock {
            name: name.clone(),
            macs,
            kl: None,
            chosen_by: "named".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_drop_reads_counts_and_names() {
        assert_eq!("none".parse::<BlockDrop>().unwrap(), BlockDrop::None);
        assert_eq!("0".parse::<BlockDrop>().unwrap(), BlockDrop::None);
        assert_eq!("2".parse::<BlockDrop>().unwrap(), BlockDrop::Count(2));
        assert_eq!(
            "layer3.1, layer4.1".parse::<BlockDrop>().unwrap(),
            BlockDrop::Names(vec!["layer3.1".into(), "layer4.1".into()])
        );
        assert!("layer3.1,,x".parse::<BlockDrop>().is_err());
        let names = BlockDrop::Names(vec!["a".into(), "b".into()]);
        assert_eq!(names.label().parse::<BlockDrop>().unwrap(), names);
    }

    #[test]
    fn resnet18_drops_its_five_identity_blocks_only() {
        let m = Model::seeded_resnet18(1);
        let droppable = m.arch.blocks();
        assert_eq!(
            droppable,
            ["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]
        );
        assert!(m.with_blocks_dropped(&["layer2.0".into()]).is_err());
        assert!(m.with_blocks_dropped(&["layer9.9".into()]).is_err());
        // Every basic block costs about the same: two of them are about a quarter.
        let two = ["layer3.1".to_string(), "layer4.1".to_string()];
        let saved: u64 = named_blocks(&m, &two).unwrap().iter().map(|b| b.macs).sum();
        let share = saved as f64 / network_macs(&m) as f64;
        assert!((0.24..0.27).contains(&share), "{share}");
    }
}
