//! RapidOCR's text-line orientation classifier (`ch_ppocr_mobile_v2.0_cls_infer.onnx`, fetched
//! by `scripts/setup.sh` as `MODELSLIM_RAPIDOCR_CLS_ONNX`): PaddlePaddle's export at opset 11
//! of a MobileNetV3-small-like network — a 48×192 input, strides of (2, 1), squeeze-excitation
//! with Paddle's hard sigmoid (α = 0.2), hard swish as four nodes, batch norms kept, weights in
//! `Constant` nodes, a softmax copied to the output by an `Identity`. onnxruntime runs the same
//! file as the independent engine.

use crate::common;
use common::{calibration_photos, int8a8, logits, onnxruntime_sized, reloaded_logits};

use super::imported::{count, file, photos, relative_diff};
use modelslim::export::to_onnx;
use modelslim::model::imported::InputChoice;
use modelslim::model::onnx::read_onnx;
use modelslim::model::{Model, Op};

/// Its input: 48×192, (pixel − 0.5) / 0.5.
fn rapidocr() -> (Vec<u8>, Model) {
    let bytes = file(
        "MODELSLIM_RAPIDOCR_CLS_ONNX",
        "onnx-models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    );
    let m = read_onnx(&bytes, "ch_ppocr_cls", Some([48, 192]))
        .unwrap()
        .with_input(&InputChoice {
            mean: Some([0.5; 3]),
            std: Some([0.5; 3]),
            ..Default::default()
        })
        .unwrap();
    (bytes, m)
}

#[test]
fn rapidocrs_classifier_reads_at_48_by_192_and_gives_onnxruntimes_logits() {
    let (bytes, m) = rapidocr();
    assert_eq!(m.arch.input_size(), [48, 192]);
    assert_eq!(m.arch.num_classes(), 2);
    assert_eq!(count(&m, |o| matches!(o, Op::Conv { .. })), 53);
    assert_eq!(count(&m, |o| matches!(o, Op::BatchNorm { .. })), 35);
    assert_eq!(count(&m, |o| matches!(o, Op::HardSigmoid { .. })), 9);
    assert_eq!(count(&m, |o| matches!(o, Op::Mul)), 9);
    assert_eq!(count(&m, |o| matches!(o, Op::HardSwish)), 18);
    // The strides that keep the width: (2, 1).
    let tall = count(&m, |o| matches!(o, Op::Conv { stride: [2, 1], .. }));
    assert_eq!(tall, 4);
    let images = photos(&m);
    assert_eq!(images[0].len(), 3 * 48 * 192);
    let ours = logits(&m, &images);
    let theirs = onnxruntime_sized(&bytes, &images, [48, 192], "rapidocr-original", true);
    // The file ends in a softmax, which modelslim drops: compare probabilities.
    let softmax = |v: &Vec<f32>| modelslim::predict::softmax(v);
    let probs: Vec<Vec<f32>> = ours.iter().map(softmax).collect();
    let d = common::max_abs_diff(&probs, &theirs);
    eprintln!("rapidocr fp32: max |Δprob| = {d:.2e}; logits {ours:?}");
    assert!(d <= 1e-5, "{d}");
    // Its own export has no softmax: logits against logits.
    let exported = onnxruntime_sized(
        &to_onnx(&m).unwrap(),
        &images,
        [48, 192],
        "rapidocr-fp32",
        true,
    );
    let d = relative_diff(&ours, &exported);
    assert!(d <= 1e-4, "{d}");
}

/// Hard sigmoid, hard swish and the gate's product in int8 run in onnxruntime as
/// dequantize → float op → quantize, whose float arithmetic may differ from modelslim's in the
/// last bit; a value quantized after them can land one step apart. The bound: the logits within
/// two of their steps.
#[test]
fn rapidocr_in_int8_exports_an_onnx_file_within_two_steps_of_modelslims_logits() {
    let (_, m) = rapidocr();
    let calib = calibration_photos(&m.preprocess(), 8);
    let q = int8a8(&m, &calib);
    let images = photos(&m);
    let ours = reloaded_logits(&q, &images);
    let theirs = onnxruntime_sized(
        &to_onnx(&q).unwrap(),
        &images,
        [48, 192],
        "rapidocr-int8",
        true,
    );
    let step = q.quant.logits.unwrap().scale;
    let d = common::max_abs_diff(&ours, &theirs);
    eprintln!("rapidocr int8: max |Δlogit| {d} (step {step})");
    assert!(d <= 2.0 * step, "{d} > 2 × {step}");
}

#[test]
fn rapidocr_pruned_30_percent_with_reconstruction_runs_smaller_and_exports_what_modelslim_computes()
{
    let (_, m) = rapidocr();
    let calib = calibration_photos(&m.preprocess(), 16);
    let p = common::pruned_refit(&m, 0.3, &calib);
    let (before, after) = (m.graph().macs([48, 192]), p.graph().macs([48, 192]));
    eprintln!("rapidocr pruned 30 %: {before} → {after} MACs");
    assert!(after < before * 9 / 10, "{before} → {after} MACs");
    let images = photos(&m);
    let ours = reloaded_logits(&p, &images);
    let theirs = onnxruntime_sized(
        &to_onnx(&p).unwrap(),
        &images,
        [48, 192],
        "rapidocr-pruned",
        true,
    );
    let d = relative_diff(&ours, &theirs);
    assert!(d <= 1e-4, "{d}");
}

/// Its full-integer TFLite file (hard swishes as x times a quantized gate, hard sigmoids as
/// 1×1 depthwise convs, products: see `imported_ops`) in LiteRT: modelslim's top-1 on every
/// photo, the logits within one step (a hard sigmoid's value exactly halfway between two steps
/// may round either way; measured: the same integers).
#[test]
fn rapidocr_as_full_integer_tflite_gives_modelslims_top1_and_integers_in_litert() {
    let (_, m) = rapidocr();
    let calib = calibration_photos(&m.preprocess(), 8);
    let q = int8a8(&m, &calib);
    let images = photos(&m);
    let ours = reloaded_logits(&q, &images);
    let tflite = modelslim::export::to_tflite(&q).unwrap();
    let theirs = common::litert_full_integer(&tflite, &images, "rapidocr-int8");
    let step = q.quant.logits.unwrap().scale;
    let d = common::max_abs_diff(&ours, &theirs);
    eprintln!("rapidocr full-integer TFLite: max |Δlogit| {d} (step {step})");
    let top1 = |v: &[Vec<f32>]| {
        v.iter()
            .map(|l| modelslim::predict::argmax(l))
            .collect::<Vec<_>>()
    };
    assert_eq!(top1(&ours), top1(&theirs));
    assert!(d <= step, "{d} > {step}");
}

/// A text-line classifier is given text lines: with `--resize 48` (its input's height), a line
/// four times wider than high reaches it whole, resized, not a centre piece of it; below the
/// input's shorter side the resize is refused in one line.
#[test]
fn a_resize_to_the_inputs_height_keeps_a_text_lines_whole_width() {
    let (_, m) = rapidocr();
    let at48 = m
        .clone()
        .with_input(&InputChoice {
            resize: Some(48),
            ..Default::default()
        })
        .unwrap();
    let pre = at48.preprocess();
    // A 400×100 line whose every column differs.
    let line = image::RgbImage::from_fn(400, 100, |x, y| {
        image::Rgb([(x % 256) as u8, (y * 2) as u8, (x / 2) as u8])
    });
    let crop = pre.crop_rgb(&line);
    assert_eq!(crop.dimensions(), (192, 48));
    assert_eq!(
        crop,
        modelslim::preprocess::resize_bilinear_pil(&line, 192, 48)
    );
    // The default resize (219) shows it only its middle.
    assert_ne!(m.preprocess().crop_rgb(&line), crop);
    let refused = m
        .with_input(&InputChoice {
            resize: Some(47),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("resizing to 47") && refused.contains("shorter side"),
        "{refused}"
    );
}
