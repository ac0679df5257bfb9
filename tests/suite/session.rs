//! The session both front ends drive: what it refuses, what cancelling leaves, that its files
//! and report describe the same model, and that scores use the photos' labels.

use std::cell::Cell;

use crate::common;
use common::sample;
use modelslim::backend::Backend;
use modelslim::compress::{Progress, PruneScope, Settings};
use modelslim::model::{Arch, Model};
use modelslim::session::{Batches, FileFormat, Session, Which, no_progress};
use modelslim::weights::seeded::seeded_state_dict;

fn session_with_photos() -> Session {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(Model::seeded_resnet18(7), "seeded").unwrap();
    for name in ["chelsea.png", "coffee.png"] {
        s.keep_photo(name, sample(name)).unwrap();
    }
    s
}

fn settings(prune: f32, quant: &str) -> Settings {
    Settings {
        prune_channels: prune,
        prune_scope: PruneScope::All,
        quant: quant.parse().unwrap(),
        ..Settings::default()
    }
}

#[test]
fn refuses_work_without_a_model_or_photos_in_one_line() {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    let e = s.keep_photo("a.png", sample("chelsea.png")).unwrap_err();
    assert!(e.to_string().contains("load one first"), "{e}");
    let e = pollster::block_on(s.compress(&Settings::default(), no_progress)).unwrap_err();
    assert!(e.to_string().contains("load one first"), "{e}");

    s.load(Model::seeded_resnet18(7), "seeded").unwrap();
    // A bad file's message names it.
    let e = s.keep_photo("notes.txt", b"hello".to_vec()).unwrap_err();
    assert!(
        e.to_string().starts_with("notes.txt: not a readable image"),
        "{e}"
    );
    // Activation quantization without photos asks for them, with the counts.
    let act = Settings {
        act_quant: true,
        ..settings(0.0, "int8")
    };
    let e = pollster::block_on(s.compress(&act, no_progress)).unwrap_err();
    assert!(e.to_string().contains("upload at least 4"), "{e}");
    assert!(s.file(FileFormat::Onnx).is_err());
    assert_eq!(s.file_name(FileFormat::Onnx), None);
}

#[test]
fn cancelling_keeps_the_previous_result_and_the_session_usable() {
    let s = session_with_photos();
    let first = pollster::block_on(s.compress(&settings(0.0, "int8"), no_progress)).unwrap();
    let onnx = s.file(FileFormat::Onnx).unwrap();

    // Cancel at the second step of a two-step run (prune, quantize). While it runs, loading
    // another model is refused rather than pulled from under it.
    let calls = Cell::new(0);
    let e = pollster::block_on(s.compress(&settings(0.5, "int4"), |_p: Progress| {
        calls.set(calls.get() + 1);
        let refused = s.load(Model::seeded_resnet18(1), "other").unwrap_err();
        assert!(refused.to_string().contains("in progress"), "{refused}");
        let go = calls.get() < 2;
        async move { go }
    }))
    .unwrap_err();
    assert!(matches!(e, modelslim::Error::Cancelled), "{e}");
    assert_eq!(calls.get(), 2);
    assert_eq!(s.file(FileFormat::Onnx).unwrap(), onnx);
    assert_eq!(
        s.file_name(FileFormat::Onnx).as_deref(),
        Some(format!("{}.onnx", first.file_stem).as_str())
    );

    // Not left busy: the next run goes through.
    let r = pollster::block_on(s.compress(&settings(0.5, "int4"), no_progress)).unwrap();
    assert_eq!(r.file_stem, "resnet18-c50-int4");
}

#[test]
fn report_describes_the_files_it_wrote() {
    let s = session_with_photos();
    let r = pollster::block_on(s.compress(&settings(0.3, "int8"), no_progress)).unwrap();
    let st = s.file(FileFormat::Safetensors).unwrap();
    let onnx = s.file(FileFormat::Onnx).unwrap();
    assert_eq!(r.after.bytes.safetensors.raw, st.len());
    assert_eq!(r.after.bytes.onnx.unwrap().raw, onnx.len());
    // The written file reloads as the model the report measured.
    let reloaded = Model::from_bytes(&st).unwrap();
    assert_eq!(reloaded.num_params(), r.after.params);
    assert_eq!(reloaded.graph().macs([224; 2]), r.after.macs);
    let ratio = r.after.params as f64 / r.before.params as f64;
    assert!((r.ratios.params - ratio).abs() < 1e-12);
    assert!(r.ratios.macs < 0.7, "{:?}", r.ratios);
    // One answer per kept photo, and the agreement is over them.
    assert_eq!(r.photos.len(), 2);
    assert_eq!(r.agreement.as_ref().map(|a| a.n), Some(2));
    assert_eq!(r.calibration_photos, 0);
    let card: serde_json::Value =
        serde_json::from_slice(&s.file(FileFormat::Card).unwrap()).unwrap();
    assert_eq!(card["settings"]["prune_channels"], 0.3);
    assert_eq!(card["after"]["bytes"]["onnx"]["raw"], onnx.len());
}

