//! The browser's entry points (wasm-bindgen): bytes and JSON in, JSON strings and bytes out.
//! The engine is a [`Session`] — the same one the CLI drives — and this file only converts:
//! JavaScript progress callbacks into the session's, results into JSON, errors into messages.
//! The page's script does the DOM.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::backend::{Backend, BackendKind};
use crate::compress::auto::{AutoOptions, Budget, DeployFormat};
use crate::compress::{
    CalibrationNeed, Granularity, Plan, Precision, Progress, SETTINGS, Settings, presets,
};
use crate::model::Model;
use crate::predict::Prediction;
use crate::session::{Batches, FileFormat, Session, Which};
use crate::spec::{limits, with_defaults};
use crate::timing::Timing;
use crate::train::{DISTILL, DistillOptions, SYNTH, SynthOptions};

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn to_json<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    serde_json::to_string(v)
        .map(|s| JsValue::from_str(&s))
        .map_err(js_err)
}

/// Let the browser handle messages (a cancel, another call): resolve on the next macrotask.
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

/// The session's progress sink for a page callback (`None`: only yield). The callback gets the
/// step (a [`Progress`], a training step) as JSON and may return `false` to cancel; the yield
/// lets a cancel message arrive.
fn progress_to<T: Serialize>(
    callback: Option<js_sys::Function>,
) -> impl FnMut(T) -> Pin<Box<dyn Future<Output = bool>>> {
    move |p| {
        let keep_going = callback.as_ref().is_none_or(|f| {
            let json = serde_json::to_string(&p).unwrap_or_default();
            f.call1(&JsValue::NULL, &JsValue::from_str(&json))
                .map(|v| v.as_bool() != Some(false))
                .unwrap_or(true)
        });
        Box::pin(async move {
            yield_to_browser().await;
            keep_going
        })
    }
}

