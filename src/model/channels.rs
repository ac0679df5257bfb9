//! Channel groups derived from a network's structure (Torch-Pruning's dependency groups).
//!
//! Every channel axis of every tensor belongs to a *channel space*. A conv's output axis, its
//! batch norm and the next conv's input axis share one space; a residual add merges the spaces
//! of everything it sums (the downsample conv included); a depthwise conv's input and output
//! are one space. A group is one merged space: all `(tensor, axis)` pairs that must lose the
//! same channels together.
//!
//! A value's channels are a [`Layout`]: segments of spaces one after another. Most values
//! have one; a concatenation's has its inputs' segments in order (SqueezeNet, DenseNet,
//! Inception), so pruning a producer removes the matching input channels of every consumer
//! at that segment's offset, which follows the widths of the segments before it as they are
//! pruned. Where no rule keeps a segment's channels in step (an addition of values
//! concatenated differently, a flatten, the logits of a classifier conv), its spaces are fixed
//! and the group says why.
//!
//! A slice or a channel shuffle moves channels: each moved channel is joined to where it came
//! from, and a shuffle joins the same channel of each of its groups (torch's ShuffleNetV2 moves
//! half of each unit's channels on to the next unit's shuffle). Each union of `(space,
//! channel)` pairs is a *class*; the spaces it joins are one group whose channels are classes,
//! each member listing each class's positions along its axis ([`Member::classes`]).
//!
//! A conv in `g` groups (ResNeXt, RegNet) reads its input and writes its output in `g` blocks,
//! each group its own block. Both spaces are then *blocked*: channel `k` of the group is
//! channel `k` of every block, so pruning it removes one channel from each block and the conv
//! keeps `g` equal groups (Torch-Pruning prunes grouped convs the same way). The conv's weight
//! `[out, in/g, k, k]` holds one block's inputs along its axis 1.

use std::collections::{BTreeMap, BTreeSet};

/// A run of one channel space's channels within a value, `width` of them (as the graph
/// declares them, before pruning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub space: usize,
    pub width: usize,
}

/// A value's channels: segments one after another.
pub type Layout = Vec<Segment>;

/// One layer of the structural description.
#[derive(Debug, Clone)]
pub enum Layer {
    /// A conv (`{name}.weight`, `[out, in/groups, k, k]`) followed by an optional batch norm.
    /// A depthwise conv's output is its input's layout; a conv in `groups > 1` groups (not
    /// depthwise) reads one segment and writes one, both in `groups` blocks.
    Conv {
        name: String,
        bn: Option<String>,
        input: Layout,
        output: Layout,
        depthwise: bool,
        groups: usize,
    },
    /// A classifier (`{name}.weight` `[out, in]`); its outputs (the classes) are never pruned.
    Linear { name: String, input: Layout },
    /// A residual add: the spaces become one.
    Add { a: usize, b: usize },
    /// An element-wise product (a squeeze-excitation gate times the image): the spaces become
    /// one, which is not a residual stream.
    Mul { a: usize, b: usize },
    /// A batch norm that follows no conv directly, on a value of layout `input`.
    Norm { name: String, input: Layout },
    /// Spaces whose channels must all stay, and why (a sentence a user reads).
    Fixed { spaces: Vec<usize>, why: String },
    /// A value whose channels are other values' channels, moved (a slice, a channel
    /// shuffle): channel `j` of `space` is `from[j]`, a `(space, channel)`.
    Moved {
        space: usize,
        from: Vec<(usize, usize)>,
    },
    /// Channels, each a `(space, channel)`, that go together or not at all (channel `j` of
    /// every group of a shuffle).
    Together { channels: Vec<Vec<(usize, usize)>> },
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

/// The channels that come before a segment along a tensor's axis: as many as a tensor's axis
/// has now (a segment's producer, which shrinks as it is pruned), or a fixed count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Extent {
    Axis { key: String, axis: usize },
    Channels(usize),
}

/// A tensor axis that belongs to a group: the whole axis, or (`after` given) the group's
/// channels at an offset along it, after the channels of `after`'s extents; in `blocks`
/// blocks one after another (a grouped conv's), each the group's width, channel `k` of the
/// group at `k` in each. Or, in a group of channel classes (`classes` given), the positions
/// along the axis of each class's channels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub key: String,
    pub axis: usize,
    pub after: Option<Vec<Extent>>,
    pub blocks: usize,
    pub classes: Option<Vec<Vec<usize>>>,
}

