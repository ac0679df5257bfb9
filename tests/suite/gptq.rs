//! GPTQ: one layer equals an independent numpy implementation of the paper's algorithm
//! (`tests/golden/gptq_reference.py` wrote the fixture); its output error on the calibration
//! inputs is never above round-to-nearest's; on a whole network it moves the outputs less than
//! round-to-nearest at int4.

use std::path::PathBuf;

use modelslim::backend::Backend;
use modelslim::compress::calibration::layer_statistics::Gram;
use modelslim::compress::linalg::add_gram;
use modelslim::compress::quantize::gptq::{
    Gptq, GptqOptions, gptq, layer_row_output_errors, output_error, row_output_errors,
};
use modelslim::compress::{Precision, QuantMethod, Settings};
use modelslim::model::Model;
use modelslim::model::Op;
use modelslim::predict::Captured;
use modelslim::session::{Batches, Session, no_progress};

fn fixture() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gptq_layer.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn numbers<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Vec<T> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Round-to-nearest with the same scales.
fn rtn(w: &[f32], scales: &[f32], qmax: i32) -> Vec<f32> {
    w.iter()
        .zip(scales)
        .map(|(x, s)| (x / s).round_ties_even().clamp(-qmax as f32, qmax as f32) * s)
        .collect()
}

#[test]
fn one_layer_equals_the_numpy_reference_and_beats_rounding() {
    let f = fixture();
    let (rows, cols) = (
        f["rows"].as_u64().unwrap() as usize,
        f["cols"].as_u64().unwrap() as usize,
    );
    let qmax = f["qmax"].as_i64().unwrap() as i32;
    let w: Vec<f32> = numbers(&f["w"]);
    let h: Vec<f64> = numbers(&f["h"]);
    let scales: Vec<f32> = numbers(&f["scales"]);
    let expected: Vec<i32> = numbers(&f["values"]);
    let opts = GptqOptions {
        damp: f["damp"].as_f64().unwrap(),
        act_order: f["act_order"].as_bool().unwrap(),
        block: f["block"].as_u64().unwrap() as usize,
    };
    let ours = gptq(&w, rows, cols, &h, |r, c| scales[r * cols + c], qmax, opts).unwrap();
    let ours: Vec<i32> = ours.iter().map(|&v| v as i32).collect();
    assert_eq!(ours, expected);

    let deq: Vec<f32> = ours
        .iter()
        .zip(&scales)
        .map(|(&q, s)| q as f32 * s)
        .collect();
    let (e_gptq, e_rtn) = (
        output_error(&w, &deq, rows, cols, &h),
        output_error(&w, &rtn(&w, &scales, qmax), rows, cols, &h),
    );
    eprintln!("output error: GPTQ {e_gptq:.3}, round-to-nearest {e_rtn:.3}");
    assert!(e_gptq < 0.9 * e_rtn, "GPTQ {e_gptq} vs RTN {e_rtn}");
}

/// Per row (output channel), the scale that maps its largest weight to `qmax`; one per weight.
fn row_scales(w: &[f32], rows: usize, cols: usize, qmax: i32) -> Vec<f32> {
    (0..rows)
        .flat_map(|r| {
            let m = w[r * cols..(r + 1) * cols]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            std::iter::repeat_n(m / qmax as f32, cols)
        })
        .collect()
}

/// A small deterministic generator, so that the random layers need no crate.
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

#[test]
fn output_error_is_never_above_round_to_nearest() {
    for (k, (rows, cols, samples, qmax)) in [
        (8, 16, 64, 7),
        (4, 36, 30, 7),
        (16, 24, 200, 127),
        (3, 9, 5, 7),
    ]
    .into_iter()
    .enumerate()
    {
        let mut seed = 17 + k as u64;
        let w: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed) as f32).collect();
        // Correlated inputs: each sample is a smoothed random vector.
        let mut h = vec![0f64; cols * cols];
        for _ in 0..samples {
            let raw: Vec<f64> = (0..cols).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f64> = (0..cols)
                .map(|i| raw[i] + 0.7 * raw[(i + 1) % cols])
                .collect();
            for i in 0..cols {
                for j in 0..cols {
                    h[i * cols + j] += x[i] * x[j];
                }
            }
        }
        let scales = row_scales(&w, rows, cols, qmax);
        for act_order in [false, true] {
            let opts = GptqOptions {
                act_order,
                block: 5,
                ..Default::default()
            };
            let q = gptq(&w, rows, cols, &h, |r, c| scales[r * cols + c], qmax, opts).unwrap();
            let deq: Vec<f32> = q.iter().zip(&scales).map(|(&v, s)| v as f32 * s).collect();
            let e_gptq = output_error(&w, &deq, rows, cols, &h);
            let e_rtn = output_error(&w, &rtn(&w, &scales, qmax), rows, cols, &h);
            assert!(
                e_gptq <= e_rtn * 1.000001,
                "case {k}, act_order {act_order}: GPTQ {e_gptq} > RTN {e_rtn}"
            );
        }
    }
}