/// Every option the page's forms show, defined in the core, as JSON: `{"defaults": Settings,
/// "settings": [field], "limits": [Limit], "presets": [Preset], "calibration": {"min",
/// "advised", "better"}, "distill": [field], "synth": [field]}`, where a field is `{name,
/// flag, label, help, group, kind, default, min?, max?, min_exclusive?, choices?,
/// placeholder?, advanced}` (see `crate::spec::Field`).
#[wasm_bindgen(js_name = settingsSpec)]
pub fn settings_spec() -> String {
    serde_json::json!({
        "defaults": Settings::default(),
        "settings": with_defaults(SETTINGS, &Settings::default()),
        "limits": limits(SETTINGS),
        "presets": presets(),
        "calibration": CalibrationNeed::COUNTS,
        "distill": with_defaults(DISTILL, &DistillOptions::for_browser()),
        "synth": with_defaults(SYNTH, &SynthOptions::for_browser()),
        "targets": crate::export::targets::TARGETS.iter().map(|t| serde_json::json!({
            "name": t.name,
            "flash_bytes": t.flash_bytes,
            "ram_bytes": t.ram_bytes,
            "full_integer_only": t.full_integer_only,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// The calibration photos the settings (page JSON) need: `null`, or `{"min", "advised",
/// "better", "why"}` plus `"message"`, the request to show. Settings that cannot run together
/// also answer `null`: compressing them says why.
#[wasm_bindgen(js_name = calibrationNeed)]
pub fn calibration_need(options: String) -> Result<String, JsValue> {
    let settings = Settings::from_json(&options).map_err(js_err)?;
    Ok(
        match Plan::of(&settings).ok().and_then(|p| p.calibration_need()) {
            Some(n) => {
                let message = n.message();
                let mut v = serde_json::to_value(n).map_err(js_err)?;
                v["message"] = message.into();
                v.to_string()
            }
            None => "null".into(),
        },
    )
}

/// Latency statistics of `times_ms` with the engine's one definition of each (the page's
/// per-photo latencies): `{"runs", "min_ms", "median_ms", "p90_ms"}`, or `null` for no runs.
#[wasm_bindgen(js_name = latencyStats)]
pub fn latency_stats(times_ms: Vec<f64>) -> String {
    serde_json::to_string(&Timing::of(&times_ms)).unwrap_or_else(|_| "null".into())
}

/// The five most probable ImageNet classes of `logits` (another runtime's answer), as JSON
/// `[{index, label, prob}]`: the engine's one definition of a top-5.
#[wasm_bindgen(js_name = topFive)]
pub fn top_five(logits: Vec<f32>) -> String {
    serde_json::to_string(&Prediction::from_logits(logits).top5).unwrap_or_else(|_| "[]".into())
}

/// The page's engine: a session on one backend.
#[wasm_bindgen]
pub struct Engine {
    session: Rc<Session>,
    fallback_reason: Option<String>,
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
        #[cfg(feature = "webgpu")]
        match Backend::webgpu().await {
            Ok(b) => (b, None),
            // The notice reads "Reason: …": the backend's words without the error's prefix.
            Err(crate::Error::Backend(why)) => (Backend::cpu(), Some(why)),
            Err(e) => (Backend::cpu(), Some(e.to_string())),
        }
        #[cfg(not(feature = "webgpu"))]
        (
            Backend::cpu(),
            Some("this engine module is built for the CPU only".to_string()),
        )
    };
    let session = Session::new(backend, Batches::BROWSER);
    // The TFLite writer is in the module built with training only (the page's first module has
    // no room for it): there Auto can budget TFLite files and deployment targets.
    #[cfg(feature = "training")]
    session.measure_tflite_with(crate::export::tflite::tflite_summary);
    Engine {
        session: Rc::new(session),
        fallback_reason,
    }
}

/// The threaded module's pool: `await initThreadPool(n)` once, after the module's `init`, in a
/// worker (the calling thread blocks while the pool works). Its threads are web workers started
/// from wasm-bindgen-rayon's snippet, on this module's shared memory.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

#[cfg(feature = "threads")]
fn engine_threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(not(feature = "threads"))]
fn engine_threads() -> usize {
    1
}

fn webgpu_exposed() -> bool {
    let global = js_sys::global();
    let nav = js_sys::Reflect::get(&global, &JsValue::from_str("navigator")).ok();
    nav.and_then(|n| js_sys::Reflect::get(&n, &JsValue::from_str("gpu")).ok())
        .is_some_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

#[wasm_bindgen]
impl Engine {
    /// A description of the backend in use, e.g. `WebGPU (SwiftShader Device (Subzero))` or
    /// `CPU (Burn flex) on 4 threads`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        let description = &self.session.backend().description;
        match engine_threads() {
            1 => description.clone(),
            n => format!("{description} on {n} threads"),
        }
    }

    /// How many threads the engine's parallel work runs on: the threaded module's pool
    /// (`initThreadPool`), else 1.
    #[wasm_bindgen(getter)]
    pub fn threads(&self) -> usize {
        engine_threads()
    }

    /// `wgpu` or `cpu`.
    #[wasm_bindgen(getter, js_name = backendKind)]
    pub fn backend_kind(&self) -> String {
        match self.session.backend().kind {
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
        self.session.model_info()
    }

    /// How many photos are kept (calibration uses them all).
    #[wasm_bindgen(getter, js_name = photoCount)]
    pub fn photo_count(&self) -> usize {
        self.session.photo_count()
    }

    /// Load a model file (ONNX; safetensors — including one this page or the CLI compressed
    /// — or a PyTorch zip checkpoint) from its bytes; `name` is the file's.
    #[wasm_bindgen(js_name = loadWeights)]
    pub fn load_weights(&mut self, bytes: &[u8], name: String) -> Result<(), JsValue> {
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let model = Model::from_bytes(bytes).map_err(js_err)?.named(stem);
        let what = if model.quant.is_empty() {
            String::new()
        } else {
            format!(", {}", model.quant.describe())
        };
        let info = format!(
            "{name} ({:.2} M parameters{what})",
            model.num_params() as f64 / 1e6
        );
        self.session.load(model, info).map_err(js_err)
    }

    /// Feed the loaded network as the JSON `{size?: [height, width], resize?, mean?, std?, bgr?}` says (a
    /// network read from ONNX); kept photos are preprocessed again.
    #[wasm_bindgen(js_name = setInput)]
    pub fn set_input(&mut self, choice: String) -> Result<(), JsValue> {
        let choice =
            serde_json::from_str(&choice).map_err(|e| js_err(format!("preprocessing: {e}")))?;
        self.session.set_input(&choice).map_err(js_err)
    }

    /// The loaded network's preprocessing as JSON `{resize, crop, crop_width?, mean, std, bgr,
    /// fixed_size}` (`crop_width` where the input is not square).
    pub fn preprocessing(&self) -> Result<String, JsValue> {
        serde_json::to_string(&self.session.input().map_err(js_err)?).map_err(js_err)
    }

    /// Load deterministic random weights (for the offline demo; predictions are meaningless).
    #[wasm_bindgen(js_name = loadSeeded)]
    pub fn load_seeded(&mut self, seed: u32) -> Result<(), JsValue> {
        let model = Model::seeded_resnet18(seed as u64);
        self.session
            .load(model, format!("random weights, seed {seed}"))
            .map_err(js_err)
    }

    /// Classify one image file's bytes with the loaded model, without keeping the photo;
    /// resolves to JSON `{top5, logits, preprocess_ms, inference_ms, cold}`.
    pub fn predict(&self, image: Vec<u8>, name: Option<String>) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let name = name.unwrap_or_else(|| "the image".into());
            let c = session.classify(&name, &image).await.map_err(js_err)?;
            to_json(&c)
        })
    }

    /// Keep a photo (for comparisons and calibration) and classify it with the original and,
    /// when there is one, the compressed model. Resolves to JSON `{index, name,
    /// preprocess_ms, original, compressed}`; rejects with a message naming the file.
    #[wasm_bindgen(js_name = addPhoto)]
    pub fn add_photo(&self, image: Vec<u8>, name: String) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            to_json(&session.add_photo(name, image).await.map_err(js_err)?)
        })
    }

    /// Keep a photo without classifying it (the page restoring its photos on a new engine;
    /// `predictAll` classifies them). Returns its index; the error names the file.
    #[wasm_bindgen(js_name = keepPhoto)]
    pub fn keep_photo(&self, image: Vec<u8>, name: String) -> Result<usize, JsValue> {
        self.session.keep_photo(name, image).map_err(js_err)
    }

    /// Classify every kept photo again (after another model was loaded). Resolves to a JSON
    /// list of `{index, name, original, compressed}`.
    #[wasm_bindgen(js_name = predictAll)]
    pub fn predict_all(&self) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            to_json(
                &session
                    .predict_all(progress_to::<Progress>(None))
                    .await
                    .map_err(js_err)?,
            )
        })
    }

    /// Scores on the kept photos whose folder or name carries a class: the last compression's,
    /// the loaded original its reference (the original's alone before any compression).
    /// Resolves to JSON as `modelslim eval --json` prints it (`labelled` 0: none carries one).
    pub fn evaluate(&self) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            to_json(
                &session
                    .evaluate_compressed(progress_to::<Progress>(None))
                    .await
                    .map_err(js_err)?,
            )
        })
    }

    /// Forget the kept photos.
    #[wasm_bindgen(js_name = clearPhotos)]
    pub fn clear_photos(&self) {
        self.session.clear_photos();
    }

    /// Compress the loaded model with `options` (JSON, the CLI's flag names with `_`), using
    /// the kept photos for calibration. `on_progress(json)` is called before each step and may
    /// return `false` to cancel. Resolves to the report JSON; the files are then ready for
    /// `download`.
    pub fn compress(&self, options: String, on_progress: js_sys::Function) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let settings = Settings::from_json(&options).map_err(js_err)?;
            let report = session
                .compress(&settings, progress_to(Some(on_progress)))
                .await
                .map_err(js_err)?;
            to_json(&report)
        })
    }

    /// Compress to a budget on the kept photos: `options` is JSON `{budget?: {kind: "bytes" |
    /// "macs" | "ms", value}, min_agreement, format?: "onnx" | "tflite", target?: NAME,
    /// held_out?}` (a budget, a target or both; TFLite and targets in the training module only). `on_progress(json)` names the
    /// candidate being built and may return `false` to stop: the best candidate so far is kept.
    /// Resolves to the report JSON (every candidate, the kept one, its per-layer plan, and
    /// `compression`, the kept candidate's report as `compress` gives it).
    pub fn auto(&self, options: String, on_progress: js_sys::Function) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Request {
                budget: Option<Budget>,
                min_agreement: f64,
                format: Option<DeployFormat>,
                target: Option<String>,
                held_out: Option<usize>,
            }
            let r: Request = serde_json::from_str(&options)
                .map_err(|e| js_err(format!("bad auto options: {e}")))?;
            let opts = AutoOptions::new(r.budget, r.min_agreement, r.format, r.target.as_deref())
                .map_err(js_err)?;
            let report = session
                .auto(&opts, r.held_out, 0, progress_to(Some(on_progress)))
                .await
                .map_err(js_err)?;
            to_json(&report)
        })
    }

    /// Make candidate `index` of the last `auto` the compressed model. Resolves to
    /// `{compression, plan}`.
    #[wasm_bindgen(js_name = chooseCandidate)]
    pub fn choose_candidate(&self, index: usize) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (compression, plan) = session
                .choose_candidate(index, progress_to::<Progress>(None))
                .await
                .map_err(js_err)?;
            to_json(&serde_json::json!({ "compression": compression, "plan": plan }))
        })
    }

    /// Time `runs` forward passes of `which` (`original` or `compressed`) on one image, after
    /// one warm-up pass (reported as cold when it was the model's first).
    pub fn benchmark(&self, which: String, runs: usize) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let which: Which = which.parse().map_err(js_err)?;
            let b = session
                .benchmark(which, runs, progress_to::<Progress>(None))
                .await
                .map_err(js_err)?;
            to_json(&b)
        })
    }

    /// Quantize one layer at a time to `quant` and measure how far the outputs move on the
    /// kept photos. Resolves to a JSON list, most sensitive first.
    pub fn sensitivity(&self, quant: String, on_progress: js_sys::Function) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let precision: Precision = quant.parse().map_err(js_err)?;
            let rows = session
                .sensitivity(
                    precision,
                    Granularity::PerChannel,
                    progress_to(Some(on_progress)),
                )
                .await
                .map_err(js_err)?;
            to_json(&rows)
        })
    }

    /// Whether this module can recover accuracy (distill, synthesize): the page's first module
    /// cannot; the one built with the `training` feature can.
    #[wasm_bindgen(getter)]
    pub fn training(&self) -> bool {
        cfg!(feature = "training")
    }

    /// Take a compression made by another engine (its safetensors file and model card) as the
    /// last one, for distilling it here.
    #[wasm_bindgen(js_name = adoptCompressed)]
    pub fn adopt_compressed(&self, safetensors: Vec<u8>, card: String) -> Result<(), JsValue> {
        self.session
            .adopt_compressed(safetensors, card)
            .map_err(js_err)
    }

    /// Name the classes from a labels file's text (one name per line, in class order) instead
    /// of ImageNet's: answers from now on use them and compressed files carry them. Returns
    /// how many names were read; the error names the file (`name`, else "the labels file").
    #[wasm_bindgen(js_name = setLabels)]
    pub fn set_labels(&self, text: String, name: Option<String>) -> Result<usize, JsValue> {
        let name = name.unwrap_or_else(|| "the labels file".into());
        self.session.set_labels(&name, &text).map_err(js_err)
    }

    /// Label the kept photos from a labels file's text (`labels.csv`: rows `file,class`);
    /// returns how many rows it has; the error names the file (`name`).
    #[wasm_bindgen(js_name = addPhotoLabels)]
    pub fn add_photo_labels(&self, text: String, name: String) -> Result<usize, JsValue> {
        self.session.add_photo_labels(&name, &text).map_err(js_err)
    }

    /// The compressed model's file: `onnx`, `safetensors` or `card` (JSON).
    pub fn download(&self, format: String) -> Result<Vec<u8>, JsValue> {
        let format: FileFormat = format.parse().map_err(js_err)?;
        self.session.file(format).map_err(js_err)
    }

    /// The loaded original model as ONNX (fp32), for the page's check in ONNX Runtime.
    #[wasm_bindgen(js_name = originalOnnx)]
    pub fn original_onnx(&self) -> Result<Vec<u8>, JsValue> {
        self.session.original_onnx().map_err(js_err)
    }

    /// Kept photo `index` as the model's input (CHW floats of the input's height and width), for another
    /// runtime to be given exactly what this engine is given.
    #[wasm_bindgen(js_name = photoInput)]
    pub fn photo_input(&self, index: usize) -> Result<Vec<f32>, JsValue> {
        self.session.photo_input(index).map_err(js_err)
    }

    /// The file name for `download(format)`, e.g. `resnet18-c30-int8.onnx`.
    #[wasm_bindgen(js_name = downloadName)]
    pub fn download_name(&self, format: String) -> Option<String> {
        let format: FileFormat = format.parse().ok()?;
        self.session.file_name(format)
    }
}

