//! Every TFLite file modelslim writes loads in LiteRT's interpreter (an independent engine,
//! through `tests/golden/run_tflite.py`, which also reads the file back with the `tflite`
//! package's schema reader) and gives modelslim's logits for the same saved file: within 1e-4,
//! for fp32 and for fp16 and int8 weights (dequantized in the file, exactly as modelslim does),
//! on ResNet18 (plain, pruned, sparse, with dropped blocks) and EfficientNet-Lite0's real
//! weights. Models the format cannot hold yet are refused with a message that says what to do.
//!
//! Needs `scripts/setup.sh`'s Python (`ai-edge-litert`, `tflite`; `MODELSLIM_PYTHON`).

mod common;
use common::{litert, max_abs_diff, sample_input};

use modelslim::backend::Backend;
use modelslim::compress::{
    CompressOptions, Granularity, Precision, PruneOptions, QuantOptions, SparsityOptions, compress,
};
use modelslim::export::to_tflite;
use modelslim::model::Model;
use modelslim::predict::Classifier;

fn photos() -> Vec<Vec<f32>> {
    ["chelsea.png", "coffee.png"]
        .iter()
        .map(|n| sample_input(n))
        .collect()
}

/// modelslim's logits for the model as saved and reloaded.
fn modelslim(model: &Model, images: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let reloaded = Model::from_bytes(&model.to_safetensors().unwrap()).unwrap();
    let c = Classifier::for_logits(&reloaded, Backend::cpu()).unwrap();
    pollster::block_on(c.logits(images)).unwrap()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap()
}

fn weights(m: &Model, weights: Precision, granularity: Granularity) -> Model {
    m.quantized(&QuantOptions {
        weights,
        granularity,
        ..Default::default()
    })
    .unwrap()
}

fn compressed(m: &Model, opts: CompressOptions) -> Model {
    pollster::block_on(compress(
        m,
        &opts,
        &[],
        &[],
        4,
        &Backend::cpu(),
        |_| async { true },
    ))
    .unwrap()
}

/// The file's logits beside modelslim's: within `1e-4`, the same top-1.
fn check(name: &str, model: &Model, images: &[Vec<f32>]) {
    let ours = modelslim(model, images);
    let file = to_tflite(model).unwrap();
    let theirs = litert(&file, images, name);
    let d = max_abs_diff(&ours, &theirs);
    let spread = ours[0].iter().fold(f32::MIN, |a, &b| a.max(b))
        - ours[0].iter().fold(f32::MAX, |a, &b| a.min(b));
    eprintln!(
        "{name}: {} bytes, max |Δlogit| = {d:.2e} (logits span {spread:.1})",
        file.len()
    );
    assert!(d <= 1e-4, "{name}: logits differ by {d}");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(argmax(a), argmax(b), "{name}: top-1 differs");
    }
}

#[test]
fn resnet18_in_every_weight_format_gives_modelslims_logits_in_litert() {
    let images = photos();
    let m = Model::seeded_resnet18(42);
    check("resnet18-fp32", &m, &images);
    check(
        "resnet18-fp16",
        &weights(&m, Precision::F16, Granularity::PerChannel),
        &images,
    );
    check(
        "resnet18-int8-channel",
        &weights(&m, Precision::Int8, Granularity::PerChannel),
        &images,
    );
    check(
        "resnet18-int8-tensor",
        &weights(&m, Precision::Int8, Granularity::PerTensor),
        &images,
    );
    let pruned = compressed(
        &m,
        CompressOptions {
            prune: PruneOptions {
                ratio: 0.5,
                ..Default::default()
            },
            sparsity: SparsityOptions {
                sparsity: 0.5,
                ..Default::default()
            },
            quant: QuantOptions {
                weights: Precision::Int8,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    check("resnet18-pruned-sparse-int8", &pruned, &images);
    let dropped = m
        .with_blocks_dropped(&["layer2.1".to_string(), "layer4.1".to_string()])
        .unwrap();
    check("resnet18-dropped", &dropped, &images);
}

#[test]
fn efficientnet_lite0_real_weights_give_modelslims_logits_in_litert() {
    let path = std::env::var("MODELSLIM_EFFNET_PTH").unwrap_or_else(|_| {
        format!(
            "{}/.cache/modelslim/efficientnet-lite0/efficientnet-lite0-57934424.pth",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}. Run `bash scripts/setup.sh`: it fetches them"));
    let m = Model::from_bytes(&bytes).unwrap();
    let images = photos();
    check("effnet-fp32", &m, &images);
    check(
        "effnet-int8",
        &weights(&m, Precision::Int8, Granularity::PerChannel),
        &images,
    );
}

#[test]
fn what_tflite_cannot_hold_yet_is_refused_with_what_to_do() {
    let m = Model::seeded_resnet18(1);
    for (model, says) in [
        (
            weights(&m, Precision::Int4, Granularity::PerChannel),
            "int8",
        ),
        (
            weights(&m, Precision::Int8, Granularity::Group(32)),
            "per channel",
        ),
    ] {
        let e = to_tflite(&model).unwrap_err().to_string();
        assert!(e.contains(says) && !e.contains('\n'), "{e}");
    }
}
