//! Golden test: modelslim's ResNet18 logits equal onnxruntime's for the same input.
//!
//! The fixture tests/fixtures/golden_resnet18_seed42.json holds onnxruntime's logits for the
//! seeded weights (`seeded:42`) on two PIL-preprocessed crops. Regenerate:
//!     cargo run --release -- init-weights --seed 42 --out target/seed42.safetensors
//!     python3 tests/golden/make_fixtures.py target/seed42.safetensors

use modelslim::backend::Backend;
use modelslim::model::Model;
use modelslim::predict::Classifier;
use modelslim::preprocess::Preprocess;

/// Absolute tolerance on logits (f32 accumulation order differs between engines).
const LOGIT_TOLERANCE: f32 = 1e-4;

use crate::common;
use common::root;

struct Golden {
    inputs: Vec<Vec<f32>>,
    logits: Vec<Vec<f32>>,
}

fn golden() -> Golden {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/golden_resnet18_seed42.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let inputs = v["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let crop = image::open(root().join("tests/fixtures").join(p.as_str().unwrap()))
                .unwrap()
                .into_rgb8();
            Preprocess::IMAGENET.to_chw(&crop)
        })
        .collect();
    let logits = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    Golden { inputs, logits }
}

fn check(backend: Backend) {
    let g = golden();
    let model = Model::seeded_resnet18(42);
    // The network the page and the CLI run (batch norms folded) and the one calibration
    // captures values from: both must give the reference's logits.
    for classifier in [
        Classifier::for_logits(&model, backend.clone()).unwrap(),
        Classifier::new(&model, backend).unwrap(),
    ] {
        check_classifier(&g, &classifier);
    }
}

fn check_classifier(g: &Golden, classifier: &Classifier) {
    // Batched, then one by one: both must agree with the reference.
    let batched = pollster::block_on(classifier.logits(&g.inputs)).unwrap();
    for (i, input) in g.inputs.iter().enumerate() {
        let single = pollster::block_on(classifier.logits(std::slice::from_ref(input))).unwrap();
        for got in [&batched[i], &single[0]] {
            assert_eq!(got.len(), 1000);
            let max = got
                .iter()
                .zip(&g.logits[i])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "{}: image {i}: max |Δlogit| = {max:e}",
                classifier.backend.description
            );
            assert!(
                max <= LOGIT_TOLERANCE,
                "image {i}: max |Δlogit| {max} > {LOGIT_TOLERANCE}"
            );
        }
    }
    // The reference is not degenerate: the logits spread over several units.
    let spread = g.logits[0].iter().cloned().fold(f32::MIN, f32::max)
        - g.logits[0].iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread > 1.0,
        "reference logits are nearly constant ({spread})"
    );
}

#[test]
fn cpu_logits_match_onnxruntime() {
    check(Backend::cpu());
}

/// Burn's wgpu backend through Vulkan (lavapipe on CI). Set MODELSLIM_SKIP_WGPU=1 on a machine
/// without any Vulkan driver.
#[test]
fn wgpu_logits_match_onnxruntime() {
    if std::env::var("MODELSLIM_SKIP_WGPU").is_ok_and(|v| v == "1") {
        eprintln!("MODELSLIM_SKIP_WGPU set: wgpu golden test not run");
        return;
    }
    check(Backend::wgpu_vulkan().expect("a Vulkan device (install mesa-vulkan-drivers)"));
}
