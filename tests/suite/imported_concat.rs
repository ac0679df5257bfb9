//! Networks that concatenate, split or shuffle channels: the `onnx` package's light
//! SqueezeNet (fire modules: concatenated expands, a conv classifier), ShuffleNet (channel
//! shuffles, grouped convs, a concatenated shortcut) and DenseNet-121 (dense blocks, batch
//! norms after concatenations, Caffe's per-channel scales). Each as published (constant
//! weights) against its reference output, then with seeded weights
//! (`scripts/seeded_light.py --logits`) against onnxruntime: fp32, int8 weights and
//! activations, pruned with refit, full-integer TFLite in LiteRT.

use std::path::PathBuf;

use crate::common;
use crate::imported::{photos, relative_diff};
use crate::imported_ops::images;
use common::{calibration_photos, int8a8, logits, max_abs_diff, onnxruntime, reloaded_logits};

use modelslim::compress::{PruneOptions, prune_channels};
use modelslim::export::proto::{ModelProto, TensorProto};
use modelslim::export::to_onnx;
use modelslim::model::onnx::read_onnx;
use modelslim::model::{Model, Op};

fn light(name: &str) -> PathBuf {
    let dir = std::env::var("MODELSLIM_ONNX_LIGHT").unwrap_or_else(|_| {
        panic!("set MODELSLIM_ONNX_LIGHT (scripts/setup.sh does): the onnx package's light models")
    });
    PathBuf::from(dir).join(format!("light_{name}.onnx"))
}

/// The light model `name` with seeded weights, its logits as the output.
fn seeded(name: &str) -> (Vec<u8>, Model) {
    let path = common::scratch(&format!("{name}-seeded.onnx"));
    let src = light(name);
    common::run_python(
        "scripts/seeded_light.py",
        &[src.as_os_str(), path.as_os_str(), "--logits".as_ref()],
    );
    let bytes = std::fs::read(&path).unwrap();
    let m = read_onnx(&bytes, name, None).unwrap();
    (bytes, m)
}

