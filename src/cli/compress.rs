//! `modelslim compress`: flags into [`Settings`] (generated from the core's descriptions), the
//! session's run, the files written, the report printed (`--json`: the contract checks outside
//! the repo read).

use std::path::{Path, PathBuf};

use modelslim::Error;
use modelslim::compress::{Plan, Settings};
use modelslim::export::to_tflite;
use modelslim::model::Model;
use modelslim::session::{AgreementPhotos, FileFormat, HoldBack};
use serde::Serialize;

use super::images::{image_files, keep_photos};
use super::options::Flags;
use super::{
    BackendFlag, CliError, ModelFlags, print, print_json, progress_on_terminal, required,
    write_file,
};

#[derive(clap::Args, Debug)]
pub struct CompressArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// The compressed model, safetensors.
    #[arg(long, value_name = "OUT.safetensors")]
    out: Option<String>,
    /// Also the compressed model as ONNX (int8 QDQ where quantized).
    #[arg(long, value_name = "OUT.onnx")]
    onnx: Option<String>,
    /// Also the compressed model as TFLite (fp32, fp16 or int8 weights; NHWC input).
    #[arg(long, value_name = "OUT.tflite")]
    tflite: Option<String>,
    #[command(flatten)]
    settings: Flags<Settings>,
    /// A folder of photos the calibrated steps fit on (activation ranges, GPTQ, refitting,
    /// measured importance, bias correction, batch norms); agreement is measured on them.
    #[arg(long, value_name = "DIR")]
    calibrate: Option<String>,
    /// Keep N of the --calibrate photos out of fitting and measure agreement on them.
    #[arg(long, value_name = "N")]
    held_back: Option<usize>,
    #[command(flatten)]
    backend: BackendFlag,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `compress --json`'s account of pruning: how channels were ranked and which groups could
/// lose them, and how the remaining weights were treated.
#[derive(Serialize)]
struct PruningJson {
    /// Share of each prunable group's channels removed (0: none).
    channels: f32,
    /// `l1`, `l2`, `bn`, `output` or `hessian`.
    importance: &'static str,
    /// `all` or `internal`.
    scope: &'static str,
    /// Share of the weights zeroed (0: none).
    sparsity: f32,
    /// `magnitude`, `sparsegpt` (with `--reconstruct`), or `none` without sparsity.
    sparsity_method: &'static str,
    /// Whether the layers reading pruned channels (and sparse layers) were refit on the
    /// calibration images.
    reconstruct: bool,
    /// The share of the original's MACs asked to be kept, when a target was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    target_macs: Option<f32>,
}

/// `compress --json`: the fields checks outside the repo read.
#[derive(Serialize)]
struct CompressJson<'a> {
    before: &'a modelslim::compress::Metrics,
    after: &'a modelslim::compress::Metrics,
    quantization: &'a str,
    /// How the integers were chosen: `rtn` or `gptq`.
    quant_method: &'static str,
    /// What each pruning step did.
    pruning: PruningJson,
    /// The blocks removed, each with its MACs, the KL measured without it and how it was
    /// chosen (`named`, `measured`, `budget`).
    dropped_blocks: &'a [modelslim::compress::DroppedBlock],
    /// Share of each channel group's channels removed, by group.
    group_ratios: &'a std::collections::BTreeMap<String, f32>,
    /// Copies of the calibration images the layer statistics used: `none`, `flip`,
    /// `flip-crop`.
    augment: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl: Option<f64>,
    /// Photos the run fitted on, when agreement was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_images: Option<usize>,
    /// `held_back`, `fitting` or `unfitted`: which photos agreement was measured on.
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement_photos: Option<AgreementPhotos>,
    seconds: f64,
}

pub fn compress(args: CompressArgs) -> std::result::Result<(), CliError> {
    let out = PathBuf::from(required(&args.out, "out")?);
    let settings = args.settings.options()?;
    // Fail on impossible combinations, and on missing photos, before reading any image.
    let plan = Plan::of(&settings)?;
    let bn_dir = args.settings.switch_value("recalibrate_bn");
    let calibrate = args.calibrate.as_deref();
    if let Some(need) = plan.calibration_need() {
        let fits = plan.fits_on_photos() || bn_dir.is_none();
        if fits && calibrate.is_none() {
            return Err(CliError::Run(Error::Invalid(format!(
                "{} calibrated on photos: give --calibrate DIR",
                need.why
            ))));
        }
    }
    let session = args.model.session(&args.backend)?;
    if let Some(n) = args.held_back {
        session.set_hold_back(HoldBack::Count(n));
    }
    if let Some(dir) = bn_dir {
        for (name, bytes) in image_files(&[dir])? {
            session.keep_batch_norm_photo(name, bytes)?;
        }
    }
    if let Some(dir) = calibrate {
        keep_photos(&session, &[dir])?;
    }
    let report = pollster::block_on(session.compress(&settings, progress_on_terminal))?;
    // Before any file is written: a model TFLite cannot hold writes nothing.
    let tflite = match &args.tflite {
        Some(_) => Some(to_tflite(&Model::from_bytes(
            &session.file(FileFormat::Safetensors)?,
        )?)?),
        None => None,
    };
    // One file's bytes at a time (a large network's are not copied together).
    write_file(&out, &session.file(FileFormat::Safetensors)?)?;
    if let Some(path) = &args.onnx {
        write_file(Path::new(path), &session.file(FileFormat::Onnx)?)?;
    }
    if let (Some(path), Some(bytes)) = (&args.tflite, &tflite) {
        write_file(Path::new(path), bytes)?;
    }
    let opts = &plan.options;
    let agreement = report.agreement.as_ref();
    let json = CompressJson {
        before: &report.before,
        after: &report.after,
        quantization: &report.quantization,
        quant_method: opts.quant_method.label(),
        pruning: PruningJson {
            channels: opts.prune.ratio,
            importance: opts.prune.importance.label(),
            scope: opts.prune.scope.label(),
            sparsity: opts.sparsity.sparsity,
            sparsity_method: match (opts.sparsity.sparsity > 0.0, opts.reconstruct) {
                (false, _) => "none",
                (true, true) => "sparsegpt",
                (true, false) => "magnitude",
            },
            reconstruct: opts.reconstruct,
            target_macs: opts.target_macs,
        },
        dropped_blocks: &report.shape.dropped_blocks,
        group_ratios: &report.shape.group_ratios,
        augment: opts.augment.label(),
        agreement: agreement.map(|a| a.agreement),
        kl: agreement.map(|a| a.kl),
        calibration_images: agreement.map(|_| report.calibration_photos),
        agreement_photos: agreement.map(|_| report.agreement_photos),
        seconds: report.seconds,
    };
    if args.json {
        print_json(&json)?;
    } else {
        println!("wrote {} ({})", out.display(), report.quantization);
        for p in [&args.onnx, &args.tflite].into_iter().flatten() {
            println!("wrote {p}");
        }
        print::compression(&report);
    }
    Ok(())
}
