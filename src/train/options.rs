//! The options of distillation and of synthesized images, with their ranges, defined once:
//! the CLI's flags, the page's forms and the checks before a run all read [`DISTILL`] and
//! [`SYNTH`]. Outside the training feature, so that the page's smaller module can describe
//! the forms before the training module is fetched.

use serde::{Deserialize, Serialize};

use crate::spec::{Field, Kind, Range, check_ranges};
use crate::{Error, Result};

/// How a distillation run goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillOptions {
    /// Optimizer steps (one batch each).
    pub steps: usize,
    /// Adam's peak learning rate.
    pub lr: f32,
    /// Photos per step.
    pub batch: usize,
    /// Softens both outputs before they are compared; the loss is scaled by its square so the
    /// gradients keep their size (Hinton et al.).
    pub temperature: f32,
    /// Random views (crop, mirror, brightness, contrast) instead of the photos as they are.
    pub augment: bool,
    /// Blend each view with another photo's view (mixup, weights drawn uniformly): images
    /// between the photos, on which the student learns the teacher's function where the few
    /// photos alone leave it unconstrained ("function matching", Beyer et al. 2022). On by
    /// default: on EfficientNet-Lite0 it raised held-out agreement and lowered the KL for
    /// both int4 and pruning (docs/distillation.md).
    pub mixup: bool,
    /// Train the integer grids' scales too (LSQ), where activations are not quantized. Off by
    /// default: on EfficientNet-Lite0 it made the held-back photos worse while the training
    /// loss fell (docs/distillation.md).
    pub learn_scales: bool,
    /// Weight of feature matching: the student's residual block outputs pulled towards the
    /// teacher's (mean squared difference relative to the teacher's mean square, averaged over
    /// the blocks whose widths match); 0 leaves it out.
    pub features: f32,
    /// Weight of matching the features the classifier's pooling reads (the last
    /// convolutional features), mean squared difference relative to the teacher's mean
    /// square; 0 leaves it out. With a frozen classifier this is MiR's loss (Wang et al.
    /// 2022): the layers before the head learn to give the head what the teacher gave it.
    pub head_features: f32,
    /// Keep the classifier's weights as they are: with few photos, training it mostly fits
    /// those photos, and the pruned layers before it carry the change.
    pub freeze_head: bool,
    /// Photos held back from training to measure agreement on; `None` picks a fifth of them
    /// (at least one when there are two or more, at most 50).
    pub held_out: Option<usize>,
    /// Measure the held-back photos every this many steps (and keep the best model); 0 picks
    /// ten times per run.
    pub eval_every: usize,
    pub seed: u64,
}

impl Default for DistillOptions {
    fn default() -> Self {
        DistillOptions {
            steps: 200,
            lr: 5e-5,
            batch: 16,
            temperature: 1.0,
            augment: true,
            mixup: true,
            learn_scales: false,
            features: 0.0,
            head_features: 0.0,
            freeze_head: false,
            held_out: None,
            eval_every: 0,
            seed: 0,
        }
    }
}

impl DistillOptions {
    /// The page's starting point: 50 steps of 4 photos, a short run a browser tab finishes
    /// while the user waits (the CLI's default is 200 of 16).
    pub fn for_browser() -> Self {
        DistillOptions {
            steps: 50,
            batch: 4,
            ..Default::default()
        }
    }

    /// Why these options cannot run, if they cannot.
    pub fn check(&self, photos: usize) -> Result<()> {
        check_ranges(DISTILL, self)?;
        let bad = |m: String| Err(Error::Invalid(m));
        if photos == 0 {
            return bad("distillation needs photos (any, unlabelled): add some".into());
        }
        if self.held_out(photos) >= photos {
            return bad(format!(
                "{} photos held back leaves none of the {photos} to train on",
                self.held_out(photos)
            ));
        }
        Ok(())
    }

    /// How many of `photos` are held back.
    pub fn held_out(&self, photos: usize) -> usize {
        self.held_out.unwrap_or(if photos >= 2 {
            (photos / 5).clamp(1, 50)
        } else {
            0
        })
    }

    /// Steps between measurements of the held-back photos.
    pub fn eval_every(&self) -> usize {
        if self.eval_every > 0 {
            self.eval_every
        } else {
            self.steps.div_ceil(10).max(1)
        }
    }
}

/// How images are synthesized.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthOptions {
    /// Images to make.
    pub n: usize,
    pub seed: u64,
    /// Optimizer steps per batch.
    pub steps: usize,
    /// Adam's learning rate on the normalised pixels.
    pub lr: f32,
    /// Images optimised together (the statistics are the batch's).
    pub batch: usize,
    /// The images' side; `None`: the side the network's preprocessing resizes photos to.
    pub side: Option<usize>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            n: 32,
            seed: 0,
            steps: 100,
            lr: 0.1,
            batch: 16,
            side: None,
        }
    }
}

/// A number field of these options.
const fn number(
    name: &'static str,
    label: &'static str,
    what: &'static str,
    kind: Kind,
    range: Range,
    help: &'static str,
) -> Field {
    Field {
        range: Some(range),
        what,
        ..Field::new(name, label, "training", kind, help)
    }
}

