//! `modelslim compress`: flags into [`Settings`], the session's run, the files written, the
//! report printed (`--json`: the contract checks outside the repo read).

use std::path::{Path, PathBuf};

use modelslim::Error;
use modelslim::compress::{QuantMethod, Settings};
use modelslim::session::FileFormat;
use serde::Serialize;

use super::args::Args;
use super::images::{image_files, keep_photos};
use super::{CliError, print, print_json, progress_on_terminal, session, write_file};

/// The settings `compress`'s flags describe (names as in [`Settings`], defaults from it).
fn settings_from(args: &Args) -> std::result::Result<Settings, CliError> {
    let mut layer_quant = std::collections::BTreeMap::new();
    for spec in args.all("layer-quant") {
        let (layer, p) = spec.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("--layer-quant '{spec}': expected LAYER=PRECISION"))
        })?;
        layer_quant.insert(layer.to_string(), p.to_string());
    }
    let defaults = Settings::default();
    let text = |name: &str, default: &str| args.one(name).unwrap_or(default).to_string();
    Ok(Settings {
        prune_channels: args.number("prune-channels", defaults.prune_channels)?,
        importance: text("importance", &defaults.importance),
        global: args.has("global"),
        round_to: args.number("round-to", defaults.round_to)?,
        steps: args.number("steps", defaults.steps)?,
        prune_stem: args.has("prune-stem"),
        prune_scope: text("prune-scope", &defaults.prune_scope),
        sparsity: args.number("sparsity", defaults.sparsity)?,
        reconstruct: args.has("reconstruct"),
        augment: text("augment", &defaults.augment),
        recalibrate_bn: args.one("recalibrate-bn").is_some(),
        quant: text("quant", &defaults.quant),
        granularity: text("granularity", &defaults.granularity),
        quant_method: text("quant-method", &defaults.quant_method),
        keep_first_last: args.has("keep-first-last"),
        layer_quant,
        act_quant: args.has("act-quant"),
        calibration: text("calibration", &defaults.calibration),
        bias_correction: args.has("bias-correction"),
    })
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
    /// Copies of the calibration images the layer statistics used: `none`, `flip`,
    /// `flip-crop`.
    augment: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_images: Option<usize>,
    seconds: f64,
}

pub fn compress(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(
        args,
        &[
            "json",
            "global",
            "prune-stem",
            "act-quant",
            "keep-first-last",
            "bias-correction",
            "reconstruct",
        ],
    )?;
    args.check_known(&[
        "weights",
        "model",
        "out",
        "onnx",
        "prune-channels",
        "importance",
        "round-to",
        "steps",
        "prune-scope",
        "sparsity",
        "recalibrate-bn",
        "quant",
        "granularity",
        "quant-method",
        "layer-quant",
        "calibration",
        "calibrate",
        "augment",
        "backend",
    ])?;
    let out = PathBuf::from(args.required("out")?);
    let settings = settings_from(&args)?;
    let opts = settings.to_options()?;
    let calibrate = args.one("calibrate");
    if opts.bias_correction && calibrate.is_none() {
        return Err(CliError::Run(Error::Invalid(
            "--bias-correction needs --calibrate DIR (images to measure input means on)".into(),
        )));
    }
    if opts.reconstruct && calibrate.is_none() {
        return Err(CliError::Run(Error::Invalid(
            "--reconstruct needs --calibrate DIR (images to refit the remaining weights on)".into(),
        )));
    }
    if opts.prune.importance.is_measured() && calibrate.is_none() {
        return Err(CliError::Run(Error::Invalid(format!(
            "--importance {} needs --calibrate DIR (images to measure each channel's contribution on)",
            opts.prune.importance.label()
        ))));
    }
    if opts.quant_method == QuantMethod::Gptq && calibrate.is_none() {
        return Err(CliError::Run(Error::Invalid(
            "--quant-method gptq needs --calibrate DIR (images to measure each layer's inputs on)"
                .into(),
        )));
    }
    if opts.act_quant.is_some() && calibrate.is_none() {
        return Err(CliError::Run(Error::Invalid(
            "--act-quant needs --calibrate DIR (images to measure activation ranges on)".into(),
        )));
    }
    // Fail on impossible combinations before reading any image.
    opts.check(
        usize::from(args.one("recalibrate-bn").is_some()),
        usize::from(calibrate.is_some()),
    )?;
    let session = session(&args)?;
    if let Some(dir) = args.one("recalibrate-bn") {
        for (name, bytes) in image_files(&[dir])? {
            session.keep_batch_norm_photo(name, bytes)?;
        }
    }
    if let Some(dir) = calibrate {
        keep_photos(&session, &[dir])?;
    }
    let report = pollster::block_on(session.compress(&settings, progress_on_terminal))?;
    write_file(&out, &session.file(FileFormat::Safetensors)?)?;
    if let Some(path) = args.one("onnx") {
        write_file(Path::new(path), &session.file(FileFormat::Onnx)?)?;
    }
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
        },
        augment: opts.augment.label(),
        agreement: agreement.map(|a| a.agreement),
        kl: agreement.map(|a| a.kl),
        calibration_images: agreement.map(|a| a.n),
        seconds: report.seconds,
    };
    if args.has("json") {
        print_json(&json)?;
    } else {
        println!("wrote {} ({})", out.display(), report.quantization);
        if let Some(p) = args.one("onnx") {
            println!("wrote {p}");
        }
        print::compression(&report);
    }
    Ok(())
}