impl Member {
    /// The whole of axis `axis` of tensor `key`.
    pub fn whole(key: impl Into<String>, axis: usize) -> Self {
        Member {
            key: key.into(),
            axis,
            after: None,
            blocks: 1,
            classes: None,
        }
    }

    /// Where the group's channels start along the axis, with the tensors as they are now.
    pub fn offset(&self, w: &crate::tensor::StateDict) -> usize {
        self.after
            .iter()
            .flatten()
            .map(|e| match e {
                Extent::Axis { key, axis } => w.get(key).map_or(0, |t| t.shape[*axis]),
                Extent::Channels(n) => *n,
            })
            .sum()
    }

    /// Where each block of the group's channels starts along the axis, for a group `width`
    /// wide now: the group's channel `k` is at `start + k` for each start.
    pub fn starts(&self, w: &crate::tensor::StateDict, width: usize) -> Vec<usize> {
        let offset = self.offset(w);
        (0..self.blocks).map(|b| offset + b * width).collect()
    }

    /// The group's width when this member is the whole of an axis `len` long.
    pub fn width(&self, len: usize) -> usize {
        match &self.classes {
            Some(classes) => classes.len(),
            None => len / self.blocks.max(1),
        }
    }

    /// Where each of the group's channels lies along the axis, with the tensors as they are
    /// now, for a group `width` wide: `(index along the axis, channel of the group)`.
    pub fn positions(&self, w: &crate::tensor::StateDict, width: usize) -> Vec<(usize, usize)> {
        match &self.classes {
            Some(classes) => (classes.iter().enumerate())
                .flat_map(|(c, at)| at.iter().map(move |&i| (i, c)))
                .collect(),
            None => (self.starts(w, width).into_iter())
                .flat_map(|s| (0..width).map(move |k| (s + k, k)))
                .collect(),
        }
    }
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
    /// Why the group's channels can never be pruned, where no rule keeps them in step.
    pub fixed: Option<String>,
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

fn join(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb)] = ra.min(rb);
    }
}

/// Where slices and shuffles move channels, the channels that go together: a union over
/// `(space, channel)` pairs, spaces already merged to their roots. Spaces whose channels are
/// joined form a *region*; each union of channels in a region is a *class*, which pruning keeps
/// or removes whole.
#[derive(Default)]
struct Classes {
    /// Each moved space's (root's) region.
    region: BTreeMap<usize, usize>,
    /// Each `(root, channel)`'s class in its region.
    class: BTreeMap<(usize, usize), usize>,
    /// Each region's number of classes.
    count: Vec<usize>,
    /// Each root's width.
    width: BTreeMap<usize, usize>,
}

