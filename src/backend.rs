//! Where the network runs: Burn's wgpu backend (WebGPU in browsers, Vulkan natively) or Burn's
//! pure-Rust CPU backend (flex), which also serves as the browser's fallback.

use burn::tensor::Device;
use serde::Serialize;

use crate::{Error, Result};

/// The two kinds of backend the product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's flex backend on the CPU.
    Cpu,
    /// Burn's wgpu backend on a GPU (or a software GPU such as lavapipe or SwiftShader).
    Wgpu,
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "wgpu" | "gpu" => Ok(BackendKind::Wgpu),
            other => Err(Error::Invalid(format!(
                "unknown backend '{other}'; use cpu or wgpu"
            ))),
        }
    }
}

/// A ready device and a description of it for people.
#[derive(Debug, Clone)]
pub struct Backend {
    pub device: Device,
    pub kind: BackendKind,
    /// e.g. `WebGPU (SwiftShader Device (Subzero))` or `CPU (Burn flex)`.
    pub description: String,
}

impl Backend {
    /// The CPU backend; always available.
    pub fn cpu() -> Self {
        Backend {
            device: Device::flex(),
            kind: BackendKind::Cpu,
            description: "CPU (Burn flex)".into(),
        }
    }

    /// The wgpu backend pinned to Vulkan (natively; without the pin wgpu may silently pick GL).
    #[cfg(not(target_family = "wasm"))]
    pub fn wgpu_vulkan() -> Result<Self> {
        use burn::tensor::wgpu::WgpuBackend;
        let (device, setup) = Device::wgpu_options()
            .graphics_api(WgpuBackend::Vulkan)
            .init_with_setup()
            .map_err(|e| {
                Error::Backend(format!(
                    "no Vulkan device for the wgpu backend ({e}); install a Vulkan driver \
                     (e.g. mesa-vulkan-drivers) or use --backend cpu"
                ))
            })?;
        let info = setup.adapter.get_info();
        Ok(Backend {
            device,
            kind: BackendKind::Wgpu,
            description: format!("wgpu/Vulkan ({})", info.name),
        })
    }

    /// The wgpu backend on the browser's WebGPU (not in the threaded module: the `webgpu`
    /// feature).
    #[cfg(feature = "webgpu")]
    pub async fn webgpu() -> Result<Self> {
        use burn::tensor::wgpu::WgpuBackend;
        let (device, setup) = Device::wgpu_options()
            .graphics_api(WgpuBackend::WebGpu)
            .init_with_setup_async()
            .await
            .map_err(|e| Error::Backend(webgpu_failure(&e)))?;
        let info = setup.adapter.get_info();
        let name = if info.name.is_empty() {
            "browser adapter".to_string()
        } else {
            info.name
        };
        Ok(Backend {
            device,
            kind: BackendKind::Wgpu,
            description: format!("WebGPU ({name})"),
        })
    }

    /// Open the backend of `kind` natively.
    #[cfg(not(target_family = "wasm"))]
    pub fn native(kind: BackendKind) -> Result<Self> {
        match kind {
            BackendKind::Cpu => Ok(Backend::cpu()),
            BackendKind::Wgpu => Backend::wgpu_vulkan(),
        }
    }
}

/// Why WebGPU did not start, in a line for the page's notice: wgpu's adapter selector lists
/// every native API it did not try, which says nothing to a user.
#[cfg(feature = "webgpu")]
fn webgpu_failure(e: &burn::tensor::wgpu::WgpuInitError) -> String {
    use burn::tensor::wgpu::WgpuInitError as E;
    match e {
        E::AdapterUnavailable { .. } => "the browser exposes WebGPU but offers no graphics \
             adapter (its GPU may be blocklisted or WebGPU turned off; in Chrome, chrome://gpu \
             says which)"
            .to_string(),
        other => format!("WebGPU did not start ({other})"),
    }
}
