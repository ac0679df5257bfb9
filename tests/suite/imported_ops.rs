//! The ops of MobileNetV3-style networks read from ONNX — hard swish (the op, PyTorch's
//! `x · HardSigmoid(x)` and Paddle's four nodes), SiLU (`x · sigmoid(x)`), sigmoid, hard
//! sigmoid, squeeze-excitation (a conv on pooled values, a per-channel product), batch norms
//! kept — on a small seeded network (`tests/golden/make_se_net.py`), against onnxruntime and
//! LiteRT.

use crate::common;
use common::{int8a8, logits, max_abs_diff, onnxruntime, reloaded_logits};

use modelslim::compress::PruneOptions;
use modelslim::export::{to_onnx, to_tflite};
use modelslim::model::onnx::read_onnx;
use modelslim::model::{Model, Op};

/// The network `make_se_net.py` writes with `args`, as its bytes.
fn se_net(args: &[&str]) -> Vec<u8> {
    let path = common::scratch("se_net.onnx");
    let mut all = vec![path.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    common::run_python("tests/golden/make_se_net.py", &all);
    std::fs::read(path).unwrap()
}

/// Photos and noise at the network's side.
pub(crate) fn images(m: &Model) -> Vec<Vec<f32>> {
    let pre = m.preprocess();
    let mut out: Vec<Vec<f32>> = ["chelsea.png", "coffee.png", "astronaut.png"]
        .iter()
        .map(|n| pre.run(&common::sample(n)).unwrap())
        .collect();
    let len = out[0].len();
    out.push(
        (0..len)
            .map(|i| ((i * 7919) % 255) as f32 / 64.0 - 2.0)
            .collect(),
    );
    out
}

/// `m`, read from `bytes`, against the independent engines: onnxruntime on the file and on
/// modelslim's export and LiteRT on the float TFLite file give its logits (1e-4); in int8
/// weights + activations the ONNX file and the full-integer TFLite file stay within two logit
/// steps of modelslim.
fn engines_agree(bytes: &[u8], m: &Model, tag: &str) {
    let x = images(m);
    let ours = logits(m, &x);
    let name = |what: &str| format!("se-{tag}-{what}");
    for (what, theirs) in [
        ("file", onnxruntime(bytes, &x, &name("file"), true)),
        (
            "export",
            onnxruntime(&to_onnx(m).unwrap(), &x, &name("export"), true),
        ),
        (
            "tflite",
            common::litert(&to_tflite(m).unwrap(), &x, &name("tflite")),
        ),
    ] {
        let d = max_abs_diff(&ours, &theirs);
        eprintln!("SE net ({tag}), {what}: max |Δlogit| {d:.2e}");
        assert!(d <= 1e-4, "{tag} {what}: {d}");
    }
    let q = int8a8(m, &x);
    let step = q.quant.logits.unwrap().scale;
    let ours = reloaded_logits(&q, &x);
    let onnx = onnxruntime(&to_onnx(&q).unwrap(), &x, &name("int8"), true);
    let tflite = common::litert_full_integer(&to_tflite(&q).unwrap(), &x, &name("int8"));
    for (what, theirs) in [("onnx", onnx), ("tflite", tflite)] {
        let d = max_abs_diff(&ours, &theirs);
        eprintln!("SE net ({tag}) int8, {what}: max |Δlogit| {d} (step {step})");
        assert!(d <= 2.0 * step, "{tag} {what}: {d} > 2 × {step}");
    }
}

fn ops(m: &Model) -> Vec<Op> {
    m.graph().nodes.into_iter().map(|n| n.op).collect()
}

#[test]
fn every_form_of_the_ops_is_read_and_gives_onnxruntimes_logits() {
    let bytes = se_net(&[]);
    let m = read_onnx(&bytes, "se_net", None).unwrap();
    let o = ops(&m);
    let count = |f: fn(&Op) -> bool| o.iter().filter(|op| f(op)).count();
    // The stem's op, Paddle's four nodes and PyTorch's x · HardSigmoid(x): three hard swishes.
    assert_eq!(count(|op| matches!(op, Op::HardSwish)), 3);
    assert_eq!(count(|op| matches!(op, Op::Silu)), 1);
    assert_eq!(count(|op| matches!(op, Op::Sigmoid)), 0);
    assert_eq!(count(|op| matches!(op, Op::HardSigmoid { .. })), 1);
    assert_eq!(count(|op| matches!(op, Op::Mul)), 1);
    assert_eq!(count(|op| matches!(op, Op::GlobalAvgPool)), 2);
    assert_eq!(m.arch.input_size(), [96; 2]);
    let x = images(&m);
    let ours = logits(&m, &x);
    let theirs = onnxruntime(&bytes, &x, "se-net", true);
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("SE net fp32: max |Δlogit| {d:.2e}");
    assert!(d <= 1e-4, "{d}");
    // modelslim's own export of it, and of it with its batch norms folded.
    for (name, model) in [("export", m.clone()), ("folded", m.fold_bn().unwrap())] {
        let exported = onnxruntime(&to_onnx(&model).unwrap(), &x, &format!("se-{name}"), true);
        let d = max_abs_diff(&ours, &exported);
        assert!(d <= 1e-4, "{name}: {d}");
    }
}

/// Dilated convs (a depthwise 3×3 and a 1×3, dilation 2, the 1×3 padded along the width only):
/// onnxruntime's logits in fp32, through modelslim's export, and LiteRT's in the float TFLite
/// file; in int8 weights + activations, the ONNX file's and the full-integer TFLite file's.
#[test]
fn dilated_convs_give_onnxruntimes_and_litert_logits() {
    let bytes = se_net(&["--dilation", "2"]);
    let m = read_onnx(&bytes, "se_net_dilated", None).unwrap();
    let dilated = ops(&m)
        .into_iter()
        .filter(|o| {
            matches!(
                o,
                Op::Conv {
                    dilation: [2, 2],
                    ..
                }
            )
        })
        .count();
    assert_eq!(dilated, 2);
    engines_agree(&bytes, &m, "dilated");
}

/// Average pools over part of the image, leaving the padding out of the mean (3×3 stride 1
/// pads 1, and 3×3 stride 2 with `ceil_mode`): onnxruntime's logits, through modelslim's export
/// too, and LiteRT's (`AVERAGE_POOL_2D` with SAME padding); in int8 weights + activations an
/// average keeps its input's step, and the ONNX and full-integer TFLite files stay within two
/// logit steps of modelslim (TFLite's int8 average rounds a mean halfway between two steps
/// away from zero, modelslim to even).
#[test]
fn average_pools_give_onnxruntimes_and_litert_logits() {
    let bytes = se_net(&["--avgpool"]);
    let m = read_onnx(&bytes, "se_net_avgpool", None).unwrap();
    let pools: Vec<Op> = ops(&m)
        .into_iter()
        .filter(|o| matches!(o, Op::AvgPool { .. }))
        .collect();
    assert_eq!(pools.len(), 2);
    assert!(
        matches!(
            pools[1],
            Op::AvgPool {
                pads: [0, 0, 1, 1],
                count_include_pad: false,
                ..
            }
        ),
        "{:?}",
        pools[1]
    );
    engines_agree(&bytes, &m, "avgpool");
}

/// TensorFlow's exporters give a channels-last input and a Transpose to NCHW: the Transpose is
/// dropped, and modelslim (and its own export) takes NCHW.
#[test]
fn a_channels_last_input_with_its_transpose_reads_as_the_same_network() {
    let nhwc = se_net(&["--nhwc"]);
    let m = read_onnx(&nhwc, "se_net_nhwc", None).unwrap();
    assert_eq!(
        ops(&m),
        ops(&read_onnx(&se_net(&[]), "se_net", None).unwrap())
    );
    let x = images(&m);
    let ours = logits(&m, &x);
    let theirs = common::onnxruntime_nhwc(&nhwc, &x, "se-nhwc");
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("SE net NHWC: max |Δlogit| {d:.2e}");
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn a_squeeze_excitation_block_prunes_as_one_group() {
    let m = read_onnx(&se_net(&[]), "se_net", None).unwrap();
    let groups = m.channel_groups();
    let g = groups
        .iter()
        .find(|g| g.members.iter().any(|mb| mb.key == "b.dw.weight"))
        .unwrap();
    let keys: Vec<(&str, usize)> = g.members.iter().map(|m| (m.key.as_str(), m.axis)).collect();
    for member in [
        ("b.expand.weight", 0),
        ("b.dw.weight", 0),
        ("b.se.fc1.weight", 1),
        ("b.se.fc2.weight", 0),
        ("b.se.fc2.bias", 0),
        ("b.project.weight", 1),
    ] {
        assert!(keys.contains(&member), "{member:?} not in {keys:?}");
    }
    assert!(!g.residual, "a gate is not a residual stream");
    // The squeeze conv's own channels are a group of their own.
    assert!(groups.iter().any(|g| {
        g.members
            .iter()
            .any(|mb| mb.key == "b.se.fc1.weight" && mb.axis == 0)
    }));
    let p = m
        .pruned(&PruneOptions {
            ratio: 0.5,
            ..Default::default()
        })
        .unwrap();
    assert!(p.graph().macs([96; 2]) < m.graph().macs([96; 2]));
    let x = images(&m);
    let ours = reloaded_logits(&p, &x);
    let theirs = onnxruntime(&to_onnx(&p).unwrap(), &x, "se-pruned", true);
    assert!(max_abs_diff(&ours, &theirs) <= 1e-4);
}

/// With int8 weights and activations, the products' inputs are quantized as the sums' are;
/// sigmoid, hard sigmoid and hard swish run in float in both engines, which round them
/// differently in the last bit: a value quantized after them can land one step apart where it
/// sits on a rounding boundary. The bound: the logits within two of their steps.
#[test]
fn in_int8_the_exported_onnx_gives_modelslims_logits_within_two_steps() {
    let m = read_onnx(&se_net(&[]), "se_net", None).unwrap();
    let x = images(&m);
    let q = int8a8(&m, &x);
    let step = q.quant.logits.unwrap().scale;
    let ours = reloaded_logits(&q, &x);
    for optimize in [false, true] {
        let theirs = onnxruntime(&to_onnx(&q).unwrap(), &x, "se-int8", optimize);
        let d = max_abs_diff(&ours, &theirs);
        eprintln!("SE net int8, optimize={optimize}: max |Δlogit| {d} (step {step})");
        assert!(d <= 2.0 * step, "{d} > 2 × {step}");
    }
}

#[test]
fn tflite_float_files_hold_sigmoid_hard_sigmoid_hard_swish_and_products() {
    let m = read_onnx(&se_net(&["--gate", "sigmoid"]), "se_net", None).unwrap();
    let x = images(&m);
    let ours = logits(&m, &x);
    let theirs = common::litert(&to_tflite(&m).unwrap(), &x, "se-sigmoid");
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("SE net (sigmoid gate) in LiteRT: max |Δlogit| {d:.2e}");
    assert!(d <= 1e-4, "{d}");
    // Paddle's hard sigmoid (α = 0.2) as a product, a sum with ReLU6 and a product.
    let hard = read_onnx(&se_net(&[]), "se_net", None).unwrap();
    let ours = logits(&hard, &x);
    let theirs = common::litert(&to_tflite(&hard).unwrap(), &x, "se-hard-sigmoid");
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("SE net (hard sigmoid gate) in LiteRT: max |Δlogit| {d:.2e}");
    assert!(d <= 1e-4, "{d}");
}

/// In a full-integer file a sigmoid is TFLite's int8 `LOGISTIC` (a table computed in float, as
/// modelslim computes it), a hard sigmoid a 1×1 depthwise conv, a hard swish or SiLU x times its
/// quantized gate (`Quantization::gate_step`), a product `MUL` (a power-of-two multiplier:
/// exact). The hard sigmoid's multiplier is α times a power of two, not exact in f32, so a
/// value exactly halfway between two steps may round either way in either engine. The bound:
/// the same top-1 on every image and the logits within one of their steps (measured: the same
/// integers). `--hidden`: a hard swish of a classifier's flat hidden layer (MobileNetV3's), whose
/// gate's conv reads it reshaped to `[1, 1, 1, C]`.
#[test]
fn in_full_integer_tflite_litert_gives_modelslims_top1_with_logits_within_one_step() {
    for args in [
        &["--gate", "hardsigmoid"][..],
        &["--gate", "sigmoid"],
        &["--hidden"],
    ] {
        let gate = args.join(" ");
        let m = read_onnx(&se_net(args), "se_net", None).unwrap();
        let x = images(&m);
        let q = int8a8(&m, &x);
        let step = q.quant.logits.unwrap().scale;
        let ours = reloaded_logits(&q, &x);
        let theirs = common::litert_full_integer(&to_tflite(&q).unwrap(), &x, "se-full-int8");
        let d = max_abs_diff(&ours, &theirs);
        eprintln!("SE net ({gate}) full-integer TFLite: max |Δlogit| {d} (step {step})");
        assert!(d <= step, "{d} > {step}");
        let top1 = |v: &[Vec<f32>]| {
            v.iter()
                .map(|l| modelslim::predict::argmax(l))
                .collect::<Vec<_>>()
        };
        assert_eq!(top1(&ours), top1(&theirs));
    }
}
