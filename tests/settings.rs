//! The compression settings are defined once in the core: defaults, limits, the calibration-photo
//! rule and the presets that the CLI and the page both use.

use modelslim::compress::{Importance, LIMITS, Settings, presets};
use modelslim::quant::Precision;

#[test]
fn defaults_change_nothing_and_page_json_fills_in_the_rest() {
    let o = Settings::default().to_options().unwrap();
    assert_eq!(o.prune.ratio, 0.0);
    assert_eq!(o.prune.importance, Importance::L1);
    assert_eq!(o.sparsity.sparsity, 0.0);
    assert_eq!(o.quant.weights, Precision::F32);
    assert!(o.act_quant.is_none() && !o.bias_correction && !o.recalibrate_bn);
    // The page sends only what its form shows; the rest keeps the CLI's defaults.
    let s: Settings = serde_json::from_str(r#"{"prune_channels": 0.3, "quant": "int8"}"#).unwrap();
    assert_eq!(s.round_to, 1);
    assert_eq!(s.calibration, "minmax");
    let o = s.to_options().unwrap();
    assert_eq!((o.prune.ratio, o.quant.weights), (0.3, Precision::Int8));
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
    assert!(
        msg(Settings {
            quant: "int3".into(),
            ..Default::default()
        })
        .contains("int3")
    );
    // Every limit's bounds are themselves accepted.
    for l in LIMITS {
        let mut v = serde_json::to_value(Settings::default()).unwrap();
        for bound in [l.min, l.max] {
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

#[test]
fn calibration_photos_are_asked_for_only_by_the_steps_that_use_them() {
    assert!(
        Settings {
            quant: "int8".into(),
            prune_channels: 0.3,
            ..Default::default()
        }
        .calibration_need()
        .is_none()
    );
    let pi = presets().into_iter().find(|p| p.id == "pi").unwrap();
    let need = pi.settings.calibration_need().unwrap();
    assert_eq!((need.min, need.advised, need.better), (1, 4, 16));
    assert_eq!(
        need.message(),
        "int8 activations and bias correction are calibrated on your photos: upload at least 4 first (16 or more are better)"
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
