//! The named starting points the page offers and the CLI documents.

use serde::Serialize;

use super::Settings;
use crate::compress::{Granularity, Importance, PruneScope, QuantMethod};
use crate::quant::Precision;

/// A named starting point for the settings.
#[derive(Debug, Clone, Serialize)]
pub struct Preset {
    /// Stable id (`pi`, `balanced`, `fastest`, `smallest`).
    pub id: &'static str,
    /// The button's label.
    pub name: &'static str,
    /// One line on what it does and costs.
    pub note: &'static str,
    pub settings: Settings,
}

/// `settings` with int8 weights per channel and int8 activations, biases corrected for the
/// rounding: a full int8 graph, which becomes a full-integer TFLite file ("int8 for Raspberry
/// Pi / ARM", and every plan Auto proposes for a device that runs only integers).
pub fn full_integer(settings: Settings) -> Settings {
    Settings {
        quant: Precision::Int8,
        granularity: Granularity::PerChannel,
        layer_quant: Default::default(),
        keep_first_last: false,
        act_quant: true,
        bias_correction: true,
        ..settings
    }
}

/// The presets the page offers.
pub fn presets() -> Vec<Preset> {
    let base = Settings::default();
    vec![
        Preset {
            id: "pi",
            name: "int8 for Raspberry Pi / ARM",
            note: "A full int8 QDQ graph: ONNX Runtime and TFLite run it with int8 kernels on ARM (about 4× smaller, usually 2–3× faster there). Biases are corrected for the rounding. Needs your photos for calibration.",
            settings: full_integer(base.clone()),
        },
        Preset {
            id: "balanced",
            name: "Balanced: 30 % channels + int8",
            note: "30 % fewer channels inside each block (≈ 29 % fewer MACs), ranked by their output on your photos and the next layers refit to make up for them, and int8 weights. Needs your photos. Pruning without training still costs accuracy, less with more photos (EfficientNet-Lite0 on 250 ImageNet photos, refit on 64: top-1 0.41 against 0.71, agreement 0.42; see docs/accuracy.md): check the agreement before you download.",
            settings: Settings {
                prune_channels: 0.3,
                round_to: 8,
                prune_scope: PruneScope::Internal,
                importance: Importance::Output,
                reconstruct: true,
                quant: Precision::Int8,
                ..base.clone()
            },
        },
        Preset {
            id: "fastest",
            name: "Fastest: 50 % channels + int8",
            note: "Half the channels inside each block, refit on your photos, int8 weights and activations, batch norms recalibrated. Needs your photos. A large accuracy cost without training (more than the balanced preset's): check the agreement before you download.",
            settings: Settings {
                prune_channels: 0.5,
                round_to: 8,
                prune_scope: PruneScope::Internal,
                importance: Importance::Output,
                reconstruct: true,
                quant: Precision::Int8,
                act_quant: true,
                recalibrate_bn: true,
                ..base.clone()
            },
        },
        Preset {
            id: "smallest",
            name: "Smallest: 30 % channels + int4",
            note: "30 % fewer channels inside each block, refit on your photos, and int4 weights chosen by GPTQ (first conv and classifier int8): the smallest file, the largest accuracy cost. Needs your photos; check the agreement before you download.",
            settings: Settings {
                prune_channels: 0.3,
                round_to: 8,
                prune_scope: PruneScope::Internal,
                importance: Importance::Output,
                reconstruct: true,
                quant: Precision::Int4,
                quant_method: QuantMethod::Gptq,
                keep_first_last: true,
                ..base
            },
        },
    ]
}
