//! Argument parsing and the commands. Every failure a user can cause ends in one line on stderr
//! and a non-zero exit status.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use modelslim::backend::{Backend, BackendKind};
use modelslim::compress::pipeline::logits_of;
use modelslim::compress::{Metrics, Precision, Settings};
use modelslim::export::to_onnx;
use modelslim::model::Model;
use modelslim::predict::{Classifier, Prediction};
use modelslim::preprocess::Preprocess;
use modelslim::timing::Timing;
use modelslim::{Error, Result};
use serde::Serialize;

const USAGE: &str = "\
usage:
  modelslim predict --weights FILE --image FILE [--image FILE ...] [--backend cpu|wgpu] [--json]
  modelslim init-weights --seed N --out FILE.safetensors
  modelslim bench --weights FILE [--backend cpu|wgpu] [--runs N]
  modelslim compress --weights IN --out OUT.safetensors [--onnx OUT.onnx]
                     [--prune-channels R] [--importance l1|l2|bn] [--round-to N] [--steps N]
                     [--global] [--prune-stem] [--sparsity R] [--recalibrate-bn DIR]
                     [--quant none|int8|int4|fp16] [--granularity channel|tensor|group:N]
                     [--keep-first-last] [--layer-quant LAYER=none|int8|int4|fp16 ...]
                     [--bias-correction] [--act-quant] [--calibration minmax|percentile[:P]]
                     [--calibrate DIR] [--backend cpu|wgpu] [--json]
  modelslim eval --weights FILE [--reference FILE] --images DIR [--images DIR ...]
                 [--backend cpu|wgpu] [--json]
  modelslim sensitivity --weights FILE --calibrate DIR [--quant int8|int4|fp16]
                        [--granularity channel|tensor|group:N] [--top N] [--json]
  modelslim export --weights FILE --onnx OUT.onnx
  modelslim convert --weights FILE.pth --out FILE.safetensors

Every command that takes --weights also takes --model resnet18|efficientnet-lite0 (detected
from the weights' names when absent; compressed files carry it).

FILE for --weights is a .safetensors or PyTorch .pth state_dict (zip or legacy format) of
torchvision's ResNet18 or EfficientNet-Lite0 (lukemelas' names), a file modelslim wrote, or `seeded:N` for deterministic random weights
(meaningless predictions). Image folders are read recursively; a file's label is its folder's
ImageNet wnid (n01440764/…) or its name's `wnid_` prefix.";

pub fn main() -> i32 {
    // A panic inside a library must still end as one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let first = msg.lines().next().unwrap_or("");
        eprintln!("modelslim: internal error: {first}");
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = std::panic::catch_unwind(|| run(&args));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(CliError::Usage(msg))) => {
            eprintln!("modelslim: {msg}\n{USAGE}");
            2
        }
        Ok(Err(CliError::Run(e))) => {
            eprintln!("modelslim: error: {e}");
            1
        }
        Err(_) => 101,
    }
}

enum CliError {
    Usage(String),
    Run(Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Run(e)
    }
}

/// Parsed `--flag value` pairs and bare `--switch`es.
struct Args {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Args {
    fn parse(args: &[String], switches: &[&str]) -> std::result::Result<Self, CliError> {
        let mut out = Args {
            pairs: Vec::new(),
            switches: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(CliError::Usage(format!("unexpected argument '{a}'")));
            };
            if switches.contains(&name) {
                out.switches.push(name.to_string());
            } else {
                let v = it
                    .next()
                    .ok_or_else(|| CliError::Usage(format!("--{name} needs a value")))?;
                out.pairs.push((name.to_string(), v.clone()));
            }
        }
        Ok(out)
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.all(name).last().copied()
    }

    fn required(&self, name: &str) -> std::result::Result<&str, CliError> {
        self.one(name)
            .ok_or_else(|| CliError::Usage(format!("--{name} is required")))
    }

    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn check_known(&self, known: &[&str]) -> std::result::Result<(), CliError> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(CliError::Usage(format!("unknown option --{k}"))),
            None => Ok(()),
        }
    }
}

