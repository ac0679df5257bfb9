//! Per-group pruning budgets from measured loss: instead of the same share from every group,
//! each group's cost is measured on the calibration photos — the mean KL of the outputs from
//! the original's with only that group pruned (and refit) at a few ratios, or with its block
//! dropped — and the ratios that meet a MAC target at the least total loss are chosen from
//! that table. Losses are taken as additive across groups and linear between measured ratios,
//! the same first-order model OBC and the layer-wise budget searches use; the chosen
//! combination is then built and its MACs counted exactly.
//!
//! The choice is greedy over each group's lower convex hull of (MACs saved, loss): the step
//! that costs least loss per MAC saved next goes first, so a sensitive group keeps its
//! channels while tolerant ones give more. The last step may overshoot; steps are then given
//! back, the most costly first, while the target still holds, so the result lands within one
//! channel step of the target.
//!
//! Block drops are where additivity fails most (on EfficientNet-Lite0 the table's choice of
//! two drops plus channels measured a KL of 0.22 where four blocks dropped greedily, each
//! measured after the others, measured 0.18 at about the same MACs), so greedy sequences of
//! drops with the rest from channels compete with the table's choice, measured whole
//! ([`meet_mac_target`]).

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;

use super::blocks::{
    DroppedBlock, MEASURED_PHOTOS, drop_greedily, first_photos, kl_on, logits_on, network_macs,
};
use super::channels::{KeptChannels, PruneOptions};
use super::importance::{ChannelImportance, group_width};
use crate::backend::Backend;
use crate::compress::progress::{Progress, report};
use crate::model::Model;
use crate::model::channels::Group;
use crate::{Error, Result};

/// The shares of a group's channels whose removal is measured.
pub const MEASURED_RATIOS: [f32; 3] = [0.25, 0.5, 0.75];

/// One measured option of a group: a share of its channels removed, with what it saves and
/// costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub ratio: f32,
    pub saved_macs: u64,
    /// Mean KL of the outputs from the unpruned network's on the calibration photos.
    pub loss: f64,
}

/// Dropping the block a group lies inside, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropPoint {
    pub block: String,
    pub saved_macs: u64,
    pub loss: f64,
}

/// What one group's options save and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupCosts {
    pub group: String,
    pub width: usize,
    /// Channels are removed this many at a time (the width multiple).
    pub step: usize,
    /// Measured, by ratio ascending.
    pub points: Vec<Point>,
    pub drop: Option<DropPoint>,
}

/// What one group is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    /// Keep this many channels.
    Keep(usize),
    /// Drop the block it lies inside.
    Drop,
}

/// The allocator's answer: a share per group, with the MACs saved and loss it predicts.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub shares: Vec<(String, Share)>,
    pub saved_macs: u64,
    pub predicted_loss: f64,
}

/// One state a group can be in: kept channels (or dropped), MACs saved, loss.
#[derive(Debug, Clone, Copy)]
struct State {
    share: Share,
    saved: f64,
    loss: f64,
}

impl GroupCosts {
    /// Every state, by MACs saved ascending: each channel step down to the largest measured
    /// ratio (saved MACs and loss interpolated between measured points), then the drop.
    fn states(&self) -> Vec<State> {
        let mut knots = vec![(0usize, 0.0f64, 0.0f64)];
        for p in &self.points {
            let removed = self.width - super::channels::kept_width(self.width, p.ratio, 1);
            if removed > knots.last().map_or(0, |k| k.0) {
                knots.push((removed, p.saved_macs as f64, p.loss));
            }
        }
        let most = knots.last().map_or(0, |k| k.0);
        let step = self.step.max(1);
        let mut states = Vec::new();
        let mut removed = 0;
        while removed <= most {
            let at = knots.iter().position(|k| k.0 >= removed).unwrap_or(0);
            let (saved, loss) = if at == 0 {
                (0.0, 0.0)
            } else {
                let (a, b) = (knots[at - 1], knots[at]);
                let t = (removed - a.0) as f64 / (b.0 - a.0).max(1) as f64;
                (a.1 + t * (b.1 - a.1), a.2 + t * (b.2 - a.2))
            };
            states.push(State {
                share: Share::Keep(self.width - removed),
                saved,
                loss,
            });
            if removed == most {
                break;
            }
            removed = (removed + step).min(most);
        }
        if let Some(d) = &self.drop
            && d.saved_macs as f64 > states.last().map_or(0.0, |s| s.saved)
        {
            states.push(State {
                share: Share::Drop,
                saved: d.saved_macs as f64,
                loss: d.loss,
            });
        }
        states
    }
}

