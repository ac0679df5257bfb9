//! The browser's entry points (wasm-bindgen). Thin: bytes and JSON in, JSON strings and bytes
//! out; the page's script does the DOM. Everything else is the same core the CLI and the tests
//! use — compression, export and metrics included.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::backend::{Backend, BackendKind};
use crate::compress::pipeline::{Agreement, Progress, agreement, sensitivity};
use crate::compress::{
    LIMITS, LayerStat, Metrics, Precision, Settings, compress, layer_report, presets,
};
use crate::export::to_onnx;
use crate::model::Model;
use crate::predict::{ClassScore, Classifier, Prediction};
use crate::timing::Timing;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn to_json<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    serde_json::to_string(v)
        .map(|s| JsValue::from_str(&s))
        .map_err(|e| js_err(e).into())
}

/// Let the browser paint and handle input: resolve on the next macrotask.
async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// A model on the device, with its forward-pass count (the first one is cold).
struct Loaded {
    model: Model,
    classifier: Classifier,
    runs: Cell<u32>,
}

impl Loaded {
    fn new(model: Model, backend: &Backend) -> crate::Result<Self> {
        let classifier = Classifier::new(&model, backend.clone())?;
        Ok(Loaded {
            model,
            classifier,
            runs: Cell::new(0),
        })
    }

    /// Logits of one image, timed; `cold` for the first pass on this model.
    async fn run(&self, input: &[f32]) -> crate::Result<(Vec<f32>, f64, bool)> {
        let t = now_ms();
        let mut l = self.classifier.logits(&[input.to_vec()]).await?;
        let ms = now_ms() - t;
        let cold = self.runs.get() == 0;
        self.runs.set(self.runs.get() + 1);
        Ok((l.pop().unwrap_or_default(), ms, cold))
    }
}

/// The result of the last compression, ready to download.
struct Compressed {
    loaded: Loaded,
    onnx: Vec<u8>,
    safetensors: Vec<u8>,
    card: String,
    stem: String,
}

struct Photo {
    name: String,
    /// The file, kept to preprocess again for a network with another input convention.
    bytes: Vec<u8>,
    input: RefCell<Vec<f32>>,
    /// The loaded original model's logits for this photo (reset when another model loads).
    original_logits: RefCell<Option<Vec<f32>>>,
}

#[derive(Default)]
struct State {
    original: Option<Rc<Loaded>>,
    /// The original's metrics (fp32 file sizes included), measured once per loaded model.
    original_metrics: Option<Metrics>,
    compressed: Option<Rc<Compressed>>,
    photos: Vec<Rc<Photo>>,
    busy: bool,
}

/// The page's engine: one backend, the loaded model, its compressed version, the photos.
#[wasm_bindgen]
pub struct Engine {
    backend: Backend,
    fallback_reason: Option<String>,
    model_info: Rc<RefCell<String>>,
    state: Rc<RefCell<State>>,
}

/// The compression settings' limits and presets, defined in the core, as JSON for the page's
/// form: `{"defaults": Settings, "limits": [Limit], "presets": [Preset]}`.
#[wasm_bindgen(js_name = settingsSpec)]
pub fn settings_spec() -> String {
    serde_json::json!({
        "defaults": Settings::default(),
        "limits": LIMITS,
        "presets": presets(),
    })
    .to_string()
}

/// The calibration photos the settings (page JSON) need: `null`, or
/// `{"min", "advised", "better", "why"}` plus `"message"`, the request to show.
#[wasm_bindgen(js_name = calibrationNeed)]
pub fn calibration_need(options: String) -> Result<String, JsValue> {
    let settings: Settings =
        serde_json::from_str(&options).map_err(|e| js_err(format!("bad settings: {e}")))?;
    Ok(match settings.calibration_need() {
        Some(n) => {
            let message = n.message();
            let mut v = serde_json::to_value(n).map_err(js_err)?;
            v["message"] = message.into();
            v.to_string()
        }
        None => "null".into(),
    })
}

