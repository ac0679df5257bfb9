//! Compressed files: every kind of compressed model saves and reloads to identical logits,
//! stores what it claims (I8 + scales, packed int4, F16), folds batch norms without changing
//! the function, quantizes activations exactly as ONNX's QuantizeLinear does, and refuses
//! damaged files and impossible requests with a reason.

use std::collections::BTreeMap;

use crate::common;
use burn::tensor::{Tensor, TensorData};
use common::{logits, max_abs_diff};
use modelslim::Error;
use modelslim::backend::Backend;
use modelslim::compress::{
    ActQuant, Calibration, CompressOptions, Granularity, Precision, PruneOptions, QuantOptions,
    SparsityOptions, compress,
};
use modelslim::model::Model;
use modelslim::model::exec::fake_quantize;
use modelslim::weights::safetensors::{Dtype, read_raw, write_raw};

fn images() -> Vec<Vec<f32>> {
    (0..2)
        .map(|k| {
            (0..3 * 224 * 224)
                .map(|i| (((i * (k + 3)) % 101) as f32 / 50.0) - 1.0)
                .collect()
        })
        .collect()
}

fn quant(weights: Precision, granularity: Granularity) -> QuantOptions {
    QuantOptions {
        weights,
        granularity,
        ..Default::default()
    }
}

fn run(m: &Model, opts: &CompressOptions, calib: &[Vec<f32>]) -> Result<Model, Error> {
    pollster::block_on(compress(
        m,
        opts,
        calib,
        calib,
        4,
        &Backend::cpu(),
        |_| async { true },
    ))
}

