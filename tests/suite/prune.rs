//! Structured pruning: groups derived from ResNet18's structure, physically smaller networks
//! that still load and run, and pruning that provably changes nothing changes nothing.

use std::collections::HashMap;

use modelslim::compress::{
    ChannelImportance, Group, Importance, Member, PruneOptions, PruneScope, prune_channels,
    prune_channels_by,
};
use modelslim::model::arch::Arch;
use modelslim::model::graph::Graph;
use modelslim::model::{Model, Op};
use modelslim::preprocess::Preprocess;
use modelslim::tensor::{HostTensor, StateDict};

use crate::common;

/// One synthetic image (a ramp in every channel), enough to compare outputs.
fn image() -> Vec<f32> {
    (0..3 * 224 * 224)
        .map(|i| ((i % 97) as f32 / 48.0) - 1.0)
        .collect()
}

fn logits(model: &Model) -> Vec<Vec<f32>> {
    common::logits(model, &[image()])
}

fn member(key: &str, axis: usize) -> Member {
    Member::whole(key, axis)
}

#[test]
fn resnet18_groups_follow_the_residual_adds() {
    let groups = Model::seeded_resnet18(1).channel_groups();
    // stem/layer1 sum, 3 more stage sums, 8 block-internal widths.
    assert_eq!(groups.len(), 12);
    let stem = groups.iter().find(|g| g.name == "conv1").unwrap();
    assert!(stem.protected);
    for m in [
        member("conv1.weight", 0),
        member("bn1.weight", 0),
        member("layer1.0.conv2.weight", 0),
        member("layer1.0.bn2.running_var", 0),
        member("layer1.1.conv2.weight", 0),
        member("layer1.0.conv1.weight", 1),
        member("layer1.1.conv1.weight", 1),
        member("layer2.0.conv1.weight", 1),
        member("layer2.0.downsample.0.weight", 1),
    ] {
        assert!(stem.members.contains(&m), "stem group lacks {m:?}");
    }
    assert_eq!(stem.bns, vec!["bn1", "layer1.0.bn2", "layer1.1.bn2"]);

    let l2 = groups.iter().find(|g| g.name == "layer2.0.conv2").unwrap();
    for m in [
        member("layer2.0.downsample.0.weight", 0),
        member("layer2.0.downsample.1.weight", 0),
        member("layer2.1.conv2.weight", 0),
        member("layer2.1.conv1.weight", 1),
        member("layer3.0.conv1.weight", 1),
        member("layer3.0.downsample.0.weight", 1),
    ] {
        assert!(l2.members.contains(&m), "layer2 group lacks {m:?}");
    }
    let last = groups.iter().find(|g| g.name == "layer4.0.conv2").unwrap();
    assert!(last.members.contains(&member("fc.weight", 1)));
    let mid = groups.iter().find(|g| g.name == "layer3.1.conv1").unwrap();
    assert_eq!(
        mid.members
            .iter()
            .filter(|m| m.key.ends_with("conv2.weight"))
            .count(),
        1
    );
    // Every prunable tensor axis is in exactly one group; the classes are in none.
    let mut all: Vec<&Member> = groups.iter().flat_map(|g| &g.members).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
    assert!(!all.contains(&&member("fc.weight", 0)));
    assert!(!all.contains(&&member("fc.bias", 0)));
}

#[test]
fn ratio_zero_changes_nothing() {
    let m = Model::seeded_resnet18(3);
    let p = m.pruned(&PruneOptions::default()).unwrap();
    assert_eq!(p.weights, m.weights);
    assert_eq!(logits(&p), logits(&m));
}

/// The output channels of conv `name`, read from its weight.
fn out_channels(m: &Model, name: &str) -> usize {
    m.weights[&format!("{name}.weight")].shape[0]
}