/// Recovering accuracy and the TFLite files: only in the module built with the `training`
/// feature (Burn's autodiff, and room for the TFLite writer beyond the page's module budget),
/// which the page loads when the user first asks for one of them.
#[cfg(feature = "training")]
#[wasm_bindgen]
impl Engine {
    /// The last compression as a TFLite file; `io` is `float` or `int8` (a full-integer file
    /// only).
    pub fn tflite(&self, io: String) -> Result<Vec<u8>, JsValue> {
        let io: crate::export::tflite::TfliteIo = io.parse().map_err(js_err)?;
        self.session.tflite(io).map_err(js_err)
    }

    /// The last compression's TFLite file, as a device takes it (int8 input and output when
    /// full integer), as a C header for firmware whose arrays are named after `name`.
    #[wasm_bindgen(js_name = cHeader)]
    pub fn c_header(&self, name: String) -> Result<String, JsValue> {
        let model = self.session.compressed_model().map_err(js_err)?;
        let io = crate::export::tflite::device_io(&model);
        crate::export::tflite::tflite_c_header(&model, io, &name).map_err(js_err)
    }

    /// The loaded original as a TFLite file (fp32).
    #[wasm_bindgen(js_name = originalTflite)]
    pub fn original_tflite(&self) -> Result<Vec<u8>, JsValue> {
        self.session.original_tflite().map_err(js_err)
    }

