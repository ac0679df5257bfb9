//! The search: propose a few plans for the budget from measured costs, build each, measure it
//! whole on the held-out photos, and keep the best that fits. Never a blind grid: a byte budget
//! is allocated over per-layer precisions by the knapsack of [`super::allocation`] on the
//! losses [`super::layer_costs`] measured; a MAC or latency budget by the per-group budgets
//! and greedy block drops of `prune::budget`, which measure their own options.

use std::future::Future;

use serde::Serialize;
use web_time::Instant;

use super::allocation::allocate;
use super::budget::{Budget, DeployFormat};
use super::layer_costs::{self, CostCache, CostTable};
use crate::backend::Backend;
use crate::compress::pipeline::{Shape, run};
use crate::compress::plan::full_integer;
use crate::compress::prune::blocks::{BlockDrop, block_macs, network_macs};
use crate::compress::{
    Granularity, Importance, Plan, Progress, PruneScope, QuantMethod, Settings, agreement,
    announce, logits_of,
};
use crate::export::targets::{Target, capacity};
use crate::export::tflite::{TfliteSummary, is_full_integer};
use crate::export::to_onnx;
use crate::model::Model;
use crate::predict::Classifier;
use crate::quant::Precision;
use crate::timing::{Timing, benchmark_input};
use crate::{Error, Result};

/// The most fitting photos each layer's loss is measured on: every layer is measured twice or
/// three times, and 32 photos rank the layers steadily (the losses are paired KLs).
pub const COST_PHOTOS: usize = 32;

/// The least share of the MACs a latency budget is searched at.
const MIN_SHARE: f64 = 0.05;

/// Warm runs a latency is the median of.
const LATENCY_RUNS: usize = 5;

/// How a search learns what a model's TFLite file takes ([`crate::export::tflite::tflite_summary`]):
/// passed in, so that an engine built without the TFLite writer (the page's first module)
/// links none of it.
pub type TfliteMeasure = fn(&Model) -> Result<TfliteSummary>;

/// What to search for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AutoOptions {
    pub budget: Budget,
    /// The least share of held-out photos whose top-1 class must stay the original's.
    pub min_agreement: f64,
    /// The file deployed: the one a byte budget counts.
    pub format: DeployFormat,
    /// The device the model must also fit, by its name in the targets table: its flash, RAM
    /// and operators (a full-integer file where it runs only integers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'static str>,
}

impl AutoOptions {
    /// A search for `budget` in `format`'s bytes, or for the device called `target`: a TFLite
    /// file, whose byte budget is the device's flash unless a budget is given.
    pub fn new(
        budget: Option<Budget>,
        min_agreement: f64,
        format: Option<DeployFormat>,
        target: Option<&str>,
    ) -> Result<AutoOptions> {
        let target = target.map(Target::named).transpose()?;
        let format = match (format, target) {
            (Some(DeployFormat::Onnx), Some(t)) => {
                return Err(Error::Invalid(format!(
                    "{} runs a TFLite file: ask for the TFLite format, or leave the format out",
                    t.name
                )));
            }
            (_, Some(_)) => DeployFormat::Tflite,
            (f, None) => f.unwrap_or_default(),
        };
        let budget = match (budget, target) {
            (Some(b), _) => b,
            (None, Some(t)) => Budget::Bytes(t.flash_bytes),
            (None, None) => {
                return Err(Error::Invalid(
                    "give a budget (bytes, share of the MACs or ms) or a deployment target".into(),
                ));
            }
        };
        let opts = AutoOptions {
            budget,
            min_agreement,
            format,
            target: target.map(|t| t.name),
        };
        opts.checked()
    }

    /// These options, or why no model can meet them.
    fn checked(self) -> Result<AutoOptions> {
        self.budget.checked()?;
        if !(0.0..=1.0).contains(&self.min_agreement) {
            return Err(Error::Invalid(format!(
                "the agreement floor is a share between 0 and 1 (got {})",
                self.min_agreement
            )));
        }
        self.device()?;
        Ok(self)
    }

