//! Seeded weights in torchvision's layout, for tests and for the offline demo page.
//!
//! Real ImageNet weights cannot be downloaded everywhere (not on CI, not offline); a
//! deterministic generator gives every engine the same network to agree on. Convolutions are
//! He-initialised (normal, fan-out, as torchvision does), batch norms get non-trivial running
//! statistics, the classifier PyTorch's default uniform init. Predictions are meaningless.

use crate::rng::Rng;
use crate::tensor::{HostTensor, StateDict};

/// Deterministic weights for every `(name, shape)` pair, in the given order.
pub fn seeded_state_dict(shapes: &[(String, Vec<usize>)], seed: u64) -> StateDict {
    let mut rng = Rng::new(seed);
    let mut out = StateDict::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if shape.len() == 4 {
            // Conv: kaiming_normal_(mode="fan_out", nonlinearity="relu").
            let fan_out = (shape[0] * shape[2] * shape[3]) as f64;
            let std = (2.0 / fan_out).sqrt();
            (0..n).map(|_| (rng.normal() * std) as f32).collect()
        } else if name.ends_with("running_var") {
            (0..n).map(|_| rng.range(0.5, 2.0)).collect()
        } else if name.ends_with("running_mean") {
            (0..n).map(|_| (rng.normal() * 0.1) as f32).collect()
        } else if let Some(fan_in) = linear_fan_in(shapes, name, shape) {
            // Linear: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n).map(|_| rng.range(-bound, bound)).collect()
        } else if name.ends_with("weight") {
            // BN gamma
            (0..n).map(|_| rng.range(0.5, 1.5)).collect()
        } else {
            // BN beta and any other bias
            (0..n).map(|_| (rng.normal() * 0.1) as f32).collect()
        };
        out.insert(name.clone(), HostTensor::new(shape.clone(), data));
    }
    out
}

/// The input width of a linear layer's weight `[out, in]`, or of the bias beside it.
fn linear_fan_in(shapes: &[(String, Vec<usize>)], name: &str, shape: &[usize]) -> Option<usize> {
    if shape.len() == 2 {
        return Some(shape[1]);
    }
    let weight = format!("{}weight", name.strip_suffix("bias")?);
    shapes
        .iter()
        .find(|(k, s)| *k == weight && s.len() == 2)
        .map(|(_, s)| s[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let shapes = vec![
            ("conv1.weight".to_string(), vec![8, 3, 3, 3]),
            ("bn1.running_var".to_string(), vec![8]),
            ("fc.weight".to_string(), vec![10, 8]),
            ("fc.bias".to_string(), vec![10]),
        ];
        let a = seeded_state_dict(&shapes, 7);
        let b = seeded_state_dict(&shapes, 7);
        let c = seeded_state_dict(&shapes, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            a["bn1.running_var"]
                .data
                .iter()
                .all(|v| (0.5..=2.0).contains(v))
        );
        let bound = 1.0 / (8f32).sqrt();
        assert!(a["fc.bias"].data.iter().all(|v| v.abs() <= bound));
        let w = &a["conv1.weight"].data;
        let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        assert!(var > 0.2 * 2.0 / 72.0 && var < 5.0 * 2.0 / 72.0, "{var}");
    }
}