#[test]
fn thirty_percent_makes_a_smaller_network_that_reloads() {
    let m = Model::seeded_resnet18(4);
    let opts = PruneOptions {
        ratio: 0.3,
        round_to: 8,
        scope: PruneScope::All,
        ..Default::default()
    };
    let p = m.pruned(&opts).unwrap();
    // Stem group protected; other groups 64→48, 128→96 (90 rounded up to 8), 256→184, 512→360.
    for (conv, width) in [
        ("conv1", 64),
        ("layer1.0.conv1", 48),
        ("layer2.0.conv2", 96),
        ("layer3.1.conv1", 184),
        ("layer4.1.conv2", 360),
    ] {
        assert_eq!(out_channels(&p, conv), width, "{conv}");
    }
    assert!(
        p.num_params() < m.num_params() * 6 / 10,
        "{}",
        p.num_params()
    );
    assert!(p.graph().macs([224; 2]) < m.graph().macs([224; 2]) * 7 / 10);
    // Saved with its widths, loaded back, same outputs.
    let back = Model::from_bytes(&p.to_safetensors().unwrap()).unwrap();
    assert_eq!(back.arch, p.arch);
    assert_eq!(logits(&back), logits(&p));
}

#[test]
fn removing_dead_channels_changes_nothing() {
    let mut m = Model::seeded_resnet18(5);
    // Kill 16 of layer1.0's 64 inner channels: γ = β = 0 makes them output relu(0) = 0.
    let dead: Vec<usize> = (0..64).step_by(4).collect();
    for key in ["layer1.0.bn1.weight", "layer1.0.bn1.bias"] {
        let t = m.weights.get_mut(key).unwrap();
        for &c in &dead {
            t.data[c] = 0.0;
        }
    }
    let opts = PruneOptions {
        importance: Importance::BnScale,
        overrides: HashMap::from([("layer1.0.conv1".to_string(), 0.25)]),
        ..Default::default()
    };
    let p = m.pruned(&opts).unwrap();
    assert_eq!(out_channels(&p, "layer1.0.conv1"), 48);
    assert_eq!(p.weights["layer1.0.conv2.weight"].shape, vec![64, 48, 3, 3]);
    let (a, b) = (logits(&m), logits(&p));
    let max = a[0]
        .iter()
        .zip(&b[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max <= 1e-5, "max |Δlogit| {max}");
}

#[test]
fn pruning_never_empties_a_group_and_rejects_impossible_ratios() {
    let m = Model::seeded_resnet18(6);
    for importance in [Importance::L1, Importance::L2, Importance::BnScale] {
        let p = m
            .pruned(&PruneOptions {
                ratio: 0.99,
                importance,
                global: importance == Importance::L2,
                steps: 2,
                ..Default::default()
            })
            .unwrap();
        for (key, t) in &p.weights {
            assert!(t.shape.iter().all(|&d| d >= 1), "{key} {:?}", t.shape);
        }
        assert_eq!(logits(&p)[0].len(), 1000);
    }
    for bad in [1.0, 1.5, -0.1] {
        let err = m
            .pruned(&PruneOptions {
                ratio: bad,
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("impossible"), "{err}");
    }
}

#[test]
fn global_ranking_removes_the_requested_share() {
    let m = Model::seeded_resnet18(7);
    let p = m
        .pruned(&PruneOptions {
            ratio: 0.3,
            global: true,
            scope: PruneScope::All,
            ..Default::default()
        })
        .unwrap();
    let width = |model: &Model| -> usize {
        model
            .channel_groups()
            .iter()
            .filter(|g| !g.protected)
            .map(|g| model.weights[&g.members[0].key].shape[g.members[0].axis])
            .sum()
    };
    let (before, after) = (width(&m), width(&p));
    let removed = (before - after) as f64 / before as f64;
    assert!((removed - 0.3).abs() < 0.01, "removed {removed}");
    assert_eq!(out_channels(&p, "conv1"), 64);
}

#[test]
fn magnitude_pruning_reaches_the_sparsity_and_keeps_shapes() {
    use modelslim::compress::SparsityOptions;
    let m = Model::seeded_resnet18(8);
    for global in [true, false] {
        let s = m
            .sparsified(&SparsityOptions {
                sparsity: 0.5,
                global,
                steps: 3,
                ..Default::default()
            })
            .unwrap();
        let convs: Vec<&String> = s
            .weights
            .keys()
            .filter(|k| s.weights[*k].shape.len() == 4)
            .collect();
        let (zeros, total) = convs.iter().fold((0, 0), |(z, t), k| {
            let d = &s.weights[*k].data;
            (z + d.iter().filter(|v| **v == 0.0).count(), t + d.len())
        });
        let sparsity = zeros as f64 / total as f64;
        assert!(
            (sparsity - 0.5).abs() < 0.001,
            "global={global}: {sparsity}"
        );
        assert_eq!(
            s.weights["fc.weight"], m.weights["fc.weight"],
            "classifier untouched"
        );
        assert_eq!(s.arch, m.arch);
        let metrics = s.metrics().unwrap();
        assert_eq!(metrics.params, m.num_params());
        assert!(metrics.nonzero_params < m.num_params() * 6 / 10);
    }
}

/// A criterion from outside the crate: keeps the channels L1 would remove.
struct ReverseL1;

impl ChannelImportance for ReverseL1 {
    fn scores(&self, g: &Group, w: &StateDict) -> Vec<f64> {
        Importance::L1
            .criterion()
            .expect("l1 is read from the weights")
            .scores(g, w)
            .iter()
            .map(|s| -s)
            .collect()
    }
}

#[test]
fn importance_criteria_plug_in() {
    let m = Model::seeded_resnet18(6);
    let groups = m.channel_groups();
    let opts = PruneOptions {
        ratio: 0.5,
        ..Default::default()
    };
    let l1 = prune_channels(&m, &groups, &opts).unwrap();
    let reverse = prune_channels_by(&m, &groups, &opts, &ReverseL1).unwrap();
    let key = "layer1.0.conv1.weight";
    assert_eq!(l1[key].shape, reverse[key].shape, "same widths either way");
    // L1 keeps the larger half of the channels, the reversed criterion the smaller half.
    let l1_norm =
        |t: &modelslim::tensor::HostTensor| t.data.iter().map(|v| v.abs() as f64).sum::<f64>();
    assert!(l1_norm(&l1[key]) > l1_norm(&reverse[key]));
}

#[test]
fn internal_scope_keeps_the_residual_streams_and_prunes_the_block_middles() {
    let m = Model::seeded_resnet18(1);
    let groups = m.channel_groups();
    // The four stage sums are residual streams; the eight block middles are not.
    assert_eq!(groups.iter().filter(|g| g.residual).count(), 4);
    let opts = PruneOptions {
        ratio: 0.5,
        scope: PruneScope::Internal,
        ..Default::default()
    };
    let pruned = m.pruned(&opts).unwrap();
    for g in &groups {
        let width = |model: &Model| model.weights[&g.members[0].key].shape[g.members[0].axis];
        if g.residual {
            assert_eq!(width(&pruned), width(&m), "{} is a residual stream", g.name);
        } else {
            assert_eq!(
                width(&pruned),
                width(&m) / 2,
                "{} is inside a block",
                g.name
            );
        }
    }
    assert_eq!(logits(&pruned)[0].len(), 1000);
    assert!("sideways".parse::<PruneScope>().is_err());
    // ResNet18's final features are its last residual stream: one group is both.
    assert_eq!(groups.iter().filter(|g| g.features).count(), 1);
    assert!(groups.iter().filter(|g| g.features).all(|g| g.residual));
}

/// A conv with a bias, "same" padding and stride 1.
pub(crate) fn conv(name: &str, i: usize, o: usize, k: usize, groups: usize) -> Op {
    Op::Conv {
        name: name.into(),
        in_channels: i,
        out_channels: o,
        kernel: [k; 2],
        stride: [1; 2],
        pads: [k / 2; 4],
        groups,
        bias: true,
        dilation: [1; 2],
    }
}

/// Graph `g` with seeded weights, on 16×16 inputs.
pub(crate) fn seeded_16px(name: &str, g: Graph, seed: u64) -> Model {
    let mut rng = modelslim::rng::Rng::new(seed);
    let mut weights = StateDict::new();
    for (key, shape) in g.param_shapes() {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.normal() as f32 * 0.5).collect();
        weights.insert(key, HostTensor::new(shape, data));
    }
    let arch = Arch {
        name: name.into(),
        graph: g,
        preprocess: Preprocess {
            crop: 16,
            resize: 16,
            ..Preprocess::IMAGENET
        },
        fixed_size: true,
    };
    Model::new(arch, weights).unwrap()
}

/// `zeroed` and `pruned` (16×16 inputs) give the same logits (≤ 1e-5) on one input: the input,
/// the pruned model's logits and their largest magnitude.
fn same_logits_16px(
    what: &str,
    zeroed: &Model,
    pruned: &Model,
) -> ([Vec<f32>; 1], Vec<Vec<f32>>, f32) {
    let x: Vec<f32> = (0..3 * 16 * 16)
        .map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0)
        .collect();
    let x = [x];
    let (zl, pl) = (common::logits(zeroed, &x), common::logits(pruned, &x));
    let d = common::max_abs_diff(&zl, &pl);
    let span = zl[0].iter().fold(0f32, |a, v| a.max(v.abs()));
    eprintln!("{what} pruned: max |Δlogit| {d:.2e} (logits up to {span})");
    assert!(span > 0.1, "logits {span}: a weak comparison");
    assert!(d <= 1e-5, "{d}");
    (x, pl, span)
}