    /// The target device, when one is named.
    pub fn device(&self) -> Result<Option<&'static Target>> {
        self.target.map(Target::named).transpose()
    }

    /// For people: `3.50 MB of ONNX`, `ESP32-S3 (8 MiB of flash, 8 MiB of RAM, full
    /// integer)`, `50 % of the MACs on ESP32-S3`.
    pub fn label(&self) -> String {
        let budget = self.budget.label(self.format);
        match self.device().ok().flatten() {
            Some(t) if self.budget == Budget::Bytes(t.flash_bytes) => format!(
                "{} ({} of flash, {} of RAM{})",
                t.name,
                capacity(t.flash_bytes),
                capacity(t.ram_bytes),
                if t.full_integer_only {
                    ", full integer"
                } else {
                    ""
                }
            ),
            Some(t) => format!("{budget} on {}", t.name),
            None => budget,
        }
    }
}

/// One evaluated plan.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// What the plan does, for people.
    pub label: String,
    /// The plan, as the settings `compress` takes.
    pub settings: Settings,
    /// Bytes of the deployed file (ONNX or TFLite, as the search was asked).
    pub bytes: u64,
    /// Bytes of its ONNX file.
    pub onnx_bytes: u64,
    /// Bytes of its TFLite file as a device takes it, when the deployed file is TFLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tflite_bytes: Option<u64>,
    /// The TFLite file's peak activation memory (TFLite Micro's arena plan), likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_activation_bytes: Option<u64>,
    /// Whether its TFLite file is full integer (int8 weights and activations).
    pub full_integer: bool,
    /// Multiply-accumulates at the network's input side.
    pub macs: u64,
    /// Median ms per image on the backend in use (measured for a latency budget only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
    /// Median ms per image in the runtime its file deploys to, once timed there (`auto
    /// --time-with`; see [`super::runtime_pick`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_ms: Option<f64>,
    /// On the held-out photos: the share with the original's top-1 class, and the mean KL.
    pub agreement: f64,
    pub kl: f64,
    /// Time to build and measure it.
    pub seconds: f64,
    /// Within the budget, and on the target device when one is named.
    pub fits: bool,
    /// What keeps it off the target device, in one line, when something does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_problem: Option<String>,
    /// No other candidate is within less of the budget's measure, agrees at least as often
    /// and moves the outputs less (see `mark_pareto`).
    pub pareto: bool,
}

/// What a search found.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub candidates: Vec<Candidate>,
    /// The index of the one kept: the least KL among those within the budget and the floor;
    /// when none is within the budget, the closest to it; when none within the budget keeps
    /// the floor, the one that agrees most.
    pub chosen: usize,
    pub budget_met: bool,
    pub floor_met: bool,
    /// Why the choice falls short, in one line, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Stopped by the caller; the best of the candidates measured so far is kept.
    pub cancelled: bool,
    /// Seconds spent measuring per-layer costs (before any candidate is built); 0 when an
    /// earlier search's were reused.
    pub cost_seconds: f64,
    pub seconds: f64,
    /// Each candidate's model and shape, in the candidates' order.
    #[serde(skip)]
    pub models: Vec<(Model, Shape)>,
    /// The original's logits on the held-out photos, which every candidate is measured against.
    #[serde(skip)]
    pub reference: Vec<Vec<f32>>,
}

/// Builds and measures candidates.
struct Evaluator<'a> {
    original: &'a Model,
    fit: &'a [Vec<f32>],
    held: &'a [Vec<f32>],
    reference: Vec<Vec<f32>>,
    batch: usize,
    backend: &'a Backend,
    budget: Budget,
    format: DeployFormat,
    target: Option<&'static Target>,
    tflite: Option<TfliteMeasure>,
    macs0: u64,
    candidates: Vec<Candidate>,
    models: Vec<(Model, Shape)>,
}

