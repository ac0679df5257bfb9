//! Argument parsing and the commands. Every failure a user can cause ends in one line on stderr
//! and a non-zero exit status.

mod args;
mod compress;
mod images;
mod print;
mod train;

use std::future::Future;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use modelslim::backend::{Backend, BackendKind};
use modelslim::compress::{Precision, Progress};
use modelslim::export::to_onnx;
use modelslim::limits::MAX_FILE_BYTES;
use modelslim::model::Model;
use modelslim::session::{Batches, Session, Which, no_progress};
use modelslim::{Error, Result};
use serde::Serialize;

use args::Args;
use images::{keep_photos, keep_photos_skipping_bad};

const USAGE: &str = "\
usage:
  modelslim predict --weights FILE --image FILE [--image FILE ...] [--backend cpu|wgpu] [--json]
  modelslim init-weights --seed N --out FILE.safetensors
  modelslim bench --weights FILE [--backend cpu|wgpu] [--runs N]
  modelslim compress --weights IN --out OUT.safetensors [--onnx OUT.onnx]
                     [--prune-channels R] [--importance l1|l2|bn|output|hessian] [--round-to N] [--steps N]
                     [--global] [--prune-stem] [--prune-scope all|internal]
                     [--sparsity R] [--reconstruct] [--recalibrate-bn DIR]
                     [--quant none|int8|int4|fp16] [--granularity channel|tensor|group:N]
                     [--quant-method rtn|gptq]
                     [--keep-first-last] [--layer-quant LAYER=none|int8|int4|fp16 ...]
                     [--bias-correction] [--act-quant] [--calibration minmax|percentile[:P]]
                     [--calibrate DIR] [--augment none|flip|flip-crop] [--backend cpu|wgpu] [--json]
  modelslim eval --weights FILE [--reference FILE] --images DIR [--images DIR ...]
                 [--strict] [--backend cpu|wgpu] [--json]
  modelslim sensitivity --weights FILE --calibrate DIR [--quant int8|int4|fp16]
                        [--granularity channel|tensor|group:N] [--top N] [--json]
  modelslim export --weights FILE --onnx OUT.onnx
  modelslim convert --weights FILE.pth --out FILE.safetensors
  modelslim distill --weights COMPRESSED --teacher ORIGINAL --images DIR --out OUT.safetensors
                    [--onnx OUT.onnx] [--steps N] [--lr X] [--batch N] [--temperature T]
                    [--features W] [--held-out N] [--seed S] [--no-augment] [--no-mixup] [--learn-scales]
                    [--backend cpu|wgpu] [--json]
  modelslim synth --weights ORIGINAL --out DIR [--n N] [--seed S] [--steps N] [--lr X]
                  [--batch N] [--backend cpu|wgpu] [--json]

Every command that takes --weights also takes --model resnet18|efficientnet-lite0 (detected
from the weights' names when absent; compressed files carry it).

FILE for --weights is a .safetensors or PyTorch .pth state_dict (zip or legacy format) of
torchvision's ResNet18 or EfficientNet-Lite0 (lukemelas' names), a file modelslim wrote, or `seeded:N` for deterministic random weights
(meaningless predictions). `eval` skips a photo it cannot read with a warning (counted as
`skipped` in --json) unless --strict. Image folders are read recursively; a file's label is its folder's
ImageNet wnid (n01440764/…) or its name's `wnid_` prefix.

--reconstruct, --importance output|hessian and --quant-method gptq need --calibrate DIR:
reconstruction refits the layers that read pruned channels by least squares (and zeroes
weights with SparseGPT instead of by magnitude); output/hessian rank channels by what they
contribute to the next layers' outputs on those images. --augment flip (×2) or flip-crop (×4)
also measures those methods' layer statistics on mirrored and corner-cropped copies.

distill trains the compressed model to give the original's outputs on random views of the
photos under --images (no labels needed; a fifth of them, at most 50, are held back to measure
agreement, and the best model on them is written). synth writes PNG images made from the
original's batch-norm statistics, for --calibrate when there are no photos.";

pub fn main() -> i32 {
    // SAFETY: called first, before any thread exists; SIG_DFL is a valid action for SIGPIPE.
    // A closed output pipe then ends the process silently instead of panicking in println!.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
            eprintln!("modelslim: error: {}", one_line(&e.to_string()));
            1
        }
        Err(_) => 101,
    }
}

