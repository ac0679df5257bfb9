//! Every exported ONNX file runs in onnxruntime (an independent engine, through
//! `tests/golden/run_onnx.py`), and its logits match what modelslim computes for the same
//! saved file: within 1e-4 for fp32 (and fp16/int weight-only, whose weights are dequantized
//! exactly alike), within 1e-3 and with the same top-1 for the int8 QDQ graph with quantized
//! activations, fused or not. The sizes the issue promises are checked on the real files.
//!
//! Needs Python with `onnxruntime`, `onnx` and `numpy` (`scripts/test.sh` installs them and
//! sets `MODELSLIM_PYTHON`).

use crate::common;
use common::{
    argmax, calibrated, calibration_photos, max_abs_diff, onnxruntime, reloaded_logits,
    sample_input, weights_in,
};

use modelslim::compress::{
    Augment, Calibration, CompressOptions, Granularity, Precision, PruneOptions, QuantMethod,
    QuantOptions, SparsityOptions,
};
use modelslim::export::to_onnx;
use modelslim::model::Model;
use modelslim::preprocess::Preprocess;

fn photos() -> Vec<Vec<f32>> {
    ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
        .iter()
        .map(|n| sample_input(n))
        .collect()
}

#[test]
fn fp32_fp16_and_weight_only_integer_exports_match_within_1e4() {
    let images = &photos()[..2];
    let m = Model::seeded_resnet18(42);
    let cases = [
        ("fp32", m.clone()),
        (
            "fp16",
            weights_in(&m, Precision::F16, Granularity::PerChannel),
        ),
        (
            "int8-channel",
            weights_in(&m, Precision::Int8, Granularity::PerChannel),
        ),
        (
            "int8-tensor",
            weights_in(&m, Precision::Int8, Granularity::PerTensor),
        ),
        (
            "int4-channel",
            weights_in(&m, Precision::Int4, Granularity::PerChannel),
        ),
        (
            "int4-group32",
            weights_in(&m, Precision::Int4, Granularity::Group(32)),
        ),
    ];
    for (name, model) in cases {
        let ours = reloaded_logits(&model, images);
        let theirs = onnxruntime(&to_onnx(&model).unwrap(), images, name, true);
        let d = max_abs_diff(&ours, &theirs);
        eprintln!("{name}: max |Δlogit| = {d:.2e}");
        assert!(d <= 1e-4, "{name}: logits differ by {d}");
    }
}

/// Seeded ResNet18 with the classifier scaled ×5: its logits span tens of units, as a trained
/// network's do (seed 42's own span about 9), so that a 1e-3 bound is a small fraction of them.
fn seeded_with_wide_logits() -> Model {
    let mut m = Model::seeded_resnet18(42);
    for key in ["fc.weight", "fc.bias"] {
        for v in &mut m.weights.get_mut(key).unwrap().data {
            *v *= 5.0;
        }
    }
    m
}

