//! Every TFLite file modelslim writes loads in LiteRT's interpreter (an independent engine,
//! through `tests/golden/run_tflite.py`, which also reads the file back with the `tflite`
//! package's schema reader) and gives modelslim's logits for the same saved file: within 1e-4,
//! for fp32 and for fp16, int8 and int4 weights (dequantized in the file, exactly as modelslim does),
//! on ResNet18 (plain, pruned, sparse, with dropped blocks) and EfficientNet-Lite0's real
//! weights. Models the format cannot hold yet are refused with a message that says what to do.
//!
//! The peak activation memory modelslim plans for a file is what TensorFlow Lite Micro's own
//! planner gives its arena, within 10 %.
//!
//! Needs `scripts/setup.sh`'s Python (`ai-edge-litert`, `tflite`, `tflite-micro`;
//! `MODELSLIM_PYTHON`).

use crate::common;
use common::{
    argmax, calibrated, calibration_photos, litert, litert_full_integer, max_abs_diff,
    reloaded_logits, same_top1, sample_input, weights_in,
};

use modelslim::compress::{
    Calibration, CompressOptions, Granularity, Precision, PruneOptions, PruneScope, QuantOptions,
    SparsityOptions,
};
use modelslim::export::tflite::TfliteIo;
use modelslim::export::{peak_activation_bytes, to_tflite, to_tflite_with_io};
use modelslim::model::Model;

fn photos() -> Vec<Vec<f32>> {
    ["chelsea.png", "coffee.png"]
        .iter()
        .map(|n| sample_input(n))
        .collect()
}

fn compressed(m: &Model, opts: CompressOptions) -> Model {
    calibrated(m, &opts, &[])
}