fn run(args: &[String]) -> std::result::Result<(), CliError> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(CliError::Usage("no command given".into()));
    };
    match cmd.as_str() {
        "predict" => predict(rest),
        "init-weights" => init_weights(rest),
        "bench" => bench(rest),
        "compress" => compress(rest),
        "eval" => eval(rest),
        "sensitivity" => sensitivity(rest),
        "export" => export(rest),
        "convert" => convert(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(CliError::Usage(format!("unknown command '{other}'"))),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// `seeded:N` or a weights file, of network `model` when given (else detected from the keys).
pub fn load_model_as(spec: &str, model: Option<&str>) -> Result<Model> {
    if let Some(seed) = spec.strip_prefix("seeded:") {
        let seed = seed
            .parse()
            .map_err(|_| Error::Invalid(format!("'{spec}': the seed must be an integer")))?;
        if model.is_some_and(|m| m != "resnet18") {
            return Err(Error::Invalid(
                "seeded weights exist for resnet18 only".into(),
            ));
        }
        return Ok(Model::seeded_resnet18(seed));
    }
    let path = PathBuf::from(spec);
    let bytes = read_file(&path)?;
    Model::from_bytes_as(&bytes, model).map_err(|e| match e {
        Error::Io { .. } => e,
        other => Error::Invalid(format!("{}: {other}", path.display())),
    })
}

/// The model named by `--weights` (and `--model`).
fn load_model(args: &Args) -> std::result::Result<Model, CliError> {
    Ok(load_model_as(args.required("weights")?, args.one("model"))?)
}

fn backend_arg(args: &Args) -> std::result::Result<Backend, CliError> {
    let kind: BackendKind = args.one("backend").unwrap_or("cpu").parse()?;
    Ok(Backend::native(kind)?)
}

#[derive(Serialize)]
struct PredictLine<'a> {
    image: &'a str,
    top5: &'a [modelslim::predict::ClassScore],
    logits: &'a [f32],
}

fn predict(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json"])?;
    args.check_known(&["weights", "model", "image", "backend"])?;
    let images = args.all("image");
    if images.is_empty() {
        return Err(CliError::Usage("--image is required".into()));
    }
    let model = load_model(&args)?;
    let classifier = Classifier::new(&model, backend_arg(&args)?)?;
    for path in images {
        let bytes = read_file(Path::new(path))?;
        let input = model
            .preprocess()
            .run(&bytes)
            .map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
        let p: Prediction = pollster::block_on(classifier.predict(input))?;
        if args.has("json") {
            let line = PredictLine {
                image: path,
                top5: &p.top5,
                logits: &p.logits,
            };
            let json = serde_json::to_string(&line).map_err(|e| Error::Invalid(e.to_string()))?;
            println!("{json}");
        } else {
            println!("{path}:");
            for c in &p.top5 {
                println!("  {:6.2}%  {:4}  {}", c.prob * 100.0, c.index, c.label);
            }
        }
    }
    Ok(())
}

fn init_weights(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["seed", "out"])?;
    let seed = args.required("seed")?;
    let model = load_model_as(&format!("seeded:{seed}"), None)?;
    let out = PathBuf::from(args.required("out")?);
    let bytes = model.to_safetensors()?;
    std::fs::write(&out, &bytes).map_err(|e| Error::io(&out, e))?;
    eprintln!(
        "wrote {} ({} bytes, {} parameters, seed {seed}: random weights, meaningless predictions)",
        out.display(),
        bytes.len(),
        model.num_params()
    );
    Ok(())
}

fn bench(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["weights", "model", "backend", "runs"])?;
    let runs: usize = args
        .one("runs")
        .unwrap_or("10")
        .parse()
        .map_err(|_| CliError::Usage("--runs must be a number".into()))?;
    let model = load_model(&args)?;
    let t0 = Instant::now();
    let classifier = Classifier::new(&model, backend_arg(&args)?)?;
    let upload_ms = t0.elapsed().as_secs_f64() * 1e3;
    let input = vec![0.1f32; 3 * 224 * 224];
    let time = || -> Result<f64> {
        let t = Instant::now();
        pollster::block_on(classifier.logits(std::slice::from_ref(&input)))?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let cold = time()?;
    let warm = (0..runs.max(1))
        .map(|_| time())
        .collect::<Result<Vec<_>>>()?;
    let Some(t) = Timing::of(&warm) else {
        return Ok(());
    };
    println!(
        "backend: {}\nupload: {upload_ms:.1} ms\ncold first forward: {cold:.1} ms\nwarm ({} runs): min {:.1} ms, median {:.1} ms, p90 {:.1} ms",
        classifier.backend.description, t.runs, t.min_ms, t.median_ms, t.p90_ms
    );
    Ok(())
}

