//! What a graph read from a file needs before it is trusted, and the rewrites every graph
//! supports: checking it, folding batch norms into convs, widths read from (pruned) tensors,
//! and dropping what does not reach the output.

use std::collections::BTreeSet;

use super::graph::{Graph, Hw, Op, dilated};
use crate::tensor::StateDict;
use crate::{Error, Result};

/// The most nodes a graph may have. ResNet-50 has 175, DenseNet-121 about 900.
pub const MAX_NODES: usize = 20_000;
/// The most channels (or features) a layer may have.
pub const MAX_CHANNELS: usize = 1 << 16;
/// The largest kernel or pooling window side.
pub const MAX_KERNEL: usize = 64;
/// The largest stride.
pub const MAX_STRIDE: usize = 64;
/// The longest value or layer name.
pub const MAX_NAME: usize = 200;
/// The most values one concatenation reads (Inception's have 4, DenseNet's 2).
pub const MAX_CONCAT: usize = 64;

/// A window's sides, dilations and strides in range and each pad (`[top, left, bottom,
/// right]`) less than the window's extent along it.
fn window_fits(kernel: &Hw, dilation: &Hw, stride: &Hw, pads: &[usize; 4]) -> bool {
    let extent = dilated(*kernel, *dilation);
    kernel.iter().all(|k| (1..=MAX_KERNEL).contains(k))
        && dilation.iter().all(|d| (1..=MAX_STRIDE).contains(d))
        && stride.iter().all(|s| (1..=MAX_STRIDE).contains(s))
        && pads.iter().enumerate().all(|(i, p)| *p < extent[i % 2])
}

impl Op {
    /// How many values the op reads.
    pub fn arity(&self) -> std::ops::RangeInclusive<usize> {
        match self {
            Op::Add | Op::Mul => 2..=2,
            Op::Concat => 2..=MAX_CONCAT,
            Op::Conv { .. }
            | Op::BatchNorm { .. }
            | Op::Relu
            | Op::Relu6
            | Op::Sigmoid
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Silu
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Channels { .. }
            | Op::ChannelShuffle { .. }
            | Op::Flatten { .. }
            | Op::Linear { .. } => 1..=1,
        }
    }

    /// Why the op's numbers cannot be run, if they cannot.
    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Structure(what));
        let width = |n: usize| (1..=MAX_CHANNELS).contains(&n);
        match self {
            Op::Conv {
                name,
                in_channels,
                out_channels,
                kernel,
                stride,
                pads,
                groups,
                dilation,
                ..
            } => {
                if !width(*in_channels) || !width(*out_channels) {
                    return bad(format!(
                        "conv {name} has {in_channels} → {out_channels} channels (1 to {MAX_CHANNELS} allowed)"
                    ));
                }
                if !window_fits(kernel, dilation, stride, pads) {
                    return bad(format!(
                        "conv {name} has kernel {kernel:?}, dilation {dilation:?}, stride {stride:?}, pads {pads:?} (kernel 1 to {MAX_KERNEL}, dilation and stride 1 to {MAX_STRIDE}, each pad less than the kernel's extent)"
                    ));
                }
                if *groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                    return bad(format!(
                        "conv {name} has {groups} groups, which do not divide {in_channels} → {out_channels} channels"
                    ));
                }
            }
            Op::BatchNorm {
                name,
                channels,
                eps,
            } => {
                if !(width(*channels) && eps.is_finite() && *eps > 0.0) {
                    return bad(format!(
                        "batch norm {name} has {channels} channels and epsilon {eps}"
                    ));
                }
            }
            Op::MaxPool {
                kernel,
                stride,
                pads,
            }
            | Op::AvgPool {
                kernel,
                stride,
                pads,
                ..
            } => {
                if !window_fits(kernel, &[1, 1], stride, pads) {
                    return bad(format!(
                        "pool with kernel {kernel:?}, stride {stride:?}, pads {pads:?}"
                    ));
                }
            }
            Op::Linear {
                name,
                in_features,
                out_features,
            } => {
                if !width(*in_features) || !width(*out_features) {
                    return bad(format!(
                        "linear layer {name} has {in_features} → {out_features} features (1 to {MAX_CHANNELS} allowed)"
                    ));
                }
            }
            Op::HardSigmoid { alpha, beta } => {
                if !(alpha.is_finite() && beta.is_finite()) {
                    return bad(format!("hard sigmoid with α {alpha}, β {beta}"));
                }
            }
            Op::Channels { start, len } => {
                if !width(*len) || *start >= MAX_CHANNELS {
                    return bad(format!("a slice of {len} channels from channel {start}"));
                }
            }
            Op::ChannelShuffle { groups } => {
                if !width(*groups) {
                    return bad(format!("a channel shuffle in {groups} groups"));
                }
            }
            Op::Flatten { pixels } => {
                if !width(*pixels) {
                    return bad(format!("a flatten of {pixels} pixels"));
                }
            }
            Op::Relu
            | Op::Relu6
            | Op::Add
            | Op::Mul
            | Op::Sigmoid
            | Op::HardSwish
            | Op::Silu
            | Op::GlobalAvgPool
            | Op::Concat => {}
        }
        Ok(())
    }
}

