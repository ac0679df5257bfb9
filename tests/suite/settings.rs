//! The compression settings are defined once in the core: defaults, the fields' descriptions
//! and ranges, the plan of steps they become (which photos each reads, the labels, the file
//! name), and the presets that the CLI and the page both use.

use std::collections::BTreeSet;

use modelslim::compress::{
    Calibration, Importance, Plan, QuantMethod, SETTINGS, Settings, presets,
};
use modelslim::quant::Precision;
use modelslim::spec::limits;
use modelslim::train::{DISTILL, DistillOptions, SYNTH, SynthOptions};

#[test]
fn defaults_change_nothing_and_page_json_fills_in_the_rest() {
    let o = Settings::default().to_options().unwrap();
    assert_eq!(o.prune.ratio, 0.0);
    assert_eq!(o.prune.importance, Importance::L1);
    assert_eq!(o.sparsity.sparsity, 0.0);
    assert_eq!(o.quant.weights, Precision::F32);
    assert!(o.act_quant.is_none() && !o.bias_correction && !o.recalibrate_bn);
    assert!(Plan::of(&Settings::default()).unwrap().steps.is_empty());
    // The page sends only what its form shows; the rest keeps the CLI's defaults.
    let s = Settings::from_json(r#"{"prune_channels": 0.3, "quant": "int8"}"#).unwrap();
    assert_eq!(s.round_to, 1);
    assert_eq!(s.calibration, Calibration::MinMax);
    let o = s.to_options().unwrap();
    assert_eq!((o.prune.ratio, o.quant.weights), (0.3, Precision::Int8));
}

#[test]
fn settings_keep_the_clis_spellings_in_json() {
    let s = Settings::from_json(
        r#"{"quant": "int4", "granularity": "group:32", "quant_method": "gptq",
            "calibration": "percentile:99.9", "layer_quant": {"fc": "int8"}}"#,
    )
    .unwrap();
    assert_eq!(s.quant, Precision::Int4);
    assert_eq!(s.quant_method, QuantMethod::Gptq);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["quant"], "int4");
    assert_eq!(v["granularity"], "group:32");
    assert_eq!(v["calibration"], "percentile:99.9");
    assert_eq!(v["layer_quant"]["fc"], "int8");
    // No quantization is `none`, as the CLI's `--quant none`.
    assert_eq!(
        serde_json::to_value(Settings::default()).unwrap()["quant"],
        "none"
    );
    // What is written reads back as the same settings.
    let back: Settings = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
}