fn number<T: std::str::FromStr>(
    args: &Args,
    name: &str,
    default: T,
) -> std::result::Result<T, CliError> {
    match args.one(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| CliError::Usage(format!("--{name}: '{v}' is not a number"))),
    }
}

#[derive(Serialize)]
struct CompressReport {
    before: Metrics,
    after: Metrics,
    /// What the compressed file stores.
    quantization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_images: Option<usize>,
    seconds: f64,
}

fn compress(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(
        args,
        &[
            "json",
            "global",
            "prune-stem",
            "act-quant",
            "keep-first-last",
            "bias-correction",
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
        "sparsity",
        "recalibrate-bn",
        "quant",
        "granularity",
        "layer-quant",
        "calibration",
        "calibrate",
        "backend",
    ])?;
    let t0 = Instant::now();
    let model = load_model(&args)?;
    let out = PathBuf::from(args.required("out")?);
    let mut layer_quant = std::collections::BTreeMap::new();
    for spec in args.all("layer-quant") {
        let (layer, p) = spec.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("--layer-quant '{spec}': expected LAYER=PRECISION"))
        })?;
        layer_quant.insert(layer.to_string(), p.to_string());
    }
    let defaults = Settings::default();
    let text = |name: &str, default: &str| args.one(name).unwrap_or(default).to_string();
    let settings = Settings {
        prune_channels: number(&args, "prune-channels", defaults.prune_channels)?,
        importance: text("importance", &defaults.importance),
        global: args.has("global"),
        round_to: number(&args, "round-to", defaults.round_to)?,
        steps: number(&args, "steps", defaults.steps)?,
        prune_stem: args.has("prune-stem"),
        sparsity: number(&args, "sparsity", defaults.sparsity)?,
        recalibrate_bn: args.one("recalibrate-bn").is_some(),
        quant: text("quant", &defaults.quant),
        granularity: text("granularity", &defaults.granularity),
        keep_first_last: args.has("keep-first-last"),
        layer_quant,
        act_quant: args.has("act-quant"),
        calibration: text("calibration", &defaults.calibration),
        bias_correction: args.has("bias-correction"),
    };
    let opts = settings.to_options()?;
    if opts.bias_correction && args.one("calibrate").is_none() {
        return Err(CliError::Run(Error::Invalid(
            "--bias-correction needs --calibrate DIR (images to measure input means on)".into(),
        )));
    }
    if opts.act_quant.is_some() && args.one("calibrate").is_none() {
        return Err(CliError::Run(Error::Invalid(
            "--act-quant needs --calibrate DIR (images to measure activation ranges on)".into(),
        )));
    }
    // Fail on impossible combinations before reading any image.
    opts.check(
        usize::from(args.one("recalibrate-bn").is_some()),
        usize::from(args.one("calibrate").is_some()),
    )?;
    let backend = backend_arg(&args)?;
    let bn_images = match args.one("recalibrate-bn") {
        Some(dir) => load_images(&[dir], model.preprocess())?
            .into_iter()
            .map(|i| i.input)
            .collect(),
        None => Vec::new(),
    };
    let calib_images: Vec<Vec<f32>> = match args.one("calibrate") {
        Some(dir) => load_images(&[dir], model.preprocess())?
            .into_iter()
            .map(|i| i.input)
            .collect(),
        None => Vec::new(),
    };
    let compressed = pollster::block_on(modelslim::compress::compress(
        &model,
        &opts,
        &bn_images,
        &calib_images,
        16,
        &backend,
        |p| {
            // Progress only for people watching: piped stderr stays one line on failure.
            if std::io::stderr().is_terminal() {
                eprintln!("[{}/{}] {}", p.step, p.steps, p.label);
            }
            async { true }
        },
    ))?;
    let bytes = compressed.to_safetensors()?;
    std::fs::write(&out, &bytes).map_err(|e| Error::io(&out, e))?;
    let (before, after) = match args.one("onnx") {
        Some(path) => {
            let path = PathBuf::from(path);
            let onnx = to_onnx(&compressed)?;
            std::fs::write(&path, &onnx).map_err(|e| Error::io(&path, e))?;
            (
                model.metrics_with_onnx()?,
                compressed.metrics_of_files(&bytes, Some(&onnx)),
            )
        }
        None => (model.metrics()?, compressed.metrics_of_file(&bytes)),
    };
    let agreement = if calib_images.is_empty() {
        None
    } else {
        let a = pollster::block_on(logits_of(&model, &backend, &calib_images, 16))?;
        let b = pollster::block_on(logits_of(&compressed, &backend, &calib_images, 16))?;
        Some(modelslim::compress::agreement(&a, &b))
    };
    let report = CompressReport {
        before,
        after,
        quantization: compressed.quant.describe(),
        agreement: agreement.as_ref().map(|a| a.agreement),
        kl: agreement.as_ref().map(|a| a.kl),
        calibration_images: agreement.as_ref().map(|a| a.n),
        seconds: t0.elapsed().as_secs_f64(),
    };
    if args.has("json") {
        print_json(&report)?;
    } else {
        let (b, a) = (&report.before, &report.after);
        let ratio = |x: f64, y: f64| if x > 0.0 { y / x } else { 0.0 };
        println!("wrote {} ({})", out.display(), report.quantization);
        if let Some(p) = args.one("onnx") {
            println!("wrote {p}");
        }
        println!("{:<22}{:>14}{:>14}{:>8}", "", "before", "after", "ratio");
        let mut rows = vec![
            ("parameters", b.params as f64, a.params as f64),
            (
                "non-zero parameters",
                b.nonzero_params as f64,
                a.nonzero_params as f64,
            ),
            ("MACs (224x224)", b.macs as f64, a.macs as f64),
            (
                "safetensors bytes",
                b.bytes.safetensors.raw as f64,
                a.bytes.safetensors.raw as f64,
            ),
            (
                "safetensors gzip",
                b.bytes.safetensors.gzip as f64,
                a.bytes.safetensors.gzip as f64,
            ),
        ];
        if let (Some(x), Some(y)) = (b.bytes.onnx, a.bytes.onnx) {
            rows.push(("onnx bytes", x.raw as f64, y.raw as f64));
            rows.push(("onnx gzip", x.gzip as f64, y.gzip as f64));
        }
        for (name, x, y) in rows {
            println!("{name:<22}{x:>14.0}{y:>14.0}{:>8.3}", ratio(x, y));
        }
        if let Some(a) = &agreement {
            println!(
                "on {} calibration images: top-1 agreement {:.3}, mean KL {:.4}",
                a.n, a.agreement, a.kl
            );
        }
        println!("took {:.1} s", report.seconds);
    }
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let json = serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{json}");
    Ok(())
}

