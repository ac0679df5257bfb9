//! Deployment targets and whether a model's TFLite file fits each: its size against the
//! target's flash, its peak activation memory (as TFLite Micro plans its arena) against the
//! target's RAM, and the operators the target cannot run as written.

use serde::Serialize;

use super::tflite::{TfliteSummary, tflite_summary};
use crate::model::Model;
use crate::{Error, Result};

/// One deployment target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    /// Its runtime and the format it takes.
    pub runtime: &'static str,
    /// Storage for the model file.
    pub flash_bytes: u64,
    /// Memory for the activations.
    pub ram_bytes: u64,
    /// Runs only integer operators (int8 weights and activations).
    pub full_integer_only: bool,
    /// The TFLite operators its runtime has kernels for.
    pub operators: &'static [&'static str],
}

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// What every runtime below has (TFLite's, LiteRT's and TFLite Micro's kernels alike), the
/// Edge TPU included.
const EDGE_TPU_OPERATORS: [&str; 15] = [
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "PAD",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RESHAPE",
];

/// Those and `HARD_SWISH`: every operator the TFLite writer emits, which TFLite Micro has
/// integer kernels for (so esp-tflite-micro too) and Vela places on the Ethos-U55 (it puts
/// every operator of RapidOCR's full-integer classifier, hard swish, sigmoid gates and
/// products included, on the NPU).
const MICRO_OPERATORS: [&str; 16] = with(EDGE_TPU_OPERATORS, "HARD_SWISH");

/// `list` with `extra` after it.
const fn with<const N: usize, const M: usize>(
    list: [&'static str; N],
    extra: &'static str,
) -> [&'static str; M] {
    let mut out = [extra; M];
    let mut i = 0;
    while i < N {
        out[i] = list[i];
        i += 1;
    }
    out
}

/// The targets the table covers. Flash and RAM are a typical board's; the NPUs run integer
/// operators only (anything else stays on the host CPU or is refused by their compilers).
pub const TARGETS: [Target; 5] = [
    Target {
        name: "Raspberry Pi Zero 2 W",
        runtime: "ONNX Runtime or LiteRT, ARM64 (512 MB RAM, SD card)",
        flash_bytes: 16 * 1024 * MIB,
        ram_bytes: 512 * MIB,
        full_integer_only: false,
        operators: &MICRO_OPERATORS,
    },
    Target {
        name: "Coral Edge TPU",
        runtime: "LiteRT with the Edge TPU delegate, full-integer int8 (8 MB on-chip for parameters)",
        flash_bytes: 8 * MIB,
        ram_bytes: 8 * MIB,
        full_integer_only: true,
        operators: &EDGE_TPU_OPERATORS,
    },
    Target {
        name: "Arm Ethos-U55",
        runtime: "TFLite Micro after Vela, full-integer int8 (e.g. 4 MB flash, 1 MB SRAM)",
        flash_bytes: 4 * MIB,
        ram_bytes: MIB,
        full_integer_only: true,
        operators: &MICRO_OPERATORS,
    },
    Target {
        name: "STM32-class MCU",
        runtime: "TFLite Micro, int8 (2 MB flash, 512 kB RAM)",
        flash_bytes: 2 * MIB,
        ram_bytes: 512 * KIB,
        full_integer_only: true,
        operators: &MICRO_OPERATORS,
    },
    Target {
        name: "ESP32-S3",
        runtime: "TFLite Micro (esp-tflite-micro), int8 (8 MB flash, 8 MB PSRAM)",
        flash_bytes: 8 * MIB,
        ram_bytes: 8 * MIB,
        full_integer_only: true,
        operators: &MICRO_OPERATORS,
    },
];

impl Target {
    /// The target called `name` (as [`TARGETS`] names it, in any case), or why none is.
    pub fn named(name: &str) -> Result<&'static Target> {
        let wanted = name.trim();
        TARGETS
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
                Error::Invalid(format!(
                    "no deployment target is called '{wanted}': name one of {}",
                    names.join(", ")
                ))
            })
    }

    /// How a TFLite file of summary `s` fits this target.
    pub fn fit(&self, s: &TfliteSummary) -> TargetFit {
        fit(self, s)
    }
}

