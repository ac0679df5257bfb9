//! What a compression says it fitted on is what it fitted on: for every preset and for each
//! step alone, the report's and the model card's photo counts, and which photos agreement was
//! measured on (the ones held back from fitting whenever a step fits on photos).

use crate::common;
use common::sample;
use modelslim::backend::Backend;
use modelslim::compress::{Importance, Precision, PruneScope, QuantMethod, Settings, presets};
use modelslim::model::{Arch, Model};
use modelslim::session::{AgreementPhotos, Batches, FileFormat, Session, no_progress};
use modelslim::weights::seeded::seeded_state_dict;

/// EfficientNet-Lite0 with seeded weights: its layers' statistics are small (GPTQ and
/// refitting run in seconds where ResNet18's 4,608-wide convs take minutes).
fn model() -> Model {
    let arch = Arch::by_name("efficientnet-lite0").unwrap();
    let weights = seeded_state_dict(&arch.graph(false).param_shapes(), 3);
    Model::new(arch, weights).unwrap()
}

/// Ten kept photos (the four samples again under other names): enough to hold two back.
fn session(batch_norm_photos: usize) -> Session {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(model(), "seeded").unwrap();
    let names = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"];
    for i in 0..10 {
        let name = names[i % names.len()];
        s.keep_photo(format!("{i}-{name}"), sample(name)).unwrap();
    }
    for i in 0..batch_norm_photos {
        let name = names[i % names.len()];
        s.keep_batch_norm_photo(format!("bn-{i}-{name}"), sample(name))
            .unwrap();
    }
    s
}

fn prune(importance: Importance) -> Settings {
    Settings {
        prune_channels: 0.25,
        prune_scope: PruneScope::Internal,
        round_to: 8,
        importance,
        ..Default::default()
    }
}

fn int8() -> Settings {
    Settings {
        quant: Precision::Int8,
        ..Default::default()
    }
}

/// Each step alone, then every preset, with the photos it must have fitted on out of 8 (10
/// kept, 2 held back), or 0.
fn cases() -> Vec<(String, Settings, usize)> {
    let mut cases = vec![
        ("channels by L1".to_string(), prune(Importance::L1), 0),
        ("channels by output".into(), prune(Importance::Output), 8),
        (
            "channels refit".into(),
            Settings {
                reconstruct: true,
                ..prune(Importance::L1)
            },
            8,
        ),
        (
            "sparsity by magnitude".into(),
            Settings {
                sparsity: 0.5,
                ..Default::default()
            },
            0,
        ),
        (
            "sparsity by SparseGPT".into(),
            Settings {
                sparsity: 0.5,
                reconstruct: true,
                ..Default::default()
            },
            8,
        ),
        (
            "batch norms".into(),
            Settings {
                recalibrate_bn: true,
                ..prune(Importance::L1)
            },
            8,
        ),
        ("int8 rounded".into(), int8(), 0),
        (
            "int8 by GPTQ".into(),
            Settings {
                quant_method: QuantMethod::Gptq,
                ..int8()
            },
            8,
        ),
        (
            "bias correction".into(),
            Settings {
                bias_correction: true,
                ..int8()
            },
            8,
        ),
        (
            "activations".into(),
            Settings {
                act_quant: true,
                ..int8()
            },
            8,
        ),
    ];
    for p in presets() {
        cases.push((format!("preset {}", p.id), p.settings, 8));
    }
    cases
}

#[test]
fn every_step_and_preset_reports_the_photos_it_fitted_on() {
    for (name, settings, fitted) in cases() {
        let s = session(0);
        let r = pollster::block_on(s.compress(&settings, no_progress)).unwrap();
        let card: serde_json::Value =
            serde_json::from_slice(&s.file(FileFormat::Card).unwrap()).unwrap();
        assert_eq!(r.calibration_photos, fitted, "{name}");
        assert_eq!(card["calibration_photos"], fitted, "{name}");
        let a = r.agreement.unwrap();
        if fitted > 0 {
            assert_eq!(r.agreement_photos, AgreementPhotos::HeldBack, "{name}");
            assert_eq!((r.held_back, a.n), (2, 2), "{name}");
            assert_eq!(card["held_back_photos"], 2, "{name}");
            assert_eq!(card["agreement_photos"], "held_back", "{name}");
        } else {
            assert_eq!(r.agreement_photos, AgreementPhotos::Unfitted, "{name}");
            assert_eq!((r.held_back, a.n), (0, 10), "{name}");
        }
        assert_eq!(card["agreement_on_uploaded_photos"]["n"], a.n, "{name}");
    }
}

/// Separate batch-norm photos are counted beside the calibration photos, and a run that fits
/// only the batch norms on them holds nothing back.
#[test]
fn separate_batch_norm_photos_are_counted_and_hold_nothing_back() {
    let bn_and_act = Settings {
        recalibrate_bn: true,
        act_quant: true,
        ..int8()
    };
    let r = pollster::block_on(session(3).compress(&bn_and_act, no_progress)).unwrap();
    assert_eq!((r.calibration_photos, r.held_back), (8 + 3, 2));
    let bn_only = Settings {
        recalibrate_bn: true,
        ..prune(Importance::L1)
    };
    let r = pollster::block_on(session(3).compress(&bn_only, no_progress)).unwrap();
    assert_eq!((r.calibration_photos, r.held_back), (3, 0));
    assert_eq!(r.agreement_photos, AgreementPhotos::Unfitted);
}

/// With too few photos to spare, agreement is measured on the fitting photos, and says so.
#[test]
fn with_few_photos_agreement_is_marked_as_measured_on_the_fitting_photos() {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(model(), "seeded").unwrap();
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        s.keep_photo(name, sample(name)).unwrap();
    }
    let act = Settings {
        act_quant: true,
        ..int8()
    };
    let r = pollster::block_on(s.compress(&act, no_progress)).unwrap();
    assert_eq!(r.agreement_photos, AgreementPhotos::Fitting);
    assert_eq!((r.calibration_photos, r.held_back), (4, 0));
    assert_eq!(r.agreement.unwrap().n, 4);
}