fn convert(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["weights", "model", "out"])?;
    let model = load_model(&args)?;
    let out = PathBuf::from(args.required("out")?);
    let bytes = model.to_safetensors()?;
    std::fs::write(&out, &bytes).map_err(|e| Error::io(&out, e))?;
    eprintln!(
        "wrote {} ({}, {} bytes, {} parameters)",
        out.display(),
        model.arch.display(),
        bytes.len(),
        model.num_params()
    );
    Ok(())
}

fn export(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["weights", "model", "onnx"])?;
    let model = load_model(&args)?;
    let path = PathBuf::from(args.required("onnx")?);
    let onnx = to_onnx(&model)?;
    std::fs::write(&path, &onnx).map_err(|e| Error::io(&path, e))?;
    eprintln!(
        "wrote {} ({} bytes, {})",
        path.display(),
        onnx.len(),
        model.quant.describe()
    );
    Ok(())
}

#[derive(Serialize)]
struct EvalReport {
    n: usize,
    /// Images whose label is known (top-1/top-5 are over these).
    labelled: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    top1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top5: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kl: Option<f64>,
}

fn eval(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json"])?;
    args.check_known(&["weights", "model", "reference", "images", "backend"])?;
    let dirs = args.all("images");
    if dirs.is_empty() {
        return Err(CliError::Usage("--images is required".into()));
    }
    let model = load_model(&args)?;
    let reference = args
        .one("reference")
        .map(|r| load_model_as(r, None))
        .transpose()?;
    let backend = backend_arg(&args)?;
    let images = load_images(&dirs, model.preprocess())?;
    let inputs: Vec<Vec<f32>> = images.iter().map(|i| i.input.clone()).collect();
    let logits = pollster::block_on(logits_of(&model, &backend, &inputs, 16))?;
    let (mut labelled, mut top1, mut top5) = (0usize, 0usize, 0usize);
    for (img, l) in images.iter().zip(&logits) {
        let Some(label) = img.label else { continue };
        labelled += 1;
        let top = modelslim::predict::top_k(l, 5);
        top1 += usize::from(top.first().is_some_and(|c| c.index == label));
        top5 += usize::from(top.iter().any(|c| c.index == label));
    }
    let agreement = match &reference {
        Some(r) => {
            let rl = pollster::block_on(logits_of(r, &backend, &inputs, 16))?;
            Some(modelslim::compress::agreement(&rl, &logits))
        }
        None => None,
    };
    let frac = |k: usize| (labelled > 0).then(|| k as f64 / labelled as f64);
    let report = EvalReport {
        n: images.len(),
        labelled,
        top1: frac(top1),
        top5: frac(top5),
        agreement: agreement.as_ref().map(|a| a.agreement),
        kl: agreement.as_ref().map(|a| a.kl),
    };
    if args.has("json") {
        print_json(&report)?;
    } else {
        println!("images: {} ({} labelled)", report.n, report.labelled);
        if let (Some(t1), Some(t5)) = (report.top1, report.top5) {
            println!("top-1: {t1:.4}\ntop-5: {t5:.4}");
        }
        if let (Some(a), Some(kl)) = (report.agreement, report.kl) {
            println!("top-1 agreement with the reference: {a:.4}\nmean KL: {kl:.5}");
        }
    }
    Ok(())
}