/// How a model fits one target (the CLI contract's fields).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetFit {
    pub name: &'static str,
    pub runtime: &'static str,
    pub flash_bytes: u64,
    pub ram_bytes: u64,
    pub file_bytes: u64,
    pub peak_activation_bytes: u64,
    /// Operators the target cannot run as the file has them.
    pub unsupported_ops: Vec<String>,
    pub fits: bool,
    /// What stands in the way, in one line; empty when it fits.
    pub message: String,
}

/// How `model`'s TFLite file fits each of [`TARGETS`].
pub fn fit_targets(model: &Model) -> Result<Vec<TargetFit>> {
    let summary = tflite_summary(model)?;
    Ok(TARGETS.iter().map(|t| fit(t, &summary)).collect())
}

fn fit(t: &Target, s: &TfliteSummary) -> TargetFit {
    let (file, peak) = (s.file_bytes as u64, s.peak_activation_bytes as u64);
    let mut unsupported: Vec<String> = s
        .operators
        .iter()
        .filter(|op| !t.operators.contains(op))
        .map(|op| op.to_string())
        .collect();
    if t.full_integer_only && !s.full_integer {
        unsupported.extend(
            s.operators
                .iter()
                .filter(|op| t.operators.contains(op))
                .map(|op| format!("{op} (float)")),
        );
    }
    let mut problems = Vec::new();
    if t.full_integer_only && !s.full_integer {
        problems.push("needs int8 weights and activations (a full-integer file)".to_string());
    }
    if file > t.flash_bytes {
        problems.push(format!(
            "the file is {} for {} of flash",
            mb(file),
            capacity(t.flash_bytes)
        ));
    }
    if peak > t.ram_bytes {
        problems.push(format!(
            "activations need {} for {} of RAM",
            mb(peak),
            capacity(t.ram_bytes)
        ));
    }
    if !problems.is_empty() {
        problems.push(what_would_fit(t, s));
    } else if !unsupported.is_empty() {
        // Size is not the trouble: no width or precision brings these operators to it.
        problems.push(format!(
            "its runtime has no kernel for {}: a network without them",
            unsupported.join(", ")
        ));
    }
    TargetFit {
        name: t.name,
        runtime: t.runtime,
        flash_bytes: t.flash_bytes,
        ram_bytes: t.ram_bytes,
        file_bytes: file,
        peak_activation_bytes: peak,
        fits: problems.is_empty() && unsupported.is_empty(),
        unsupported_ops: unsupported,
        message: problems.join("; "),
    }
}