pub enum CliError {
    Usage(String),
    Run(Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Run(e)
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
        "compress" => compress::compress(rest),
        "eval" => eval(rest),
        "sensitivity" => sensitivity(rest),
        "export" => export(rest),
        "convert" => convert(rest),
        "distill" => train::distill(rest),
        "synth" => train::synth(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(CliError::Usage(format!("unknown command '{other}'"))),
    }
}

/// A message on one line: line breaks and other control characters become spaces (a decoder's
/// message may hold them).
pub fn one_line(msg: &str) -> String {
    msg.split(|c: char| c.is_control())
        .filter(|s| !s.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A file's bytes: only a regular file (a FIFO or a device would block or never end), and
/// only up to [`MAX_FILE_BYTES`], checked before reading.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Io {
            path: path.display().to_string(),
            message: "not a regular file; give a weights file or a photo".into(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::Io {
            path: path.display().to_string(),
            message: format!(
                "{} bytes, over the limit of {} MiB for one file",
                meta.len(),
                MAX_FILE_BYTES >> 20
            ),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
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

/// A session on `--backend` with the model named by `--weights` loaded.
fn session(args: &Args) -> std::result::Result<Session, CliError> {
    session_with(args, args.required("weights")?)
}

/// A session on `--backend` with the model `spec` (of `--model`'s network) loaded.
fn session_with(args: &Args, spec: &str) -> std::result::Result<Session, CliError> {
    let kind: BackendKind = args.one("backend").unwrap_or("cpu").parse()?;
    let session = Session::new(Backend::native(kind)?, Batches::NATIVE);
    session.load(load_model_as(spec, args.one("model"))?, spec)?;
    Ok(session)
}

/// Progress lines for people watching: piped stderr stays one line on failure.
fn progress_on_terminal(p: Progress) -> impl Future<Output = bool> {
    if std::io::stderr().is_terminal() && !p.label.is_empty() {
        if p.steps > 0 {
            eprintln!("[{}/{}] {}", p.step, p.steps, p.label);
        } else {
            eprintln!("{}", p.label);
        }
    }
    async { true }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let json = serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{json}");
    Ok(())
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
    let session = session(&args)?;
    for path in images {
        let bytes = read_file(Path::new(path))?;
        let a = pollster::block_on(session.classify(path, &bytes))?.answer;
        if args.has("json") {
            print_json(&PredictLine {
                image: path,
                top5: &a.top5,
                logits: &a.logits,
            })?;
        } else {
            println!("{path}:");
            for c in &a.top5 {
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
    write_file(&out, &bytes)?;
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
    let runs: usize = args.number("runs", 10)?;
    let session = session(&args)?;
    let b = pollster::block_on(session.benchmark(Which::Original, runs, no_progress))?;
    print::benchmark(&b);
    Ok(())
}

fn convert(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["weights", "model", "out"])?;
    let model = load_model(&args)?;
    let out = PathBuf::from(args.required("out")?);
    let bytes = model.to_safetensors()?;
    write_file(&out, &bytes)?;
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
    write_file(&path, &onnx)?;
    eprintln!(
        "wrote {} ({} bytes, {})",
        path.display(),
        onnx.len(),
        model.quant.describe()
    );
    Ok(())
}

/// `eval --json`: the session's report and the photos left out.
#[derive(Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    report: &'a modelslim::session::Evaluation,
    /// Photos that could not be read (each named in a warning on stderr).
    skipped: usize,
}

fn eval(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json", "strict"])?;
    args.check_known(&["weights", "model", "reference", "images", "backend"])?;
    let dirs = args.all("images");
    if dirs.is_empty() {
        return Err(CliError::Usage("--images is required".into()));
    }
    let session = session(&args)?;
    let reference = args
        .one("reference")
        .map(|r| load_model_as(r, None))
        .transpose()?;
    let skipped = if args.has("strict") {
        keep_photos(&session, &dirs)?;
        0
    } else {
        keep_photos_skipping_bad(&session, &dirs)?
    };
    let report = pollster::block_on(session.evaluate(reference, no_progress))?;
    if args.has("json") {
        print_json(&EvalJson {
            report: &report,
            skipped,
        })?;
    } else {
        print::evaluation(&report);
        if skipped > 0 {
            println!("skipped {skipped} unreadable photo(s); see the warnings above");
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
    let precision: Precision = args.one("quant").unwrap_or("int8").parse()?;
    if precision == Precision::F32 {
        return Err(CliError::Usage(
            "--quant must be int8, int4 or fp16 for a sensitivity scan".into(),
        ));
    }
    let granularity = args.one("granularity").unwrap_or("channel").parse()?;
    let top = args.number("top", usize::MAX)?;
    let session = session(&args)?;
    let n = keep_photos(&session, &[args.required("calibrate")?])?;
    let json = args.has("json") || !std::io::stderr().is_terminal();
    let rows = pollster::block_on(session.sensitivity(precision, granularity, |p| {
        if !json {
            eprint!("\r[{}/{}] {:<40}", p.step, p.steps, p.label);
        }
        async { true }
    }))?;
    if args.has("json") {
        print_json(&rows)?;
    } else {
        if !json {
            eprintln!();
        }
        print::sensitivity(&rows, precision, n, top);
    }
    Ok(())
}