/// The int8 QDQ graph (int8 weights, u8 activations) computes what modelslim computes, for
/// every combination of the steps before it. Power-of-two activation steps and 5-bit weight
/// scales make every product and partial sum exact in f32 (see `ActQuant`), so the order in
/// which an engine sums no longer matters: onnxruntime without graph optimizations (plain
/// `QuantizeLinear`/`DequantizeLinear`) must agree within 1e-3 — the float rounding of the
/// classifier's last sums, on logits that span ~45 — where arbitrary scales left 0.03–0.4.
/// With its default optimizations onnxruntime fuses the pairs into integer kernels
/// (`QLinearConv`, `QLinearAdd`, …), which requantize with the multiplier `s_x·s_w/s_y`:
/// exact here too, and while their int32 accumulators stay below 2^19 they produce the same
/// integers, so the same 1e-3 holds and the top-1 must be equal.
#[test]
fn int8_qdq_graph_computes_what_modelslim_computes_for_every_combination() {
    let photos: Vec<Vec<f32>> = ["chelsea.png", "coffee.png", "astronaut.png"]
        .iter()
        .map(|n| sample_input(n))
        .collect();
    let calib = calibration_photos(&Preprocess::IMAGENET, 8);
    let m = seeded_with_wide_logits();
    let int8 = |granularity| QuantOptions {
        weights: Precision::Int8,
        granularity,
        ..Default::default()
    };
    let pruned = PruneOptions {
        ratio: 0.3,
        ..Default::default()
    };
    let sparse = SparsityOptions {
        sparsity: 0.5,
        ..Default::default()
    };
    let base = CompressOptions {
        quant: int8(Granularity::PerChannel),
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let cases: Vec<(&str, CompressOptions)> = vec![
        ("min-max, per-channel", base.clone()),
        (
            "percentile, per-channel",
            CompressOptions {
                reconstruct: false,
                act_quant: Some(Calibration::Percentile(99.99)),
                ..base.clone()
            },
        ),
        (
            "min-max, per-tensor",
            CompressOptions {
                reconstruct: false,
                quant: int8(Granularity::PerTensor),
                ..base.clone()
            },
        ),
        (
            "30 % channels",
            CompressOptions {
                reconstruct: false,
                prune: pruned.clone(),
                ..base.clone()
            },
        ),
        (
            "30 % channels, BN recalibrated",
            CompressOptions {
                reconstruct: false,
                prune: pruned.clone(),
                recalibrate_bn: true,
                ..base.clone()
            },
        ),
        (
            "50 % sparsity",
            CompressOptions {
                reconstruct: false,
                sparsity: sparse.clone(),
                ..base.clone()
            },
        ),
        (
            "bias correction",
            CompressOptions {
                reconstruct: false,
                bias_correction: true,
                ..base.clone()
            },
        ),
        (
            "30 % channels, sparsity, BN, bias correction, percentile, per-tensor",
            CompressOptions {
                reconstruct: false,
                prune: pruned.clone(),
                sparsity: sparse.clone(),
                recalibrate_bn: true,
                bias_correction: true,
                quant: int8(Granularity::PerTensor),
                act_quant: Some(Calibration::Percentile(99.9)),
                quant_method: QuantMethod::Rtn,
                augment: Augment::None,
                ..Default::default()
            },
        ),
        (
            "GPTQ weights",
            CompressOptions {
                reconstruct: false,
                quant_method: QuantMethod::Gptq,
                ..base.clone()
            },
        ),
    ];
    for (name, opts) in cases {
        let q = calibrated(&m, &opts, &calib);
        assert!(!q.quant.activations.is_empty());
        let onnx = to_onnx(&q).unwrap();
        let ours = reloaded_logits(&q, &photos);
        let span = ours
            .iter()
            .flatten()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        for optimize in [false, true] {
            let theirs = onnxruntime(&onnx, &photos, "int8-qdq", optimize);
            let d = max_abs_diff(&ours, &theirs);
            eprintln!(
                "{name}, optimize={optimize}: max |Δlogit| = {d:.2e} (logits {:.1}…{:.1})",
                span.0, span.1
            );
            for (a, b) in ours.iter().zip(&theirs) {
                assert_eq!(
                    argmax(a),
                    argmax(b),
                    "{name}, optimize={optimize}: top-1 differs"
                );
            }
            assert!(
                d <= 1e-3,
                "{name}, optimize={optimize}: logits differ by {d}"
            );
        }
    }
}

#[test]
fn int8_sizes_are_a_quarter_and_pruned_int8_a_fifth() {
    let m = Model::seeded_resnet18(42);
    let fp32 = to_onnx(&m).unwrap().len() as f64;
    let int8 = to_onnx(&weights_in(&m, Precision::Int8, Granularity::PerChannel))
        .unwrap()
        .len() as f64;
    let pruned = m
        .pruned(&PruneOptions {
            ratio: 0.3,
            ..Default::default()
        })
        .unwrap();
    let both = to_onnx(&weights_in(
        &pruned,
        Precision::Int8,
        Granularity::PerChannel,
    ))
    .unwrap()
    .len() as f64;
    eprintln!(
        "fp32 {fp32} B, int8 {int8} B ({:.3}), 30 % + int8 {both} B ({:.3})",
        int8 / fp32,
        both / fp32
    );
    assert!(int8 / fp32 <= 0.26);
    assert!(both / fp32 <= 0.20);
}

/// How an int8 file with quantized activations is written for ONNX Runtime's integer kernels
/// to be exact on every CPU: weights of layers whose input is quantized as u8 with zero point
/// 128 (the u8 × s8 kernel of CPUs without VNNI saturates pairwise int16 sums), weight-only
/// layers as i8 with zero point 0, every activation zero point even (the fused add rounds after
/// adding it). `bash scripts/emulated-cpu.sh` runs the ONNX tests on an AVX2-only CPU.
#[test]
fn integer_layers_are_written_for_exact_kernels_on_every_cpu() {
    use modelslim::export::onnx::model_proto;
    use modelslim::export::proto::data_type;
    let m = seeded_with_wide_logits();
    let opts = CompressOptions {
        quant: QuantOptions {
            weights: Precision::Int8,
            ..Default::default()
        },
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let calib = calibration_photos(&Preprocess::IMAGENET, 4);
    let q = calibrated(&m, &opts, &calib);
    let graph = model_proto(&q).unwrap().graph.unwrap();
    let init = |name: &str| graph.initializer.iter().find(|t| t.name == name);
    let mut offset = 0;
    for t in &graph.initializer {
        let Some(key) = t.name.strip_suffix("_quantized") else {
            continue;
        };
        if !key.ends_with(".weight") {
            continue;
        }
        let zp = init(&format!("{key}_zero_point")).unwrap();
        assert_eq!(
            t.data_type,
            data_type::UINT8,
            "{key}: an integer layer's weights"
        );
        assert_eq!(zp.data_type, data_type::UINT8);
        assert!(zp.raw_data.iter().all(|&z| z == 128), "{key}: zero point");
        // The integers are the stored ones, shifted.
        let stored = &q.quant.int[key].values;
        assert!(
            t.raw_data
                .iter()
                .zip(stored)
                .all(|(&u, &v)| u as i16 - 128 == v as i16)
        );
        offset += 1;
    }
    assert!(offset >= 20, "only {offset} integer layers");
    for (value, a) in &q.quant.activations {
        assert_eq!(a.zero_point % 2, 0, "{value}: zero point {}", a.zero_point);
    }
    // Weight-only int8: i8, zero point 0.
    let w8 = weights_in(&m, Precision::Int8, Granularity::PerChannel);
    let graph = model_proto(&w8).unwrap().graph.unwrap();
    let weights: Vec<_> = graph
        .initializer
        .iter()
        .filter(|t| t.name.ends_with(".weight_quantized"))
        .collect();
    assert!(!weights.is_empty() && weights.iter().all(|t| t.data_type == data_type::INT8));
}

#[test]
fn the_file_written_weight_by_weight_is_the_whole_message_encoded() {
    use modelslim::export::onnx::model_proto;
    use prost::Message;
    let m = Model::seeded_resnet18(7);
    let calib = calibration_photos(&Preprocess::IMAGENET, 2);
    let cases = [
        ("fp32", m.clone()),
        (
            "fp16",
            weights_in(&m, Precision::F16, Granularity::PerChannel),
        ),
        (
            "int4-group32",
            weights_in(&m, Precision::Int4, Granularity::Group(32)),
        ),
        ("int8 weights + activations", common::int8a8(&m, &calib)),
    ];
    for (name, model) in cases {
        let whole = model_proto(&model).unwrap();
        let file = to_onnx(&model).unwrap();
        assert!(
            file == whole.encode_to_vec(),
            "{name}: the file is not the message's encoding"
        );
        assert_eq!(
            modelslim::export::proto::ModelProto::decode(&file[..]).unwrap(),
            whole,
            "{name}"
        );
    }
}
