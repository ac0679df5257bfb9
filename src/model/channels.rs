//! Channel groups derived from a network's structure (Torch-Pruning's dependency groups).
//!
//! Every channel axis of every tensor belongs to a *channel space*. A conv's output axis, its
//! batch norm and the next conv's input axis share one space; a residual add merges the spaces
//! of everything it sums (the downsample conv included); a depthwise conv's input and output
//! are one space. A group is one merged space: all `(tensor, axis)` pairs that must lose the
//! same channels together. Nothing here knows a width: groups come from the layer list alone.

use std::collections::BTreeMap;

/// One layer of the structural description.
#[derive(Debug, Clone)]
pub enum Layer {
    /// A conv (`{name}.weight`, `[out, in/groups, k, k]`) followed by an optional batch norm.
    Conv {
        name: String,
        bn: Option<String>,
        input: usize,
        output: usize,
        depthwise: bool,
    },
    /// A classifier (`{name}.weight` `[out, in]`); its outputs (the classes) are never pruned.
    Linear { name: String, input: usize },
    /// A residual add: the spaces become one.
    Add { a: usize, b: usize },
    /// An element-wise product (a squeeze-excitation gate times the image): the spaces become
    /// one, which is not a residual stream.
    Mul { a: usize, b: usize },
    /// A batch norm that follows no conv directly, on channel space `space`.
    Norm { name: String, space: usize },
}

/// A network's channel structure: its layers over numbered channel spaces. Space 0 is the
/// input image, never pruned.
#[derive(Debug, Clone, Default)]
pub struct Structure {
    pub layers: Vec<Layer>,
    pub spaces: usize,
    /// Spaces protected by default (e.g. the stem's output).
    pub protected: Vec<usize>,
}

impl Structure {
    /// A new channel space.
    pub fn space(&mut self) -> usize {
        self.spaces += 1;
        self.spaces
    }
}

/// A tensor axis that belongs to a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub key: String,
    pub axis: usize,
}

/// Channels that must be pruned together.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The conv whose output defines the group first, e.g. `layer1.0.conv1`.
    pub name: String,
    pub members: Vec<Member>,
    /// Batch norms whose γ scores the group (BN-scale importance).
    pub bns: Vec<String>,
    /// Protected by default (the stem output).
    pub protected: bool,
    /// A residual stream: a residual add sums into this space, so every block along it reads
    /// and writes these channels.
    pub residual: bool,
    /// The network's final features: the classifier reads these channels.
    pub features: bool,
}

fn find(parent: &mut [usize], x: usize) -> usize {
    let mut r = x;
    while parent[r] != r {
        r = parent[r];
    }
    let mut x = x;
    while parent[x] != r {
        let next = parent[x];
        parent[x] = r;
        x = next;
    }
    r
}

impl Structure {
    /// Merge spaces across adds and depthwise convs, then list each group's members.
    pub fn groups(&self) -> Vec<Group> {
        let mut parent: Vec<usize> = (0..=self.spaces).collect();
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                p[ra.max(rb)] = ra.min(rb);
            }
        };
        for layer in &self.layers {
            match layer {
                Layer::Add { a, b } | Layer::Mul { a, b } => union(&mut parent, *a, *b),
                Layer::Conv {
                    input,
                    output,
                    depthwise: true,
                    ..
                } => union(&mut parent, *input, *output),
                // A conv's own output is a new space; a classifier's outputs are classes.
                Layer::Conv {
                    depthwise: false, ..
                }
                | Layer::Linear { .. }
                | Layer::Norm { .. } => {}
            }
        }
        let input_root = find(&mut parent, 0);
        let mut by_root: BTreeMap<usize, Group> = BTreeMap::new();
        let mut order: Vec<usize> = Vec::new();
        let mut entry = |parent: &mut Vec<usize>, space: usize, name: &str| -> Option<usize> {
            let root = find(parent, space);
            if root == input_root {
                return None;
            }
            by_root.entry(root).or_insert_with(|| {
                order.push(root);
                Group {
                    name: name.to_string(),
                    members: Vec::new(),
                    bns: Vec::new(),
                    protected: false,
                    residual: false,
                    features: false,
                }
            });
            Some(root)
        };
        let mut members: Vec<(usize, Member)> = Vec::new();
        let mut bns: Vec<(usize, String)> = Vec::new();
        let member = |key: String, axis: usize| Member { key, axis };
        for layer in &self.layers {
            match layer {
                Layer::Conv {
                    name,
                    bn,
                    input,
                    output,
                    depthwise,
                } => {
                    if let Some(root) = entry(&mut parent, *output, name) {
                        members.push((root, member(format!("{name}.weight"), 0)));
                        // A conv bias (a folded batch norm), where there is one.
                        members.push((root, member(format!("{name}.bias"), 0)));
                        if let Some(bn) = bn {
                            for p in ["weight", "bias", "running_mean", "running_var"] {
                                members.push((root, member(format!("{bn}.{p}"), 0)));
                            }
                            bns.push((root, bn.clone()));
                        }
                    }
                    if !depthwise && let Some(root) = entry(&mut parent, *input, name) {
                        members.push((root, member(format!("{name}.weight"), 1)));
                    }
                }
                Layer::Linear { name, input } => {
                    if let Some(root) = entry(&mut parent, *input, name) {
                        members.push((root, member(format!("{name}.weight"), 1)));
                    }
                }
                Layer::Norm { name, space } => {
                    if let Some(root) = entry(&mut parent, *space, name) {
                        for p in ["weight", "bias", "running_mean", "running_var"] {
                            members.push((root, member(format!("{name}.{p}"), 0)));
                        }
                        bns.push((root, name.clone()));
                    }
                }
                Layer::Add { .. } | Layer::Mul { .. } => {}
            }
        }
        for (root, m) in members {
            if let Some(g) = by_root.get_mut(&root)
                && !g.members.contains(&m)
            {
                g.members.push(m);
            }
        }
        for (root, bn) in bns {
            if let Some(g) = by_root.get_mut(&root) {
                g.bns.push(bn);
            }
        }
        let protected_roots: Vec<usize> = self
            .protected
            .iter()
            .map(|&s| find(&mut parent, s))
            .collect();
        let residual_roots: Vec<usize> = self
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Add { a, .. } => Some(*a),
                _ => None,
            })
            .map(|s| find(&mut parent, s))
            .collect();
        let feature_roots: Vec<usize> = self
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Linear { input, .. } => Some(*input),
                _ => None,
            })
            .map(|s| find(&mut parent, s))
            .collect();
        order
            .into_iter()
            .filter_map(|root| {
                let mut g = by_root.remove(&root)?;
                g.protected = protected_roots.contains(&root);
                g.residual = residual_roots.contains(&root);
                g.features = feature_roots.contains(&root);
                Some(g)
            })
            .collect()
    }
}