#[test]
fn answers_on_kept_photos_are_the_models_logits() {
    let s = session_with_photos();
    let added = pollster::block_on(s.add_photo("again.png", sample("chelsea.png"))).unwrap();
    assert_eq!(added.index, 2);
    let original = added.original.unwrap();
    assert!(added.compressed.is_none());
    // The same photo, classified alone, gives the same logits (same input, same network).
    let alone = pollster::block_on(s.classify("chelsea.png", &sample("chelsea.png"))).unwrap();
    let max_diff = original
        .logits
        .iter()
        .zip(&alone.answer.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_diff < 1e-4, "{max_diff}");

    pollster::block_on(s.compress(&settings(0.0, "fp16"), no_progress)).unwrap();
    let all = pollster::block_on(s.predict_all(no_progress)).unwrap();
    assert_eq!(
        all.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(all.iter().all(|r| r.compressed.is_some()));
}

#[test]
fn scores_use_the_labels_in_photo_names() {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    let model = Model::seeded_resnet18(3);
    s.load(model.clone(), "seeded").unwrap();
    // The model's own top-1 for a photo, written into its name, scores 1.0 top-1.
    let c = pollster::block_on(s.classify("x.png", &sample("coffee.png"))).unwrap();
    let top = c.answer.top5[0].index;
    let wnid = modelslim::labels::imagenet_classes()[top].wnid;
    s.keep_photo(format!("{wnid}_coffee.png"), sample("coffee.png"))
        .unwrap();
    s.keep_photo("unlabelled.png", sample("chelsea.png"))
        .unwrap();
    let e = pollster::block_on(s.evaluate(Some(model), no_progress)).unwrap();
    assert_eq!((e.n, e.labelled), (2, 1));
    assert_eq!((e.top1, e.top5), (Some(1.0), Some(1.0)));
    // Against itself: full agreement, no divergence.
    assert_eq!(e.agreement, Some(1.0));
    assert!(e.kl.unwrap() < 1e-9);
}

#[test]
fn benchmark_reports_cold_once_and_needs_a_compressed_model() {
    let s = session_with_photos();
    let b = pollster::block_on(s.benchmark(Which::Original, 2, no_progress)).unwrap();
    assert!(b.cold_ms.is_some());
    assert_eq!(b.warm.runs, 2);
    let again = pollster::block_on(s.benchmark(Which::Original, 1, no_progress)).unwrap();
    assert!(again.cold_ms.is_none());
    let e = pollster::block_on(s.benchmark(Which::Compressed, 1, no_progress)).unwrap_err();
    assert!(e.to_string().contains("compress first"), "{e}");
}

/// The page moves its session into the engine module that can train this way: a second session
/// with the same model and photos takes the first's compression from its files, and then
/// offers the same files and gives the same answers.
#[test]
fn an_adopted_compression_is_the_same_files_and_answers() {
    let first = session_with_photos();
    pollster::block_on(first.compress(&settings(0.3, "int4"), no_progress)).unwrap();
    let safetensors = first.file(FileFormat::Safetensors).unwrap();
    let card = String::from_utf8(first.file(FileFormat::Card).unwrap()).unwrap();

    let second = session_with_photos();
    second.adopt_compressed(safetensors.clone(), card).unwrap();
    for format in [FileFormat::Safetensors, FileFormat::Onnx, FileFormat::Card] {
        assert_eq!(second.file(format).unwrap(), first.file(format).unwrap());
        assert_eq!(second.file_name(format), first.file_name(format));
    }
    let a = pollster::block_on(first.predict_all(no_progress)).unwrap();
    let b = pollster::block_on(second.predict_all(no_progress)).unwrap();
    for (a, b) in a.iter().zip(&b) {
        let (a, b) = (
            a.compressed.as_ref().unwrap(),
            b.compressed.as_ref().unwrap(),
        );
        assert_eq!(a.logits, b.logits, "{}", a.top5[0].index);
    }

    // A compressed EfficientNet-Lite0 does not belong to a ResNet18 session.
    let arch = Arch::by_name("efficientnet-lite0").unwrap();
    let weights = seeded_state_dict(&arch.graph(false).param_shapes(), 1);
    let other = Model::new(arch, weights).unwrap().to_safetensors().unwrap();
    let e = second.adopt_compressed(other, "{}".into()).unwrap_err();
    assert!(e.to_string().contains("EfficientNet"), "{e}");
}

#[test]
fn distillation_that_improves_nothing_keeps_the_compressed_model_and_its_names() {
    use modelslim::train::DistillOptions;
    let s = session_with_photos();
    pollster::block_on(s.compress(&settings(0.0, "int8"), no_progress)).unwrap();
    let name = s.file_name(FileFormat::Onnx).unwrap();
    let onnx = s.file(FileFormat::Onnx).unwrap();
    // A learning rate this large throws the weights far off in one step: no step beats the
    // start on the held-back photo.
    let opts = DistillOptions {
        steps: 1,
        lr: 0.9,
        batch: 1,
        augment: false,
        mixup: false,
        ..DistillOptions::default()
    };
    let r = pollster::block_on(s.distill(None, &opts, |_| async { true })).unwrap();
    assert!(!r.improved && r.run.best_step == 0, "{:?}", r.run.after);
    assert_eq!(s.file_name(FileFormat::Onnx).unwrap(), name);
    assert!(!r.file_stem.ends_with("-kd"), "{}", r.file_stem);
    assert!(
        s.file(FileFormat::Onnx).unwrap() == onnx,
        "the files changed"
    );
}