/// A layer that sees fewer input rows than it has columns (a late conv on two photos) keeps
/// its rows instead of their Gram matrix, and GPTQ runs from them: the same integers, the same
/// SparseGPT zeros and the same output errors as the dense solver on `H = XᵀX`. Inputs are
/// correlated, one is always zero, some weights are exactly zero, and the blocks do not divide
/// the columns.
#[test]
fn few_input_rows_give_the_dense_solvers_integers() {
    let (rows, cols, samples, qmax) = (24, 300, 40, 7);
    let mut seed = 5;
    let mut x = vec![0f32; samples * cols];
    for s in 0..samples {
        let raw: Vec<f64> = (0..cols).map(|_| lcg(&mut seed)).collect();
        for i in 0..cols {
            x[s * cols + i] = if i == 7 {
                0.0
            } else {
                (raw[i] + 0.7 * raw[(i + 1) % cols]) as f32
            };
        }
    }
    let op = Op::Linear {
        name: "fc".into(),
        in_features: cols,
        out_features: rows,
    };
    let mut gram = Gram::new(&op, samples, 1, 1).unwrap();
    gram.add(&Captured {
        value: 0,
        dims: [samples, cols, 1, 1],
        data: x.clone(),
    });
    assert!(
        gram.patches_kept.is_some() && gram.h.is_empty(),
        "{samples} rows of {cols} columns are kept"
    );
    let mut h = vec![0f64; cols * cols];
    add_gram(&mut h, &x, &x, samples, cols, cols, true);

    let w: Vec<f32> = (0..rows * cols)
        .map(|i| {
            if i % 11 == 0 {
                0.0
            } else {
                lcg(&mut seed) as f32
            }
        })
        .collect();
    let scales = row_scales(&w, rows, cols, qmax);
    let opts = GptqOptions {
        block: 64,
        ..Default::default()
    };
    let dense = Gptq::new(&h, cols, opts).unwrap();
    let few = Gptq::for_layer(&gram, 0, opts).unwrap();
    let scale = |r: usize, c: usize| scales[r * cols + c];
    let (q_dense, q_few) = (
        dense.quantize(&w, rows, scale, qmax),
        few.quantize(&w, rows, scale, qmax),
    );
    let differ = q_dense.iter().zip(&q_few).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{differ} of {} integers differ", q_dense.len());

    // The output errors, from the rows and from H; GPTQ's well below rounding's.
    let deq: Vec<f32> = q_few
        .iter()
        .zip(&scales)
        .map(|(&v, s)| v as f32 * s)
        .collect();
    let rounded = rtn(&w, &scales, qmax);
    for d in [&deq, &rounded] {
        let (from_rows, from_h) = (
            layer_row_output_errors(&w, d, rows, &gram, 0),
            row_output_errors(&w, d, rows, cols, &h),
        );
        for (a, b) in from_rows.iter().zip(&from_h) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{a} vs {b}");
        }
    }
    let (e_gptq, e_rtn) = (
        output_error(&w, &deq, rows, cols, &h),
        output_error(&w, &rounded, rows, cols, &h),
    );
    assert!(e_gptq < 0.7 * e_rtn, "GPTQ {e_gptq} vs RTN {e_rtn}");

    // SparseGPT's sweep (columns in place): the same zeros and values to rounding.
    let in_place = GptqOptions {
        act_order: false,
        ..opts
    };
    let sparse_dense = Gptq::new(&h, cols, in_place)
        .unwrap()
        .sparsify(&w, rows, 0.5);
    let sparse_few = Gptq::for_layer(&gram, 0, in_place)
        .unwrap()
        .sparsify(&w, rows, 0.5);
    for (a, b) in sparse_dense.iter().zip(&sparse_few) {
        assert_eq!(*a == 0.0, *b == 0.0);
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
    }
}