/// Latency statistics of `times_ms` with the engine's one definition of each (the page's
/// per-photo latencies): `{"runs", "min_ms", "median_ms", "p90_ms"}`, or `null` for no runs.
#[wasm_bindgen(js_name = latencyStats)]
pub fn latency_stats(times_ms: Vec<f64>) -> String {
    serde_json::to_string(&Timing::of(&times_ms)).unwrap_or_else(|_| "null".into())
}

/// Open WebGPU unless `prefer` is `"cpu"` (the page says why in `reason`); fall back to the
/// CPU backend when WebGPU is missing or fails to start, and say why.
#[wasm_bindgen(js_name = createEngine)]
pub async fn create_engine(prefer: String, reason: Option<String>) -> Engine {
    console_error_panic_hook::set_once();
    let (backend, fallback_reason) = if prefer == "cpu" {
        let why = reason.unwrap_or_else(|| "the CPU backend was requested".to_string());
        (Backend::cpu(), Some(why))
    } else if !webgpu_exposed() {
        (
            Backend::cpu(),
            Some("this browser does not expose WebGPU (navigator.gpu is missing)".to_string()),
        )
    } else {
        match Backend::webgpu().await {
            Ok(b) => (b, None),
            Err(e) => (Backend::cpu(), Some(e.to_string())),
        }
    };
    Engine {
        backend,
        fallback_reason,
        model_info: Rc::new(RefCell::new(String::new())),
        state: Rc::new(RefCell::new(State::default())),
    }
}

fn webgpu_exposed() -> bool {
    let global = js_sys::global();
    let nav = js_sys::Reflect::get(&global, &JsValue::from_str("navigator")).ok();
    nav.and_then(|n| js_sys::Reflect::get(&n, &JsValue::from_str("gpu")).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

#[derive(Serialize)]
struct PredictOut<'a> {
    top5: &'a [ClassScore],
    /// Decode + resize + crop + normalise, in ms.
    preprocess_ms: f64,
    /// Forward pass including read-back, in ms.
    inference_ms: f64,
    /// True for the first forward pass after a model was loaded (shader compilation, autotune).
    cold: bool,
}

/// One model's answer for one photo.
#[derive(Serialize)]
struct Answer {
    top5: Vec<ClassScore>,
    /// For the page's tests: the raw logits, compared with onnxruntime's on the downloaded file.
    logits: Vec<f32>,
    inference_ms: f64,
    cold: bool,
}

#[derive(Serialize)]
struct PhotoOut {
    index: usize,
    name: String,
    preprocess_ms: f64,
    original: Option<Answer>,
    compressed: Option<Answer>,
}

/// What the page shows after a compression run.
#[derive(Serialize)]
struct CompressOut {
    before: Metrics,
    after: Metrics,
    quantization: String,
    layers: Vec<LayerStat>,
    /// Per photo, the compressed model's answer (the original's is already on the page).
    photos: Vec<Answer>,
    /// Over the uploaded photos, against the original.
    agreement: Option<Agreement>,
    file_stem: String,
    seconds: f64,
}

/// The downloadable model card.
#[derive(Serialize)]
struct ModelCard<'a> {
    tool: &'static str,
    version: &'static str,
    architecture: &'a str,
    file_stem: &'a str,
    settings: &'a Settings,
    quantization: &'a str,
    before: &'a Metrics,
    after: &'a Metrics,
    agreement_on_uploaded_photos: Option<&'a Agreement>,
    calibration_photos: usize,
    backend: &'a str,
    note: &'static str,
}

#[derive(Serialize)]
struct BenchOut {
    cold_ms: Option<f64>,
    #[serde(flatten)]
    warm: Timing,
}

fn busy_guard(state: &Rc<RefCell<State>>) -> Result<BusyGuard, JsValue> {
    let mut s = state.borrow_mut();
    if s.busy {
        return Err(JsError::new("another run is in progress: wait for it or cancel it").into());
    }
    s.busy = true;
    Ok(BusyGuard(state.clone()))
}