impl Classes {
    fn of(layers: &[Layer], parent: &mut [usize]) -> Classes {
        let mut width: BTreeMap<usize, usize> = BTreeMap::new();
        for layer in layers {
            let segments: Vec<&Segment> = match layer {
                Layer::Conv { input, output, .. } => input.iter().chain(output).collect(),
                Layer::Linear { input, .. } | Layer::Norm { input, .. } => input.iter().collect(),
                Layer::Moved { space, from } => {
                    width.insert(find(parent, *space), from.len());
                    Vec::new()
                }
                Layer::Add { .. }
                | Layer::Mul { .. }
                | Layer::Fixed { .. }
                | Layer::Together { .. } => Vec::new(),
            };
            for seg in segments {
                width.insert(find(parent, seg.space), seg.width);
            }
        }
        // Each (root, channel) a node of the union, numbered as it is met.
        let mut ids: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        let mut up: Vec<usize> = Vec::new();
        let mut id = |ids: &mut BTreeMap<(usize, usize), usize>, key: (usize, usize)| {
            *ids.entry(key).or_insert_with(|| {
                up.push(up.len());
                up.len() - 1
            })
        };
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for layer in layers {
            match layer {
                Layer::Moved { space, from } => {
                    let r = find(parent, *space);
                    for (j, &(s, k)) in from.iter().enumerate() {
                        let a = id(&mut ids, (r, j));
                        let b = id(&mut ids, (find(parent, s), k));
                        pairs.push((a, b));
                    }
                }
                Layer::Together { channels } => {
                    for set in channels {
                        let at: Vec<usize> = (set.iter())
                            .map(|&(s, k)| id(&mut ids, (find(parent, s), k)))
                            .collect();
                        pairs.extend(at.windows(2).map(|w| (w[0], w[1])));
                    }
                }
                Layer::Conv { .. }
                | Layer::Linear { .. }
                | Layer::Norm { .. }
                | Layer::Add { .. }
                | Layer::Mul { .. }
                | Layer::Fixed { .. } => {}
            }
        }
        // Every channel of a root that moves belongs to a class.
        let roots: BTreeSet<usize> = ids.keys().map(|k| k.0).collect();
        for &r in &roots {
            for k in 0..width.get(&r).copied().unwrap_or(0) {
                id(&mut ids, (r, k));
            }
        }
        for (a, b) in pairs {
            join(&mut up, a, b);
        }
        // Roots whose channels share a class share a region.
        let index: BTreeMap<usize, usize> =
            roots.iter().enumerate().map(|(i, &r)| (r, i)).collect();
        let mut regions: Vec<usize> = (0..roots.len()).collect();
        let mut first_root: BTreeMap<usize, usize> = BTreeMap::new();
        for (&(r, _), &n) in &ids {
            let c = find(&mut up, n);
            let r0 = *first_root.entry(c).or_insert(r);
            join(&mut regions, index[&r], index[&r0]);
        }
        let mut out = Classes {
            width,
            ..Classes::default()
        };
        let mut region_no: BTreeMap<usize, usize> = BTreeMap::new();
        let mut class_no: BTreeMap<usize, usize> = BTreeMap::new();
        for (&(r, k), &n) in &ids {
            let top = find(&mut regions, index[&r]);
            let next = region_no.len();
            let region = *region_no.entry(top).or_insert(next);
            if region == out.count.len() {
                out.count.push(0);
            }
            out.region.insert(r, region);
            let c = find(&mut up, n);
            let class = *class_no.entry(c).or_insert_with(|| {
                out.count[region] += 1;
                out.count[region] - 1
            });
            out.class.insert((r, k), class);
        }
        out
    }
}