/// GPTQ's integers on one fixed layer whose statistics cannot support it well (120 samples
/// for 300 columns, correlated): the same on every CPU, thread count and build, to the last
/// integer. The checksum was taken once; a machine whose SIMD width or thread count changed
/// which integers are chosen (as a BLAS-like crate's kernels did) fails here. Run under an
/// emulated AVX2-only CPU by `FULL=1 bash scripts/emulated-cpu.sh`.
#[test]
fn gptq_chooses_the_same_integers_on_every_cpu() {
    let (rows, cols, samples) = (24, 300, 120);
    let mut seed = 99;
    let w: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed) as f32).collect();
    let mut x = vec![0f32; samples * cols];
    for r in 0..samples {
        let raw: Vec<f64> = (0..cols).map(|_| lcg(&mut seed)).collect();
        for i in 0..cols {
            x[r * cols + i] = (raw[i] + 0.9 * raw[(i + 7) % cols]) as f32;
        }
    }
    let mut h = vec![0f64; cols * cols];
    modelslim::compress::linalg::add_gram(&mut h, &x, &x, samples, cols, cols, true);
    let scale = |r: usize, _: usize| {
        w[r * cols..(r + 1) * cols]
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()))
            / 7.0
    };
    let q = gptq(&w, rows, cols, &h, scale, 7, GptqOptions::default()).unwrap();
    // FNV-1a over the integers.
    let sum = q.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &v| {
        (h ^ v as u8 as u64).wrapping_mul(0x100_0000_01b3)
    });
    eprintln!("GPTQ integers' checksum {sum:#018x}");
    assert_eq!(
        sum, EXPECTED_CHECKSUM,
        "GPTQ chose other integers on this machine"
    );
}

const EXPECTED_CHECKSUM: u64 = 0x4ae3_4ce4_7a68_2427;

/// Every file under `tests/fixtures/imagenet-subset/{part}`, in path order.
fn photos(part: &str) -> Vec<(String, Vec<u8>)> {
    let mut stack = vec![
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/imagenet-subset")
            .join(part),
    ];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Agreement and mean KL of int4 per-channel ResNet18 (seeded weights) against fp32 on the 50
/// subset photos, calibrated on the 16 others.
fn int4_on_held_out_photos(method: &str) -> (f64, f64) {
    let (calib, held_out) = (photos("calib"), photos("val"));
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(Model::seeded_resnet18(5), "seeded").unwrap();
    for (name, bytes) in calib {
        s.keep_photo(name, bytes).unwrap();
    }
    let settings = Settings {
        quant: Precision::Int4,
        quant_method: method.parse().unwrap(),
        ..Settings::default()
    };
    pollster::block_on(s.compress(&settings, no_progress)).unwrap();
    let compressed =
        Model::from_bytes(&s.file(modelslim::session::FileFormat::Safetensors).unwrap()).unwrap();
    // Score the compressed file against the original on the held-out photos.
    let eval = Session::new(Backend::cpu(), Batches::NATIVE);
    eval.load(compressed, "compressed").unwrap();
    for (name, bytes) in held_out {
        eval.keep_photo(name, bytes).unwrap();
    }
    let e =
        pollster::block_on(eval.evaluate(Some(Model::seeded_resnet18(5)), no_progress)).unwrap();
    (e.agreement.unwrap(), e.kl.unwrap())
}

#[test]
fn gptq_int4_resnet18_moves_outputs_less_than_round_to_nearest() {
    assert_eq!("gptq".parse::<QuantMethod>().unwrap(), QuantMethod::Gptq);
    let (a_rtn, kl_rtn) = int4_on_held_out_photos("rtn");
    let (a_gptq, kl_gptq) = int4_on_held_out_photos("gptq");
    eprintln!(
        "int4 per-channel, held-out photos: RTN agreement {a_rtn:.3} KL {kl_rtn:.4}; GPTQ agreement {a_gptq:.3} KL {kl_gptq:.4}"
    );
    assert!(kl_gptq < 0.8 * kl_rtn, "KL: GPTQ {kl_gptq} vs RTN {kl_rtn}");
    assert!(a_gptq >= a_rtn, "agreement: GPTQ {a_gptq} vs RTN {a_rtn}");
}