impl Evaluator<'_> {
    /// Build `settings`' plan on the fitting photos, measure it and keep it as a candidate;
    /// returns its index.
    async fn evaluate<P, F>(
        &mut self,
        label: String,
        settings: Settings,
        progress: &mut P,
    ) -> Result<usize>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let t = Instant::now();
        let n = self.candidates.len() + 1;
        let plan = Plan::of(&settings)?;
        // Announced once, before the plan's own steps: the pipeline runs with the caller's
        // progress itself, so that the page's module holds one copy of it, not two.
        announce(progress, &format!("candidate {n}: {label}")).await?;
        let (model, shape) = run(
            &plan,
            self.original,
            self.fit,
            self.fit,
            self.batch,
            self.backend,
            &mut *progress,
        )
        .await?;
        let onnx_bytes = to_onnx(&model)?.len() as u64;
        let tflite = match self.format {
            DeployFormat::Tflite => Some(self.tflite_summary(&model)?),
            DeployFormat::Onnx => None,
        };
        let bytes = tflite.as_ref().map_or(onnx_bytes, |t| t.file_bytes as u64);
        let on_target = self
            .target
            .zip(tflite.as_ref())
            .map(|(target, summary)| target.fit(summary));
        let macs = network_macs(&model);
        let logits = logits_of(&model, self.backend, self.held, self.batch).await?;
        let a = agreement(&self.reference, &logits);
        let ms = match self.budget {
            Budget::Ms(_) => Some(latency_ms(&model, self.backend).await?),
            _ => None,
        };
        let measure = self.budget.measure(bytes, macs, ms);
        let target_problem = on_target.filter(|f| !f.fits).map(|f| {
            // Operators it has no kernel for, besides float ones (the message says "int8").
            let missing: Vec<&str> = f
                .unsupported_ops
                .iter()
                .map(String::as_str)
                .filter(|op| !op.ends_with("(float)"))
                .collect();
            if missing.is_empty() || f.message.contains("no kernel") {
                f.message
            } else {
                format!("cannot run {}; {}", missing.join(", "), f.message)
            }
        });
        self.candidates.push(Candidate {
            label,
            settings,
            bytes,
            onnx_bytes,
            tflite_bytes: tflite.as_ref().map(|t| t.file_bytes as u64),
            peak_activation_bytes: tflite.as_ref().map(|t| t.peak_activation_bytes as u64),
            full_integer: is_full_integer(&model),
            macs,
            ms,
            runtime_ms: None,
            agreement: a.agreement,
            kl: a.kl.max(0.0),
            seconds: t.elapsed().as_secs_f64(),
            fits: self.budget.excess(measure, self.macs0) <= 0.0 && target_problem.is_none(),
            target_problem,
            pareto: false,
        });
        self.models.push((model, shape));
        Ok(self.candidates.len() - 1)
    }

    /// [`Evaluator::evaluate`], with a plan that cannot reach its target (a MAC share the
    /// measured options cannot save) skipped: `None`.
    async fn evaluate_if_possible<P, F>(
        &mut self,
        label: String,
        settings: Settings,
        progress: &mut P,
    ) -> Result<Option<usize>>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        match self.evaluate(label, settings, progress).await {
            Ok(i) => Ok(Some(i)),
            Err(Error::Invalid(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn measure(&self, c: &Candidate) -> f64 {
        self.budget.measure(c.bytes, c.macs, c.ms)
    }

    /// Whether the target device runs only integer operators (every plan is full integer).
    fn integers_only(&self) -> bool {
        self.target.is_some_and(|t| t.full_integer_only)
    }

    /// `settings` as the target device can run them: full integer where it runs only integers.
    fn runnable(&self, settings: Settings, label: String) -> (String, Settings) {
        if self.integers_only() {
            (format!("{label}, full integer"), full_integer(settings))
        } else {
            (label, settings)
        }
    }

    /// Bytes of `model`'s deployed file.
    fn file_bytes(&self, model: &Model) -> Result<u64> {
        Ok(match self.format {
            DeployFormat::Onnx => to_onnx(model)?.len(),
            DeployFormat::Tflite => self.tflite_summary(model)?.file_bytes,
        } as u64)
    }

    fn tflite_summary(&self, model: &Model) -> Result<TfliteSummary> {
        let measure = self.tflite.ok_or_else(|| {
            Error::Invalid("this engine has no TFLite writer to measure a TFLite file with".into())
        })?;
        measure(model)
    }
}

/// Search plans of `original` for `opts`' budget: costs and fitting steps (GPTQ, refitting,
/// block choice) on `fit`, agreement measured on `held` (photos never fitted on), in batches
/// of `batch`. A byte budget's per-layer costs are taken from `costs` when it holds them for
/// these photos, and kept there otherwise. A TFLite file is measured with `tflite`, which
/// a search for one needs. `progress` names the candidate being built;
/// answering `false` stops the search and keeps the best candidate measured so far (an error
/// when there is none yet).
#[allow(clippy::too_many_arguments)]
pub async fn search<P, F>(
    original: &Model,
    opts: &AutoOptions,
    fit: &[Vec<f32>],
    held: &[Vec<f32>],
    batch: usize,
    backend: &Backend,
    costs: &mut CostCache,
    tflite: Option<TfliteMeasure>,
    progress: &mut P,
) -> Result<Search>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let opts = opts.checked()?;
    let (budget, target) = (opts.budget, opts.device()?);
    if opts.format == DeployFormat::Tflite && tflite.is_none() {
        return Err(Error::Invalid(
            "budgeting a TFLite file needs the engine module that writes TFLite: load it first"
                .into(),
        ));
    }
    if fit.is_empty() || held.is_empty() {
        return Err(Error::Invalid(
            "an automatic compression needs photos to fit on and photos held back to measure on: add photos".into(),
        ));
    }
    let t0 = Instant::now();
    let mut ev = Evaluator {
        original,
        fit,
        held,
        reference: logits_of(original, backend, held, batch).await?,
        batch,
        backend,
        budget,
        format: opts.format,
        target,
        tflite,
        macs0: network_macs(original),
        candidates: Vec::new(),
        models: Vec::new(),
    };
    let mut cost_seconds = 0.0;
    let searched = match budget {
        Budget::Bytes(b) if ev.integers_only() => search_full_integer(&mut ev, b, progress).await,
        Budget::Bytes(b) => search_bytes(&mut ev, b, costs, &mut cost_seconds, progress).await,
        Budget::Macs(r) => search_macs(&mut ev, r, progress).await,
        Budget::Ms(ms) => search_ms(&mut ev, ms, progress).await,
    };
    let cancelled = match searched {
        Ok(()) => false,
        Err(Error::Cancelled) if !ev.candidates.is_empty() => true,
        Err(e) => return Err(e),
    };
    mark_pareto(&mut ev);
    let (chosen, budget_met, floor_met, message) = choose(&ev, &opts);
    Ok(Search {
        candidates: ev.candidates,
        chosen,
        budget_met,
        floor_met,
        message,
        cancelled,
        cost_seconds,
        seconds: t0.elapsed().as_secs_f64(),
        models: ev.models,
        reference: ev.reference,
    })
}

/// Measure the original as the first candidate (every budget's chart starts from it); whether
/// it fits the budget, which then nothing else can beat.
async fn original_fits<P, F>(ev: &mut Evaluator<'_>, progress: &mut P) -> Result<bool>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let i = ev
        .evaluate("original (fp32)".into(), Settings::default(), progress)
        .await?;
    Ok(ev.candidates[i].fits)
}

/// Per-layer precisions under a byte budget: for per-channel scales and for groups of 32, the
/// knapsack's choice, rounded and with GPTQ; the original first (it wins where it fits).
async fn search_bytes<P, F>(
    ev: &mut Evaluator<'_>,
    limit: u64,
    costs: &mut CostCache,
    cost_seconds: &mut f64,
    progress: &mut P,
) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if original_fits(ev, progress).await? {
        return Ok(());
    }
    let fit = ev.fit;
    let photos = &fit[..fit.len().min(COST_PHOTOS)];
    let cached = costs.get(photos).map(<[CostTable]>::to_vec);
    let tables = if let Some(tables) = cached {
        tables
    } else {
        let t = Instant::now();
        let (per_channel, int8) = layer_costs::measure(
            ev.original,
            Granularity::PerChannel,
            None,
            photos,
            ev.batch,
            ev.backend,
            progress,
        )
        .await?;
        let (groups, _) = layer_costs::measure(
            ev.original,
            Granularity::Group(32),
            Some(&int8),
            photos,
            ev.batch,
            ev.backend,
            progress,
        )
        .await?;
        let tables = vec![per_channel, groups];
        costs.keep(photos, tables.clone());
        *cost_seconds = t.elapsed().as_secs_f64();
        tables
    };
    let tables = match ev.format {
        DeployFormat::Onnx => tables,
        DeployFormat::Tflite => {
            // A TFLite file holds a scale per channel or per tensor, not per group.
            let original = ev.file_bytes(ev.original)?;
            tables
                .iter()
                .filter(|t| !matches!(t.granularity, Granularity::Group(_)))
                .map(|t| t.for_tflite(original))
                .collect()
        }
    };
    let mut any = false;
    for table in &tables {
        let Some(settings) = fitting_precisions(ev, table, limit)? else {
            continue;
        };
        any = true;
        let label = mix_label(table, &settings);
        ev.evaluate(format!("{label}, rounded"), settings.clone(), progress)
            .await?;
        if has_integers(&settings) {
            let gptq = Settings {
                quant_method: QuantMethod::Gptq,
                ..settings
            };
            ev.evaluate(format!("{label}, GPTQ"), gptq, progress)
                .await?;
        }
    }
    if ev.format == DeployFormat::Tflite {
        // Int8 activations shrink nothing in the file but speed up every integer runtime; and
        // when no mix of weights fits, pruning the full-integer network is what is left.
        return search_full_integer(ev, limit, progress).await;
    }
    if !any {
        // Nothing fits: the smallest plan is the closest candidate.
        let Some(per_channel) = tables.first() else {
            return Ok(());
        };
        let picks = vec![layer_costs::PRECISIONS.len() - 1; per_channel.layers.len()];
        let settings = precision_settings(per_channel, &picks);
        let label = mix_label(per_channel, &settings);
        ev.evaluate(format!("{label}, rounded"), settings, progress)
            .await?;
    }
    Ok(())
}