/// Clears the busy flag however a run ends.
struct BusyGuard(Rc<RefCell<State>>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.borrow_mut().busy = false;
    }
}

async fn answer(loaded: &Loaded, input: &[f32]) -> crate::Result<(Answer, Vec<f32>)> {
    let (logits, ms, cold) = loaded.run(input).await?;
    let p = Prediction::from_logits(logits);
    Ok((
        Answer {
            top5: p.top5,
            logits: p.logits.clone(),
            inference_ms: ms,
            cold,
        },
        p.logits,
    ))
}

/// Call the page's progress callback and yield; `false` when it asked to cancel.
async fn report(callback: &js_sys::Function, p: Progress) -> bool {
    let json = serde_json::to_string(&p).unwrap_or_default();
    let keep_going = callback
        .call1(&JsValue::NULL, &JsValue::from_str(&json))
        .map(|v| v.as_bool() != Some(false))
        .unwrap_or(true);
    yield_to_browser().await;
    keep_going
}

#[wasm_bindgen]
impl Engine {
    /// A description of the backend in use, e.g. `WebGPU (SwiftShader Device (Subzero))`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.description.clone()
    }

    /// `wgpu` or `cpu`.
    #[wasm_bindgen(getter, js_name = backendKind)]
    pub fn backend_kind(&self) -> String {
        match self.backend.kind {
            BackendKind::Cpu => "cpu".into(),
            BackendKind::Wgpu => "wgpu".into(),
        }
    }

    /// Why the CPU fallback is in use, if it is.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback_reason.clone()
    }

    /// What is loaded, for the status line.
    #[wasm_bindgen(getter, js_name = modelInfo)]
    pub fn model_info(&self) -> String {
        self.model_info.borrow().clone()
    }

    /// How many photos are held (calibration uses them all).
    #[wasm_bindgen(getter, js_name = photoCount)]
    pub fn photo_count(&self) -> usize {
        self.state.borrow().photos.len()
    }

    /// Load a weights file (safetensors — including one this page or the CLI compressed — or
    /// a PyTorch zip checkpoint) from its bytes.
    #[wasm_bindgen(js_name = loadWeights)]
    pub fn load_weights(&mut self, bytes: &[u8], name: String) -> Result<(), JsError> {
        let model = Model::from_bytes(bytes).map_err(js_err)?;
        let what = if model.quant.is_empty() {
            String::new()
        } else {
            format!(", {}", model.quant.describe())
        };
        let info = format!(
            "{name} ({:.2} M parameters{what})",
            model.num_params() as f64 / 1e6
        );
        self.install(model, info)
    }

    /// Load deterministic random weights (for the offline demo; predictions are meaningless).
    #[wasm_bindgen(js_name = loadSeeded)]
    pub fn load_seeded(&mut self, seed: u32) -> Result<(), JsError> {
        let model = Model::seeded_resnet18(seed as u64);
        self.install(model, format!("random weights, seed {seed}"))
    }

    fn install(&mut self, model: Model, info: String) -> Result<(), JsError> {
        let mut s = self.state.borrow_mut();
        if s.busy {
            return Err(JsError::new(
                "a run is in progress: wait for it or cancel it before loading another model",
            ));
        }
        let previous = s.original.as_ref().map(|o| o.model.preprocess());
        s.original = None;
        s.compressed = None;
        s.original_metrics = None;
        // Another network may expect its input scaled differently: preprocess the kept photos
        // again (they were readable before, so this cannot fail).
        let pre = model.preprocess();
        for p in &s.photos {
            *p.original_logits.borrow_mut() = None;
            if previous != Some(pre)
                && let Ok(input) = pre.run(&p.bytes)
            {
                *p.input.borrow_mut() = input;
            }
        }
        s.original = Some(Rc::new(Loaded::new(model, &self.backend).map_err(js_err)?));
        *self.model_info.borrow_mut() = info;
        Ok(())
    }

    /// Classify one image file's bytes with the loaded model, without keeping the photo;
    /// resolves to JSON `{top5, preprocess_ms, inference_ms, cold}`.
    pub fn predict(&self, image: Vec<u8>) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(original) = state.borrow().original.clone() else {
                return Err(JsError::new("no model is loaded yet").into());
            };
            let t0 = now_ms();
            let input = original.model.preprocess().run(&image).map_err(js_err)?;
            let t1 = now_ms();
            let (a, _) = answer(&original, &input).await.map_err(js_err)?;
            to_json(&PredictOut {
                top5: &a.top5,
                preprocess_ms: t1 - t0,
                inference_ms: a.inference_ms,
                cold: a.cold,
            })
        })
    }

    /// Keep a photo (for comparisons and calibration) and classify it with the original and,
    /// when there is one, the compressed model. Resolves to JSON `{index, name,
    /// preprocess_ms, original, compressed}`; rejects with a message for a bad image.
    #[wasm_bindgen(js_name = addPhoto)]
    pub fn add_photo(&self, image: Vec<u8>, name: String) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (original, compressed) = {
                let s = state.borrow();
                (s.original.clone(), s.compressed.clone())
            };
            let Some(original) = original else {
                return Err(JsError::new("no model is loaded yet").into());
            };
            let t0 = now_ms();
            let input = original.model.preprocess().run(&image).map_err(js_err)?;
            let preprocess_ms = now_ms() - t0;
            let photo = Rc::new(Photo {
                name,
                bytes: image,
                input: RefCell::new(input),
                original_logits: RefCell::new(None),
            });
            let input = photo.input.borrow().clone();
            let (o, logits) = answer(&original, &input).await.map_err(js_err)?;
            *photo.original_logits.borrow_mut() = Some(logits);
            let c = match &compressed {
                Some(c) => Some(answer(&c.loaded, &input).await.map_err(js_err)?.0),
                None => None,
            };
            let index = {
                let mut s = state.borrow_mut();
                s.photos.push(photo.clone());
                s.photos.len() - 1
            };
            to_json(&PhotoOut {
                index,
                name: photo.name.clone(),
                preprocess_ms,
                original: Some(o),
                compressed: c,
            })
        })
    }

    /// Classify every kept photo again (after another model was loaded). Resolves to a JSON
    /// list of `{index, name, original, compressed}`.
    #[wasm_bindgen(js_name = predictAll)]
    pub fn predict_all(&self) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (original, compressed, photos) = {
                let s = state.borrow();
                (s.original.clone(), s.compressed.clone(), s.photos.clone())
            };
            let Some(original) = original else {
                return Err(JsError::new("no model is loaded yet").into());
            };
            let mut out = Vec::new();
            for (index, p) in photos.iter().enumerate() {
                let input = p.input.borrow().clone();
                let (o, logits) = answer(&original, &input).await.map_err(js_err)?;
                *p.original_logits.borrow_mut() = Some(logits);
                let c = match &compressed {
                    Some(c) => Some(answer(&c.loaded, &input).await.map_err(js_err)?.0),
                    None => None,
                };
                out.push(PhotoOut {
                    index,
                    name: p.name.clone(),
                    preprocess_ms: 0.0,
                    original: Some(o),
                    compressed: c,
                });
                yield_to_browser().await;
            }
            to_json(&out)
        })
    }

    /// Forget the kept photos.
    #[wasm_bindgen(js_name = clearPhotos)]
    pub fn clear_photos(&self) {
        self.state.borrow_mut().photos.clear();
    }

    /// Compress the loaded model with `options` (JSON, the CLI's flag names with `_`), using
    /// the kept photos for calibration. `on_progress(json)` is called before each step and may
    /// return `false` to cancel. Resolves to the report JSON; the files are then ready for
    /// `download`.
    pub fn compress(&self, options: String, on_progress: js_sys::Function) -> js_sys::Promise {
        let state = self.state.clone();
        let backend = self.backend.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let _guard = busy_guard(&state)?;
            let t0 = now_ms();
            let settings: Settings =
                serde_json::from_str(&options).map_err(|e| js_err(format!("bad settings: {e}")))?;
            let opts = settings.to_options().map_err(js_err)?;
            let (original, photos) = {
                let s = state.borrow();
                (s.original.clone(), s.photos.clone())
            };
            let Some(original) = original else {
                return Err(JsError::new("load a model before compressing").into());
            };
            let images: Vec<Vec<f32>> = photos.iter().map(|p| p.input.borrow().clone()).collect();
            if let Some(need) = settings.calibration_need()
                && images.len() < need.min
            {
                return Err(JsError::new(&need.message()).into());
            }
            let model = compress(&original.model, &opts, &images, &images, 4, &backend, |p| {
                report(&on_progress, p)
            })
            .await
            .map_err(js_err)?;

            let last = Progress {
                step: 0,
                steps: 0,
                label: "writing the ONNX and safetensors files".into(),
            };
            if !report(&on_progress, last).await {
                return Err(js_err(crate::Error::Cancelled).into());
            }
            let safetensors = model.to_safetensors().map_err(js_err)?;
            yield_to_browser().await;
            let onnx = to_onnx(&model).map_err(js_err)?;
            yield_to_browser().await;
            let after = model.metrics_of_files(&safetensors, Some(&onnx));
            yield_to_browser().await;
            // The original's sizes (its fp32 files, gzipped too) are measured once per model.
            let cached = state.borrow().original_metrics.clone();
            let before = match cached {
                Some(m) => m,
                None => {
                    let m = original.model.metrics_with_onnx().map_err(js_err)?;
                    state.borrow_mut().original_metrics = Some(m.clone());
                    m
                }
            };

            let p = Progress {
                step: 0,
                steps: 0,
                label: "classifying your photos with the compressed model".into(),
            };
            if !report(&on_progress, p).await {
                return Err(js_err(crate::Error::Cancelled).into());
            }
            let loaded = Loaded::new(model, &backend).map_err(js_err)?;
            let (mut answers, mut ref_logits, mut new_logits) =
                (Vec::new(), Vec::new(), Vec::new());
            for p in &photos {
                let input = p.input.borrow().clone();
                let cached = p.original_logits.borrow().clone();
                let lo = match cached {
                    Some(l) => l,
                    None => answer(&original, &input).await.map_err(js_err)?.1,
                };
                let (a, lc) = answer(&loaded, &input).await.map_err(js_err)?;
                answers.push(a);
                ref_logits.push(lo);
                new_logits.push(lc);
                yield_to_browser().await;
            }
            let agreement = (!photos.is_empty()).then(|| agreement(&ref_logits, &new_logits));
            let arch = original.model.arch.name();
            let stem = opts.file_stem(arch);
            let quantization = loaded.model.quant.describe();
            let layers = layer_report(&original.model, &loaded.model);
            let card = serde_json::to_string_pretty(&ModelCard {
                tool: "modelslim",
                version: env!("CARGO_PKG_VERSION"),
                architecture: arch,
                file_stem: &stem,
                settings: &settings,
                quantization: &quantization,
                before: &before,
                after: &after,
                agreement_on_uploaded_photos: agreement.as_ref(),
                calibration_photos: if opts.recalibrate_bn
                    || opts.act_quant.is_some()
                    || opts.bias_correction
                {
                    images.len()
                } else {
                    0
                },
                backend: &backend.description,
                note: "Sizes are the downloaded files' bytes. Agreement is measured on the photos uploaded to the page, against the uncompressed model; it is not ImageNet accuracy.",
            })
            .map_err(js_err)?;
            let out = CompressOut {
                before,
                after,
                quantization,
                layers,
                photos: answers,
                agreement,
                file_stem: stem.clone(),
                seconds: (now_ms() - t0) / 1e3,
            };
            state.borrow_mut().compressed = Some(Rc::new(Compressed {
                loaded,
                onnx,
                safetensors,
                card,
                stem,
            }));
            to_json(&out)
        })
    }

    /// Time `runs` forward passes of `which` (`original` or `compressed`) on one image, after
    /// one warm-up pass (reported as cold when it was the model's first).
    pub fn benchmark(&self, which: String, runs: usize) -> js_sys::Promise {
        let state = self.state.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let _guard = busy_guard(&state)?;
            let loaded: Option<Rc<dyn AsLoaded>> = {
                let s = state.borrow();
                match which.as_str() {
                    "original" => s.original.clone().map(|l| l as Rc<dyn AsLoaded>),
                    "compressed" => s.compressed.clone().map(|c| c as Rc<dyn AsLoaded>),
                    _ => None,
                }
            };
            let Some(loaded) = loaded else {
                return Err(
                    JsError::new(&format!("there is no {which} model to benchmark")).into(),
                );
            };
            let loaded = loaded.loaded();
            let input = vec![0.1f32; 3 * 224 * 224];
            let (_, first, cold) = loaded.run(&input).await.map_err(js_err)?;
            yield_to_browser().await;
            let mut times = Vec::new();
            for _ in 0..runs.max(1) {
                let (_, ms, _) = loaded.run(&input).await.map_err(js_err)?;
                times.push(ms);
                yield_to_browser().await;
            }
            let Some(warm) = Timing::of(&times) else {
                return Err(JsError::new("no runs were timed").into());
            };
            to_json(&BenchOut {
                cold_ms: cold.then_some(first),
                warm,
            })
        })
    }

    /// Quantize one layer at a time to `quant` and measure how far the outputs move on the
    /// kept photos. Resolves to a JSON list, most sensitive first.
    pub fn sensitivity(&self, quant: String, on_progress: js_sys::Function) -> js_sys::Promise {
        let state = self.state.clone();
        let backend = self.backend.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let _guard = busy_guard(&state)?;
            let precision: Precision = quant.parse().map_err(js_err)?;
            let (original, photos) = {
                let s = state.borrow();
                (s.original.clone(), s.photos.clone())
            };
            let Some(original) = original else {
                return Err(JsError::new("load a model first").into());
            };
            if photos.is_empty() {
                return Err(JsError::new(
                    "sensitivity is measured on your photos: upload some first",
                )
                .into());
            }
            let images: Vec<Vec<f32>> = photos.iter().map(|p| p.input.borrow().clone()).collect();
            let rows = sensitivity(
                &original.model,
                precision,
                crate::compress::Granularity::PerChannel,
                &images,
                &backend,
                |p| report(&on_progress, p),
            )
            .await
            .map_err(js_err)?;
            to_json(&rows)
        })
    }

    /// The compressed model's file: `onnx`, `safetensors` or `card` (JSON).
    pub fn download(&self, format: String) -> Result<Vec<u8>, JsError> {
        let s = self.state.borrow();
        let c = s
            .compressed
            .as_ref()
            .ok_or_else(|| JsError::new("compress the model first"))?;
        match format.as_str() {
            "onnx" => Ok(c.onnx.clone()),
            "safetensors" => Ok(c.safetensors.clone()),
            "card" => Ok(c.card.clone().into_bytes()),
            other => Err(JsError::new(&format!("unknown format '{other}'"))),
        }
    }

    /// The file name for `download(format)`, e.g. `resnet18-c30-int8.onnx`.
    #[wasm_bindgen(js_name = downloadName)]
    pub fn download_name(&self, format: String) -> Option<String> {
        let s = self.state.borrow();
        let stem = &s.compressed.as_ref()?.stem;
        Some(match format.as_str() {
            "card" => format!("{stem}.json"),
            ext => format!("{stem}.{ext}"),
        })
    }
}

/// Both the original and the compressed model can be benchmarked.
trait AsLoaded {
    fn loaded(&self) -> &Loaded;
}

impl AsLoaded for Loaded {
    fn loaded(&self) -> &Loaded {
        self
    }
}

impl AsLoaded for Compressed {
    fn loaded(&self) -> &Loaded {
        &self.loaded
    }
}