/// Indices of `states`' lower convex hull (collinear states kept, so that straight stretches
/// advance one channel step at a time).
fn lower_hull(states: &[State]) -> Vec<usize> {
    let mut hull: Vec<usize> = Vec::new();
    for i in 0..states.len() {
        while hull.len() >= 2 {
            let (a, b) = (&states[hull[hull.len() - 2]], &states[hull[hull.len() - 1]]);
            let c = &states[i];
            // b above the segment a–c: the turn a→b→c is concave.
            let cross =
                (b.saved - a.saved) * (c.loss - a.loss) - (b.loss - a.loss) * (c.saved - a.saved);
            if cross < 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(i);
    }
    hull
}

/// The shares that save at least `needed` MACs at the least predicted loss (see the module's
/// comment), or why no combination of the measured options saves that much.
pub fn allocate(costs: &[GroupCosts], needed: u64) -> Result<Allocation> {
    let states: Vec<Vec<State>> = costs.iter().map(GroupCosts::states).collect();
    let hulls: Vec<Vec<usize>> = states.iter().map(|s| lower_hull(s)).collect();
    // Per group: where on its hull it is, and the state that is.
    let mut on_hull = vec![0usize; costs.len()];
    let mut at: Vec<usize> = vec![0; costs.len()];
    let saved = |at: &[usize]| -> f64 {
        at.iter()
            .zip(&states)
            .map(|(&i, s)| s.get(i).map_or(0.0, |s| s.saved))
            .sum()
    };
    let needed_f = needed as f64;
    while saved(&at) < needed_f {
        let mut best: Option<(f64, usize)> = None;
        for g in 0..costs.len() {
            let Some(&next) = hulls[g].get(on_hull[g] + 1) else {
                continue;
            };
            let (from, to) = (&states[g][at[g]], &states[g][next]);
            let slope = (to.loss - from.loss) / (to.saved - from.saved).max(1e-9);
            if best.is_none_or(|(s, _)| slope < s) {
                best = Some((slope, g));
            }
        }
        let Some((_, g)) = best else {
            let most: f64 = states
                .iter()
                .map(|s| s.last().map_or(0.0, |s| s.saved))
                .sum();
            return Err(Error::Invalid(format!(
                "the measured options save at most {:.0} M of the {:.0} M MACs asked: keep a larger share of the MACs",
                most / 1e6,
                needed_f / 1e6
            )));
        };
        on_hull[g] += 1;
        at[g] = hulls[g][on_hull[g]];
    }
    // Give back the steps that cost most loss while the target still holds.
    loop {
        let total = saved(&at);
        let mut best: Option<(f64, usize)> = None;
        for g in 0..costs.len() {
            if at[g] == 0 {
                continue;
            }
            let (now, back) = (&states[g][at[g]], &states[g][at[g] - 1]);
            if total - (now.saved - back.saved) < needed_f {
                continue;
            }
            let gain = now.loss - back.loss;
            if best.is_none_or(|(b, _)| gain > b) {
                best = Some((gain, g));
            }
        }
        match best {
            Some((_, g)) => at[g] -= 1,
            None => break,
        }
    }
    let chosen: Vec<&State> = at.iter().zip(&states).map(|(&i, s)| &s[i]).collect();
    Ok(Allocation {
        shares: costs
            .iter()
            .zip(&chosen)
            .map(|(c, s)| (c.group.clone(), s.share))
            .collect(),
        saved_macs: chosen.iter().map(|s| s.saved).sum::<f64>().round() as u64,
        predicted_loss: chosen.iter().map(|s| s.loss).sum(),
    })
}

/// The block (`layer1.1`, `_blocks.4`) a group lies inside when that block can be dropped.
fn droppable_block_of(model: &Model, g: &Group) -> Option<String> {
    if g.residual || g.features || g.protected {
        return None;
    }
    model
        .arch
        .blocks()
        .into_iter()
        .find(|b| g.name.starts_with(&format!("{b}.")))
}

/// The network pruned as `shares` say: blocks dropped, then each group cut to its kept
/// width by `criterion`. Returns the model, the blocks dropped and the share of each group's
/// channels removed.
pub fn apply_shares(
    model: &Model,
    shares: &[(String, Share)],
    opts: &PruneOptions,
    criterion: &dyn ChannelImportance,
) -> Result<(Model, Vec<String>, BTreeMap<String, f32>)> {
    let groups = model.channel_groups();
    let mut drops = Vec::new();
    let mut ratios = BTreeMap::new();
    for (name, share) in shares {
        let g = groups
            .iter()
            .find(|g| &g.name == name)
            .ok_or_else(|| Error::Invalid(format!("no channel group named '{name}'")))?;
        match share {
            Share::Drop => drops.push(
                droppable_block_of(model, g)
                    .ok_or_else(|| Error::Invalid(format!("'{name}' is in no droppable block")))?,
            ),
            Share::Keep(k) => {
                let w = group_width(g, &model.weights);
                if *k < w {
                    ratios.insert(name.clone(), 1.0 - *k as f32 / w.max(1) as f32);
                }
            }
        }
    }
    let dropped = model.with_blocks_dropped(&drops)?;
    let pruned = prune_to(&dropped, &ratios, opts, criterion)?.0;
    Ok((pruned, drops, ratios))
}

/// `model` with each group of `ratios` cut by that share by `criterion`, and the channels
/// kept. Exact kept widths: a ratio that rounds back to the allocator's channel count (no
/// width multiple here, the allocator already stepped by it).
fn prune_to(
    model: &Model,
    ratios: &BTreeMap<String, f32>,
    opts: &PruneOptions,
    criterion: &dyn ChannelImportance,
) -> Result<(Model, KeptChannels)> {
    if ratios.is_empty() {
        return Ok((model.clone(), KeptChannels::new()));
    }
    let o = PruneOptions {
        ratio: 0.0,
        overrides: ratios.iter().map(|(n, r)| (n.clone(), *r)).collect(),
        round_to: 1,
        steps: 1,
        global: false,
        ..opts.clone()
    };
    model.pruned_by(&o, criterion)
}

/// The photos options are measured on, and the layer statistics refits are fit on: the first
/// photos (at most [`MEASURED_PHOTOS`], and half of them when there are fewer than twice that)
/// are measured, and refits fit on as many of the others. Measured on the photos it was fit
/// to, a refit option flatters itself: on EfficientNet-Lite0 the table then preferred
/// channels to block drops that cost less on other photos. One photo is both.
fn measured_and_fitted(
    photos: &[Vec<Vec<f32>>],
    statistics: &[Vec<Vec<f32>>],
) -> (PhotoBatches, PhotoBatches) {
    let count = |b: &[Vec<Vec<f32>>]| b.iter().map(Vec::len).sum::<usize>();
    let n = count(photos);
    // The statistics hold each photo's copies next to it.
    let copies = (count(statistics) / n.max(1)).max(1);
    let measured = MEASURED_PHOTOS.min(n / 2).max(n.min(1));
    let fitted = if n > measured {
        first_photos(
            &photos_after(statistics, measured * copies),
            MEASURED_PHOTOS * copies,
        )
    } else {
        first_photos(statistics, MEASURED_PHOTOS * copies)
    };
    (first_photos(photos, measured), fitted)
}

/// Photos in batches, each photo a network input.
type PhotoBatches = Vec<Vec<Vec<f32>>>;

/// `batches` without their first `n` photos.
fn photos_after(batches: &[Vec<Vec<f32>>], n: usize) -> PhotoBatches {
    let mut skip = n;
    let mut out = Vec::new();
    for b in batches {
        let from = skip.min(b.len());
        skip -= from;
        if from < b.len() {
            out.push(b[from..].to_vec());
        }
    }
    out
}

/// Measure every prunable group's cost (see the module's comment): KL of the outputs on
/// `photos`, each option refit on `statistics` when `refit` (the two halves
/// [`measured_and_fitted`] splits the calibration photos into).
#[allow(clippy::too_many_arguments)]
pub async fn measure_costs<P, F>(
    model: &Model,
    opts: &PruneOptions,
    criterion: &dyn ChannelImportance,
    refit: bool,
    backend: &Backend,
    photos: &[Vec<Vec<f32>>],
    statistics: &[Vec<Vec<f32>>],
    progress: &mut P,
) -> Result<Vec<GroupCosts>>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let reference = logits_on(model, backend, photos).await?;
    if reference.is_empty() {
        return Err(Error::Invalid(
            "a MAC target is met by measuring each group on calibration photos, and none were given"
                .into(),
        ));
    }
    let macs0 = network_macs(model);
    let groups: Vec<Group> = model
        .channel_groups()
        .into_iter()
        .filter(|g| opts.may_prune(g) && group_width(g, &model.weights) > 1)
        .collect();
    let drops: Vec<Option<String>> = groups
        .iter()
        .map(|g| droppable_block_of(model, g))
        .collect();
    let total = groups.len() * MEASURED_RATIOS.len() + drops.iter().flatten().count();
    let mut done = 0;
    let mut silent = |_: Progress| async { true };
    let mut out = Vec::new();
    for (g, drop) in groups.iter().zip(drops) {
        let mut points = Vec::new();
        for &ratio in &MEASURED_RATIOS {
            done += 1;
            let label = format!(
                "measuring {} with {:.0} % of its channels removed ({done} of {total})",
                g.name,
                ratio * 100.0
            );
            report(progress, Progress::new(done, total, label)).await?;
            let o = PruneOptions {
                ratio: 0.0,
                overrides: [(g.name.clone(), ratio)].into_iter().collect(),
                steps: 1,
                global: false,
                ..opts.clone()
            };
            let (pruned, kept) = model.pruned_by(&o, criterion)?;
            let pruned = if refit {
                pruned
                    .reconstructed(model, &kept, None, backend, statistics, &mut silent)
                    .await?
            } else {
                pruned
            };
            let loss = kl_on(&reference, &pruned, backend, photos).await?;
            points.push(Point {
                ratio,
                saved_macs: macs0.saturating_sub(network_macs(&pruned)),
                loss,
            });
        }
        let drop = match drop {
            Some(block) => {
                done += 1;
                let label = format!("measuring the network without {block} ({done} of {total})");
                report(progress, Progress::new(done, total, label)).await?;
                let without = model.with_blocks_dropped(std::slice::from_ref(&block))?;
                let loss = kl_on(&reference, &without, backend, photos).await?;
                Some(DropPoint {
                    saved_macs: macs0.saturating_sub(network_macs(&without)),
                    block,
                    loss,
                })
            }
            None => None,
        };
        out.push(GroupCosts {
            group: g.name.clone(),
            width: group_width(g, &model.weights),
            step: opts.round_to.max(1),
            points,
            drop,
        });
    }
    Ok(out)
}

