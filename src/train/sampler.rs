//! The photos a distillation trains on: a seeded split into training and held-back photos,
//! then epochs over the training photos in a new order each time, as random views (mixed with
//! another photo's view with mixup).

use super::jitter::{mix, random_view};
use super::options::DistillOptions;
use crate::Result;
use crate::preprocess::Preprocess;
use crate::rng::Rng;

/// The training photos, drawn in epochs in a new seeded order each time, as random views
/// (mixed with another photo's view with mixup).
pub(super) struct Sampler<'a> {
    images: &'a [Vec<f32>],
    pre: Preprocess,
    augment: bool,
    mixup: bool,
    rng: Rng,
    train: Vec<usize>,
    shuffled: Vec<usize>,
    cursor: usize,
}

impl<'a> Sampler<'a> {
    /// A seeded shuffle of the photos, the last `opts.held_out(n)` of which are held back:
    /// the sampler over the rest, and the held-back photos' indices.
    pub(super) fn new(
        images: &'a [Vec<f32>],
        pre: Preprocess,
        opts: &DistillOptions,
    ) -> (Self, Vec<usize>) {
        let mut rng = Rng::new(opts.seed);
        let mut order: Vec<usize> = (0..images.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let held = order.split_off(images.len() - opts.held_out(images.len()));
        let sampler = Sampler {
            images,
            pre,
            augment: opts.augment,
            mixup: opts.mixup,
            rng,
            shuffled: order.clone(),
            cursor: order.len(),
            train: order,
        };
        (sampler, held)
    }

    pub(super) fn train_len(&self) -> usize {
        self.train.len()
    }

    fn view(&mut self, i: usize) -> Result<Vec<f32>> {
        if self.augment {
            random_view(&self.images[i], &self.pre, &mut self.rng)
        } else {
            Ok(self.images[i].clone())
        }
    }

    /// The next `n` photos' views (fewer when there are fewer photos).
    pub(super) fn batch(&mut self, n: usize) -> Result<Vec<Vec<f32>>> {
        let mut picks = Vec::with_capacity(n);
        while picks.len() < n.min(self.train.len().max(1)) {
            if self.cursor >= self.shuffled.len() {
                for i in (1..self.shuffled.len()).rev() {
                    self.shuffled.swap(i, self.rng.below(i + 1));
                }
                self.cursor = 0;
            }
            picks.push(self.shuffled[self.cursor]);
            self.cursor += 1;
        }
        let mut views = picks
            .iter()
            .map(|&i| self.view(i))
            .collect::<Result<Vec<_>>>()?;
        if self.mixup {
            for v in views.iter_mut() {
                let other = self.train[self.rng.below(self.train.len())];
                let other = self.view(other)?;
                mix(v, &other, self.rng.uniform() as f32);
            }
        }
        Ok(views)
    }
}