fn sensitivity(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json"])?;
    args.check_known(&[
        "weights",
        "model",
        "calibrate",
        "quant",
        "granularity",
        "top",
        "backend",
    ])?;
    let model = load_model(&args)?;
    let precision: Precision = args.one("quant").unwrap_or("int8").parse()?;
    if precision == Precision::F32 {
        return Err(CliError::Usage(
            "--quant must be int8, int4 or fp16 for a sensitivity scan".into(),
        ));
    }
    let granularity = args.one("granularity").unwrap_or("channel").parse()?;
    let top = number(&args, "top", usize::MAX)?;
    let images: Vec<Vec<f32>> = load_images(&[args.required("calibrate")?], model.preprocess())?
        .into_iter()
        .map(|i| i.input)
        .collect();
    let backend = backend_arg(&args)?;
    let json = args.has("json") || !std::io::stderr().is_terminal();
    let rows = pollster::block_on(modelslim::compress::pipeline::sensitivity(
        &model,
        precision,
        granularity,
        &images,
        &backend,
        |p| {
            if !json {
                eprint!("\r[{}/{}] {:<40}", p.step, p.steps, p.label);
            }
            async { true }
        },
    ))?;
    if args.has("json") {
        print_json(&rows)?;
    } else {
        if !json {
            eprintln!();
        }
        println!(
            "{} one layer at a time, {} images; most sensitive first",
            precision.label(),
            images.len()
        );
        println!(
            "{:<24}{:>10}{:>11}{:>12}",
            "layer", "params", "agreement", "mean KL"
        );
        for r in rows.iter().take(top) {
            println!(
                "{:<24}{:>10}{:>11.3}{:>12.6}",
                r.layer, r.params, r.agreement, r.kl
            );
        }
    }
    Ok(())
}

/// A preprocessed image and its class index when its path names one.
struct LabelledImage {
    input: Vec<f32>,
    label: Option<usize>,
}

/// The label a path carries: its parent folder's wnid, or its file name's `wnid_` prefix.
fn label_of(path: &Path) -> Option<usize> {
    let from_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('_'))
        .and_then(|(w, _)| modelslim::labels::class_of_wnid(w));
    from_name.or_else(|| {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(modelslim::labels::class_of_wnid)
    })
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
        matches!(
            x.to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png" | "webp"
        )
    })
}

/// Every JPEG/PNG/WebP under `dirs` (recursively, in name order), preprocessed.
fn load_images(dirs: &[&str], pre: Preprocess) -> Result<Vec<LabelledImage>> {
    let mut paths = Vec::new();
    for dir in dirs {
        let mut stack = vec![PathBuf::from(dir)];
        let root = PathBuf::from(dir);
        if !root.is_dir() {
            return Err(Error::Invalid(format!("{dir} is not a folder")));
        }
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
                let p = e.map_err(|e| Error::io(&d, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if is_image(&p) {
                    paths.push(p);
                }
            }
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no JPEG, PNG or WebP images",
            dirs.join(", ")
        )));
    }
    paths
        .iter()
        .map(|p| {
            let input = pre
                .run(&read_file(p)?)
                .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
            Ok(LabelledImage {
                input,
                label: label_of(p),
            })
        })
        .collect()
}