/// The knapsack's choice from `table` whose deployed file is within `limit` bytes, or `None`
/// when no choice fits. The table predicts the file to within a few bytes per layer; when the
/// written file still comes out larger, the budget given to the knapsack shrinks by the excess
/// and it chooses again.
fn fitting_precisions(
    ev: &Evaluator<'_>,
    table: &CostTable,
    limit: u64,
) -> Result<Option<Settings>> {
    let options: Vec<_> = table.layers.iter().map(|l| l.options.clone()).collect();
    let mut capacity = limit.saturating_sub(table.overhead);
    for _ in 0..8 {
        let Some(picks) = allocate(&options, capacity) else {
            return Ok(None);
        };
        let settings = precision_settings(table, &picks);
        // Rounding needs no photos, and the stored format is the same with GPTQ.
        let quant = Plan::of(&settings)?.options.quant;
        let bytes = ev.file_bytes(&ev.original.quantized(&quant)?)?;
        if bytes <= limit {
            return Ok(Some(settings));
        }
        capacity = capacity.saturating_sub(bytes - limit + 64);
    }
    Ok(None)
}

/// Settings that store each layer as `picks` choose from `table`: the precision holding most
/// parameters for the whole network, the others per layer.
fn precision_settings(table: &CostTable, picks: &[usize]) -> Settings {
    let precisions = table.precisions(picks);
    let mut weight: Vec<(Precision, u64)> = Vec::new();
    for (&i, l) in picks.iter().zip(&table.layers) {
        let p = layer_costs::PRECISIONS[i];
        let bytes = l.options[0].bytes;
        match weight.iter_mut().find(|(q, _)| *q == p) {
            Some((_, w)) => *w += bytes,
            None => weight.push((p, bytes)),
        }
    }
    let base = weight
        .iter()
        .max_by_key(|(_, w)| *w)
        .map_or(Precision::F32, |(p, _)| *p);
    Settings {
        quant: base,
        granularity: table.granularity,
        layer_quant: precisions.into_iter().filter(|(_, p)| *p != base).collect(),
        ..Settings::default()
    }
}

