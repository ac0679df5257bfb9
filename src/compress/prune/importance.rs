//! How much each channel of a group matters. Pruning removes the lowest-scoring channels; a
//! criterion is anything that scores a group's channels ([`ChannelImportance`]), so criteria
//! computed from calibration statistics plug in beside the weight-only ones here.

use crate::model::channels::{Group, Member};
use crate::tensor::{HostTensor, StateDict};
use crate::{Error, Result};

/// Scores every channel of a group, in channel order: the higher, the more it matters.
pub trait ChannelImportance {
    fn scores(&self, group: &Group, weights: &StateDict) -> Vec<f64>;
}

/// Sum of |w| over every weight slice of the channel in the group.
pub struct L1Norm;
/// Euclidean norm over the same slices.
pub struct L2Norm;
/// Sum of |γ| over the group's batch norms.
pub struct BnScale;

/// The built-in criteria, by the name the CLI and the page use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// `l1`: [`L1Norm`].
    L1,
    /// `l2`: [`L2Norm`].
    L2,
    /// `bn`: [`BnScale`].
    BnScale,
    /// `output`: the output energy the channel carries in the layers that read it, measured
    /// on calibration photos ([`super::measured_importance`]).
    Output,
    /// `hessian`: the diagonal-Hessian (Optimal Brain Damage) saliency of the same, measured
    /// on calibration photos.
    Hessian,
}

impl std::str::FromStr for Importance {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "l1" => Ok(Importance::L1),
            "l2" => Ok(Importance::L2),
            "bn" => Ok(Importance::BnScale),
            "output" => Ok(Importance::Output),
            "hessian" => Ok(Importance::Hessian),
            other => Err(Error::Invalid(format!(
                "unknown importance '{other}'; use l1, l2, bn, output or hessian"
            ))),
        }
    }
}

impl Importance {
    /// The criterion this name stands for, when it is read from the weights alone; a measured
    /// one (`output`, `hessian`) is built from calibration statistics
    /// ([`super::measured_importance::MeasuredImportance`]).
    pub fn criterion(self) -> Result<&'static dyn ChannelImportance> {
        match self {
            Importance::L1 => Ok(&L1Norm),
            Importance::L2 => Ok(&L2Norm),
            Importance::BnScale => Ok(&BnScale),
            Importance::Output | Importance::Hessian => Err(Error::Invalid(format!(
                "importance '{}' is measured on calibration images: compress with some",
                self.label()
            ))),
        }
    }

    /// Whether the criterion is measured on calibration images.
    pub fn is_measured(self) -> bool {
        matches!(self, Importance::Output | Importance::Hessian)
    }

    /// The name the CLI and the page use.
    pub fn label(self) -> &'static str {
        match self {
            Importance::L1 => "l1",
            Importance::L2 => "l2",
            Importance::BnScale => "bn",
            Importance::Output => "output",
            Importance::Hessian => "hessian",
        }
    }
}

/// Number of channels of a group (the length of the first axis that is wholly its own).
pub fn group_width(g: &Group, w: &StateDict) -> usize {
    g.members
        .iter()
        .filter(|m| m.after.is_none())
        .find_map(|m| w.get(&m.key).map(|t| m.width(t.shape[m.axis])))
        .unwrap_or(0)
}

/// For each channel `c` of `axis`, call `f(c, value)` on every element of that slice.
fn for_each_in_axis(t: &HostTensor, axis: usize, mut f: impl FnMut(usize, f32)) {
    let outer: usize = t.shape[..axis].iter().product();
    let n = t.shape[axis];
    let inner: usize = t.shape[axis + 1..].iter().product();
    for o in 0..outer {
        for c in 0..n {
            let start = (o * n + c) * inner;
            for &v in &t.data[start..start + inner] {
                f(c, v);
            }
        }
    }
}

/// Sum `f(w)` over every weight slice of each channel of the group (its convs and linear
/// layers, not its batch norms).
fn weight_sums(g: &Group, w: &StateDict, f: impl Fn(f32) -> f64) -> Vec<f64> {
    let width = group_width(g, w);
    let mut scores = vec![0f64; width];
    for m in weight_members(g) {
        if let Some(t) = w.get(&m.key) {
            // The group's channel at each index of the axis, if any.
            let mut channel = vec![None; t.shape[m.axis]];
            for (i, k) in m.positions(w, width) {
                if let Some(c) = channel.get_mut(i) {
                    *c = Some(k);
                }
            }
            for_each_in_axis(t, m.axis, |c, v| {
                if let Some(k) = channel[c] {
                    scores[k] += f(v);
                }
            });
        }
    }
    scores
}

impl ChannelImportance for L1Norm {
    fn scores(&self, g: &Group, w: &StateDict) -> Vec<f64> {
        weight_sums(g, w, |v| v.abs() as f64)
    }
}

impl ChannelImportance for L2Norm {
    fn scores(&self, g: &Group, w: &StateDict) -> Vec<f64> {
        let mut s = weight_sums(g, w, |v| (v as f64) * (v as f64));
        s.iter_mut().for_each(|x| *x = x.sqrt());
        s
    }
}

impl ChannelImportance for BnScale {
    fn scores(&self, g: &Group, w: &StateDict) -> Vec<f64> {
        let width = group_width(g, w);
        let mut scores = vec![0f64; width];
        for bn in &g.bns {
            let key = format!("{bn}.weight");
            let (Some(gamma), Some(m)) = (w.get(&key), g.members.iter().find(|m| m.key == key))
            else {
                continue;
            };
            for (i, k) in m.positions(w, width) {
                if let Some(v) = gamma.data.get(i) {
                    scores[k] += v.abs() as f64;
                }
            }
        }
        scores
    }
}

/// Conv and linear weights of a group (rank ≥ 2), not its batch-norm vectors.
fn weight_members(g: &Group) -> impl Iterator<Item = &Member> {
    g.members
        .iter()
        .filter(|m| m.key.ends_with(".weight") && !is_bn(g, &m.key))
}

fn is_bn(g: &Group, key: &str) -> bool {
    g.bns.iter().any(|bn| key.starts_with(&format!("{bn}.")))
}