/// Two convs concatenated, that concatenation concatenated with a third, read by a 1×1 conv
/// beside a conv that reads the first's output alone. Channels whose filters are zero give
/// zeros after their ReLU; pruning them must remove the consumer's input channels at their
/// offsets in the concatenation (after the first conv's 8, minus what it lost) and leave the
/// logits as they were.
#[test]
fn pruning_a_concatenation_removes_the_consumers_inputs_at_their_offsets() {
    let conv = |name: &str, i: usize, o: usize, k: usize| conv(name, i, o, k, 1);
    let mut g = Graph::new();
    let a = g.push(conv("a", 3, 8, 3), &[0], "a");
    let a = g.push(Op::Relu, &[a], "a_relu");
    let b = g.push(conv("b", 3, 6, 3), &[0], "b");
    let b = g.push(Op::Relu, &[b], "b_relu");
    let ab = g.push(Op::Concat, &[a, b], "ab");
    let c = g.push(conv("c", 3, 3, 1), &[0], "c");
    let c = g.push(Op::Relu, &[c], "c_relu");
    let abc = g.push(Op::Concat, &[ab, c], "abc");
    let d = g.push(conv("d", 17, 7, 1), &[abc], "d");
    let e = g.push(conv("e", 8, 7, 1), &[a], "e");
    let de = g.push(Op::Add, &[d, e], "de");
    let de = g.push(Op::Relu, &[de], "de_relu");
    let pooled = g.push(Op::GlobalAvgPool, &[de], "pooled");
    g.push(
        Op::Linear {
            name: "fc".into(),
            in_features: 7,
            out_features: 10,
        },
        &[pooled],
        "logits",
    );
    let m = seeded_16px("concat", g, 3);
    // Zero output channels a's 1 and 5, b's 0 and 3, c's 2, and (so that L1 importance,
    // which sums producers' rows and consumers' columns, ranks them last) the columns of
    // `d` at their offsets, 1 5 8+0 8+3 14+2, and of `e` at a's.
    let zeroed_out = [("a", vec![1, 5]), ("b", vec![0, 3]), ("c", vec![2])];
    let zeroed_in = [("d", 17, vec![1, 5, 8, 11, 16]), ("e", 8, vec![1, 5])];
    let mut z = m.clone();
    for (name, channels) in &zeroed_out {
        for key in [format!("{name}.weight"), format!("{name}.bias")] {
            let t = z.weights.get_mut(&key).unwrap();
            let per = t.data.len() / t.shape[0];
            for &c in channels {
                t.data[c * per..(c + 1) * per].fill(0.0);
            }
        }
    }
    for (name, inputs, columns) in &zeroed_in {
        let t = z.weights.get_mut(&format!("{name}.weight")).unwrap();
        for row in t.data.chunks_mut(*inputs) {
            for &c in columns {
                row[c] = 0.0;
            }
        }
    }
    let opts = PruneOptions {
        importance: Importance::L1,
        prune_stem: true,
        scope: PruneScope::All,
        overrides: [("a", 0.25), ("b", 1.0 / 3.0), ("c", 1.0 / 3.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    };
    let p = z.pruned(&opts).unwrap();
    // d read 8 + 6 + 3 channels; it keeps a's 6, b's 4 and c's 2, from the original columns
    // a 0 2 3 4 6 7, b 8+1 8+2 8+4 8+5, c 14+0 14+1.
    let d = &p.weights["d.weight"];
    assert_eq!(d.shape, vec![7, 12, 1, 1]);
    let kept = [0, 2, 3, 4, 6, 7, 9, 10, 12, 13, 14, 15];
    let original = &m.weights["d.weight"];
    for o in 0..7 {
        for (j, &i) in kept.iter().enumerate() {
            assert_eq!(d.data[o * 12 + j], original.data[o * 17 + i], "d[{o}, {j}]");
        }
    }
    assert_eq!(p.weights["e.weight"].shape, vec![7, 6, 1, 1]);
    same_logits_16px("concatenation", &z, &p);
    assert!(p.graph().macs([16; 2]) < m.graph().macs([16; 2]));
}

/// A 1×1 conv into a conv in 4 groups into a 1×1 conv. A grouped conv reads each block of
/// its input and writes each block of its output in one group, so a channel of either group
/// is the same channel of every block: zeroing channel 1 of each block of `a` (2 per block)
/// and channel 2 of each block of `b` (3 per block), pruning must remove exactly those, keep 4
/// equal groups, and leave the logits as they were.
#[test]
fn pruning_a_grouped_conv_removes_the_same_channel_of_every_group() {
    let mut g = Graph::new();
    let a = g.push(conv("a", 3, 8, 1, 1), &[0], "a");
    let a = g.push(Op::Relu, &[a], "a_relu");
    let b = g.push(conv("b", 8, 12, 3, 4), &[a], "b");
    let b = g.push(Op::Relu, &[b], "b_relu");
    let c = g.push(conv("c", 12, 6, 1, 1), &[b], "c");
    let c = g.push(Op::Relu, &[c], "c_relu");
    let pooled = g.push(Op::GlobalAvgPool, &[c], "pooled");
    g.push(
        Op::Linear {
            name: "fc".into(),
            in_features: 6,
            out_features: 10,
        },
        &[pooled],
        "logits",
    );
    let m = seeded_16px("grouped", g, 5);
    let groups = m.channel_groups();
    let of = |name: &str| groups.iter().find(|g| g.name == name).unwrap();
    assert_eq!(of("a").fixed, None);
    assert!(of("a").members.contains(&Member {
        blocks: 4,
        ..member("a.weight", 0)
    }));
    assert!(of("a").members.contains(&member("b.weight", 1)));
    assert!(of("b").members.contains(&Member {
        blocks: 4,
        ..member("c.weight", 1)
    }));
    // a's channel 1 of each block of 2 (and b's column 1, which reads it), b's channel 2 of
    // each block of 3 (and c's columns there).
    let mut z = m.clone();
    let rows = |z: &mut Model, key: &str, rows: &[usize]| {
        let t = z.weights.get_mut(key).unwrap();
        let per = t.data.len() / t.shape[0];
        for &r in rows {
            t.data[r * per..(r + 1) * per].fill(0.0);
        }
    };
    let columns = |z: &mut Model, key: &str, columns: &[usize]| {
        let t = z.weights.get_mut(key).unwrap();
        let (n, per) = (t.shape[1], t.data.len() / (t.shape[0] * t.shape[1]));
        for row in t.data.chunks_mut(n * per) {
            for &c in columns {
                row[c * per..(c + 1) * per].fill(0.0);
            }
        }
    };
    for key in ["a.weight", "a.bias"] {
        rows(&mut z, key, &[1, 3, 5, 7]);
    }
    columns(&mut z, "b.weight", &[1]);
    for key in ["b.weight", "b.bias"] {
        rows(&mut z, key, &[2, 5, 8, 11]);
    }
    columns(&mut z, "c.weight", &[2, 5, 8, 11]);
    let opts = PruneOptions {
        importance: Importance::L1,
        prune_stem: true,
        scope: PruneScope::All,
        overrides: [("a", 0.5), ("b", 1.0 / 3.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    };
    let p = z.pruned(&opts).unwrap();
    assert_eq!(p.weights["a.weight"].shape, vec![4, 3, 1, 1]);
    assert_eq!(p.weights["b.weight"].shape, vec![8, 1, 3, 3]);
    assert_eq!(p.weights["c.weight"].shape, vec![6, 8, 1, 1]);
    let original = &m.weights["b.weight"];
    for (j, &i) in [0, 1, 3, 4, 6, 7, 9, 10].iter().enumerate() {
        assert_eq!(
            p.weights["b.weight"].data[j * 9..(j + 1) * 9],
            original.data[i * 18..i * 18 + 9],
            "b row {j}"
        );
    }
    let b = p.graph().nodes.iter().find_map(|n| match &n.op {
        Op::Conv {
            name,
            groups,
            in_channels,
            ..
        } if name == "b" => Some((*groups, *in_channels)),
        _ => None,
    });
    assert_eq!(b, Some((4, 4)));
    let (x, pl, span) = same_logits_16px("grouped conv", &z, &p);
    // The narrower conv in 4 groups, exported: onnxruntime and LiteRT compute the same logits.
    exports_give_the_same_logits("grouped-pruned", &p, &x, &pl, span);
}

/// `m`'s ONNX in onnxruntime and its TFLite in LiteRT give its logits `ours` on inputs `x`,
/// within 1e-4 of their largest magnitude `span`.
fn exports_give_the_same_logits(
    name: &str,
    m: &Model,
    x: &[Vec<f32>],
    ours: &[Vec<f32>],
    span: f32,
) {
    let onnx = modelslim::export::to_onnx(m).unwrap();
    let ort = common::onnxruntime(&onnx, x, name, true);
    let lite = common::litert(&modelslim::export::to_tflite(m).unwrap(), x, name);
    for (engine, theirs) in [("onnxruntime", ort), ("LiteRT", lite)] {
        let d = common::max_abs_diff(ours, &theirs);
        eprintln!("{name}, {engine}: max |Δlogit| {d:.2e}");
        assert!(d <= 1e-4 * span, "{engine}: {d}");
    }
}

/// A ShuffleNetV2 in miniature: a downsampling unit (two branches concatenated) and two units
/// that split their input in halves, pass the first on and concatenate it with the second's
/// branch, each followed by a channel shuffle in 2 groups.
fn shufflenet_v2_16px() -> Model {
    let mut g = Graph::new();
    let relu = |g: &mut Graph, v: usize, name: &str| g.push(Op::Relu, &[v], format!("{name}_relu"));
    let stem = g.push(conv("stem", 3, 8, 3, 1), &[0], "stem");
    let stem = relu(&mut g, stem, "stem");
    // A branch: 1×1 conv, ReLU, depthwise 3×3, 1×1 conv, ReLU.
    let branch = |g: &mut Graph, x: usize, name: &str| {
        let a = g.push(
            conv(&format!("{name}.pw1"), 8, 8, 1, 1),
            &[x],
            format!("{name}.pw1"),
        );
        let a = relu(g, a, &format!("{name}.pw1"));
        let a = g.push(
            conv(&format!("{name}.dw"), 8, 8, 3, 8),
            &[a],
            format!("{name}.dw"),
        );
        let a = g.push(
            conv(&format!("{name}.pw2"), 8, 8, 1, 1),
            &[a],
            format!("{name}.pw2"),
        );
        relu(g, a, &format!("{name}.pw2"))
    };
    let shuffled = |g: &mut Graph, a: usize, b: usize, name: &str| {
        let cat = g.push(Op::Concat, &[a, b], format!("{name}.cat"));
        g.push(
            Op::ChannelShuffle { groups: 2 },
            &[cat],
            format!("{name}.shuffle"),
        )
    };
    let b1 = g.push(conv("u0.b1.dw", 8, 8, 3, 8), &[stem], "u0.b1.dw");
    let b1 = g.push(conv("u0.b1.pw", 8, 8, 1, 1), &[b1], "u0.b1.pw");
    let b1 = relu(&mut g, b1, "u0.b1.pw");
    let b2 = branch(&mut g, stem, "u0.b2");
    let mut x = shuffled(&mut g, b1, b2, "u0");
    for u in ["u1", "u2"] {
        let x1 = g.push(Op::Channels { start: 0, len: 8 }, &[x], format!("{u}.x1"));
        let x2 = g.push(Op::Channels { start: 8, len: 8 }, &[x], format!("{u}.x2"));
        let b = branch(&mut g, x2, &format!("{u}.b2"));
        x = shuffled(&mut g, x1, b, u);
    }
    let h = g.push(conv("head", 16, 12, 1, 1), &[x], "head");
    let h = relu(&mut g, h, "head");
    let pooled = g.push(Op::GlobalAvgPool, &[h], "pooled");
    g.push(
        Op::Linear {
            name: "fc".into(),
            in_features: 12,
            out_features: 10,
        },
        &[pooled],
        "logits",
    );
    seeded_16px("shufflenet_v2", g, 9)
}

/// A channel shuffle keeps the same channel of each of its groups together, and a slice takes
/// its channels wherever they were moved: in ShuffleNetV2 the channels the units pass on are
/// one group of classes, each class a channel of the first unit's branches with every channel
/// a shuffle or split moves it to. Zeroing two classes everywhere, pruning must remove exactly
/// those, move the splits' bounds, keep the shuffles in 2 equal groups and the logits as they
/// were; at 30 % it reaches fewer MACs than keeping every shuffled channel.
#[test]
fn pruning_a_shufflenet_v2_removes_channel_classes_through_its_shuffles_and_splits() {
    let m = shufflenet_v2_16px();
    let groups = m.channel_groups();
    let moved: Vec<&Group> = (groups.iter())
        .filter(|g| g.members.iter().any(|m| m.classes.is_some()))
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "{:?}",
        groups.iter().map(|g| &g.name).collect::<Vec<_>>()
    );
    let region = moved[0];
    assert_eq!(region.fixed, None);
    // One class per channel of each half of the first shuffle.
    let classes = |m: &Member| m.classes.as_ref().map(Vec::len);
    assert!(region.members.iter().all(|m| classes(m) == Some(8)));
    let mut z = m.clone();
    let gone = [1, 5];
    for mem in &region.members {
        let t = z.weights.get_mut(&mem.key).unwrap();
        let (n, inner) = (
            t.shape[mem.axis],
            t.shape[mem.axis + 1..].iter().product::<usize>(),
        );
        let classes = mem.classes.as_ref().unwrap();
        for o in 0..t.data.len() / (n * inner) {
            for &c in &gone {
                for &i in &classes[c] {
                    t.data[(o * n + i) * inner..(o * n + i + 1) * inner].fill(0.0);
                }
            }
        }
    }
    let opts = |ratio: f32| PruneOptions {
        importance: Importance::L1,
        scope: PruneScope::All,
        overrides: [(region.name.clone(), ratio)].into_iter().collect(),
        ..Default::default()
    };
    let p = z.pruned(&opts(0.25)).unwrap();
    let slices = |m: &Model| {
        (m.graph().nodes.iter())
            .filter_map(|n| match n.op {
                Op::Channels { start, len } => Some((start, len)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    eprintln!("slices {:?} → {:?}", slices(&m), slices(&p));
    assert_ne!(slices(&p), slices(&m));
    // Each unit's halves still split its input (12 channels wide now) in two; the halves
    // differ where the classes removed reach one half further than the other.
    for pair in slices(&p).chunks(2) {
        assert_eq!(
            (pair[0].0, pair[1].0, pair[1].0 + pair[1].1),
            (0, pair[0].1, 12)
        );
    }
    // Class 5 is channel 5 of each half of the first shuffle alone; class 1 also channels 2
    // and 3 of each half of the second (channels 2 and 3 of its first half were the first
    // shuffle's 1), and 4 to 7 of the third: the units are 12, 12 and 8 channels wide.
    assert_eq!(p.weights["head.weight"].shape, vec![12, 8, 1, 1]);
    let (x, pl, span) = same_logits_16px("shufflenet v2", &z, &p);
    exports_give_the_same_logits("shufflenet-v2-pruned", &p, &x, &pl, span);
    // 30 % of every group, against the same with the shuffled channels kept.
    let all = PruneOptions {
        ratio: 0.3,
        scope: PruneScope::All,
        ..Default::default()
    };
    let kept: Vec<Group> = (groups.iter().cloned())
        .map(|mut g| {
            if g.name == region.name {
                g.fixed = Some("shuffled".into());
            }
            g
        })
        .collect();
    let side = [16; 2];
    let protecting = (m
        .arch
        .with_widths_of(&prune_channels(&m, &kept, &all).unwrap()))
    .unwrap()
    .graph
    .macs(side);
    let ours = m.pruned(&all).unwrap().graph().macs(side);
    let before = m.graph().macs(side);
    eprintln!(
        "shufflenet v2 pruned 30 %: {before} → {ours} MACs; {protecting} keeping the shuffled channels"
    );
    assert!(ours < protecting, "{ours} ≥ {protecting}");
}