    /// How the last compression's TFLite file fits each deployment target: a JSON array as
    /// `modelslim targets --json` prints it.
    pub fn targets(&self) -> Result<JsValue, JsValue> {
        to_json(&self.session.targets().map_err(js_err)?)
    }

    /// Distil the last compression from the loaded model on the kept photos with `options`
    /// (JSON: `steps`, `lr`, `batch`, … as the CLI's flags). `on_step(json)` hears about every
    /// step (loss, time, held-back agreement) and may return `false` to stop, keeping the best
    /// model so far. Resolves to the report JSON; the files are then the distilled model's.
    pub fn distill(&self, options: String, on_step: js_sys::Function) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let opts: DistillOptions = serde_json::from_str(&options)
                .map_err(|e| js_err(format!("bad distillation settings: {e}")))?;
            let report = session
                .distill(None, &opts, progress_to(Some(on_step)))
                .await
                .map_err(js_err)?;
            to_json(&report)
        })
    }

    /// Synthesize calibration images from the loaded model (`options`: JSON `{n, seed, steps}`).
    /// Resolves to `{report: JSON, images: [Uint8Array PNG]}`; the page keeps them as photos.
    pub fn synthesize(&self, options: String, on_step: js_sys::Function) -> js_sys::Promise {
        let session = self.session.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let opts: SynthOptions = serde_json::from_str(&options)
                .map_err(|e| js_err(format!("bad synthesis settings: {e}")))?;
            let report = session
                .synthesize(&opts, progress_to(Some(on_step)))
                .await
                .map_err(js_err)?;
            let images = js_sys::Array::new();
            for png in &report.png {
                images.push(&js_sys::Uint8Array::from(png.as_slice()));
            }
            let out = js_sys::Object::new();
            js_sys::Reflect::set(&out, &"report".into(), &to_json(&report)?)?;
            js_sys::Reflect::set(&out, &"images".into(), &images)?;
            Ok(out.into())
        })
    }
}
