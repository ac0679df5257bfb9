//! One session of work on one model, driven the same way by both front ends: load a model, keep
//! photos, classify them, compress with [`Settings`](crate::compress::Settings) (progress, cancellation), read the report
//! and the files, benchmark, scan sensitivity, score. `cli.rs` parses flags and prints what a
//! session returns; `web.rs` converts it to and from JavaScript. Neither holds compression,
//! metric or naming logic.
//!
//! Every method takes `&self` and never holds the state's borrow across an `.await`: the page
//! calls in while a compression runs (a photo added, a download asked for), and a borrow held
//! over a yield would panic there. Work that must not overlap (compress, benchmark,
//! sensitivity, loading another model) is refused with a message while another runs.

mod auto;
mod card;
mod compression;
mod deployment;
mod held_back;
mod measure;
mod photos;
mod report;
#[cfg(feature = "training")]
mod training;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use web_time::Instant;

use crate::backend::Backend;
use crate::compress::auto::TfliteMeasure;
use crate::compress::{Metrics, Progress, report};
use crate::labels::parse_labels;
use crate::model::Model;
use crate::model::imported::InputChoice;
use crate::predict::{Classifier, Prediction};
use crate::{Error, Result};
use std::sync::Arc;

pub use auto::{AutoReport, auto_held_out};
pub use card::{AgreementPhotos, CardStep, DistillationEntry, ModelCard};
pub use held_back::{HoldBack, held_back};
use photos::Photo;
pub use photos::label_of_name;
pub use report::{
    Answer, Benchmark, Classified, CompressionReport, Evaluation, FileFormat, PhotoResult, Which,
};
#[cfg(feature = "training")]
pub use training::{DistillReport, SynthReport};

/// How many images go through the network at once.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    /// Batch-norm statistics, activation ranges, bias means, agreement and scores.
    pub calibration: usize,
    /// Kept photos classified for display; 1 keeps each photo's latency its own.
    pub display: usize,
}

impl Batches {
    /// Natively: throughput first.
    pub const NATIVE: Batches = Batches {
        calibration: 16,
        display: 16,
    };
    /// In the browser: small batches for a device's memory, one photo at a time on screen.
    pub const BROWSER: Batches = Batches {
        calibration: 4,
        display: 1,
    };
}

/// A model with its network on the device, and its forward-pass count (the first pass is
/// cold).
struct Loaded {
    model: Model,
    /// The class names answers use (the model's own, until a labels file replaces them).
    names: RefCell<Option<Arc<Vec<String>>>>,
    /// The network on the device: built on first use where [`Loaded::lazy`] made it, dropped by
    /// [`Loaded::release`] (it holds a copy of every weight) and built again when next needed.
    network: RefCell<Option<Rc<Classifier>>>,
    backend: Backend,
    runs: Cell<u32>,
    /// Time to build the network on the device, in ms (its latest build).
    upload_ms: Cell<f64>,
}

impl Loaded {
    /// `model` with its network built now: a model that cannot run is refused here.
    fn new(model: Model, backend: &Backend) -> Result<Self> {
        let loaded = Loaded::lazy(model, backend);
        loaded.network()?;
        Ok(loaded)
    }

    /// `model`, its network built when first asked for (a compressed model whose answers no
    /// photo may need).
    fn lazy(model: Model, backend: &Backend) -> Self {
        // ImageNet's names fit only a 1000-class classifier; others are numbered until a
        // labels file names them.
        let classes = model.arch.num_classes();
        let names = model.labels.clone().or_else(|| {
            (classes != crate::labels::imagenet_classes().len())
                .then(|| Arc::new((0..classes).map(|i| format!("class {i}")).collect()))
        });
        Loaded {
            names: RefCell::new(names),
            model,
            network: RefCell::new(None),
            backend: backend.clone(),
            runs: Cell::new(0),
            upload_ms: Cell::new(0.0),
        }
    }

    /// The network on the device, built if it is not there.
    fn network(&self) -> Result<Rc<Classifier>> {
        if let Some(n) = self.network.borrow().as_ref() {
            return Ok(n.clone());
        }
        let t = Instant::now();
        let n = Rc::new(Classifier::for_logits(&self.model, self.backend.clone())?);
        self.upload_ms.set(ms_since(t));
        *self.network.borrow_mut() = Some(n.clone());
        Ok(n)
    }