impl Structure {
    /// Merge spaces across adds and depthwise convs, then list each group's members.
    pub fn groups(&self) -> Vec<Group> {
        let mut parent: Vec<usize> = (0..=self.spaces).collect();
        for layer in &self.layers {
            match layer {
                Layer::Add { a, b } | Layer::Mul { a, b } => join(&mut parent, *a, *b),
                // A depthwise conv's output is its input's layout already; a conv's own
                // output is a new space; a classifier's outputs are classes.
                Layer::Conv { .. }
                | Layer::Linear { .. }
                | Layer::Norm { .. }
                | Layer::Fixed { .. }
                | Layer::Moved { .. }
                | Layer::Together { .. } => {}
            }
        }
        let input_root = find(&mut parent, 0);
        // The spaces a grouped conv reads or writes, in its blocks; a space read in two
        // different numbers of groups is fixed.
        let mut blocks_of: BTreeMap<usize, usize> = BTreeMap::new();
        let mut fixed: BTreeMap<usize, String> = BTreeMap::new();
        for layer in &self.layers {
            if let Layer::Conv {
                name,
                input,
                output,
                groups,
                depthwise: false,
                ..
            } = layer
                && *groups > 1
            {
                for seg in input.iter().chain(output) {
                    let r = find(&mut parent, seg.space);
                    let b = *blocks_of.entry(r).or_insert(*groups);
                    if b != *groups {
                        fixed.entry(r).or_insert_with(|| {
                            format!("{name} reads them in {groups} groups, another conv in {b}")
                        });
                    }
                }
            }
        }
        let blocks_in = |root: usize| blocks_of.get(&root).copied().unwrap_or(1);
        // Whether a member of the whole axis in `blocks` blocks is the whole of its segment (a
        // grouped conv's own input axis holds one block of it).
        let whole_segment =
            |root: usize, whole_axis: bool, blocks: usize| whole_axis && blocks == blocks_in(root);
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
                    fixed: None,
                }
            });
            Some(root)
        };
        // Each member with the segments before it along its axis (None: the whole axis) and
        // its blocks.
        type Placed = (usize, String, usize, Option<Layout>, usize);
        let mut members: Vec<Placed> = Vec::new();
        let mut bns: Vec<(usize, String)> = Vec::new();
        let mut layouts: Vec<Layout> = Vec::new();
        // Every segment of `layout` on `axis` of each of `keys`, in its space's blocks (or in
        // one, `one_block`: a grouped conv's own input axis).
        let mut place = |parent: &mut Vec<usize>,
                         members: &mut Vec<Placed>,
                         layout: &Layout,
                         keys: &[String],
                         (axis, one_block): (usize, bool),
                         name: &str|
         -> Option<usize> {
            layouts.push(layout.clone());
            let mut whole_root = None;
            for (i, seg) in layout.iter().enumerate() {
                let Some(root) = entry(parent, seg.space, name) else {
                    continue;
                };
                let after = (layout.len() > 1).then(|| layout[..i].to_vec());
                if after.is_none() {
                    whole_root = Some(root);
                }
                let blocks = if one_block { 1 } else { blocks_in(root) };
                for k in keys {
                    members.push((root, k.clone(), axis, after.clone(), blocks));
                }
            }
            whole_root
        };
        let norm_keys = |bn: &str| {
            ["weight", "bias", "running_mean", "running_var"].map(|p| format!("{bn}.{p}"))
        };
        for layer in &self.layers {
            match layer {
                Layer::Conv {
                    name,
                    bn,
                    input,
                    output,
                    depthwise,
                    groups,
                } => {
                    // A conv bias (a folded batch norm), where there is one.
                    let mut keys = vec![format!("{name}.weight"), format!("{name}.bias")];
                    if let Some(bn) = bn {
                        keys.extend(norm_keys(bn));
                    }
                    let root = place(&mut parent, &mut members, output, &keys, (0, false), name);
                    if let (Some(root), Some(bn)) = (root, bn) {
                        bns.push((root, bn.clone()));
                    }
                    if !depthwise {
                        let keys = [format!("{name}.weight")];
                        let axis = (1, *groups > 1);
                        place(&mut parent, &mut members, input, &keys, axis, name);
                    }
                }
                Layer::Linear { name, input } => {
                    let keys = [format!("{name}.weight")];
                    place(&mut parent, &mut members, input, &keys, (1, false), name);
                }
                Layer::Norm { name, input } => {
                    let keys = norm_keys(name);
                    let root = place(&mut parent, &mut members, input, &keys, (0, false), name);
                    if let Some(root) = root {
                        bns.push((root, name.clone()));
                    }
                }
                Layer::Add { .. }
                | Layer::Mul { .. }
                | Layer::Fixed { .. }
                | Layer::Moved { .. }
                | Layer::Together { .. } => {}
            }
        }
        // Regions of moved channels (slices, shuffles): one group whose channels are classes,
        // where every value holding them holds nothing else and no conv reads them in groups;
        // otherwise their spaces are fixed.
        let classes = Classes::of(&self.layers, &mut parent);
        let mut why_not: BTreeMap<usize, String> = BTreeMap::new();
        let region_of = |parent: &mut Vec<usize>, space: usize| {
            classes.region.get(&find(parent, space)).copied()
        };
        for layout in &layouts {
            let regions: BTreeSet<Option<usize>> = layout
                .iter()
                .map(|seg| region_of(&mut parent, seg.space))
                .collect();
            if regions.len() > 1 {
                for r in regions.into_iter().flatten() {
                    why_not.entry(r).or_insert_with(|| {
                        "a slice or shuffle moves them, and they are concatenated with channels it does not move".into()
                    });
                }
            }
        }
        for layer in &self.layers {
            if let Layer::Fixed { spaces, why } = layer {
                for &s in spaces {
                    if let Some(r) = region_of(&mut parent, s) {
                        why_not.entry(r).or_insert_with(|| why.clone());
                    }
                }
            }
        }
        for (&root, &r) in &classes.region {
            let why = if root == input_root {
                Some("they are the input image's channels".to_string())
            } else if blocks_in(root) > 1 {
                Some("a slice or shuffle moves them, and a conv reads them in groups".into())
            } else {
                fixed.get(&root).cloned()
            };
            if let Some(why) = why {
                why_not.entry(r).or_insert(why);
            }
        }
        for (&root, &r) in &classes.region {
            if let Some(why) = why_not.get(&r) {
                fixed.entry(root).or_insert_with(|| why.clone());
            }
        }
        let clean = |root: usize| {
            classes
                .region
                .get(&root)
                .filter(|r| !why_not.contains_key(r))
        };
        // Per region, per tensor axis, each class's positions along it.
        type Positions = BTreeMap<(String, usize), Vec<BTreeSet<usize>>>;
        let mut positions: BTreeMap<usize, Positions> = BTreeMap::new();
        members.retain(|(root, key, axis, after, _)| {
            let Some(&r) = clean(*root) else {
                return true;
            };
            let offset: usize = after.iter().flatten().map(|seg| seg.width).sum();
            let at = (positions.entry(r).or_default())
                .entry((key.clone(), *axis))
                .or_insert_with(|| vec![BTreeSet::new(); classes.count[r]]);
            for k in 0..classes.width.get(root).copied().unwrap_or(0) {
                if let Some(&c) = classes.class.get(&(*root, k)) {
                    at[c].insert(offset + k);
                }
            }
            false
        });
        // A segment's extent: a tensor axis that is wholly its group's, else its width.
        let mut extent_of: BTreeMap<usize, Extent> = BTreeMap::new();
        for (root, key, axis, after, blocks) in &members {
            if whole_segment(*root, after.is_none(), *blocks) {
                extent_of.entry(*root).or_insert_with(|| Extent::Axis {
                    key: key.clone(),
                    axis: *axis,
                });
            }
        }
        let mut no_extent: Vec<usize> = Vec::new();
        for (root, key, axis, after, blocks) in members {
            let after = after.map(|segs| {
                segs.iter()
                    .map(|seg| {
                        let r = find(&mut parent, seg.space);
                        match extent_of.get(&r) {
                            Some(e) if r != input_root => e.clone(),
                            _ => {
                                no_extent.push(r);
                                Extent::Channels(seg.width)
                            }
                        }
                    })
                    .collect()
            });
            let m = Member {
                key,
                axis,
                after,
                blocks,
                classes: None,
            };
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
        let roots = |parent: &mut Vec<usize>, spaces: &mut dyn Iterator<Item = usize>| {
            spaces.map(|s| find(parent, s)).collect::<Vec<usize>>()
        };
        let protected_roots = roots(&mut parent, &mut self.protected.iter().copied());
        let residual_roots = roots(
            &mut parent,
            &mut self.layers.iter().filter_map(|l| match l {
                Layer::Add { a, .. } => Some(*a),
                _ => None,
            }),
        );
        let feature_roots = roots(
            &mut parent,
            &mut self.layers.iter().flat_map(|l| match l {
                Layer::Linear { input, .. } => input.iter().map(|s| s.space).collect(),
                _ => Vec::new(),
            }),
        );
        for l in &self.layers {
            if let Layer::Fixed { spaces, why } = l {
                for &s in spaces {
                    let r = find(&mut parent, s);
                    fixed.entry(r).or_insert_with(|| why.clone());
                }
            }
        }
        for r in no_extent {
            fixed.entry(r).or_insert_with(|| {
                "no layer's weights hold these channels alone, so their offset in a concatenation cannot follow them".into()
            });
        }
        // A region's group: named after its first space's, with every space's batch norms and
        // flags.
        let mut regions: BTreeMap<usize, Group> = BTreeMap::new();
        for &root in &order {
            let (Some(&r), Some(g)) = (clean(root), by_root.get(&root)) else {
                continue;
            };
            let region = regions.entry(r).or_insert_with(|| Group {
                members: (positions.remove(&r).unwrap_or_default().into_iter())
                    .map(|((key, axis), at)| Member {
                        key,
                        axis,
                        after: None,
                        blocks: 1,
                        classes: Some(at.into_iter().map(Vec::from_iter).collect()),
                    })
                    .collect(),
                bns: Vec::new(),
                ..g.clone()
            });
            region.bns.extend(g.bns.iter().cloned());
            region.protected |= protected_roots.contains(&root);
            region.residual |= residual_roots.contains(&root);
            region.features |= feature_roots.contains(&root);
        }
        order
            .into_iter()
            .filter_map(|root| {
                if let Some(r) = clean(root) {
                    by_root.remove(&root);
                    return regions.remove(r);
                }
                let mut g = by_root.remove(&root)?;
                g.protected = protected_roots.contains(&root);
                g.residual = residual_roots.contains(&root);
                g.features = feature_roots.contains(&root);
                g.fixed = fixed.remove(&root);
                // A group with no tensor that is wholly its own has no width to read.
                if g.fixed.is_none()
                    && !g
                        .members
                        .iter()
                        .any(|m| whole_segment(root, m.after.is_none(), m.blocks))
                {
                    g.fixed = Some("no layer's weights hold these channels alone".into());
                }
                Some(g)
            })
            .collect()
    }
}