fn has_integers(s: &Settings) -> bool {
    s.quant.bits().is_some() || s.layer_quant.values().any(|p| p.bits().is_some())
}

/// `per channel: 40 int4, 21 int8, 4 fp32`.
fn mix_label(table: &CostTable, s: &Settings) -> String {
    let counts: Vec<String> = layer_costs::PRECISIONS
        .iter()
        .rev()
        .filter_map(|&p| {
            let n = table
                .layers
                .iter()
                .filter(|l| *s.layer_quant.get(&l.layer).unwrap_or(&s.quant) == p)
                .count();
            (n > 0).then(|| format!("{n} {}", p.label()))
        })
        .collect();
    let g = match table.granularity {
        Granularity::PerChannel => "per channel".to_string(),
        Granularity::PerTensor => "per tensor".to_string(),
        Granularity::Group(n) => format!("groups of {n}"),
    };
    format!("{g}: {}", counts.join(", "))
}

/// The pruning that keeps `share` of the MACs: per-group budgets with block drops measured
/// and refit (widths in multiples of 8, and of 1), and blocks dropped alone, as few as can
/// meet it. The original first (it fits only a share of 1).
async fn search_macs<P, F>(ev: &mut Evaluator<'_>, share: f64, progress: &mut P) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if original_fits(ev, progress).await? {
        return Ok(());
    }
    for (label, settings) in pruning_plans(ev, share)? {
        ev.evaluate_if_possible(label, settings, progress).await?;
    }
    Ok(())
}

