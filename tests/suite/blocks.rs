//! Block dropping: a dropped block is exactly its shortcut, the shorter network saves, reloads
//! and exports (onnxruntime computes what modelslim does), its MACs are the graph's count, and
//! the greedy choice finds the block whose absence costs nothing.

use crate::common;
use common::{logits, max_abs_diff, onnxruntime, sample_input, zero_branch};
use modelslim::backend::Backend;
use modelslim::compress::prune::blocks::{choose_blocks, network_macs};
use modelslim::compress::{BlockDrop, Settings};
use modelslim::export::to_onnx;
use modelslim::model::{Arch, Model};
use modelslim::session::{Batches, Session, no_progress};
use modelslim::weights::seeded::seeded_state_dict;

fn photos() -> Vec<Vec<f32>> {
    ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
        .iter()
        .map(|n| sample_input(n))
        .collect()
}

fn lite0() -> Model {
    let arch = Arch::by_name("efficientnet-lite0").unwrap();
    let weights = seeded_state_dict(&arch.graph(false).param_shapes(), 5);
    Model::new(arch, weights).unwrap()
}

/// The largest logit, for tolerances relative to the logits' size.
fn scale(l: &[Vec<f32>]) -> f32 {
    l.iter().flatten().fold(0f32, |a, v| a.max(v.abs()))
}

#[test]
fn a_dropped_block_is_its_zeroed_residual_branch() {
    let x = photos();
    for (model, block, last_bn) in [
        (Model::seeded_resnet18(7), "layer3.1", "layer3.1.bn2"),
        (lite0(), "_blocks.9", "_blocks.9._bn2"),
    ] {
        let zeroed = logits(&zero_branch(&model, last_bn), &x);
        let dropped = model.with_blocks_dropped(&[block.to_string()]).unwrap();
        let d = max_abs_diff(&zeroed, &logits(&dropped, &x));
        let tolerance = 1e-5;
        assert!(scale(&zeroed) > 0.1, "logits too small to compare");
        assert!(
            d <= tolerance,
            "{block}: dropped differs from zeroed by {d}"
        );
        // The tolerance can fail: the block's branch moves the logits well beyond it.
        let moved = max_abs_diff(&logits(&model, &x), &zeroed);
        assert!(moved > 10.0 * tolerance, "{block} did nothing ({moved})");
    }
}

#[test]
fn dropped_files_reload_export_and_count_their_macs() {
    let m = Model::seeded_resnet18(11);
    let two = ["layer3.1".to_string(), "layer4.1".to_string()];
    let d = m.with_blocks_dropped(&two).unwrap();
    // No tensor of a dropped block stays in the file.
    assert!(
        d.weights
            .keys()
            .all(|k| !k.starts_with("layer3.1.") && !k.starts_with("layer4.1."))
    );
    let bytes = d.to_safetensors().unwrap();
    let back = Model::from_bytes(&bytes).unwrap();
    assert_eq!(back.arch, d.arch);
    assert_eq!(back.weights, d.weights);
    // MACs: each dropped basic block was two 3×3 convs of C→C on an S×S map.
    let block = |c: u64, s: u64| 2 * s * s * c * c * 9;
    let expected = network_macs(&m) - block(256, 14) - block(512, 7);
    assert_eq!(network_macs(&back), expected);
    assert_eq!(back.metrics().unwrap().macs, expected);
    // The ONNX file computes what modelslim computes.
    let x = photos();
    let ours = logits(&back, &x);
    let ort = onnxruntime(&to_onnx(&back).unwrap(), &x, "dropped-resnet18", true);
    let diff = max_abs_diff(&ours, &ort);
    assert!(
        diff <= 1e-4 * scale(&ours).max(1.0),
        "onnxruntime differs by {diff}"
    );
}

#[test]
fn the_greedy_choice_drops_the_block_that_costs_nothing() {
    // layer2.1's branch computes zero: its absence changes nothing, every other block's does.
    let m = zero_branch(&Model::seeded_resnet18(3), "layer2.1.bn2");
    let batches = vec![photos()];
    let mut quiet = |_| async { true };
    let chosen =
        pollster::block_on(choose_blocks(&m, 2, &Backend::cpu(), &batches, &mut quiet)).unwrap();
    assert_eq!(chosen.len(), 2);
    assert_eq!(chosen[0].name, "layer2.1");
    assert!(chosen[0].kl.unwrap() < 1e-9, "{:?}", chosen[0].kl);
    assert!(chosen[1].kl.unwrap() > chosen[0].kl.unwrap());
    assert!(
        chosen
            .iter()
            .all(|c| c.chosen_by == "measured" && c.macs > 0)
    );
}

#[test]
fn a_session_drops_blocks_by_name_and_reports_them() {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(Model::seeded_resnet18(5), "seeded").unwrap();
    let settings = Settings {
        drop_blocks: "layer1.1,layer4.1".parse::<BlockDrop>().unwrap(),
        ..Settings::default()
    };
    let r = pollster::block_on(s.compress(&settings, no_progress)).unwrap();
    let names: Vec<&str> = r
        .shape
        .dropped_blocks
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(names, ["layer1.1", "layer4.1"]);
    assert!(r.after.macs < r.before.macs);
    assert_eq!(
        r.before.macs - r.after.macs,
        r.shape.dropped_blocks.iter().map(|b| b.macs).sum::<u64>()
    );
    // The layer chart marks the layers that went with their blocks.
    let dropped: Vec<&str> = r
        .layers
        .iter()
        .filter(|l| l.dropped)
        .map(|l| l.layer.as_str())
        .collect();
    assert_eq!(
        dropped,
        [
            "layer1.1.conv1",
            "layer1.1.conv2",
            "layer4.1.conv1",
            "layer4.1.conv2"
        ]
    );
    assert!(r.file_stem.contains("-d2"), "{}", r.file_stem);
    // A block that changes shape is refused with its name.
    let bad = Settings {
        drop_blocks: "layer2.0".parse::<BlockDrop>().unwrap(),
        ..Settings::default()
    };
    let e = pollster::block_on(s.compress(&bad, no_progress)).unwrap_err();
    assert!(e.to_string().contains("layer2.0"), "{e}");
}