impl Graph {
    /// Check a graph that came from a file: one value per node written in order, every input
    /// written before it is read, every op's numbers in range, every name unique and short.
    /// The forward pass, the exports and the channel groups rely on all of it.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Structure(what));
        if self.nodes.is_empty() || self.nodes.len() > MAX_NODES {
            return bad(format!(
                "the graph has {} nodes (1 to {MAX_NODES} allowed)",
                self.nodes.len()
            ));
        }
        if self.values.len() != self.nodes.len() + 1 {
            return bad("the graph names a value that no node writes".into());
        }
        let mut names = BTreeSet::new();
        for v in &self.values {
            if v.is_empty() || v.len() > MAX_NAME || !names.insert(v.as_str()) {
                return bad(format!(
                    "value name {} is empty, too long or written twice",
                    crate::error::quoted(v)
                ));
            }
        }
        let mut layers = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.output != i + 1 {
                return bad(format!("node {i} writes value {}, not {}", n.output, i + 1));
            }
            if !n.op.arity().contains(&n.inputs.len()) || n.inputs.iter().any(|&x| x >= n.output) {
                return bad(format!(
                    "node {i} reads {:?}: values must be written before they are read",
                    n.inputs
                ));
            }
            n.op.check()?;
            let param_prefix = match &n.op {
                Op::BatchNorm { name, .. } => Some(name.as_str()),
                op => op.layer_name(),
            };
            if let Some(name) = param_prefix
                && (name.is_empty() || name.len() > MAX_NAME || !layers.insert(name))
            {
                return bad(format!(
                    "layer name {} is empty, too long or used twice",
                    crate::error::quoted(name)
                ));
            }
        }
        if self.output == 0 || self.output >= self.values.len() {
            return bad("the graph's output is not a node's output".into());
        }
        self.check_widths()
    }

    /// Every op receives the channels it declares, in the layout it needs: batch norms and
    /// pools read `[N, C, H, W]` values, linear layers pooled `[N, C]` ones, convs either (a
    /// pooled value is a 1×1 image: a squeeze-excitation block's convs); a product's second
    /// value has the first's shape or is pooled; the output is pooled.
    fn check_widths(&self) -> Result<()> {
        // (channels, spatial) of each value; the input is an RGB image.
        let mut v = vec![(0usize, false); self.values.len()];
        v[0] = (3, true);
        for n in &self.nodes {
            let (c, spatial) = v[n.inputs[0]];
            let mismatch = |want: usize, what: &str| {
                Error::Structure(format!(
                    "{what} {} expects {want} channels but receives {c}{}",
                    crate::error::quoted(&self.values[n.output]),
                    if spatial { "" } else { " (flattened)" }
                ))
            };
            v[n.output] = match &n.op {
                Op::Conv {
                    in_channels,
                    out_channels,
                    ..
                } => {
                    if c != *in_channels {
                        return Err(mismatch(*in_channels, "conv"));
                    }
                    (*out_channels, spatial)
                }
                Op::BatchNorm { channels, .. } => {
                    if c != *channels || !spatial {
                        return Err(mismatch(*channels, "batch norm"));
                    }
                    (c, true)
                }
                Op::MaxPool { .. } | Op::AvgPool { .. } | Op::GlobalAvgPool if !spatial => {
                    return Err(mismatch(c, "pooling"));
                }
                Op::MaxPool { .. } | Op::AvgPool { .. } => (c, true),
                Op::GlobalAvgPool => (c, false),
                Op::Linear {
                    in_features,
                    out_features,
                    ..
                } => {
                    if c != *in_features || spatial {
                        return Err(mismatch(*in_features, "linear layer"));
                    }
                    (*out_features, false)
                }
                Op::Add => {
                    if v[n.inputs[1]] != (c, spatial) {
                        return Err(mismatch(v[n.inputs[1]].0, "add"));
                    }
                    (c, spatial)
                }
                Op::Mul => {
                    let (gc, gs) = v[n.inputs[1]];
                    if gc != c || (gs && !spatial) {
                        return Err(mismatch(gc, "product"));
                    }
                    (c, spatial)
                }
                Op::Concat => {
                    let mut total = 0usize;
                    for &i in &n.inputs {
                        let (ci, si) = v[i];
                        if !si || !spatial {
                            return Err(mismatch(ci, "concatenation (of images)"));
                        }
                        total += ci;
                    }
                    if total > MAX_CHANNELS {
                        return Err(mismatch(MAX_CHANNELS, "concatenation (at most)"));
                    }
                    (total, true)
                }
                Op::Channels { start, len } => {
                    if start + len > c || !spatial {
                        return Err(mismatch(start + len, "slice"));
                    }
                    (*len, true)
                }
                Op::ChannelShuffle { groups } => {
                    if c % groups != 0 || !spatial {
                        return Err(mismatch(c.next_multiple_of(*groups), "channel shuffle"));
                    }
                    (c, true)
                }
                Op::Flatten { pixels } => {
                    if !spatial || c * pixels > MAX_CHANNELS {
                        return Err(mismatch(
                            MAX_CHANNELS / pixels,
                            "flatten (of an image, at most)",
                        ));
                    }
                    (c * pixels, false)
                }
                Op::Relu
                | Op::Relu6
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu => (c, spatial),
            };
        }
        if v[self.output].1 {
            return Err(Error::Structure(
                "the graph's output is an image, not a vector of logits".into(),
            ));
        }
        Ok(())
    }

    /// The channels (or features) of every value, as the ops declare them; the input has 3.
    pub fn channels(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.values.len()];
        c[0] = 3;
        for n in &self.nodes {
            c[n.output] = match &n.op {
                Op::Conv { out_channels, .. } => *out_channels,
                Op::BatchNorm { channels, .. } => *channels,
                Op::Linear { out_features, .. } => *out_features,
                Op::Concat => n.inputs.iter().map(|&i| c[i]).sum(),
                Op::Channels { len, .. } => *len,
                Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::ChannelShuffle { .. } => n.inputs.first().map(|&i| c[i]).unwrap_or(0),
                Op::Flatten { pixels } => n.inputs.first().map(|&i| c[i] * pixels).unwrap_or(0),
            };
        }
        c
    }

    /// How many nodes read each value (the output counts as read once more).
    fn readers(&self) -> Vec<usize> {
        let mut r = vec![0usize; self.values.len()];
        for &i in self.nodes.iter().flat_map(|n| &n.inputs) {
            r[i] += 1;
        }
        if let Some(o) = r.get_mut(self.output) {
            *o += 1;
        }
        r
    }

    /// The batch norms that fold into the conv before them, each with that conv's name: the
    /// conv's output is read by the batch norm alone.
    pub fn foldable_batch_norms(&self) -> Vec<(String, String)> {
        let readers = self.readers();
        self.nodes
            .iter()
            .filter_map(|n| {
                let Op::BatchNorm { name, .. } = &n.op else {
                    return None;
                };
                let x = n.inputs[0];
                // Graphs are built one value per node: value x > 0 is node x − 1's.
                let conv = x.checked_sub(1).and_then(|i| self.nodes.get(i))?;
                match &conv.op {
                    Op::Conv { name: c, .. } if readers[x] == 1 => Some((name.clone(), c.clone())),
                    _ => None,
                }
            })
            .collect()
    }

    /// The average pools that fold into the 1×1 conv before them (DenseNet's transitions), each
    /// as the pool's value, the conv's name and the pool's window: an unpadded `k×k` pool of
    /// stride `k` reading an unpadded 1×1 conv of stride 1 that nothing else reads. Both are
    /// linear, so together they are one `k×k` conv of stride `k` whose taps are the 1×1
    /// weights over `k²`: the same MACs, and no mean of rounded integers between them.
    pub fn foldable_pools(&self) -> Vec<(usize, String, Hw)> {
        let readers = self.readers();
        self.nodes
            .iter()
            .filter_map(|n| {
                let Op::AvgPool {
                    kernel,
                    stride,
                    pads,
                    ..
                } = &n.op
                else {
                    return None;
                };
                let x = n.inputs[0];
                let conv = x.checked_sub(1).and_then(|i| self.nodes.get(i))?;
                match &conv.op {
                    Op::Conv {
                        name,
                        kernel: [1, 1],
                        stride: [1, 1],
                        pads: [0, 0, 0, 0],
                        dilation: [1, 1],
                        ..
                    } if kernel == stride && *pads == [0; 4] && readers[x] == 1 => {
                        Some((n.output, name.clone(), *kernel))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The same network with every foldable batch norm ([`Graph::foldable_batch_norms`])
    /// folded into its conv, which gains a bias; the conv's value is read in its place. A
    /// batch norm after anything else (a concatenation, a pool: DenseNet's) becomes a 1×1
    /// depthwise conv of its name, a scale and a shift per channel, which quantizes and
    /// exports like any conv. A foldable average pool ([`Graph::foldable_pools`]) becomes its
    /// conv's window and stride.
    pub fn folded(&self) -> Graph {
        let fold: BTreeSet<String> = self
            .foldable_batch_norms()
            .into_iter()
            .map(|(bn, _)| bn)
            .collect();
        let pools: BTreeSet<usize> = self.foldable_pools().into_iter().map(|p| p.0).collect();
        let mut out = Graph::new();
        let mut map: Vec<usize> = (0..self.values.len()).collect();
        for n in &self.nodes {
            let inputs: Vec<usize> = n.inputs.iter().map(|&i| map[i]).collect();
            if let Op::AvgPool { kernel: k, .. } = &n.op
                && pools.contains(&n.output)
            {
                map[n.output] = inputs[0];
                if let Some(Op::Conv { kernel, stride, .. }) = out
                    .nodes
                    .iter_mut()
                    .find(|m| m.output == inputs[0])
                    .map(|m| &mut m.op)
                {
                    (*kernel, *stride) = (*k, *k);
                }
                continue;
            }
            if let Op::BatchNorm { name, .. } = &n.op
                && fold.contains(name)
            {
                map[n.output] = inputs[0];
                if let Some(Op::Conv { bias, .. }) = out
                    .nodes
                    .iter_mut()
                    .find(|m| m.output == inputs[0])
                    .map(|m| &mut m.op)
                {
                    *bias = true;
                }
                continue;
            }
            let op = match &n.op {
                Op::BatchNorm { name, channels, .. } => Op::Conv {
                    name: name.clone(),
                    in_channels: *channels,
                    out_channels: *channels,
                    kernel: [1, 1],
                    stride: [1, 1],
                    pads: [0; 4],
                    groups: *channels,
                    bias: true,
                    dilation: [1, 1],
                },
                op => op.clone(),
            };
            map[n.output] = out.push(op, &inputs, self.values[n.output].clone());
        }
        out.output = map[self.output];
        out
    }

    /// The same graph without the nodes the output does not depend on.
    pub fn reachable(&self) -> Graph {
        let mut needed = vec![false; self.values.len()];
        if let Some(o) = needed.get_mut(self.output) {
            *o = true;
        }
        for n in self.nodes.iter().rev() {
            if needed[n.output] {
                for &i in &n.inputs {
                    needed[i] = true;
                }
            }
        }
        let mut out = Graph::new();
        out.values[0] = self.values[0].clone();
        let mut map: Vec<usize> = (0..self.values.len()).collect();
        for n in self.nodes.iter().filter(|n| needed[n.output]) {
            let inputs: Vec<usize> = n.inputs.iter().map(|&i| map[i]).collect();
            map[n.output] = out.push(n.op.clone(), &inputs, self.values[n.output].clone());
        }
        out.output = map[self.output];
        out
    }

    /// The residual blocks that can be dropped, in order, each as its name, its add's node and
    /// its shortcut value:
    /// an add of a value `s` and a value computed from `s` alone (every node between is read
    /// only inside the block), whose layers' names all start with `{name}.` and no other
    /// layer's does (`features.3` for `features.3.conv.0.0`, …). The name is the shortest
    /// such prefix, but never shorter than the first that ends in an index (a module in a
    /// sequence, as `layer1.1`): a block keeps its name when its neighbours are dropped.
    pub fn residual_blocks(&self) -> Vec<(String, usize, usize)> {
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                readers[v].push(i);
            }
        }
        let mut out = Vec::new();
        for (ai, add) in self.nodes.iter().enumerate() {
            if !matches!(add.op, Op::Add) {
                continue;
            }
            for (s, r) in [
                (add.inputs[0], add.inputs[1]),
                (add.inputs[1], add.inputs[0]),
            ] {
                // The nodes `r` depends on after `s`: walk back from `r` to `s`.
                let mut block = BTreeSet::new();
                let mut stack = vec![r];
                let mut from_s_alone = true;
                while let Some(v) = stack.pop() {
                    if v == s {
                        continue;
                    }
                    // Written before the shortcut: the branch reads more than `s`.
                    if v < s {
                        from_s_alone = false;
                        break;
                    }
                    // Value v > 0 is node v − 1's.
                    if block.insert(v - 1) {
                        stack.extend(&self.nodes[v - 1].inputs);
                    }
                }
                let closed = block.iter().all(|&i| {
                    let v = self.nodes[i].output;
                    v != self.output && readers[v].iter().all(|j| *j == ai || block.contains(j))
                });
                if !from_s_alone || !closed || block.is_empty() {
                    continue;
                }
                let layers: Vec<&str> = block
                    .iter()
                    .filter_map(|&i| match &self.nodes[i].op {
                        Op::BatchNorm { name, .. } => Some(name.as_str()),
                        op => op.layer_name(),
                    })
                    .collect();
                let Some(first) = layers.first() else {
                    continue;
                };
                // The shortest prefix of them all that no other layer has (PyTorch's module).
                let mut prefix: &str = first;
                let mut name = None;
                while let Some((head, _)) = prefix.rsplit_once('.') {
                    prefix = head;
                    let dotted = format!("{prefix}.");
                    let inside = layers.iter().all(|l| l.starts_with(&dotted));
                    let outside = self.nodes.iter().enumerate().any(|(i, n)| {
                        !block.contains(&i)
                            && n.op.layer_name().is_some_and(|l| l.starts_with(&dotted))
                    });
                    if inside && outside {
                        break;
                    }
                    if inside {
                        name = Some(prefix.to_string());
                        if prefix.rsplit('.').next().is_some_and(is_index) {
                            break;
                        }
                    }
                }
                if let Some(name) = name {
                    out.push((name, ai, s));
                }
                break;
            }
        }
        out
    }

    /// The same graph without residual block `add` (a node of [`Graph::residual_blocks`]): the
    /// add's readers read its shortcut instead, and what only the block read goes. A ReLU
    /// that then reads a shortcut that cannot be negative (ResNet's block output, already a
    /// ReLU's) computes nothing and goes too.
    pub fn without_block(&self, add: usize, shortcut: usize) -> Graph {
        let mut g = self.clone();
        g.read_instead(g.nodes[add].output, shortcut);
        if g.nonnegative(shortcut) {
            let relus: Vec<usize> = (g.nodes.iter())
                .filter(|n| matches!(n.op, Op::Relu) && n.inputs[0] == shortcut)
                .map(|n| n.output)
                .collect();
            for v in relus {
                g.read_instead(v, shortcut);
            }
        }
        g.reachable()
    }

    /// Every reader of value `old`, and the graph's output if it is `old`, read `new` instead.
    fn read_instead(&mut self, old: usize, new: usize) {
        for i in self.nodes.iter_mut().flat_map(|n| &mut n.inputs) {
            if *i == old {
                *i = new;
            }
        }
        if self.output == old {
            self.output = new;
        }
    }

    /// Whether value `v` is never negative, whatever the input (a ReLU's output, a pool of
    /// one, a sum of two).
    fn nonnegative(&self, v: usize) -> bool {
        let mut stack = vec![v];
        let mut seen = BTreeSet::new();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            let Some(n) = self.nodes.iter().find(|n| n.output == v) else {
                return false; // the input
            };
            match &n.op {
                Op::Relu | Op::Relu6 | Op::Sigmoid | Op::HardSigmoid { .. } => {}
                Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Add
                | Op::Mul
                | Op::Concat
                | Op::Channels { .. }
                | Op::ChannelShuffle { .. }
                | Op::Flatten { .. } => stack.extend(&n.inputs),
                Op::Conv { .. }
                | Op::BatchNorm { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::Linear { .. } => return false,
            }
        }
        true
    }

    /// The same graph with every width read from `weights` (after pruning). A depthwise conv
    /// stays depthwise.
    pub fn with_widths_of(&self, weights: &StateDict) -> Result<Graph> {
        let shape = |key: String| -> Result<Vec<usize>> {
            weights
                .get(&key)
                .map(|t| t.shape.clone())
                .ok_or_else(|| Error::Structure(format!("'{key}' is missing")))
        };
        let mut out = self.clone();
        for n in &mut out.nodes {
            match &mut n.op {
                Op::Conv {
                    name,
                    in_channels,
                    out_channels,
                    groups,
                    ..
                } => {
                    let s = shape(format!("{name}.weight"))?;
                    let depthwise = Op::is_depthwise(*in_channels, *out_channels, *groups);
                    *out_channels = s[0];
                    if depthwise {
                        *in_channels = s[0];
                        *groups = s[0];
                    } else {
                        *in_channels = s[1] * *groups;
                    }
                }
                Op::BatchNorm { name, channels, .. } => {
                    *channels = shape(format!("{name}.weight"))?[0];
                }
                Op::Linear {
                    name,
                    in_features,
                    out_features,
                } => {
                    let s = shape(format!("{name}.weight"))?;
                    (*out_features, *in_features) = (s[0], s[1]);
                }
                Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Concat
                | Op::Channels { .. }
                | Op::ChannelShuffle { .. }
                | Op::Flatten { .. } => {}
            }
        }
        Ok(out)
    }
}

impl Graph {
    /// This pruned graph (`self`, its widths read from the pruned weights) with every slice's
    /// bounds over the channels pruning kept: `original` is the graph before pruning, and
    /// `kept(conv)` which of its original output channels a conv kept (`None`: all). Each
    /// value's kept channels follow from its producers' (a concatenation's one after another,
    /// a shuffle's interleaved); a slice keeps those within its bounds. A shuffle must keep
    /// the same channels of every group, and a slice at least one.
    pub fn with_slices_kept(
        &self,
        original: &Graph,
        kept: impl Fn(&str) -> Option<Vec<usize>>,
    ) -> Result<Graph> {
        let widths = original.channels();
        let mut out = self.clone();
        let mut k: Vec<Vec<usize>> = vec![Vec::new(); original.values.len()];
        k[0] = (0..widths[0]).collect();
        let all = |v: usize| (0..widths[v]).collect::<Vec<usize>>();
        for (i, n) in original.nodes.iter().enumerate() {
            let x = n.inputs.first().map(|&v| k[v].clone()).unwrap_or_default();
            let broken = |what: &str| {
                Error::Invalid(format!(
                    "pruning would leave {} {what}; prune less",
                    original.values[n.output]
                ))
            };
            k[n.output] = match &n.op {
                Op::Conv {
                    name,
                    in_channels,
                    out_channels,
                    groups,
                    ..
                } => {
                    if Op::is_depthwise(*in_channels, *out_channels, *groups) {
                        x
                    } else {
                        kept(name).unwrap_or_else(|| all(n.output))
                    }
                }
                Op::Concat => {
                    let mut offset = 0;
                    let mut cat = Vec::new();
                    for &v in &n.inputs {
                        cat.extend(k[v].iter().map(|c| c + offset));
                        offset += widths[v];
                    }
                    cat
                }
                Op::Channels { start, len } => {
                    let inside: Vec<usize> = (x.iter())
                        .filter(|c| (*start..start + len).contains(c))
                        .map(|c| c - start)
                        .collect();
                    if inside.is_empty() {
                        return Err(broken("a slice of no channels"));
                    }
                    if let Some(node) = out.nodes.get_mut(i) {
                        node.op = Op::Channels {
                            start: x.iter().filter(|&&c| c < *start).count(),
                            len: inside.len(),
                        };
                    }
                    inside
                }
                Op::ChannelShuffle { groups } => {
                    let g = (*groups).max(1);
                    let per = widths[n.inputs[0]] / g;
                    let had: BTreeSet<usize> = x.iter().copied().collect();
                    let moved: Vec<usize> = (0..per * g)
                        .filter(|o| had.contains(&((o % g) * per + o / g)))
                        .collect();
                    if moved.len() != had.len() || !moved.len().is_multiple_of(g) {
                        return Err(broken("a shuffle with unequal groups"));
                    }
                    moved
                }
                Op::Linear { .. } | Op::Flatten { .. } => all(n.output),
                Op::BatchNorm { .. }
                | Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool => x,
            };
        }
        Ok(out)
    }
}

/// A name's part that is a position in a sequence (`1` in `layer1.1`).
fn is_index(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResNetConfig;

    #[test]
    fn folding_a_graph_gives_the_builders_folded_graph() {
        let c = ResNetConfig::resnet18(1000);
        let mut expect = c.graph(true);
        // The builder names nothing it does not write; folding keeps the names it had.
        expect.values[0] = "input".into();
        assert_eq!(c.graph(false).folded(), expect);
    }

    #[test]
    fn built_graphs_are_valid_and_a_forward_reference_is_refused() {
        let g = ResNetConfig::resnet18(1000).graph(false);
        g.validate().unwrap();
        let mut bad = g.clone();
        bad.nodes[3].inputs = vec![9];
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("written before they are read"), "{e}");
        let mut bad = g;
        bad.nodes[0].op = Op::Add;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn unreachable_nodes_go() {
        let mut g = ResNetConfig::resnet18(10).graph(false);
        let out = g.output;
        g.push(Op::Relu, &[1], "dangling");
        g.output = out;
        assert_eq!(g.reachable(), ResNetConfig::resnet18(10).graph(false));
    }
}