#[test]
fn every_compressed_kind_reloads_to_identical_logits() {
    let m = Model::seeded_resnet18(3);
    let pruned = CompressOptions {
        prune: PruneOptions {
            ratio: 0.3,
            round_to: 8,
            ..Default::default()
        },
        ..Default::default()
    };
    let sparse = CompressOptions {
        sparsity: SparsityOptions {
            sparsity: 0.5,
            steps: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let q = |w, g| CompressOptions {
        quant: quant(w, g),
        ..Default::default()
    };
    let act = CompressOptions {
        prune: pruned.prune.clone(),
        quant: quant(Precision::Int8, Granularity::PerChannel),
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let cases = [
        ("pruned", pruned),
        ("sparse", sparse),
        ("int8", q(Precision::Int8, Granularity::PerChannel)),
        (
            "int8 per-tensor",
            q(Precision::Int8, Granularity::PerTensor),
        ),
        ("int4", q(Precision::Int4, Granularity::PerChannel)),
        ("int4 group:16", q(Precision::Int4, Granularity::Group(16))),
        ("fp16", q(Precision::F16, Granularity::PerChannel)),
        ("pruned + int8 + activations", act),
    ];
    for (name, opts) in cases {
        let c = run(&m, &opts, &images()).unwrap();
        let bytes = c.to_safetensors().unwrap();
        let back = Model::from_bytes(&bytes).unwrap();
        assert_eq!(back.arch, c.arch, "{name}");
        assert_eq!(back.quant, c.quant, "{name}");
        assert_eq!(back.weights, c.weights, "{name}");
        assert_eq!(
            logits(&back, &images()),
            logits(&c, &images()),
            "{name}: logits changed on reload"
        );
    }
}

#[test]
fn files_store_what_they_claim() {
    let m = Model::seeded_resnet18(3);
    let int8 = m
        .quantized(&quant(Precision::Int8, Granularity::PerChannel))
        .unwrap();
    let (raw, _) = read_raw(&int8.to_safetensors().unwrap()).unwrap();
    let w = &raw["layer1.0.conv1.weight"];
    assert_eq!(w.dtype, Dtype::I8);
    assert_eq!(w.shape, vec![64, 64, 3, 3]);
    assert_eq!(raw["layer1.0.conv1.weight_scale"].shape, vec![64]);
    // Batch norms are folded into conv biases.
    assert!(raw.contains_key("layer1.0.conv1.bias"));
    assert!(!raw.contains_key("layer1.0.bn1.weight"));

    let int4 = m
        .quantized(&quant(Precision::Int4, Granularity::PerChannel))
        .unwrap();
    let (raw, _) = read_raw(&int4.to_safetensors().unwrap()).unwrap();
    let w = &raw["layer1.0.conv1.weight"];
    assert_eq!(w.dtype, Dtype::U8);
    assert_eq!(w.bytes.len(), 64 * 64 * 9 / 2);

    let fp16 = m
        .quantized(&quant(Precision::F16, Granularity::PerChannel))
        .unwrap();
    let (raw, _) = read_raw(&fp16.to_safetensors().unwrap()).unwrap();
    assert_eq!(raw["fc.weight"].dtype, Dtype::F16);

    // Sizes: int8 ≈ ¼, int4 ≈ ⅛, fp16 ≈ ½ of fp32.
    let size = |m: &Model| m.to_safetensors().unwrap().len() as f64;
    let full = size(&m);
    assert!(size(&int8) / full < 0.26);
    assert!(size(&int4) / full < 0.14);
    assert!(size(&fp16) / full < 0.51);
}

#[test]
fn folding_batch_norms_keeps_the_function() {
    let m = Model::seeded_resnet18(5);
    let f = m.fold_bn().unwrap();
    assert!(f.folded);
    let d = max_abs_diff(&logits(&m, &images()), &logits(&f, &images()));
    assert!(d < 1e-4, "folding changed logits by {d}");
    // Layers kept in fp32 by --keep-first-last.
    let opts = QuantOptions {
        weights: Precision::Int8,
        keep_first_last: true,
        ..Default::default()
    };
    let q = m.quantized(&opts).unwrap();
    assert!(!q.quant.int.contains_key("conv1.weight"));
    assert!(!q.quant.int.contains_key("fc.weight"));
    assert!(q.quant.int.contains_key("layer1.0.conv1.weight"));
    let opts = QuantOptions {
        weights: Precision::Int4,
        keep_first_last: true,
        ..Default::default()
    };
    let q = m.quantized(&opts).unwrap();
    assert_eq!(q.quant.int["conv1.weight"].bits, 8);
    assert_eq!(q.quant.int["layer1.0.conv1.weight"].bits, 4);
}

#[test]
fn activation_fake_quant_equals_quantize_linear_on_the_host() {
    // The range 4 needs a step of 4/255; the next power of two is 1/32, and zero sits at
    // round(1 / (1/32)) = 32.
    let q = ActQuant::from_range(-1.0, 3.0);
    assert_eq!((q.scale, q.zero_point), (1.0 / 32.0, 32));
    // Values around ties, out of range and exactly on the grid.
    let xs: Vec<f32> = (-700..700).map(|i| i as f32 * q.scale * 0.25).collect();
    let t = Tensor::<4>::from_data(
        TensorData::new(xs.clone(), [1, 1, 1, xs.len()]),
        &Backend::cpu().device,
    );
    let got: Vec<f32> = fake_quantize(t, q).into_data().try_to_vec::<f32>().unwrap();
    for (x, g) in xs.iter().zip(&got) {
        assert_eq!(*g, q.fake(*x), "x = {x}");
    }
    assert_eq!(q.fake(100.0), (255.0 - 32.0) * q.scale);
    assert_eq!(q.fake(-100.0), -32.0 * q.scale);
    // All-zero activations get a usable scale.
    assert_eq!(ActQuant::from_range(0.0, 0.0).scale, 1.0);
}

#[test]
fn activation_steps_are_powers_of_two_fitted_to_the_values() {
    // A tail: 10,000 values in [0, 1) and one at 9. Covering 9 takes a step of 9/255, 1/16 as a
    // power of two (squared error ≈ 10,000 · (1/16)²/12 = 3.3); a step of 1/32 clips the one
    // value to 7.97 (error 1.06) and halves everyone else's (0.8): 1.9 in all.
    let mut sample: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
    sample.push(9.0);
    let widest = ActQuant::from_range(0.0, 9.0);
    assert_eq!(widest.scale, 1.0 / 16.0);
    let fitted = ActQuant::fit(0.0, 9.0, &sample);
    assert_eq!((fitted.scale, fitted.zero_point), (1.0 / 32.0, 0));
    // Values that fill their range keep the widest step.
    let even: Vec<f32> = (0..=6000).map(|i| i as f32 * 0.001).collect();
    assert_eq!(
        ActQuant::fit(0.0, 6.0, &even),
        ActQuant::from_range(0.0, 6.0)
    );
    // Zero stays exact for a range across it.
    let q = ActQuant::fit(-1.0, 3.0, &sample);
    assert_eq!(q.fake(0.0), 0.0);
    for s in [
        q.scale,
        fitted.scale,
        ActQuant::from_range(-3e-5, 7e3).scale,
    ] {
        assert_eq!(
            s,
            2f32.powi(s.log2().round() as i32),
            "{s} is not a power of two"
        );
    }
}

#[test]
fn weight_scales_round_up_to_five_significant_bits_only_with_quantized_activations() {
    use modelslim::quant::{EXACT_WEIGHT_SCALE_BITS, round_up_to_bits};
    assert_eq!(round_up_to_bits(1.0, 5), 1.0);
    assert_eq!(round_up_to_bits(1.0 + 1e-6, 5), 1.0625); // the next 5-bit value above 1
    assert_eq!(round_up_to_bits(1.97, 5), 2.0); // carries into the exponent
    assert_eq!(round_up_to_bits(0.3, 1), 0.5);
    let m = Model::seeded_resnet18(4);
    let on_grid = |s: f32| round_up_to_bits(s, EXACT_WEIGHT_SCALE_BITS) == s;
    let weight_only = m
        .quantized(&quant(Precision::Int8, Granularity::PerChannel))
        .unwrap();
    let scales = &weight_only.quant.int["layer1.0.conv1.weight"].scales;
    assert!(
        !scales.iter().all(|&s| on_grid(s)),
        "weight-only scales need no grid"
    );
    let opts = CompressOptions {
        quant: quant(Precision::Int8, Granularity::PerChannel),
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let photo = vec![0.5f32; 3 * 224 * 224];
    let q = pollster::block_on(compress(
        &m,
        &opts,
        &[],
        &[photo],
        1,
        &Backend::cpu(),
        |_| async { true },
    ))
    .unwrap();
    for (key, t) in &q.quant.int {
        assert!(
            t.scales.iter().all(|&s| on_grid(s)),
            "{key}: scale off the grid"
        );
        // Rounding up never clips: every weight still fits in ±127 steps.
        let original = &weight_only.quant.int[key];
        for (a, b) in t.scales.iter().zip(&original.scales) {
            assert!(a >= b && *a <= b * (1.0 + 1.0 / 16.0), "{key}: {b} → {a}");
        }
    }
}

#[test]
fn damaged_files_and_impossible_requests_are_refused() {
    let m = Model::seeded_resnet18(3);
    let q = m
        .quantized(&quant(Precision::Int8, Granularity::PerChannel))
        .unwrap();
    let (raw, meta) = read_raw(&q.to_safetensors().unwrap()).unwrap();
    let meta: std::collections::HashMap<String, String> = meta;

    // A missing scale.
    let mut r = raw.clone();
    r.remove("fc.weight_scale");
    let err = Model::from_bytes(&write_raw(&r, meta.clone()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("fc.weight_scale"), "{err}");

    // Values stored as another type than the metadata says.
    let mut r = raw.clone();
    let w = r.get_mut("fc.weight").unwrap();
    w.dtype = Dtype::U8;
    let err = Model::from_bytes(&write_raw(&r, meta.clone()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("I8"), "{err}");

    // A negative scale.
    let mut r = raw.clone();
    let s = r.get_mut("fc.weight_scale").unwrap();
    s.bytes[..4].copy_from_slice(&(-1.0f32).to_le_bytes());
    let err = Model::from_bytes(&write_raw(&r, meta.clone()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("scale"), "{err}");

    // Quantized models are not compressed again.
    assert!(q.pruned(&PruneOptions::default()).is_err());
    assert!(
        q.quantized(&quant(Precision::Int8, Granularity::PerChannel))
            .is_err()
    );

    // int4 with quantized activations, and activation quantization without images.
    let opts = CompressOptions {
        quant: quant(Precision::Int4, Granularity::PerChannel),
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let err = run(&m, &opts, &images()).unwrap_err();
    assert!(err.to_string().contains("int4"), "{err}");
    let opts = CompressOptions {
        quant: quant(Precision::Int8, Granularity::PerChannel),
        act_quant: Some(Calibration::MinMax),
        ..Default::default()
    };
    let err = run(&m, &opts, &[]).unwrap_err();
    assert!(err.to_string().contains("calibration images"), "{err}");

    // A per-layer precision for a layer that does not exist.
    let opts = QuantOptions {
        weights: Precision::Int8,
        overrides: BTreeMap::from([("layer9.conv".to_string(), Precision::F32)]),
        ..Default::default()
    };
    assert!(m.quantized(&opts).is_err());
}

#[test]
fn cancelling_stops_the_run() {
    let m = Model::seeded_resnet18(3);
    let opts = CompressOptions {
        prune: PruneOptions {
            ratio: 0.3,
            ..Default::default()
        },
        quant: quant(Precision::Int8, Granularity::PerChannel),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let r = pollster::block_on(compress(&m, &opts, &[], &[], 4, &Backend::cpu(), |p| {
        seen.push(p.label.clone());
        async move { p.step < 2 }
    }));
    assert!(matches!(r, Err(Error::Cancelled)));
    assert_eq!(seen.len(), 2);
    assert!(seen[1].contains("int8"), "{seen:?}");
}

#[test]
fn file_names_say_what_the_file_is() {
    let mut o = CompressOptions::default();
    assert_eq!(o.file_stem("resnet18"), "resnet18-fp32");
    o.prune.ratio = 0.3;
    o.quant = quant(Precision::Int8, Granularity::PerChannel);
    assert_eq!(o.file_stem("resnet18"), "resnet18-c30-int8");
    o.act_quant = Some(Calibration::MinMax);
    o.recalibrate_bn = true;
    o.sparsity.sparsity = 0.5;
    assert_eq!(o.file_stem("resnet18"), "resnet18-c30-s50-int8a8-bn");
    let o = CompressOptions {
        quant: quant(Precision::Int4, Granularity::Group(32)),
        ..Default::default()
    };
    assert_eq!(o.file_stem("resnet18"), "resnet18-int4g32");
}

#[test]
fn bias_correction_moves_quantized_outputs_back_towards_float() {
    let m = Model::seeded_resnet18(3);
    let photos: Vec<Vec<f32>> = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]
        .iter()
        .map(|n| {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("www/samples")
                .join(n);
            m.preprocess().run(&std::fs::read(p).unwrap()).unwrap()
        })
        .collect();
    let float = logits(&m, &images());
    let kl = |bias_correction: bool| {
        let q = run(
            &m,
            &CompressOptions {
                quant: quant(Precision::Int4, Granularity::PerChannel),
                bias_correction,
                ..Default::default()
            },
            &photos,
        )
        .unwrap();
        modelslim::compress::agreement(&float, &logits(&q, &images())).kl
    };
    let (plain, corrected) = (kl(false), kl(true));
    eprintln!("int4 mean KL to float: {plain:.5} plain, {corrected:.5} bias-corrected");
    assert!(corrected < plain);
    // It needs images.
    let opts = CompressOptions {
        quant: quant(Precision::Int8, Granularity::PerChannel),
        bias_correction: true,
        ..Default::default()
    };
    assert!(run(&m, &opts, &[]).is_err());
}