/// The first output the `onnx` package records for the light model (its softmax).
fn reference_output(name: &str) -> Vec<f32> {
    let pb = light(name).with_file_name(format!("light_{name}_output_0.pb"));
    let bytes = std::fs::read(&pb).unwrap();
    let t = <TensorProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().fold(f32::MIN, |a, &b| a.max(b));
    let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn the_light_models_as_published_give_their_reference_outputs() {
    for name in ["squeezenet", "shufflenet", "densenet121"] {
        let bytes = std::fs::read(light(name)).unwrap();
        let m = read_onnx(&bytes, name, None).unwrap();
        let concats = m
            .graph()
            .nodes
            .iter()
            .filter(|n| n.op == Op::Concat)
            .count();
        assert!(concats > 0, "{name}: no concatenation read");
        // Where the file ends in a softmax (which modelslim drops), its probabilities.
        let proto = <ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
        let last = proto
            .graph
            .and_then(|g| g.node.last().map(|n| n.op_type.clone()));
        let ours = logits(&m, &photos(&m)[..1]).remove(0);
        let ours = if last.as_deref() == Some("Softmax") {
            softmax(&ours)
        } else {
            ours
        };
        let theirs = reference_output(name);
        assert_eq!(ours.len(), theirs.len());
        let d = max_abs_diff(&[ours], &[theirs]);
        eprintln!("light {name} as published: max |Δprob| = {d:.2e}");
        assert!(d <= 1e-6, "{name}: {d}");
    }
}

#[test]
fn seeded_squeezenet_shufflenet_and_densenet_give_onnxruntimes_logits() {
    for name in ["squeezenet", "shufflenet", "densenet121"] {
        let (bytes, m) = seeded(name);
        let images = &photos(&m)[..2];
        let ours = logits(&m, images);
        let theirs = onnxruntime(&bytes, images, &format!("{name}-seeded"), true);
        let span = theirs[0].iter().fold(f32::MIN, |a, &b| a.max(b))
            - theirs[0].iter().fold(f32::MAX, |a, &b| a.min(b));
        let d = relative_diff(&ours, &theirs);
        eprintln!("seeded {name}: max |Δ| / span = {d:.2e}, span {span}");
        assert!(
            span > 0.5,
            "{name}: the logits barely differ ({span}): a weak comparison"
        );
        assert!(d <= 1e-4, "{name}: {d}");
    }
}

#[test]
fn concat_families_in_int8_export_onnx_files_that_give_modelslims_logits() {
    for name in ["squeezenet", "shufflenet", "densenet121"] {
        let (_, m) = seeded(name);
        let calib = calibration_photos(&m.preprocess(), 8);
        let q = int8a8(&m, &calib);
        let images = &photos(&m)[..4];
        let ours = reloaded_logits(&q, images);
        let theirs = onnxruntime(&to_onnx(&q).unwrap(), images, &format!("{name}-int8"), true);
        let d = max_abs_diff(&ours, &theirs);
        let fp32 = logits(&m, images);
        let agree = fp32
            .iter()
            .zip(&ours)
            .filter(|(a, b)| modelslim::predict::argmax(a) == modelslim::predict::argmax(b))
            .count();
        eprintln!("{name} int8: max |Δ| vs onnxruntime {d}, top-1 kept on {agree}/4");
        assert_eq!(
            d, 0.0,
            "{name}: int8 logits differ from onnxruntime's by {d}"
        );
    }
}

/// The MACs pruning `m` by `ratio` leaves when every group a concatenation reads, a slice
/// or a shuffle moves is kept whole: what a pruner without offsets into concatenations or
/// channel classes reaches.
fn macs_keeping_concatenated_channels(m: &Model, ratio: f32) -> u64 {
    let mut groups = m.channel_groups();
    for g in &mut groups {
        if (g.members.iter()).any(|m| m.after.is_some() || m.classes.is_some()) {
            g.fixed = Some("concatenated".into());
        }
    }
    let opts = PruneOptions {
        ratio,
        ..Default::default()
    };
    let w = prune_channels(m, &groups, &opts).unwrap();
    m.arch.with_widths_of(&w).unwrap().graph.macs([224; 2])
}

/// ShuffleNet (v1): each grouped conv reads or writes channels that a shuffle interleaves or
/// that a downsampling unit concatenates, so pruning finds nothing to remove, and says why.
#[test]
fn shufflenet_v1s_shuffled_channels_stay_and_say_why() {
    let m = read_onnx(
        &std::fs::read(light("shufflenet")).unwrap(),
        "shufflenet",
        None,
    )
    .unwrap();
    let groups = m.channel_groups();
    let free: Vec<&str> = groups
        .iter()
        .filter(|g| g.fixed.is_none() && !g.protected)
        .map(|g| g.name.as_str())
        .collect();
    assert!(free.is_empty(), "prunable: {free:?}");
    let why = groups.iter().filter_map(|g| g.fixed.as_deref());
    assert!(
        why.clone()
            .any(|w| w.contains("shuffle moves them, and a conv reads them in groups")),
        "{:?}",
        why.collect::<Vec<_>>()
    );
}

#[test]
fn concat_families_pruned_30_percent_with_refit_run_smaller_and_export_what_modelslim_computes() {
    for name in ["squeezenet", "densenet121"] {
        let (_, m) = seeded(name);
        let calib = calibration_photos(&m.preprocess(), 8);
        let p = common::pruned_refit(&m, 0.3, &calib);
        let (before, after) = (m.graph().macs([224; 2]), p.graph().macs([224; 2]));
        let whole = macs_keeping_concatenated_channels(&m, 0.3);
        eprintln!(
            "{name} pruned 30 %: {before} → {after} MACs; {whole} keeping every concatenated channel"
        );
        assert!(after < before * 9 / 10, "{name}: {before} → {after} MACs");
        assert!(
            after < whole,
            "{name}: offsets reach {after} MACs, keeping {whole}"
        );
        let images = &photos(&m)[..2];
        let ours = reloaded_logits(&p, images);
        let theirs = onnxruntime(
            &to_onnx(&p).unwrap(),
            images,
            &format!("{name}-pruned"),
            true,
        );
        let d = relative_diff(&ours, &theirs);
        assert!(d <= 1e-4, "{name}: {d}");
    }
}

/// SqueezeNet's and DenseNet's integers are LiteRT's. DenseNet's transitions average 2×2
/// windows of their 1×1 conv's output, whose means of four integers would end in halves that
/// ONNX's `QuantizeLinear` (and modelslim) round to even and LiteRT's int8 average pool away
/// from zero; folded into one 2×2 conv of stride 2 (`Graph::foldable_pools`), they round once,
/// as every conv does. (ShuffleNet's average pools pad and leave the padding out, which
/// TFLite's pool does only with SAME padding: its TFLite export is refused, naming the pool.)
#[test]
fn concat_families_as_full_integer_tflite_give_modelslims_integers_in_litert() {
    for name in ["squeezenet", "densenet121"] {
        let (_, m) = seeded(name);
        let calib = calibration_photos(&m.preprocess(), 8);
        let q = int8a8(&m, &calib);
        let images = &photos(&m)[..4];
        let ours = reloaded_logits(&q, images);
        let theirs = common::litert_full_integer(
            &modelslim::export::to_tflite(&q).unwrap(),
            images,
            &format!("{name}-int8"),
        );
        let step = q.quant.logits.unwrap().scale;
        let d = max_abs_diff(&ours, &theirs);
        let same_top1 = ours
            .iter()
            .zip(&theirs)
            .all(|(a, b)| modelslim::predict::argmax(a) == modelslim::predict::argmax(b));
        eprintln!(
            "{name} full-integer TFLite: max |Δ| = {d} (step {step}), same top-1 {same_top1}"
        );
        assert_eq!(
            d, 0.0,
            "{name}: LiteRT's logits are {d} from modelslim's (step {step})"
        );
        assert!(same_top1, "{name}: LiteRT's top-1 differs");
    }
}

/// A 1×1 conv and the unpadded 2×2 average pool of stride 2 after it (a DenseNet transition)
/// fold into one 2×2 conv of stride 2 with the 1×1 weights over 4 at each tap: the same
/// logits in float, no pool left. A pool whose conv something else reads too stays.
#[test]
fn a_transitions_conv_and_average_pool_fold_into_one_strided_conv() {
    use crate::prune::{conv, seeded_16px};
    use modelslim::model::graph::Graph;
    let net = |shortcut: bool| {
        let mut g = Graph::new();
        let a = g.push(conv("a", 3, 8, 3, 1), &[0], "a");
        let a = g.push(Op::Relu, &[a], "a_relu");
        let t = g.push(conv("t", 8, 6, 1, 1), &[a], "t");
        let mut p = g.push(
            Op::AvgPool {
                kernel: [2, 2],
                stride: [2, 2],
                pads: [0; 4],
                count_include_pad: true,
            },
            &[t],
            "pool",
        );
        if shortcut {
            let s = g.push(conv("s", 6, 6, 1, 1), &[t], "s");
            let s = g.push(Op::GlobalAvgPool, &[s], "s_pooled");
            let q = g.push(Op::GlobalAvgPool, &[p], "pooled");
            p = g.push(Op::Add, &[q, s], "sum");
        } else {
            p = g.push(Op::GlobalAvgPool, &[p], "pooled");
        }
        g.push(
            Op::Linear {
                name: "fc".into(),
                in_features: 6,
                out_features: 5,
            },
            &[p],
            "logits",
        );
        seeded_16px("transition", g, 11)
    };
    let pools = |m: &Model| {
        (m.graph().nodes.iter())
            .filter(|n| matches!(n.op, Op::AvgPool { .. }))
            .count()
    };
    let m = net(false);
    let f = m.fold_bn().unwrap();
    assert_eq!((pools(&m), pools(&f)), (1, 0));
    let t = f.graph().nodes.iter().find_map(|n| match &n.op {
        Op::Conv {
            name,
            kernel,
            stride,
            ..
        } if name == "t" => Some((*kernel, *stride)),
        _ => None,
    });
    assert_eq!(t, Some(([2, 2], [2, 2])));
    let (w1, w2) = (&m.weights["t.weight"], &f.weights["t.weight"]);
    assert_eq!(w2.shape, [6, 8, 2, 2]);
    assert!(
        w2.data
            .iter()
            .enumerate()
            .all(|(i, v)| *v == w1.data[i / 4] / 4.0)
    );
    let x = [images(&m).remove(0)];
    let (a, b) = (logits(&m, &x), logits(&f, &x));
    let span = a[0].iter().fold(0f32, |s, v| s.max(v.abs()));
    let d = max_abs_diff(&a, &b);
    eprintln!("folded transition: max |Δlogit| {d:.2e} (logits up to {span})");
    assert!(span > 0.1 && d <= 1e-5 * span, "{d} of {span}");
    let kept = net(true);
    assert_eq!(pools(&kept.fold_bn().unwrap()), 1);
}

/// The network `tests/golden/make_concat_net.py` writes: every op that moves channels, in the
/// forms torch writes them, a conv in groups after a `Pad` node, at 64×64.
fn concat_net() -> (Vec<u8>, Model) {
    let path = common::scratch("concat_net.onnx");
    common::run_python("tests/golden/make_concat_net.py", &[path.as_os_str()]);
    let bytes = std::fs::read(path).unwrap();
    let m = read_onnx(&bytes, "concat_net", None).unwrap();
    (bytes, m)
}

#[test]
fn a_network_that_concatenates_splits_shuffles_and_flattens_runs_as_every_engine_does() {
    let (bytes, m) = concat_net();
    let g = m.graph();
    let count = |f: fn(&Op) -> bool| g.nodes.iter().filter(|n| f(&n.op)).count();
    assert_eq!(count(|o| *o == Op::Concat), 4);
    assert_eq!(count(|o| matches!(o, Op::Channels { .. })), 2);
    assert_eq!(count(|o| matches!(o, Op::ChannelShuffle { groups: 2 })), 1);
    assert_eq!(count(|o| matches!(o, Op::Flatten { pixels: 16 })), 1);
    let x = images(&m);
    let ours = logits(&m, &x);
    let theirs = onnxruntime(&bytes, &x, "concat-net-file", true);
    let export = onnxruntime(&to_onnx(&m).unwrap(), &x, "concat-net-export", true);
    let tflite = common::litert(&modelslim::export::to_tflite(&m).unwrap(), &x, "concat-net");
    for (what, t) in [("file", theirs), ("export", export), ("tflite", tflite)] {
        let d = relative_diff(&ours, &t);
        eprintln!("concat net fp32, {what}: max |Δ| / span {d:.2e}");
        assert!(d <= 1e-4, "{what}: {d}");
    }
    // int8 weights and activations: onnxruntime's and LiteRT's integers are modelslim's (a
    // 3×3 mean of integers never ends in a half, so no tie is rounded two ways).
    let calib = calibration_photos(&m.preprocess(), 8);
    let q = int8a8(&m, &calib);
    let ours = reloaded_logits(&q, &x);
    let ort = onnxruntime(&to_onnx(&q).unwrap(), &x, "concat-net-int8", true);
    assert_eq!(max_abs_diff(&ours, &ort), 0.0, "int8 in onnxruntime");
    let lite = common::litert_full_integer(
        &modelslim::export::to_tflite(&q).unwrap(),
        &x,
        "concat-net-int8",
    );
    let step = q.quant.logits.unwrap().scale;
    let d = max_abs_diff(&ours, &lite);
    eprintln!("concat net full-integer TFLite: max |Δ| = {d} (step {step})");
    assert!(d <= step / 2.0, "{d} > half of step {step}");
}

#[test]
fn a_network_that_concatenates_prunes_at_offsets_and_keeps_what_moves_whole() {
    let (_, m) = concat_net();
    let groups = m.channel_groups();
    let fixed = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .and_then(|g| g.fixed.clone())
    };
    // The fire module's expand 1×1 feeds the unit's first half, which the shuffle moves into
    // the dense layer, concatenated there with channels no shuffle moves: kept, with the
    // reason. Its expand 3×3 is the second half, which only the unit's branch reads: its
    // channels go with that branch's input channels, and the split's bounds follow.
    assert!(
        fixed("fire.expand1x1").is_some_and(|w| w.contains("concatenated with channels")),
        "{:?}",
        fixed("fire.expand1x1")
    );
    assert_eq!(fixed("fire.expand3x3"), None);
    // The unit's inner convs and the dense layer's conv may lose channels.
    assert_eq!(fixed("unit.branch2.0"), None);
    assert_eq!(fixed("dense.conv"), None);
    // A conv in groups would lose the same channels in each group (prune.rs), but this one
    // writes into the classifier's flattened features, which stay.
    assert!(
        fixed("tail").is_some_and(|w| w.contains("flattens")),
        "{:?}",
        fixed("tail")
    );
    assert!(
        fixed("fc1").is_some_and(|w| w.contains("flattens")),
        "{:?}",
        fixed("fc1")
    );
    let calib = calibration_photos(&m.preprocess(), 8);
    let p = common::pruned_refit(&m, 0.3, &calib);
    let side = m.arch.input_size();
    let (before, after) = (m.graph().macs(side), p.graph().macs(side));
    eprintln!("concat net pruned 30 %: {before} → {after} MACs");
    assert!(after < before, "{before} → {after}");
    let split = |m: &Model| {
        (m.graph().nodes.iter())
            .filter_map(|n| match n.op {
                Op::Channels { start, len } => Some((start, len)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let e3 = |m: &Model| m.weights["fire.expand3x3.weight"].shape[0];
    eprintln!(
        "the split: {:?} → {:?} (expand 3×3 {} → {})",
        split(&m),
        split(&p),
        e3(&m),
        e3(&p)
    );
    assert!(e3(&p) < e3(&m));
    assert_eq!(split(&p), [(0, 12), (12, e3(&p))]);
    let x = images(&m);
    let ours = reloaded_logits(&p, &x);
    let theirs = onnxruntime(&to_onnx(&p).unwrap(), &x, "concat-net-pruned", true);
    let d = relative_diff(&ours, &theirs);
    assert!(d <= 1e-4, "{d}");
    let lite = common::litert(
        &modelslim::export::to_tflite(&p).unwrap(),
        &x,
        "concat-net-pruned",
    );
    assert!(relative_diff(&ours, &lite) <= 1e-4);
}
