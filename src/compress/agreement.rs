//! How far a compressed model's answers are from the original's on the same photos: the share
//! with the same top-1 class and the mean KL divergence (paired, so far less noisy than two
//! accuracies on a few hundred photos).

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::backend::Backend;
use crate::model::Model;
use crate::predict::{Classifier, argmax, class_logits, softmax};

/// How a compressed model's outputs compare with the original's on the same images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Agreement {
    pub n: usize,
    /// Fraction of images with the same top-1 class.
    pub agreement: f64,
    /// Mean KL divergence of the compressed softmax from the original's (nats).
    pub kl: f64,
    /// The 95 % (Wilson) interval of `agreement`: how little a few photos tell.
    #[serde(default)]
    pub low: f64,
    #[serde(default)]
    pub high: f64,
}

/// Compare two sets of logits image by image (a single logit is a binary classifier's:
/// agreement on its sign, KL of its sigmoid).
pub fn agreement(reference: &[Vec<f32>], other: &[Vec<f32>]) -> Agreement {
    let mut tally = Tally::default();
    tally.add(reference, other);
    tally.agreement()
}

/// [`agreement`] gathered over several sets of images, one after the other: the same numbers
/// as one comparison of them all.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    n: usize,
    same: usize,
    kl: f64,
}

impl Tally {
    /// Add the next images' logits, image by image.
    pub fn add(&mut self, reference: &[Vec<f32>], other: &[Vec<f32>]) {
        for (a, b) in reference.iter().zip(other) {
            let (a, b) = (&class_logits(a)[..], &class_logits(b)[..]);
            self.n += 1;
            self.same += usize::from(argmax(a) == argmax(b));
            let (p, q) = (softmax(a), softmax(b));
            self.kl += p
                .iter()
                .zip(&q)
                .filter(|(p, _)| **p > 0.0)
                .map(|(p, q)| *p as f64 * ((*p as f64) / (*q as f64).max(1e-30)).ln())
                .sum::<f64>();
        }
    }

    /// The agreement of every image added.
    pub fn agreement(&self) -> Agreement {
        let (n, same) = (self.n, self.same);
        let interval = crate::scores::Count::of(same, n);
        Agreement {
            n,
            agreement: if n > 0 { same as f64 / n as f64 } else { 0.0 },
            kl: if n > 0 { self.kl / n as f64 } else { 0.0 },
            low: interval.as_ref().map_or(0.0, |c| c.low),
            high: interval.as_ref().map_or(1.0, |c| c.high),
        }
    }
}

/// Logits of `model` for `images`, in batches.
pub async fn logits_of(
    model: &Model,
    backend: &Backend,
    images: &[Vec<f32>],
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let c = Classifier::for_logits(model, backend.clone())?;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        out.extend(c.logits(chunk).await?);
    }
    Ok(out)
}
