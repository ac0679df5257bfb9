//! The browser's entry points (wasm-bindgen). Thin: bytes in, JSON strings out; the page's
//! script does the DOM. Everything else is the same core the CLI and the tests use.

use std::cell::Cell;
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::backend::{Backend, BackendKind};
use crate::model::Model;
use crate::predict::{ClassScore, Classifier};
use crate::preprocess::Preprocess;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The page's engine: one backend, at most one loaded model.
#[wasm_bindgen]
pub struct Engine {
    backend: Backend,
    fallback_reason: Option<String>,
    classifier: Option<Rc<Classifier>>,
    model_info: String,
    runs: Rc<Cell<u32>>,
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
        classifier: None,
        model_info: String::new(),
        runs: Rc::new(Cell::new(0)),
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
        self.model_info.clone()
    }

    /// Load a weights file (safetensors, or a PyTorch zip checkpoint) from its bytes.
    #[wasm_bindgen(js_name = loadWeights)]
    pub fn load_weights(&mut self, bytes: &[u8], name: String) -> Result<(), JsError> {
        let model = Model::from_bytes(bytes).map_err(js_err)?;
        self.install(
            &model,
            format!(
                "{name} ({:.1} M parameters)",
                model.num_params() as f64 / 1e6
            ),
        )
    }

    /// Load deterministic random weights (for the offline demo; predictions are meaningless).
    #[wasm_bindgen(js_name = loadSeeded)]
    pub fn load_seeded(&mut self, seed: u32) -> Result<(), JsError> {
        let model = Model::seeded_resnet18(seed as u64);
        self.install(&model, format!("random weights, seed {seed}"))
    }

    fn install(&mut self, model: &Model, info: String) -> Result<(), JsError> {
        self.classifier = None;
        let classifier = Classifier::new(model, self.backend.clone()).map_err(js_err)?;
        self.classifier = Some(Rc::new(classifier));
        self.model_info = info;
        self.runs = Rc::new(Cell::new(0));
        Ok(())
    }

    /// Classify one image file's bytes; resolves to JSON `{top5, preprocess_ms, inference_ms,
    /// cold}`, or rejects with a message for the user.
    pub fn predict(&self, image: Vec<u8>) -> js_sys::Promise {
        let classifier = self.classifier.clone();
        let runs = self.runs.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let t0 = now_ms();
            let input = Preprocess::IMAGENET.run(&image).map_err(js_err)?;
            let t1 = now_ms();
            let Some(classifier) = classifier else {
                return Err(JsError::new("no model is loaded yet").into());
            };
            let p = classifier.predict(input).await.map_err(js_err)?;
            let t2 = now_ms();
            let cold = runs.get() == 0;
            runs.set(runs.get() + 1);
            let json = serde_json::to_string(&PredictOut {
                top5: &p.top5,
                preprocess_ms: t1 - t0,
                inference_ms: t2 - t1,
                cold,
            })
            .map_err(js_err)?;
            Ok(JsValue::from_str(&json))
        })
    }
}
