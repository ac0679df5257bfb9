//! Batch-norm recalibration re-estimates running statistics from calibration images.

use crate::common;
use common::sample_input;
use modelslim::backend::Backend;
use modelslim::compress::{PruneOptions, recalibrate_bn};
use modelslim::model::Model;

/// The stem conv (7×7, stride 2, padding 3) computed naively on the host.
fn stem_conv(w: &[f32], x: &[f32], out_ch: usize) -> Vec<Vec<f64>> {
    let (s, o) = (224usize, 112usize);
    let mut out = vec![Vec::with_capacity(o * o); out_ch];
    for (c, plane) in out.iter_mut().enumerate() {
        for oy in 0..o {
            for ox in 0..o {
                let mut acc = 0f64;
                for ci in 0..3 {
                    for ky in 0..7 {
                        let iy = (oy * 2 + ky) as isize - 3;
                        if iy < 0 || iy >= s as isize {
                            continue;
                        }
                        for kx in 0..7 {
                            let ix = (ox * 2 + kx) as isize - 3;
                            if ix < 0 || ix >= s as isize {
                                continue;
                            }
                            let wv = w[((c * 3 + ci) * 7 + ky) * 7 + kx] as f64;
                            acc += wv * x[(ci * s + iy as usize) * s + ix as usize] as f64;
                        }
                    }
                }
                plane.push(acc);
            }
        }
    }
    out
}

#[test]
fn first_batch_norm_gets_the_statistics_of_its_input() {
    let model = Model::seeded_resnet18(11);
    let images = vec![sample_input("chelsea.png"), sample_input("coffee.png")];
    let recal = pollster::block_on(recalibrate_bn(
        &model,
        Backend::cpu(),
        std::slice::from_ref(&images),
    ))
    .unwrap();

    let w = &model.weights["conv1.weight"].data;
    let planes: Vec<Vec<Vec<f64>>> = images.iter().map(|x| stem_conv(w, x, 64)).collect();
    let mean = &recal.weights["bn1.running_mean"].data;
    let var = &recal.weights["bn1.running_var"].data;
    for c in 0..64 {
        let values: Vec<f64> = planes.iter().flat_map(|p| p[c].iter().copied()).collect();
        let n = values.len() as f64;
        let m = values.iter().sum::<f64>() / n;
        let v = values.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        assert!(
            (mean[c] as f64 - m).abs() <= 1e-4 + 1e-3 * m.abs(),
            "channel {c}: mean {} vs {m}",
            mean[c]
        );
        assert!(
            (var[c] as f64 - v).abs() <= 1e-3 * v,
            "channel {c}: var {} vs {v}",
            var[c]
        );
    }
    // Every batch norm changed; nothing else did.
    for (k, t) in &recal.weights {
        let changed = t != &model.weights[k];
        assert_eq!(changed, k.contains("running_"), "{k}");
    }
}

#[test]
fn recalibration_works_on_pruned_widths_and_needs_images() {
    let pruned = Model::seeded_resnet18(12)
        .pruned(&PruneOptions {
            ratio: 0.5,
            ..Default::default()
        })
        .unwrap();
    let recal = pollster::block_on(recalibrate_bn(
        &pruned,
        Backend::cpu(),
        &[
            vec![sample_input("rocket.jpg")],
            vec![sample_input("astronaut.png")],
        ],
    ))
    .unwrap();
    assert_eq!(recal.arch, pruned.arch);
    assert!(
        recal.weights["layer4.1.bn2.running_var"]
            .data
            .iter()
            .all(|v| *v >= 0.0 && v.is_finite())
    );
    let err = pollster::block_on(recalibrate_bn(&pruned, Backend::cpu(), &[])).unwrap_err();
    assert!(err.to_string().contains("calibration image"), "{err}");
}