/// The recipe that would bring a model of summary `s` within `t`, in one clause: int8 weights
/// and activations first (a full-integer file's weights take a byte each, its activations a
/// quarter of float's), then the share of channels to remove, estimated from how sizes scale
/// with width — weights with its square (a conv narrows on both sides), activations linearly.
/// An estimate to start from: `modelslim targets` on the result says whether it fits.
fn what_would_fit(t: &Target, s: &TfliteSummary) -> String {
    let (mut file, mut peak) = (s.file_bytes as f64, s.peak_activation_bytes as f64);
    let mut steps = Vec::new();
    if !s.full_integer {
        // Weights stored in 4 bytes (fp32) or fewer: int8 takes about a quarter of what float
        // activations take, and of the file at most what fp32 takes.
        file /= s.bytes_per_weight.max(1.0);
        peak /= 4.0;
        steps.push("int8 weights and activations (--quant int8 --act-quant)");
    }
    let flash_keep = (t.flash_bytes as f64 / file).sqrt();
    let ram_keep = t.ram_bytes as f64 / peak;
    let keep = flash_keep.min(ram_keep).min(1.0);
    let fewer = ((1.0 - keep) * 100.0 / 5.0).ceil() * 5.0;
    let recipe = if fewer <= 0.0 {
        steps.join(" + ")
    } else if fewer > 90.0 {
        return "would fit: not this network at any width modelslim prunes to (at most 90 % fewer channels); a smaller one".into();
    } else {
        let pruning = format!(
            "about {fewer:.0} % fewer channels than this model has (--prune-channels {:.2} --prune-scope all{})",
            fewer / 100.0,
            if ram_keep < flash_keep {
                " --prune-stem"
            } else {
                ""
            }
        );
        steps
            .iter()
            .map(|s| s.to_string())
            .chain([pruning])
            .collect::<Vec<_>>()
            .join(" + ")
    };
    format!("would fit: {recipe}")
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// A board's flash or RAM in the binary units boards are sold in: `16 GiB`, `8 MiB`, `512 KiB`.
pub fn capacity(bytes: u64) -> String {
    let (unit, size) = if bytes >= 1 << 30 {
        ("GiB", 1u64 << 30)
    } else if bytes >= MIB {
        ("MiB", MIB)
    } else {
        ("KiB", KIB)
    };
    if bytes.is_multiple_of(size) {
        format!("{} {unit}", bytes / size)
    } else {
        format!("{:.1} {unit}", bytes as f64 / size as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(file: usize, peak: usize, full_integer: bool) -> TfliteSummary {
        TfliteSummary {
            file_bytes: file,
            peak_activation_bytes: peak,
            operators: vec!["CONV_2D", "ADD"],
            full_integer,
            bytes_per_weight: if full_integer { 1.0 } else { 4.0 },
        }
    }

    #[test]
    fn a_target_fits_only_what_is_within_its_flash_ram_and_operators() {
        let mcu = TARGETS[3];
        let small = fit(&mcu, &summary(1 << 20, 100 << 10, true));
        assert!(small.fits && small.message.is_empty(), "{small:?}");
        let big = fit(&mcu, &summary(3 << 20, 100 << 10, true));
        assert!(!big.fits && big.message.contains("flash"), "{big:?}");
        // 2/3 of the file: 82 % of the width (its square), so 20 % fewer channels.
        assert!(big.message.contains("about 20 % fewer channels"), "{big:?}");
        let wide = fit(&mcu, &summary(1 << 20, 600 << 10, true));
        assert!(!wide.fits && wide.message.contains("RAM"), "{wide:?}");
        // 512/600 of the activations, linearly: 15 % fewer, the stem's too.
        assert!(
            wide.message.contains("about 15 % fewer channels")
                && wide.message.contains("--prune-stem"),
            "{wide:?}"
        );
        let float = fit(&mcu, &summary(1 << 20, 100 << 10, false));
        assert!(
            !float.fits
                && float
                    .unsupported_ops
                    .contains(&"CONV_2D (float)".to_string())
        );
        assert!(
            float
                .message
                .ends_with("would fit: int8 weights and activations (--quant int8 --act-quant)"),
            "{float:?}"
        );
        // 512 times the flash even at int8: nothing modelslim prunes to fits.
        assert!(big.message.contains("for 2 MiB of flash"), "{big:?}");
        assert_eq!(capacity(16 << 30), "16 GiB");
        assert_eq!(capacity(512 << 10), "512 KiB");
        assert_eq!(capacity(3 << 19), "1.5 MiB");
        let huge = fit(&mcu, &summary(1 << 30, 100 << 10, true));
        assert!(huge.message.contains("a smaller one"), "{huge:?}");
        // The Pi runs float files.
        assert!(fit(&TARGETS[0], &summary(40 << 20, 6 << 20, false)).fits);
        let mut odd = summary(1 << 20, 1 << 10, true);
        odd.operators.push("?");
        let odd = fit(&mcu, &odd);
        assert_eq!(odd.unsupported_ops, vec!["?".to_string()]);
        assert!(
            !odd.fits && odd.message.contains("no kernel for ?"),
            "{odd:?}"
        );
        // Hard swish runs on the microcontrollers, not on the Edge TPU.
        let mut swish = summary(1 << 20, 1 << 10, true);
        swish.operators.push("HARD_SWISH");
        assert!(fit(&mcu, &swish).fits);
        assert_eq!(fit(&TARGETS[1], &swish).unsupported_ops, ["HARD_SWISH"]);
    }
}