/// Half the channels inside blocks removed and half the remaining weights zeroed.
fn pruned_and_sparse() -> CompressOptions {
    CompressOptions {
        prune: PruneOptions {
            ratio: 0.5,
            ..Default::default()
        },
        sparsity: SparsityOptions {
            sparsity: 0.5,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The file's logits beside modelslim's: within `1e-4`, the same top-1.
fn check(name: &str, model: &Model, images: &[Vec<f32>]) {
    let ours = reloaded_logits(model, images);
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
        &weights_in(&m, Precision::F16, Granularity::PerChannel),
        &images,
    );
    check(
        "resnet18-int8-channel",
        &weights_in(&m, Precision::Int8, Granularity::PerChannel),
        &images,
    );
    check(
        "resnet18-int8-tensor",
        &weights_in(&m, Precision::Int8, Granularity::PerTensor),
        &images,
    );
    // Int4 integers stored as int8: the same products.
    check(
        "resnet18-int4-channel",
        &weights_in(&m, Precision::Int4, Granularity::PerChannel),
        &images,
    );
    let pruned = compressed(
        &m,
        CompressOptions {
            quant: QuantOptions {
                weights: Precision::Int8,
                ..Default::default()
            },
            ..pruned_and_sparse()
        },
    );
    check("resnet18-pruned-sparse-int8", &pruned, &images);
    let dropped = m
        .with_blocks_dropped(&["layer2.1".to_string(), "layer4.1".to_string()])
        .unwrap();
    check("resnet18-dropped", &dropped, &images);
}

/// EfficientNet-Lite0's real weights (`scripts/setup.sh` fetches them).
fn effnet_bytes() -> Vec<u8> {
    let path = std::env::var("MODELSLIM_EFFNET_PTH").unwrap_or_else(|_| {
        format!(
            "{}/.cache/modelslim/efficientnet-lite0/efficientnet-lite0-57934424.pth",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}. Run `bash scripts/setup.sh`: it fetches them"))
}

#[test]
fn efficientnet_lite0_real_weights_give_modelslims_logits_in_litert() {
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let images = photos();
    check("effnet-fp32", &m, &images);
    check(
        "effnet-int8",
        &weights_in(&m, Precision::Int8, Granularity::PerChannel),
        &images,
    );
}

/// `m` compressed with `base` (its pruning and sparsity), int8 weights (`granularity`) and u8
/// activations calibrated on other photos.
fn full_integer(m: &Model, granularity: Granularity, base: CompressOptions) -> Model {
    let opts = CompressOptions {
        quant: QuantOptions {
            weights: Precision::Int8,
            granularity,
            ..Default::default()
        },
        act_quant: Some(Calibration::MinMax),
        ..base
    };
    calibrated(m, &opts, &calibration_photos(&m.preprocess(), usize::MAX))
}

/// The full-integer file, with float and with int8 input and output, beside modelslim: the
/// same integers — every logit within half a step of the file's int8 logits, which modelslim
/// rounds to the same step — and so the same top-1, ties included (`docs/exactness.md`).
fn check_full_integer(name: &str, model: &Model, images: &[Vec<f32>]) {
    let ours = reloaded_logits(model, images);
    let step = model.quant.logits.unwrap().scale;
    for io in [TfliteIo::Float, TfliteIo::Int8] {
        let file = to_tflite_with_io(model, io).unwrap();
        let theirs = litert_full_integer(&file, images, &format!("{name}-{io:?}"));
        let d = max_abs_diff(&ours, &theirs);
        let same = same_top1(&ours, &theirs);
        eprintln!(
            "{name} ({io:?} io): {} bytes, top-1 equal on {same} of {}, max |Δlogit| = {d:.3} = {:.2} steps of the file's logits",
            file.len(),
            ours.len(),
            d / step
        );
        assert_eq!(same, ours.len(), "{name}: top-1 differs");
        assert!(d <= step * 0.5, "{name}: logits differ by {d}");
    }
}

#[test]
fn full_integer_files_give_modelslims_top1_and_integers_in_litert() {
    let m = Model::seeded_resnet18(42);
    let images = photos();
    let none = CompressOptions::default;
    check_full_integer(
        "resnet18-int8a8-channel",
        &full_integer(&m, Granularity::PerChannel, none()),
        &images,
    );
    check_full_integer(
        "resnet18-int8a8-tensor",
        &full_integer(&m, Granularity::PerTensor, none()),
        &images,
    );
    check_full_integer(
        "resnet18-int8a8-pruned-sparse",
        &full_integer(&m, Granularity::PerChannel, pruned_and_sparse()),
        &images,
    );
    let dropped = m
        .with_blocks_dropped(&["layer2.1".to_string(), "layer4.1".to_string()])
        .unwrap();
    check_full_integer(
        "resnet18-int8a8-dropped",
        &full_integer(&dropped, Granularity::PerChannel, none()),
        &images,
    );
    let effnet = Model::from_bytes(&effnet_bytes()).unwrap();
    check_full_integer(
        "effnet-int8a8",
        &full_integer(&effnet, Granularity::PerChannel, none()),
        &images,
    );
}

#[test]
fn what_tflite_cannot_hold_is_refused_with_what_to_do() {
    let m = Model::seeded_resnet18(1);
    for (model, io, says) in [
        (
            weights_in(&m, Precision::Int8, Granularity::Group(32)),
            TfliteIo::Float,
            "per channel",
        ),
        (
            weights_in(&m, Precision::Int4, Granularity::Group(32)),
            TfliteIo::Float,
            "per channel",
        ),
        // int8 input and output need quantized activations.
        (
            weights_in(&m, Precision::Int8, Granularity::PerChannel),
            TfliteIo::Int8,
            "--act-quant",
        ),
    ] {
        let e = to_tflite_with_io(&model, io).unwrap_err().to_string();
        assert!(e.contains(says) && !e.contains('\n'), "{e}");
    }
}

/// The planned part of TensorFlow Lite Micro's arena for `file`, in bytes
/// (`tests/golden/tflm_arena.py`).
fn tflm_arena(file: &[u8], name: &str) -> usize {
    let path = common::scratch(&format!("{name}.tflite"));
    std::fs::write(&path, file).unwrap();
    let python = std::env::var("MODELSLIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tflm_arena.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    // TFLite Micro logs to stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.lines()
        .find_map(|l| {
            l.split("Arena allocation head ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no arena size in: {text}"))
}

#[test]
fn the_peak_activation_estimate_is_tflite_micros_arena_within_a_tenth() {
    let narrow = Model::seeded_resnet18(1)
        .pruned(&PruneOptions {
            ratio: 0.75,
            prune_stem: true,
            scope: PruneScope::All,
            ..Default::default()
        })
        .unwrap();
    let dropped = narrow
        .with_blocks_dropped(&["layer1.1".to_string(), "layer3.1".to_string()])
        .unwrap();
    let int8 = weights_in(&narrow, Precision::Int8, Granularity::PerChannel);
    let int8a8 = full_integer(&narrow, Granularity::PerChannel, CompressOptions::default());
    let effnet = Model::from_bytes(&effnet_bytes()).unwrap();
    for (name, m) in [
        ("narrow", narrow),
        ("narrow-dropped", dropped),
        ("narrow-int8", int8),
        ("narrow-int8a8", int8a8),
        ("effnet", effnet),
    ] {
        let ours = peak_activation_bytes(&m).unwrap();
        // The file a device takes: int8 input and output where it is full integer.
        let io = if m.quant.activations.is_empty() {
            TfliteIo::Float
        } else {
            TfliteIo::Int8
        };
        let tflm = tflm_arena(&to_tflite_with_io(&m, io).unwrap(), name);
        eprintln!("{name}: estimate {ours} bytes, TFLite Micro's arena {tflm}");
        assert!(ours.abs_diff(tflm) * 10 <= tflm, "{name}: {ours} vs {tflm}");
    }
}

/// Arm Vela's summary of compiling `file` for an Ethos-U55: its `CPU operators = N` and
/// `NPU operators = N` counts and the operators it warns it leaves to the CPU.
fn vela(file: &[u8], name: &str) -> (usize, usize, Vec<String>) {
    let path = common::scratch(&format!("{name}.tflite"));
    std::fs::write(&path, file).unwrap();
    let python = std::env::var("MODELSLIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-m", "ethosu.vela", "--accelerator-config", "ethos-u55-256"])
        .arg("--output-dir")
        .arg(path.with_extension("vela"))
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vela failed on {name}: {text}");
    let count = |label: &str| -> usize {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(label)?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no '{label}' in vela's output: {text}"))
    };
    let on_cpu = text
        .lines()
        .filter_map(|l| {
            l.split("Warning (supported operators) operator: ")
                .nth(1)?
                .split(',')
                .next()
                .map(str::to_string)
        })
        .collect();
    (count("CPU operators"), count("NPU operators"), on_cpu)
}

/// Vela compiles EfficientNet-Lite0's full-integer file for the Ethos-U55 with every operator
/// on the NPU; with float input and output, only the `QUANTIZE` and `DEQUANTIZE` at its ends stay
/// on the CPU.
#[test]
fn vela_puts_every_operator_of_the_full_integer_file_on_the_npu() {
    let effnet = Model::from_bytes(&effnet_bytes()).unwrap();
    let m = full_integer(&effnet, Granularity::PerChannel, CompressOptions::default());
    let (cpu, npu, on_cpu) = vela(
        &to_tflite_with_io(&m, TfliteIo::Int8).unwrap(),
        "vela-int8-io",
    );
    eprintln!("int8 input and output: {cpu} operators on the CPU, {npu} on the NPU");
    assert_eq!((cpu, on_cpu.len()), (0, 0), "{on_cpu:?}");
    assert!(npu > 50, "{npu} operators on the NPU");
    let (cpu, npu, mut on_cpu) = vela(&to_tflite(&m).unwrap(), "vela-float-io");
    on_cpu.sort();
    eprintln!("float input and output: {cpu} operators on the CPU ({on_cpu:?}), {npu} on the NPU");
    assert_eq!(on_cpu, ["DEQUANTIZE", "QUANTIZE"]);
    assert_eq!(cpu, 2);
}
