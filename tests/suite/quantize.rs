//! Weight quantization: the product's int8/int4 values + scales, checked against the ONNX
//! QuantizeLinear/DequantizeLinear definitions (quoted in src/compress/quantize.rs).

use modelslim::model::Model;
use modelslim::quant::{Granularity, qmax, quantize, round_to_f16};
use modelslim::tensor::HostTensor;

fn conv_weight() -> HostTensor {
    Model::seeded_resnet18(21).weights["layer2.0.conv1.weight"].clone()
}

#[test]
fn per_channel_int8_scales_match_a_reference_and_error_is_half_a_step() {
    let w = conv_weight();
    let q = quantize(&w, 8, Granularity::PerChannel).unwrap();
    let per = w.shape[1..].iter().product::<usize>();
    assert_eq!(q.scale_shape, vec![w.shape[0]]);
    for (o, &s) in q.scales.iter().enumerate() {
        // Reference: max |w| of the output channel over 127.
        let m = w.data[o * per..(o + 1) * per]
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()));
        assert_eq!(s, m / 127.0, "channel {o}");
    }
    let d = q.dequantize();
    for (i, (a, b)) in w.data.iter().zip(&d.data).enumerate() {
        assert!(
            (a - b).abs() <= q.scale_of(i) / 2.0 * (1.0 + 1e-6),
            "element {i}"
        );
    }
    assert!(q.values.iter().all(|v| (-127..=127).contains(&(*v as i32))));
    // The largest magnitude of each channel maps to ±127 exactly.
    assert!(q.values.iter().any(|v| v.abs() == 127));
}

#[test]
fn per_tensor_int8_has_one_scale() {
    let w = conv_weight();
    let q = quantize(&w, 8, Granularity::PerTensor).unwrap();
    let m = w.data.iter().fold(0f32, |a, v| a.max(v.abs()));
    assert_eq!(q.scales, vec![m / 127.0]);
    assert!(q.scale_shape.is_empty());
    let d = q.dequantize();
    let step = q.scales[0];
    assert!(
        w.data
            .iter()
            .zip(&d.data)
            .all(|(a, b)| (a - b).abs() <= step / 2.0 * (1.0 + 1e-6))
    );
}

#[test]
fn grouped_int4_blocks_along_the_input_axis() {
    let w = conv_weight(); // [128, 64, 3, 3]
    let q = quantize(&w, 4, Granularity::Group(32)).unwrap();
    assert_eq!(q.scale_shape, vec![128, 2, 3, 3]);
    assert_eq!(q.scales.len(), 128 * 2 * 9);
    assert_eq!(qmax(4), 7);
    assert!(q.values.iter().all(|v| (-7..=7).contains(&(*v as i32))));
    // Scale of block (o=5, b=1, ky=2, kx=0): max over input channels 32..64 at that position / 7.
    let at = |o: usize, c: usize, ky: usize, kx: usize| w.data[((o * 64 + c) * 3 + ky) * 3 + kx];
    let m = (32..64).fold(0f32, |a, c| a.max(at(5, c, 2, 0).abs()));
    assert_eq!(q.scales[((5 * 2 + 1) * 3 + 2) * 3], m / 7.0);
    let d = q.dequantize();
    for (i, (a, b)) in w.data.iter().zip(&d.data).enumerate() {
        assert!(
            (a - b).abs() <= q.scale_of(i) / 2.0 * (1.0 + 1e-6),
            "element {i}"
        );
    }
}

#[test]
fn rounding_is_ties_to_even_and_zeros_stay_zero() {
    // Scale 1/127 · 2 → values 0.5 and 1.5 steps round to 0 and 2.
    let t = HostTensor::new(
        vec![4],
        vec![2.0, 0.5 * 2.0 / 127.0, 1.5 * 2.0 / 127.0, -2.0],
    );
    let q = quantize(&t, 8, Granularity::PerTensor).unwrap();
    assert_eq!(q.values, vec![127, 0, 2, -127]);
    let zeros = HostTensor::new(vec![2, 3], vec![0.0; 6]);
    let q = quantize(&zeros, 8, Granularity::PerChannel).unwrap();
    assert_eq!(q.scales, vec![1.0, 1.0]);
    assert!(q.values.iter().all(|v| *v == 0));
    assert!(quantize(&zeros, 9, Granularity::PerTensor).is_err());
    assert!(quantize(&zeros, 4, Granularity::Group(0)).is_err());
}

#[test]
fn fp16_rounding_is_within_half_precision() {
    let w = conv_weight();
    let h = round_to_f16(&w);
    for (a, b) in w.data.iter().zip(&h.data) {
        assert!(
            (a - b).abs() <= a.abs() * 2f32.powi(-11) + 6e-8,
            "{a} vs {b}"
        );
    }
}