/// Full-integer plans (int8 weights and activations, biases corrected) for a TFLite file of at
/// most `limit` bytes: the whole network first; when its file or its activations are too large
/// for the budget or the device, pruned until they fit, each round aimed by how far the last
/// missed: the activations shrink with the width, so a device short of RAM narrows every group,
/// the stem's too; a file shrinks more slowly than the MACs where pruning by measured loss
/// takes the cheap early channels first, so the next share follows the power of the MACs the
/// file's bytes have followed so far (the MACs themselves at first).
async fn search_full_integer<P, F>(
    ev: &mut Evaluator<'_>,
    limit: u64,
    progress: &mut P,
) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if ev.candidates.is_empty() && original_fits(ev, progress).await? {
        return Ok(());
    }
    let mut last = ev
        .evaluate(
            "int8 weights and activations, full integer".into(),
            full_integer(Settings::default()),
            progress,
        )
        .await?;
    let limit = ev.target.map_or(limit, |t| limit.min(t.flash_bytes));
    // The share of every group's channels the last plan kept, when it pruned them all.
    let mut kept = 1.0f64;
    // The last two (share of the MACs, bytes) measured: bytes ≈ c · share^power.
    let mut seen: Vec<(f64, f64)> = Vec::new();
    for _ in 0..3 {
        let c = &ev.candidates[last];
        if c.fits {
            break;
        }
        let file = limit as f64 / c.bytes.max(1) as f64;
        let ram = match (ev.target, c.peak_activation_bytes) {
            (Some(t), Some(peak)) => t.ram_bytes as f64 / peak.max(1) as f64,
            _ => f64::INFINITY,
        };
        let (label, settings) = if ram < 1.0 {
            kept *= ram.min(file.sqrt()) * 0.95;
            if kept < 0.1 {
                break;
            }
            (
                format!(
                    "{:.0} % of the channels in every group, the stem's too, refit",
                    kept * 100.0
                ),
                Settings {
                    prune_channels: (1.0 - kept) as f32,
                    prune_scope: PruneScope::All,
                    prune_stem: true,
                    importance: Importance::Output,
                    reconstruct: true,
                    round_to: 8,
                    ..Settings::default()
                },
            )
        } else {
            let now = c.macs as f64 / ev.macs0.max(1) as f64;
            seen.push((now, c.bytes as f64));
            let power = match seen.as_slice() {
                [.., (s0, b0), (s1, b1)] if s0 != s1 && b0 != b1 => {
                    ((b1 / b0).ln() / (s1 / s0).ln()).clamp(0.3, 1.5)
                }
                _ => 1.0,
            };
            let share = now * (file.min(1.0) * 0.95).powf(1.0 / power);
            if share < MIN_SHARE {
                break;
            }
            budgeted_pruning(share, 8)
        };
        let label = format!("{label}, full integer");
        match ev
            .evaluate_if_possible(label, full_integer(settings), progress)
            .await?
        {
            Some(i) => last = i,
            None => break,
        }
    }
    Ok(())
}