#[test]
fn out_of_range_or_unknown_settings_are_one_line_errors() {
    let msg = |s: Settings| s.to_options().unwrap_err().to_string();
    let too_much = msg(Settings {
        prune_channels: 0.95,
        ..Default::default()
    });
    assert!(too_much.contains("between 0 and 0.9"), "{too_much}");
    assert!(too_much.contains("impossible"), "{too_much}");
    assert!(
        msg(Settings {
            steps: 0,
            ..Default::default()
        })
        .contains("between 1 and 10")
    );
    let int3 = Settings::from_json(r#"{"quant": "int3"}"#)
        .unwrap_err()
        .to_string();
    assert!(int3.contains("int3") && !int3.contains('\n'), "{int3}");
    let typo = Settings::from_json(r#"{"prune_chanels": 0.3}"#)
        .unwrap_err()
        .to_string();
    assert!(typo.contains("prune_chanels"), "{typo}");
    // Every limit's bounds are themselves accepted, but an exclusive lower bound.
    for l in limits(SETTINGS) {
        let mut v = serde_json::to_value(Settings::default()).unwrap();
        if l.min_exclusive {
            v[l.name] = serde_json::json!(l.min);
            let s: Settings = serde_json::from_value(v.clone()).unwrap();
            assert!(
                s.check_limits().is_err(),
                "{} = {} (exclusive)",
                l.name,
                l.min
            );
        }
        for bound in [l.min, l.max] {
            if l.min_exclusive && bound == l.min {
                continue;
            }
            // Whole bounds as JSON integers, as the page sends them (`usize` settings).
            v[l.name] = if bound.fract() == 0.0 {
                serde_json::json!(bound as u64)
            } else {
                serde_json::json!(bound)
            };
            let s: Settings = serde_json::from_value(v.clone()).unwrap();
            assert!(s.check_limits().is_ok(), "{} = {bound}", l.name);
        }
    }
}

/// The spec lists exactly the settings: a field added to `Settings` without a description (or
/// the other way round) fails here, and the CLI's flags and the page's form are generated from
/// the description.
#[test]
fn the_spec_describes_exactly_the_settings() {
    for (fields, defaults) in [
        (SETTINGS, serde_json::to_value(Settings::default()).unwrap()),
        (
            DISTILL,
            serde_json::to_value(DistillOptions::default()).unwrap(),
        ),
        (
            SYNTH,
            serde_json::to_value(SynthOptions::default()).unwrap(),
        ),
    ] {
        let described: BTreeSet<&str> = fields.iter().map(|f| f.name).collect();
        let actual: BTreeSet<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(described, actual);
        assert_eq!(described.len(), fields.len(), "a field is described twice");
        for f in fields {
            assert!(!f.help.is_empty() && !f.label.is_empty(), "{}", f.name);
        }
    }
}

/// Distillation and synthesis accept exactly their described ranges: each bound is accepted,
/// and a value just outside is refused by the run's own check.
#[test]
fn training_options_accept_exactly_their_ranges() {
    let check_distill = |v: serde_json::Value| {
        serde_json::from_value::<DistillOptions>(v)
            .map_err(|e| e.to_string())
            .and_then(|o| o.check(100).map_err(|e| e.to_string()))
    };
    let check_synth = |v: serde_json::Value| {
        serde_json::from_value::<SynthOptions>(v)
            .map_err(|e| e.to_string())
            .and_then(|o| o.check().map_err(|e| e.to_string()))
    };
    for (fields, defaults, check) in [
        (
            DISTILL,
            serde_json::to_value(DistillOptions::default()).unwrap(),
            &check_distill as &dyn Fn(serde_json::Value) -> Result<(), String>,
        ),
        (
            SYNTH,
            serde_json::to_value(SynthOptions::default()).unwrap(),
            &check_synth,
        ),
    ] {
        for l in limits(fields) {
            // The held-back photos leave some to train on only below the photos given.
            if l.name == "held_out" {
                continue;
            }
            let at = |x: f64| {
                let mut v = defaults.clone();
                v[l.name] = if x.fract() == 0.0 && x >= 0.0 {
                    serde_json::json!(x as u64)
                } else {
                    serde_json::json!(x)
                };
                v
            };
            let low = if l.min_exclusive { l.min + 1e-6 } else { l.min };
            assert!(check(at(low)).is_ok(), "{} = {low}", l.name);
            assert!(check(at(l.max)).is_ok(), "{} = {}", l.name, l.max);
            let above = if l.max.fract() == 0.0 {
                l.max + 1.0
            } else {
                l.max * 1.01
            };
            let e = check(at(above)).unwrap_err();
            assert!(
                e.contains("impossible") || e.contains("invalid"),
                "{}: {e}",
                l.name
            );
            if l.min > 0.0 || l.min_exclusive {
                let below = if l.min_exclusive { l.min } else { l.min - 1.0 };
                assert!(check(at(below)).is_err(), "{} = {below}", l.name);
            }
        }
    }
}

#[test]
fn calibration_photos_are_asked_for_only_by_the_steps_that_use_them() {
    let plan = |s: Settings| Plan::of(&s).unwrap();
    assert!(
        plan(Settings {
            quant: Precision::Int8,
            prune_channels: 0.3,
            ..Default::default()
        })
        .calibration_need()
        .is_none()
    );
    // Measured importance without pruning measures nothing.
    assert!(
        plan(Settings {
            importance: Importance::Output,
            ..Default::default()
        })
        .calibration_need()
        .is_none()
    );
    let pi = presets().into_iter().find(|p| p.id == "pi").unwrap();
    let need = plan(pi.settings).calibration_need().unwrap();
    assert_eq!((need.min, need.advised, need.better), (1, 4, 16));
    assert_eq!(
        need.message(),
        "int8 activations and bias correction are calibrated on your photos: upload at least 4 first (16 or more are better)"
    );
    // Every preset fits on photos, and the plan's request names every reason.
    for p in presets() {
        let need = plan(p.settings.clone()).calibration_need();
        assert!(need.is_some(), "{} needs no photos?", p.id);
    }
    let smallest = presets().into_iter().find(|p| p.id == "smallest").unwrap();
    assert_eq!(
        plan(smallest.settings).calibration_need().unwrap().why,
        "measured channel importance, refitting after pruning and GPTQ weight quantization are"
    );
}

#[test]
fn a_plan_names_its_steps_and_its_file() {
    let fastest = presets().into_iter().find(|p| p.id == "fastest").unwrap();
    let plan = Plan::of(&fastest.settings).unwrap();
    assert_eq!(
        plan.labels(),
        [
            "measuring channel importance (output) and pruning channels",
            "refitting the layers that read pruned channels",
            "recalibrating batch norms",
            "quantizing weights to int8",
            "calibrating activation ranges",
        ]
    );
    assert_eq!(plan.file_stem("resnet18"), "resnet18-c50-refit-int8a8-bn");
    // Photos used: the calibration photos once, or the separate batch-norm photos as well.
    assert_eq!(plan.photos_used(8, 0), 8);
    assert_eq!(plan.photos_used(8, 3), 11);
    let bn_only = Plan::of(&Settings {
        recalibrate_bn: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (bn_only.photos_used(8, 0), bn_only.photos_used(8, 3)),
        (8, 3)
    );
    assert!(
        Plan::of(&Settings {
            reconstruct: true,
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
        .contains("use it with channel pruning or sparsity")
    );
}

#[test]
fn every_preset_is_a_valid_setting() {
    let all = presets();
    let mut ids: Vec<&str> = all.iter().map(|p| p.id).collect();
    ids.dedup();
    assert_eq!(ids, ["pi", "balanced", "fastest", "smallest"]);
    for p in &all {
        let o = p.settings.to_options().unwrap();
        assert!(!p.note.is_empty() && !p.name.is_empty());
        assert!(
            o.prune.ratio > 0.0 || o.quant.weights != Precision::F32,
            "{} does nothing",
            p.id
        );
    }
}