/// A switch of these options.
const fn switch(name: &'static str, label: &'static str, help: &'static str) -> Field {
    Field {
        advanced: true,
        ..Field::new(name, label, "training", Kind::Bool, help)
    }
}

/// The most steps a distillation takes and photos per step: a typo must not start a
/// week-long run, and a batch's activations are kept for the backward pass (EfficientNet-Lite0:
/// about 60 MB per photo).
pub const MAX_DISTILL_STEPS: f64 = 100_000.0;
pub const MAX_DISTILL_BATCH: f64 = 64.0;

/// [`DistillOptions`]' fields.
pub const DISTILL: &[Field] = &[
    number(
        "steps",
        "Steps",
        "steps",
        Kind::Integer,
        Range::closed(1.0, MAX_DISTILL_STEPS),
        "Optimizer steps, one batch each.",
    ),
    number(
        "lr",
        "Learning rate",
        "the learning rate",
        Kind::Number,
        Range::above(0.0, 1.0),
        "Adam's peak learning rate (warm-up, then cosine decay).",
    ),
    number(
        "batch",
        "Batch",
        "batch",
        Kind::Integer,
        Range::closed(1.0, MAX_DISTILL_BATCH),
        "Photos per step.",
    ),
    number(
        "temperature",
        "Temperature",
        "the temperature",
        Kind::Number,
        Range::above(0.0, 100.0),
        "Softens both outputs before they are compared.",
    ),
    number(
        "features",
        "Feature matching",
        "the feature-matching weight",
        Kind::Number,
        Range::closed(0.0, 100.0),
        "Weight of matching the residual blocks' outputs to the original's (0: outputs only).",
    ),
    number(
        "head_features",
        "Head feature matching",
        "the head-feature-matching weight",
        Kind::Number,
        Range::closed(0.0, 100.0),
        "Weight of matching the features the classifier's pooling reads to the original's (0: left out).",
    ),
    number(
        "held_out",
        "Photos held back",
        "the photos held back",
        Kind::OptionalInteger,
        Range::closed(0.0, 10_000.0),
        "Photos kept out of training to measure agreement on; empty: a fifth, at most 50.",
    ),
    number(
        "seed",
        "Seed",
        "the seed",
        Kind::Integer,
        Range::closed(0.0, 9_007_199_254_740_991.0),
        "Seeds the random views and mixup.",
    ),
    Field {
        advanced: true,
        ..number(
            "eval_every",
            "Measure every",
            "the steps between measurements",
            Kind::Integer,
            Range::closed(0.0, MAX_DISTILL_STEPS),
            "Measure the held-back photos every this many steps and keep the best model; 0: ten times per run.",
        )
    },
    switch(
        "augment",
        "Random views",
        "Random crops, mirrors, brightness and contrast instead of the photos as they are.",
    ),
    switch(
        "mixup",
        "Mixup",
        "Blend each view with another photo's view.",
    ),
    switch(
        "freeze_head",
        "Freeze the classifier",
        "Keep the classifier's weights as they are; the layers before it learn.",
    ),
    switch(
        "learn_scales",
        "Learn the scales",
        "Train the integer grids' scales too (LSQ), where activations are not quantized.",
    ),
];

/// The most images one synthesis makes, steps per batch, images per batch and pixels per
/// side: the batch's activations are kept for the backward pass.
pub const MAX_IMAGES: f64 = 1024.0;
pub const MAX_SYNTH_STEPS: f64 = 10_000.0;
pub const MAX_SYNTH_BATCH: f64 = 32.0;
pub const MAX_SIDE: usize = 512;

/// [`SynthOptions`]' fields.
pub const SYNTH: &[Field] = &[
    number(
        "n",
        "Images",
        "the number of images",
        Kind::Integer,
        Range::closed(1.0, MAX_IMAGES),
        "Images to make.",
    ),
    number(
        "steps",
        "Steps",
        "the steps per batch",
        Kind::Integer,
        Range::closed(1.0, MAX_SYNTH_STEPS),
        "Optimizer steps per batch.",
    ),
    number(
        "lr",
        "Learning rate",
        "the learning rate",
        Kind::Number,
        Range::above(0.0, 10.0),
        "Adam's learning rate on the normalised pixels.",
    ),
    number(
        "batch",
        "Batch",
        "the images per batch",
        Kind::Integer,
        Range::closed(1.0, MAX_SYNTH_BATCH),
        "Images optimised together (the statistics are the batch's).",
    ),
    number(
        "side",
        "Side",
        "the side",
        Kind::OptionalInteger,
        Range::closed(16.0, MAX_SIDE as f64),
        "The images' side in pixels; empty: the side the network's preprocessing resizes photos to.",
    ),
    number(
        "seed",
        "Seed",
        "the seed",
        Kind::Integer,
        Range::closed(0.0, 9_007_199_254_740_991.0),
        "Seeds the starting noise.",
    ),
];

impl SynthOptions {
    /// The page's starting point: a browser tab (one worker thread, or a software GPU) makes
    /// 8 images in batches of 8, 50 steps each, in reasonable time.
    pub fn for_browser() -> Self {
        SynthOptions {
            n: 8,
            steps: 50,
            batch: 8,
            ..Default::default()
        }
    }

    /// Why these options cannot run, if they cannot.
    pub fn check(&self) -> Result<()> {
        check_ranges(SYNTH, self)
    }
}