    /// Drop the network's copy of the weights until it is next needed.
    fn release(&self) {
        self.network.borrow_mut().take();
    }

    /// Logits of a batch, timed in ms; `cold` for the first pass on this model.
    async fn run(&self, inputs: &[Vec<f32>]) -> Result<(Vec<Vec<f32>>, f64, bool)> {
        let t = Instant::now();
        let logits = self.network()?.logits(inputs).await?;
        let ms = ms_since(t);
        let cold = self.runs.get() == 0;
        self.runs.set(self.runs.get() + 1);
        Ok((logits, ms, cold))
    }

    /// Each input's answer, in batches of `batch`; a batch's time is shared by its images.
    async fn answers<P, F>(
        &self,
        inputs: &[Vec<f32>],
        batch: usize,
        what: &str,
        progress: &mut P,
    ) -> Result<Vec<Answer>>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let mut out = Vec::with_capacity(inputs.len());
        let chunks: Vec<&[Vec<f32>]> = inputs.chunks(batch.max(1)).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let step = Progress {
                step: i + 1,
                steps: chunks.len(),
                label: what.to_string(),
            };
            report(progress, step).await?;
            let (logits, ms, cold) = self.run(chunk).await?;
            let per = ms / chunk.len() as f64;
            out.extend(logits.into_iter().map(|l| self.answer(l, per, cold)));
        }
        Ok(out)
    }
}

impl Loaded {
    /// One answer, its classes named as this model's.
    fn answer(&self, logits: Vec<f32>, inference_ms: f64, cold: bool) -> Answer {
        let names = self.names.borrow();
        let p = Prediction::from_logits_named(logits, names.as_ref().map(|n| n.as_slice()));
        Answer {
            top5: p.top5,
            logits: p.logits,
            inference_ms,
            cold,
        }
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The result of the last compression: the model on the device and its files.
struct Compressed {
    loaded: Rc<Loaded>,
    files: compression::Files,
}

#[derive(Default)]
struct State {
    original: Option<Rc<Loaded>>,
    info: String,
    /// The original's metrics (fp32 file sizes included), measured once per loaded model.
    original_metrics: Option<Metrics>,
    compressed: Option<Rc<Compressed>>,
    /// The last automatic compression's candidates, any of which can become the compressed model.
    auto: Option<Rc<auto::Searched>>,
    /// The loaded model's per-layer costs from the last search on a byte budget.
    auto_costs: crate::compress::auto::CostCache,
    photos: Vec<Rc<Photo>>,
    /// Photos for batch-norm statistics only (the CLI's `--recalibrate-bn DIR`); when empty,
    /// the kept photos serve.
    batch_norm_photos: Vec<Rc<Photo>>,
    busy: bool,
    /// The class names, when they are not ImageNet's: from a labels file, or from the
    /// loaded file's metadata.
    labels: Option<Arc<Vec<String>>>,
    /// The kept photos' classes from labels files (`labels.csv`), before their paths'.
    photo_labels: crate::labels::PhotoLabels,
}

/// The engine behind both front ends.
pub struct Session {
    backend: Backend,
    batches: Batches,
    /// How many photos a compression keeps out of fitting.
    hold_back: Cell<HoldBack>,
    /// What an automatic compression measures TFLite files with; none in an engine built
    /// without the TFLite writer.
    tflite: Cell<Option<TfliteMeasure>>,
    state: RefCell<State>,
}

/// Clears the busy flag however a run ends.
struct BusyGuard<'a>(&'a RefCell<State>);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().busy = false;
    }
}

/// A progress sink for callers with nothing to show: never cancels.
pub async fn no_progress(_: Progress) -> bool {
    true
}

impl Session {
    pub fn new(backend: Backend, batches: Batches) -> Self {
        Session {
            backend,
            batches,
            hold_back: Cell::new(HoldBack::Share),
            tflite: Cell::new(None),
            state: RefCell::new(State::default()),
        }
    }

    /// How many photos compressions keep out of fitting from now on (a fifth by default).
    pub fn set_hold_back(&self, policy: HoldBack) {
        self.hold_back.set(policy);
    }

