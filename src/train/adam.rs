//! Adam (Kingma & Ba) on device tensors, with a learning rate that warms up linearly and then
//! decays along a cosine to zero — the schedule fine-tuning recipes use, because a few hundred
//! steps from a good starting point must neither jolt it at the start nor stop mid-stride.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

/// A learning rate for each step of a run of `steps`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub peak: f32,
    pub steps: usize,
    pub warmup: usize,
}

impl Schedule {
    /// Warm-up over the first 10 % of the steps (at least one).
    pub fn new(peak: f32, steps: usize) -> Self {
        Schedule {
            peak,
            steps,
            warmup: (steps / 10).max(1),
        }
    }

    /// The rate of step `step` (0-based).
    pub fn rate(&self, step: usize) -> f32 {
        if step < self.warmup {
            return self.peak * (step + 1) as f32 / self.warmup as f32;
        }
        let span = (self.steps.saturating_sub(self.warmup)).max(1) as f32;
        let t = ((step - self.warmup) as f32 / span).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
    }
}

/// Adam's moments per tensor.
pub struct Adam {
    beta1: f32,
    beta2: f32,
    eps: f32,
    step: i32,
    moments: BTreeMap<String, (Tensor<1>, Tensor<1>)>,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            moments: BTreeMap::new(),
        }
    }
}

impl Adam {
    /// Call once per step before [`Adam::update`]s.
    pub fn next_step(&mut self) {
        self.step += 1;
    }

    /// The new value of tensor `key` from its value and gradient (both without autodiff).
    /// A zero gradient leaves a value exactly where it is, which keeps masked weights at zero.
    pub fn update(&mut self, key: &str, value: Tensor<1>, grad: Tensor<1>, rate: f32) -> Tensor<1> {
        let (m, v) = match self.moments.remove(key) {
            Some((m, v)) => (
                m.mul_scalar(self.beta1) + grad.clone().mul_scalar(1.0 - self.beta1),
                v.mul_scalar(self.beta2) + grad.clone().square().mul_scalar(1.0 - self.beta2),
            ),
            None => (
                grad.clone().mul_scalar(1.0 - self.beta1),
                grad.square().mul_scalar(1.0 - self.beta2),
            ),
        };
        let c1 = 1.0 - self.beta1.powi(self.step.max(1));
        let c2 = 1.0 - self.beta2.powi(self.step.max(1));
        let delta = m
            .clone()
            .div_scalar(c1)
            .div(v.clone().div_scalar(c2).sqrt().add_scalar(self.eps))
            .mul_scalar(rate);
        self.moments.insert(key.to_string(), (m, v));
        value - delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_warms_up_then_decays_to_zero() {
        let s = Schedule::new(1.0, 100);
        assert_eq!(s.warmup, 10);
        assert!((s.rate(0) - 0.1).abs() < 1e-6);
        assert!((s.rate(9) - 1.0).abs() < 1e-6);
        assert!((s.rate(10) - 1.0).abs() < 1e-6);
        assert!((s.rate(55) - 0.5).abs() < 1e-2);
        assert!(s.rate(99) < 0.01);
        assert!((1..100).all(|i| i < 10 || s.rate(i) <= s.rate(i - 1)));
    }
}