/// What a MAC target chose: the network with the chosen blocks dropped (its channels are
/// pruned next, to `ratios`), the blocks dropped and each group's share to remove.
pub struct Budgeted {
    pub model: Model,
    pub dropped: Vec<DroppedBlock>,
    pub ratios: BTreeMap<String, f32>,
}

impl Budgeted {
    /// `model` as it is: it already keeps no more than the target.
    fn unchanged(model: &Model) -> Budgeted {
        Budgeted {
            model: model.clone(),
            dropped: Vec::new(),
            ratios: BTreeMap::new(),
        }
    }
}

/// Keep at most `target` of `model`'s MACs at the least measured loss. The table of costs
/// (see the module's comment) proposes one combination; since losses do not add up exactly
/// — dropping two blocks can cost more, or less, than the two drops measured alone — whole
/// blocks are also dropped greedily, each measured with the ones before it gone, and every
/// prefix of that sequence that saves less than needed, the rest taken from channels by the
/// table, is a candidate too. Each candidate is built (and refit when `refit`) and its KL
/// measured on the photos; the least wins. Every candidate misses the target by less than a
/// channel step.
#[allow(clippy::too_many_arguments)]
pub async fn meet_mac_target<P, F>(
    model: &Model,
    target: u64,
    opts: &PruneOptions,
    criterion: &dyn ChannelImportance,
    refit: bool,
    backend: &Backend,
    photos: &[Vec<Vec<f32>>],
    statistics: &[Vec<Vec<f32>>],
    progress: &mut P,
) -> Result<Budgeted>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let macs0 = network_macs(model);
    if macs0 <= target {
        return Ok(Budgeted::unchanged(model));
    }
    let (photos, statistics) = &measured_and_fitted(photos, statistics);
    let costs = measure_costs(
        model, opts, criterion, refit, backend, photos, statistics, progress,
    )
    .await?;
    let mut candidates = vec![within_target(model, &costs, target, opts, criterion)?];
    let needed = macs0 - target;
    let sequence = drop_greedily(
        model,
        model.arch.blocks().len(),
        |chosen| chosen.iter().map(|d| d.macs).sum::<u64>() < needed,
        backend,
        photos,
        progress,
    )
    .await?;
    for k in 1..=sequence.len() {
        // Blocks alone that save more than needed would overshoot the target by more than a
        // channel step: the candidates before them take the rest from channels.
        if sequence[..k].iter().map(|d| d.macs).sum::<u64>() >= needed {
            break;
        }
        let names: Vec<String> = sequence[..k].iter().map(|d| d.name.clone()).collect();
        let base = model.with_blocks_dropped(&names)?;
        let left: Vec<String> = base.channel_groups().into_iter().map(|g| g.name).collect();
        let channels_only: Vec<GroupCosts> = costs
            .iter()
            .filter(|c| left.contains(&c.group))
            .map(|c| GroupCosts {
                drop: None,
                ..c.clone()
            })
            .collect();
        // Fewer blocks than this may leave more than the channels can give: not a candidate.
        if let Ok(mut c) = within_target(&base, &channels_only, target, opts, criterion) {
            c.dropped = sequence[..k]
                .iter()
                .map(|d| DroppedBlock {
                    chosen_by: "budget".into(),
                    ..d.clone()
                })
                .collect();
            candidates.push(c);
        }
    }
    let reference = logits_on(model, backend, photos).await?;
    let mut silent = |_: Progress| async { true };
    let mut best: Option<(f64, Budgeted)> = None;
    let n = candidates.len();
    for (i, c) in candidates.into_iter().enumerate() {
        let blocks: Vec<&str> = c.dropped.iter().map(|d| d.name.as_str()).collect();
        let label = format!(
            "measuring combination {} of {n}: {} blocks dropped{}, channels from {} groups",
            i + 1,
            blocks.len(),
            if blocks.is_empty() {
                String::new()
            } else {
                format!(" ({})", blocks.join(", "))
            },
            c.ratios.len()
        );
        report(progress, Progress::new(i + 1, n, label)).await?;
        let (pruned, kept) = prune_to(&c.model, &c.ratios, opts, criterion)?;
        let built = if refit && !c.ratios.is_empty() {
            pruned
                .reconstructed(&c.model, &kept, None, backend, statistics, &mut silent)
                .await?
        } else {
            pruned
        };
        let kl = kl_on(&reference, &built, backend, photos).await?;
        if best.as_ref().is_none_or(|(b, _)| kl < *b) {
            best = Some((kl, c));
        }
    }
    best.map(|(_, c)| c)
        .ok_or_else(|| Error::Invalid("no combination meets the MAC target".into()))
}