/// Pruning to `share` of the MACs, channels and blocks chosen by measured loss and the
/// layers after refit, widths in multiples of `round_to`.
fn budgeted_pruning(share: f64, round_to: usize) -> (String, Settings) {
    let widths = if round_to > 1 {
        format!(", widths of {round_to}")
    } else {
        String::new()
    };
    (
        format!(
            "{:.0} % of the MACs: channels and blocks by measured loss{widths}, refit",
            share * 100.0
        ),
        Settings {
            target_macs: Some(share as f32),
            round_to,
            importance: Importance::Output,
            reconstruct: true,
            ..Settings::default()
        },
    )
}

/// The pruning candidates for keeping `share` of the original's MACs, as the target device
/// can run them.
fn pruning_plans(ev: &Evaluator<'_>, share: f64) -> Result<Vec<(String, Settings)>> {
    let model = ev.original;
    let mut plans = vec![budgeted_pruning(share, 8), budgeted_pruning(share, 1)];
    // Blocks alone: the fewest whose smallest members already save enough, so that whichever
    // the measured choice drops, the budget holds.
    let macs0 = network_macs(model);
    let needed = macs0 as f64 * (1.0 - share);
    let mut sizes: Vec<u64> = model
        .arch
        .blocks()
        .iter()
        .map(|b| block_macs(model, b))
        .collect::<Result<_>>()?;
    sizes.sort_unstable();
    let mut saved = 0u64;
    for (k, m) in sizes.iter().enumerate() {
        saved += m;
        if saved as f64 >= needed {
            plans.push((
                format!("{} blocks dropped, chosen by measured loss", k + 1),
                Settings {
                    drop_blocks: BlockDrop::Count(k + 1),
                    ..Settings::default()
                },
            ));
            break;
        }
    }
    Ok(plans
        .into_iter()
        .map(|(label, settings)| ev.runnable(settings, label))
        .collect())
}