    /// Let automatic compression budget TFLite files and fit deployment targets, measuring
    /// them with `measure` (`export::tflite::tflite_summary`).
    pub fn measure_tflite_with(&self, measure: TfliteMeasure) {
        self.tflite.set(Some(measure));
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// What is loaded, for a status line; empty before a model is.
    pub fn model_info(&self) -> String {
        self.state.borrow().info.clone()
    }

    /// The loaded model, if any.
    pub fn model(&self) -> Option<Model> {
        self.state
            .borrow()
            .original
            .as_ref()
            .map(|o| o.model.clone())
    }

    /// How many photos are kept (calibration and agreement use them all).
    pub fn photo_count(&self) -> usize {
        self.state.borrow().photos.len()
    }

    fn begin(&self, what: &str) -> Result<BusyGuard<'_>> {
        let mut s = self.state.borrow_mut();
        if s.busy {
            return Err(Error::Invalid(format!(
                "another run is in progress: wait for it or cancel it before {what}"
            )));
        }
        s.busy = true;
        Ok(BusyGuard(&self.state))
    }

    fn original(&self) -> Result<Rc<Loaded>> {
        self.state
            .borrow()
            .original
            .clone()
            .ok_or_else(|| Error::Invalid("no model is loaded yet: load one first".into()))
    }

    /// Load `model` (described by `info`), dropping the previous one and its compressed
    /// version; kept photos stay and are preprocessed again when the input convention changed.
    pub fn load(&self, model: Model, info: impl Into<String>) -> Result<()> {
        let _busy = self.begin("loading another model")?;
        let loaded = Loaded::new(model, &self.backend)?;
        let mut s = self.state.borrow_mut();
        let previous = s.original.as_ref().map(|o| o.model.preprocess());
        let pre = loaded.model.preprocess();
        for p in s.photos.iter().chain(&s.batch_norm_photos) {
            *p.original_logits.borrow_mut() = None;
            // They were readable before, so this cannot fail.
            if previous != Some(pre)
                && let Ok(input) = pre.run(&p.bytes)
            {
                *p.input.borrow_mut() = input;
            }
        }
        s.labels = loaded.model.labels.clone();
        s.original = Some(Rc::new(loaded));
        s.compressed = None;
        s.auto = None;
        s.auto_costs = Default::default();
        s.original_metrics = None;
        s.info = info.into();
        Ok(())
    }
}

impl Session {
    /// Name the classes from a labels file (one name per line, in class order) instead of
    /// ImageNet's: answers from now on use them, and compressed files carry them. Returns how
    /// many names were read.
    pub fn set_labels(&self, name: &str, text: &str) -> Result<usize> {
        let original = self.original()?;
        let names = Arc::new(parse_labels(name, text, original.model.arch.num_classes())?);
        let mut s = self.state.borrow_mut();
        *original.names.borrow_mut() = Some(names.clone());
        if let Some(c) = &s.compressed {
            *c.loaded.names.borrow_mut() = Some(names.clone());
        }
        let n = names.len();
        s.labels = Some(names);
        Ok(n)
    }

    /// The class names in use, when they are not ImageNet's.
    pub fn labels(&self) -> Option<Arc<Vec<String>>> {
        self.state.borrow().labels.clone()
    }

    /// Feed the loaded network as `choice` says: kept photos are
    /// preprocessed again, the class names stay, a compressed version goes.
    pub fn set_input(&self, choice: &InputChoice) -> Result<()> {
        let mut model = self.original()?.model.clone().with_input(choice)?;
        model.labels = self.labels().or(model.labels);
        self.load(model, self.model_info())
    }

    /// How photos become the loaded network's input, and whether its size may change.
    pub fn input(&self) -> Result<InputInfo> {
        let arch = &self.original()?.model.arch;
        Ok(InputInfo {
            preprocess: arch.preprocess,
            fixed_size: arch.fixed_size,
        })
    }
}

/// A network's preprocessing as the page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputInfo {
    #[serde(flatten)]
    pub preprocess: crate::preprocess::Preprocess,
    /// The input's side is fixed by the network's file.
    pub fixed_size: bool,
}
