//! Helpers shared by the integration tests: the repository's sample photos, logits of a
//! model, a block whose branch computes nothing, and the comparison against onnxruntime.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bytes of a sample photo in `www/samples`.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(root().join("www/samples").join(name)).unwrap()
}

/// A sample photo as ResNet18's input (ImageNet preprocessing).
pub fn sample_input(name: &str) -> Vec<f32> {
    modelslim::preprocess::Preprocess::IMAGENET
        .run(&sample(name))
        .unwrap()
}

/// The logits of `model` on `images`, on the CPU backend.
pub fn logits(model: &modelslim::model::Model, images: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let c = modelslim::predict::Classifier::new(model, modelslim::backend::Backend::cpu()).unwrap();
    pollster::block_on(c.logits(images)).unwrap()
}

/// `m` with the residual branch of a block computing zero: the batch norm after its last
/// conv, `last_bn`, scales by 0 and adds 0.
pub fn zero_branch(m: &modelslim::model::Model, last_bn: &str) -> modelslim::model::Model {
    let mut z = m.clone();
    for p in ["weight", "bias"] {
        let t = z.weights.get_mut(&format!("{last_bn}.{p}")).unwrap();
        t.data.iter_mut().for_each(|v| *v = 0.0);
    }
    z
}

/// A new path for a file named `name` in the tests' scratch folder: numbered, so that tests
/// running side by side never share one.
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx");
    std::fs::create_dir_all(&dir).unwrap();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!("{n}-{name}"))
}