/// Pruning for a latency: the MAC share the original's measured latency suggests, its
/// candidates timed; when none is fast enough, once more at the share the fastest's time
/// suggests.
async fn search_ms<P, F>(ev: &mut Evaluator<'_>, ms: f64, progress: &mut P) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if original_fits(ev, progress).await? {
        return Ok(());
    }
    let t0 = ev.candidates[0].ms.unwrap_or(f64::INFINITY);
    let mut share = (ms / t0).min(1.0);
    for round in 0..2 {
        // Below a twentieth of the MACs no measured option is left: the original is closest.
        if share < MIN_SHARE {
            break;
        }
        let plans = pruning_plans(ev, share)?;
        let from = ev.candidates.len();
        for (label, settings) in plans {
            ev.evaluate_if_possible(label, settings, progress).await?;
        }
        let new = &ev.candidates[from..];
        if round == 1 || new.iter().any(|c| c.fits) {
            break;
        }
        // Latency is not proportional to MACs: scale by how far the fastest missed.
        let fastest = new
            .iter()
            .filter_map(|c| Some((c.ms?, c.macs)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((t, macs)) = fastest else { break };
        share = (macs as f64 / ev.macs0 as f64) * (ms / t) * 0.95;
    }
    Ok(())
}

/// The median of [`LATENCY_RUNS`] one-image passes after a warm-up, in ms.
async fn latency_ms(model: &Model, backend: &Backend) -> Result<f64> {
    let c = Classifier::for_logits(model, backend.clone())?;
    let input = [benchmark_input(model.arch.input_size())];
    c.logits(&input).await?;
    let mut times = Vec::with_capacity(LATENCY_RUNS);
    for _ in 0..LATENCY_RUNS {
        let t = Instant::now();
        c.logits(&input).await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timing::of(&times).map_or(f64::INFINITY, |t| t.median_ms))
}

/// Mark the candidates no other beats: none is within less of the budget's measure, agrees
/// at least as often and moves the outputs at most as far (KL), better in one of them.
fn mark_pareto(ev: &mut Evaluator<'_>) {
    let points: Vec<[f64; 3]> = ev
        .candidates
        .iter()
        .map(|c| [ev.measure(c), -c.agreement, c.kl])
        .collect();
    let dominates = |a: &[f64; 3], b: &[f64; 3]| {
        a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
    };
    for (c, p) in ev.candidates.iter_mut().zip(&points) {
        c.pareto = !points.iter().any(|q| dominates(q, p));
    }
}

/// The candidate to keep, whether it meets the budget and the floor, and why not.
fn choose(ev: &Evaluator<'_>, opts: &AutoOptions) -> (usize, bool, bool, Option<String>) {
    let floor = opts.min_agreement;
    let c = &ev.candidates;
    let by_kl = |a: &&Candidate, b: &&Candidate| a.kl.total_cmp(&b.kl).then(a.bytes.cmp(&b.bytes));
    let index = |x: &Candidate| c.iter().position(|y| std::ptr::eq(x, y)).unwrap_or(0);
    let fitting: Vec<&Candidate> = c.iter().filter(|x| x.fits).collect();
    if fitting.is_empty() {
        let closest = c
            .iter()
            .min_by(|a, b| ev.measure(a).total_cmp(&ev.measure(b)))
            .map_or(0, index);
        let x = &c[closest];
        let what = match (&x.target_problem, ev.budget) {
            (Some(p), _) => format!("misses: {}", p.split("; would fit").next().unwrap_or(p)),
            (None, Budget::Bytes(_)) => format!("takes {:.2} MB", x.bytes as f64 / 1e6),
            (None, Budget::Macs(_)) => format!(
                "takes {:.0} % of the MACs",
                100.0 * x.macs as f64 / ev.macs0.max(1) as f64
            ),
            (None, Budget::Ms(_)) => format!("takes {:.1} ms", x.ms.unwrap_or(f64::NAN)),
        };
        let advice = match (ev.target, ev.budget) {
            (Some(_), _) => "a smaller network, or a larger device",
            (None, Budget::Bytes(_)) => "raise the budget, or prune channels as well",
            _ => "raise the budget",
        };
        let message = format!(
            "nothing measured fits {}: the closest, {}, {what}; {advice}",
            opts.label(),
            x.label
        );
        return (closest, false, false, Some(message));
    }
    if let Some(best) = fitting
        .iter()
        .copied()
        .filter(|x| x.agreement >= floor)
        .min_by(by_kl)
    {
        return (index(best), true, true, None);
    }
    let best = fitting
        .iter()
        .max_by(|a, b| {
            a.agreement
                .total_cmp(&b.agreement)
                .then(b.kl.total_cmp(&a.kl))
        })
        .map_or(0, |x| index(x));
    let message = format!(
        "no candidate within {} keeps {:.0} % agreement on the {} held-out photos: the best, {}, keeps {:.1} %; raise the budget or lower the floor",
        opts.label(),
        floor * 100.0,
        ev.held.len(),
        c[best].label,
        c[best].agreement * 100.0
    );
    (best, true, false, Some(message))
}