/// The table's combination for keeping at most `target` MACs of `base`: allocate, build and
/// count; when the built network misses the target — groups that share a layer do not save
/// additively — ask the allocator for the difference too.
fn within_target(
    base: &Model,
    costs: &[GroupCosts],
    target: u64,
    opts: &PruneOptions,
    criterion: &dyn ChannelImportance,
) -> Result<Budgeted> {
    let macs = network_macs(base);
    if macs <= target {
        return Ok(Budgeted::unchanged(base));
    }
    let mut needed = macs - target;
    for _ in 0..16 {
        let a = allocate(costs, needed)?;
        let (pruned, drops, ratios) = apply_shares(base, &a.shares, opts, criterion)?;
        let macs = network_macs(&pruned);
        if macs <= target {
            let dropped = drops
                .iter()
                .map(|block| {
                    let c = costs
                        .iter()
                        .find_map(|c| c.drop.as_ref().filter(|d| &d.block == block));
                    DroppedBlock {
                        name: block.clone(),
                        macs: c.map_or(0, |d| d.saved_macs),
                        kl: c.map(|d| d.loss),
                        chosen_by: "budget".into(),
                    }
                })
                .collect();
            return Ok(Budgeted {
                model: base.with_blocks_dropped(&drops)?,
                dropped,
                ratios,
            });
        }
        // Ask for more than this allocation predicted, by what it fell short.
        needed = a.saved_macs.max(needed) + (macs - target);
    }
    Err(Error::Invalid(format!(
        "no combination of the measured options keeps {:.0} M MACs: keep a larger share",
        target as f64 / 1e6
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group of `width` channels, each saving `per_channel` MACs, whose loss at each
    /// measured ratio is `loss(ratio)`.
    fn group(name: &str, width: usize, per_channel: u64, loss: impl Fn(f32) -> f64) -> GroupCosts {
        GroupCosts {
            group: name.into(),
            width,
            step: 1,
            points: MEASURED_RATIOS
                .iter()
                .map(|&r| {
                    let removed = width - super::super::channels::kept_width(width, r, 1);
                    Point {
                        ratio: r,
                        saved_macs: removed as u64 * per_channel,
                        loss: loss(r),
                    }
                })
                .collect(),
            drop: None,
        }
    }

    fn loss_of(costs: &[GroupCosts], a: &Allocation, name: &str) -> f64 {
        let c = costs.iter().find(|c| c.group == name).unwrap();
        let states = c.states();
        let share = a.shares.iter().find(|(n, _)| n == name).unwrap().1;
        states.iter().find(|s| s.share == share).unwrap().loss
    }

    #[test]
    fn a_sensitive_group_keeps_its_channels_and_the_target_is_met_within_a_step() {
        // Four groups of 64 channels, 1000 MACs each; one is 20 times as sensitive.
        let mut costs: Vec<GroupCosts> = (0..4)
            .map(|i| group(&format!("g{i}"), 64, 1000, |r| (r * r) as f64))
            .collect();
        costs[2] = group("g2", 64, 1000, |r| 20.0 * (r * r) as f64);
        let total = 4 * 64 * 1000u64;
        // Remove 30 % of the MACs: the uniform split removes 30 % of every group.
        let needed = (total as f64 * 0.3) as u64;
        let a = allocate(&costs, needed).unwrap();
        assert!(a.saved_macs >= needed, "{} < {needed}", a.saved_macs);
        assert!(
            a.saved_macs < needed + 1000,
            "overshoot {}",
            a.saved_macs - needed
        );
        let uniform = Allocation {
            shares: costs
                .iter()
                .map(|c| {
                    (
                        c.group.clone(),
                        Share::Keep(super::super::channels::kept_width(64, 0.3, 1)),
                    )
                })
                .collect(),
            saved_macs: 0,
            predicted_loss: 0.0,
        };
        // Interpolated losses of the uniform split, from the same table.
        assert!(
            loss_of(&costs, &a, "g2") <= loss_of(&costs, &uniform, "g2"),
            "the sensitive group lost more than under the uniform split"
        );
        let uniform_total: f64 = costs
            .iter()
            .map(|c| loss_of(&costs, &uniform, &c.group))
            .sum();
        assert!(
            a.predicted_loss < uniform_total,
            "{} ≥ {uniform_total}",
            a.predicted_loss
        );
        // The sensitive group gives the fewest channels.
        let kept = |n: &str| match a.shares.iter().find(|(g, _)| g == n).unwrap().1 {
            Share::Keep(k) => k,
            Share::Drop => 0,
        };
        assert!(
            (0..4)
                .filter(|&i| i != 2)
                .all(|i| kept("g2") > kept(&format!("g{i}")))
        );
    }

    #[test]
    fn a_cheap_drop_is_taken_before_channels() {
        let mut costs: Vec<GroupCosts> = (0..3)
            .map(|i| group(&format!("g{i}"), 32, 100, |r| r as f64))
            .collect();
        costs[1].drop = Some(DropPoint {
            block: "b1".into(),
            saved_macs: 32 * 100 + 500,
            loss: 0.1,
        });
        let a = allocate(&costs, 3000).unwrap();
        assert_eq!(a.shares[1].1, Share::Drop);
        assert!(a.saved_macs >= 3000);
        // More than everything the table offers is refused with a reason.
        assert!(allocate(&costs, 1_000_000).is_err());
    }

    /// `n` one-value "photos" numbered from 0, in batches of 8, each followed by `copies - 1`
    /// copies (as augmented layer statistics hold them).
    fn numbered(n: usize, copies: usize) -> Vec<Vec<Vec<f32>>> {
        let all: Vec<Vec<f32>> = (0..n)
            .flat_map(|i| std::iter::repeat_n(vec![i as f32], copies))
            .collect();
        all.chunks(8).map(<[_]>::to_vec).collect()
    }

    fn ids(batches: &[Vec<Vec<f32>>]) -> Vec<usize> {
        batches.iter().flatten().map(|p| p[0] as usize).collect()
    }

    #[test]
    fn options_are_measured_on_photos_their_refits_never_saw() {
        for (n, copies, measured, fitted_from) in [(200, 1, 64, 64), (8, 1, 4, 4), (9, 4, 4, 4)] {
            let (m, f) = measured_and_fitted(&numbered(n, 1), &numbered(n, copies));
            assert_eq!(ids(&m), (0..measured).collect::<Vec<_>>(), "{n} photos");
            let fit = ids(&f);
            assert_eq!(fit.first(), Some(&fitted_from), "{n} photos");
            assert!(fit.iter().all(|&i| i >= measured), "{n} photos: {fit:?}");
            assert_eq!(fit.len(), (n - measured).min(MEASURED_PHOTOS) * copies);
        }
        // One photo: measured and fitted both.
        let (m, f) = measured_and_fitted(&numbered(1, 1), &numbered(1, 2));
        assert_eq!((ids(&m), ids(&f)), (vec![0], vec![0, 0]));
    }
}