/// Run the repository's Python script `script` (a path from the root) with `args` in the
/// tests' Python (`MODELSLIM_PYTHON`), which must succeed.
#[allow(dead_code)]
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) {
    let python = std::env::var("MODELSLIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(root().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network pruned by `ratio` of its channels and refit (`--prune-channels R --reconstruct`)
/// on `calib`.
#[allow(dead_code)]
pub fn pruned_refit(
    m: &modelslim::model::Model,
    ratio: f32,
    calib: &[Vec<f32>],
) -> modelslim::model::Model {
    use modelslim::compress::{CompressOptions, PruneOptions};
    let opts = CompressOptions {
        prune: PruneOptions {
            ratio,
            ..Default::default()
        },
        reconstruct: true,
        ..Default::default()
    };
    calibrated(m, &opts, calib)
}

/// Logits of `onnx` for square `images` in onnxruntime (`tests/golden/run_onnx.py`).
pub fn onnxruntime(onnx: &[u8], images: &[Vec<f32>], name: &str, optimize: bool) -> Vec<Vec<f32>> {
    // The side from the first one's size.
    let side = ((images[0].len() / 3) as f64).sqrt().round() as usize;
    onnxruntime_sized(onnx, images, [side; 2], name, optimize)
}

/// [`onnxruntime`] for a file whose input is channels-last (NHWC): given the same square
/// images transposed.
#[allow(dead_code)]
pub fn onnxruntime_nhwc(onnx: &[u8], images: &[Vec<f32>], name: &str) -> Vec<Vec<f32>> {
    let side = (((images[0].len() / 3) as f64).sqrt().round() as usize).to_string();
    let args = ["--side", side.as_str(), "--nhwc"];
    independent_engine("run_onnx.py", onnx, &format!("{name}.onnx"), images, &args)
}

/// [`onnxruntime`] for images of `[height, width]`.
pub fn onnxruntime_sized(
    onnx: &[u8],
    images: &[Vec<f32>],
    [height, width]: [usize; 2],
    name: &str,
    optimize: bool,
) -> Vec<Vec<f32>> {
    let size = format!("{height}x{width}");
    let mut args = vec!["--side", size.as_str()];
    if !optimize {
        args.push("--no-optimize");
    }
    independent_engine("run_onnx.py", onnx, &format!("{name}.onnx"), images, &args)
}

/// Logits of `tflite` for `images` in LiteRT's interpreter (`tests/golden/run_tflite.py`).
#[allow(dead_code)]
pub fn litert(tflite: &[u8], images: &[Vec<f32>], name: &str) -> Vec<Vec<f32>> {
    independent_engine(
        "run_tflite.py",
        tflite,
        &format!("{name}.tflite"),
        images,
        &[],
    )
}

/// [`litert`], after checking with the `tflite` package's reader that every operator of the
/// file computes on int8 (with int32 biases) between its `QUANTIZE` and `DEQUANTIZE`.
#[allow(dead_code)]
pub fn litert_full_integer(tflite: &[u8], images: &[Vec<f32>], name: &str) -> Vec<Vec<f32>> {
    independent_engine(
        "run_tflite.py",
        tflite,
        &format!("{name}.tflite"),
        images,
        &["--full-integer"],
    )
}

/// Logits of the TFLite file for `images` in TensorFlow Lite Micro's interpreter (its reference
/// kernels, as a microcontroller runs them).
#[allow(dead_code)]
pub fn tflite_micro(tflite: &[u8], images: &[Vec<f32>], name: &str) -> Vec<Vec<f32>> {
    independent_engine(
        "run_tflite.py",
        tflite,
        &format!("{name}.tflite"),
        images,
        &["--micro"],
    )
}

/// Logits of the model file `bytes` (saved as `file`) for `images`, from `script` in
/// `tests/golden`: it reads the file, an `N × 3 × 224 × 224` f32 input, and writes the
/// `N × classes` f32 logits.
fn independent_engine(
    script: &str,
    bytes: &[u8],
    file: &str,
    images: &[Vec<f32>],
    args: &[&str],
) -> Vec<Vec<f32>> {
    let (model, input, output) = (
        scratch(file),
        scratch(&format!("{file}.in.f32")),
        scratch(&format!("{file}.out.f32")),
    );
    std::fs::write(&model, bytes).unwrap();
    let flat: Vec<u8> = images
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&input, flat).unwrap();
    let python = std::env::var("MODELSLIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(script);
    let out = Command::new(&python)
        .arg(&script)
        .arg(&model)
        .arg(&input)
        .arg(&output)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} (set MODELSLIM_PYTHON to scripts/setup.sh's Python): {e}")
        });
    assert!(
        out.status.success(),
        "{} failed on {file}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&output).unwrap();
    let values: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let classes = values.len() / images.len();
    values.chunks(classes).map(<[f32]>::to_vec).collect()
}

/// modelslim's logits for `model` as saved and reloaded, from the network the page and the CLI
/// run (batch norms, adds and activations fused into the convolutions).
#[allow(dead_code)]
pub fn reloaded_logits(model: &modelslim::model::Model, images: &[Vec<f32>]) -> Vec<Vec<f32>> {
    use modelslim::model::Model;
    let reloaded = Model::from_bytes(&model.to_safetensors().unwrap()).unwrap();
    let c =
        modelslim::predict::Classifier::for_logits(&reloaded, modelslim::backend::Backend::cpu())
            .unwrap();
    pollster::block_on(c.logits(images)).unwrap()
}

/// `m` with its conv and linear weights stored in `weights` with `granularity`, rounded.
#[allow(dead_code)]
pub fn weights_in(
    m: &modelslim::model::Model,
    weights: modelslim::compress::Precision,
    granularity: modelslim::compress::Granularity,
) -> modelslim::model::Model {
    m.quantized(&modelslim::compress::QuantOptions {
        weights,
        granularity,
        ..Default::default()
    })
    .unwrap()
}

/// `m` compressed with `opts` on the CPU, calibrated (and fitted) on the preprocessed photos
/// `calib`.
#[allow(dead_code)]
pub fn calibrated(
    m: &modelslim::model::Model,
    opts: &modelslim::compress::CompressOptions,
    calib: &[Vec<f32>],
) -> modelslim::model::Model {
    pollster::block_on(modelslim::compress::compress(
        m,
        opts,
        calib,
        calib,
        4,
        &modelslim::backend::Backend::cpu(),
        |_| async { true },
    ))
    .unwrap()
}

/// `m` in int8 weights (per channel) and `u8` activations (min-max ranges) calibrated on `calib`:
/// a full int8 QDQ graph, the logits rounded to their step.
#[allow(dead_code)]
pub fn int8a8(m: &modelslim::model::Model, calib: &[Vec<f32>]) -> modelslim::model::Model {
    use modelslim::compress::{Calibration, CompressOptions, Precision, QuantOptions};
    calibrated(
        m,
        &CompressOptions {
            quant: QuantOptions {
                weights: Precision::Int8,
                ..Default::default()
            },
            act_quant: Some(Calibration::MinMax),
            ..Default::default()
        },
        calib,
    )
}

/// The first `n` committed calibration photos (`tests/fixtures/imagenet-subset/calib`),
/// preprocessed by `pre`: never the photos a test compares on.
#[allow(dead_code)]
pub fn calibration_photos(pre: &modelslim::preprocess::Preprocess, n: usize) -> Vec<Vec<f32>> {
    let dir = root().join("tests/fixtures/imagenet-subset/calib");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .take(n)
        .map(|p| pre.run(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// The index of the largest value (of several, the first: as every runtime breaks a tie).
#[allow(unused_imports)]
pub use modelslim::predict::argmax;

/// On how many images two sets of logits have the same top-1 class.
#[allow(dead_code)]
pub fn same_top1(a: &[Vec<f32>], b: &[Vec<f32>]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count()
}

/// The largest element-wise difference of two sets of logits.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
