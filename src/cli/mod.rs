//! The command line: flags (clap, the settings' flags generated from the core's
//! descriptions), the commands, and their output. Every failure a user can cause ends in one
//! line on stderr and a non-zero exit status.

mod auto;
mod commands;
mod compress;
mod images;
mod measure;
mod options;
mod print;
mod train;

use std::future::Future;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use modelslim::backend::{Backend, BackendKind};
use modelslim::compress::Progress;
use modelslim::limits::MAX_FILE_BYTES;
use modelslim::model::imported::InputChoice;
use modelslim::model::{Model, onnx};
use modelslim::session::{Batches, HoldBack, Session};
use modelslim::{Error, Result};
use serde::Serialize;

/// Compress a pretrained CNN (ResNet18, EfficientNet-Lite0): prune, quantize, measure, export
/// ONNX (int8 QDQ) and safetensors. The same engine as the page, natively.
#[derive(Parser, Debug)]
#[command(name = "modelslim", version, propagate_version = true)]
#[command(
    after_help = "Image folders are read recursively; a photo's label is its folder's \
ImageNet wnid (n01440764/…), its name's `wnid_` prefix, or its folder's name as a class name \
(golden_retriever/…, or the model's own from --labels). `modelslim COMMAND --help` lists \
every flag with its default and range."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Classify photos: the top-5 classes of each.
    Predict(commands::PredictArgs),
    /// Write deterministic random ResNet18 weights (meaningless predictions).
    InitWeights(commands::InitArgs),
    /// Time forward passes of a model.
    Bench(commands::BenchArgs),
    /// Prune and quantize a model, write its files and report what it bought.
    Compress(compress::CompressArgs),
    /// The most faithful compression within a budget (ONNX bytes, MACs or ms), searched on
    /// your photos.
    Auto(auto::AutoArgs),
    /// Score a model on labelled photos (top-1, top-5, agreement with a reference).
    Eval(measure::EvalArgs),
    /// Quantize one layer at a time and measure how far the outputs move.
    Sensitivity(measure::SensitivityArgs),
    /// Write a model as ONNX or TFLite.
    Export(commands::ExportArgs),
    /// Whether a model's TFLite file fits each deployment target: flash, RAM, operators.
    Targets(commands::TargetsArgs),
    /// Convert a PyTorch .pth state_dict to safetensors.
    Convert(commands::ConvertArgs),
    /// Train a compressed model to give the original's outputs on unlabelled photos.
    Distill(train::DistillArgs),
    /// Make calibration images from the model's own batch-norm statistics.
    Synth(train::SynthArgs),
}

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
    let args: Vec<String> = std::env::args().collect();
    let command = args.get(1).cloned().unwrap_or_default();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e, &command),
    };
    let result = std::panic::catch_unwind(|| run(cli.command));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(CliError::Usage(msg))) => {
            eprintln!("modelslim: {msg}; see 'modelslim {command} --help'");
            2
        }
        Ok(Err(CliError::Run(e))) => {
            eprintln!("modelslim: error: {}", one_line(&e.to_string()));
            1
        }
        Err(_) => 101,
    }
}

/// `--help` and `--version` print and succeed; any other parse error is one line and status 2.
fn clap_exit(e: clap::Error, command: &str) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            2
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            let help = if command.starts_with('-')
                || command.is_empty()
                || e.kind() == ErrorKind::InvalidSubcommand
            {
                "modelslim --help".to_string()
            } else {
                format!("modelslim {command} --help")
            };
            eprintln!("modelslim: {}; see '{help}'", one_line(first));
            2
        }
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

fn run(command: Command) -> std::result::Result<(), CliError> {
    match command {
        Command::Predict(a) => commands::predict(a),
        Command::InitWeights(a) => commands::init_weights(a),
        Command::Bench(a) => commands::bench(a),
        Command::Compress(a) => compress::compress(a),
        Command::Auto(a) => auto::auto(a),
        Command::Eval(a) => measure::eval(a),
        Command::Sensitivity(a) => measure::sensitivity(a),
        Command::Export(a) => commands::export(a),
        Command::Targets(a) => commands::targets(a),
        Command::Convert(a) => commands::convert(a),
        Command::Distill(a) => train::distill(a),
        Command::Synth(a) => train::synth(a),
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
        return match model {
            None | Some("resnet18") => Ok(Model::seeded_resnet18(seed)),
            Some(name) => {
                let arch = modelslim::model::Arch::by_name(name)?;
                let shapes = arch.graph(false).param_shapes();
                Model::new(
                    arch,
                    modelslim::weights::seeded::seeded_state_dict(&shapes, seed),
                )
            }
        };
    }
    load_model_with(spec, model, &InputChoice::default())
}

/// [`load_model_as`] fed as `choice` says (an ONNX file is read at its chosen size).
pub fn load_model_with(spec: &str, model: Option<&str>, choice: &InputChoice) -> Result<Model> {
    if spec.starts_with("seeded:") {
        return load_model_as(spec, model)?.with_input(choice);
    }
    let path = PathBuf::from(spec);
    let bytes = read_file(&path)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let loaded = if onnx::looks_like_onnx(&bytes) && model.is_none() {
        onnx::read_onnx(&bytes, &stem, choice.size)
    } else {
        Model::from_bytes_as(&bytes, model).map(|m| m.named(&stem))
    };
    // The file's bytes are no longer needed: a large model is not held twice.
    drop(bytes);
    loaded
        .and_then(|m| m.with_input(choice))
        .map(Model::into_known)
        .map_err(|e| match e {
            Error::Io { .. } => e,
            other => Error::Invalid(format!("{}: {other}", path.display())),
        })
}

/// `Some` value of a flag the command needs, or the usage error that says so.
fn required<'a>(value: &'a Option<String>, flag: &str) -> std::result::Result<&'a str, CliError> {
    value
        .as_deref()
        .ok_or_else(|| CliError::Usage(format!("--{flag} is required")))
}

/// The flags that name a model.
#[derive(clap::Args, Debug)]
pub struct ModelFlags {
    /// A CNN classifier as .onnx; a .safetensors or PyTorch .pth state_dict (zip or legacy)
    /// of torchvision's ResNet18 or EfficientNet-Lite0 (lukemelas' names); a file modelslim
    /// wrote; or seeded:N for deterministic random weights.
    #[arg(long, value_name = "FILE")]
    weights: Option<String>,
    /// resnet18 or efficientnet-lite0; detected from the weights' names when absent
    /// (compressed files carry it).
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Class names, one per line in class order, instead of ImageNet's (compressed files
    /// carry them).
    #[arg(long, value_name = "FILE")]
    labels: Option<String>,
    /// The input's size, N (square) or HxW, where an ONNX file leaves it open (default: the
    /// file's, else 224). Compressed files carry it, with the four below.
    #[arg(long, value_name = "N|HxW")]
    input_size: Option<String>,
    /// The shorter side the photo is resized to before the centre crop, at least the input's
    /// shorter side; scaled up where the crop would not fit (default: the network's, for an
    /// ONNX file round(longer input side / 0.875)).
    #[arg(long, value_name = "N")]
    resize: Option<u32>,
    /// Per-channel mean subtracted from pixel values in 0–1 (default: the network's, for an
    /// ONNX file ImageNet's 0.485,0.456,0.406).
    #[arg(long, value_name = "R,G,B")]
    mean: Option<String>,
    /// Per-channel divisor after the mean (default: the network's, for an ONNX file
    /// ImageNet's 0.229,0.224,0.225).
    #[arg(long, value_name = "R,G,B")]
    std: Option<String>,
    /// Feed the channels in B, G, R order.
    #[arg(long)]
    bgr: bool,
}

impl ModelFlags {
    /// The preprocessing the flags choose.
    fn input_choice(&self) -> Result<InputChoice> {
        let triple = |flag: &str, v: &Option<String>| -> Result<Option<[f32; 3]>> {
            let Some(text) = v else { return Ok(None) };
            let vals: Vec<f32> = text
                .split(',')
                .map(|x| x.trim().parse::<f32>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| {
                    Error::Invalid(format!("--{flag} {text}: give three numbers, R,G,B"))
                })?;
            match vals[..] {
                [r, g, b] => Ok(Some([r, g, b])),
                _ => Err(Error::Invalid(format!(
                    "--{flag} {text}: give three numbers, R,G,B"
                ))),
            }
        };
        let size = match &self.input_size {
            None => None,
            Some(text) => {
                let parts: Vec<&str> = text.split(['x', 'X']).collect();
                let bad = || Error::Invalid(format!("--input-size {text}: give N or HxW"));
                let nums: Vec<u32> = parts
                    .iter()
                    .map(|p| p.trim().parse::<u32>().map_err(|_| bad()))
                    .collect::<Result<_>>()?;
                match nums[..] {
                    [n] => Some([n, n]),
                    [h, w] => Some([h, w]),
                    _ => return Err(bad()),
                }
            }
        };
        Ok(InputChoice {
            size,
            resize: self.resize,
            mean: triple("mean", &self.mean)?,
            std: triple("std", &self.std)?,
            bgr: self.bgr.then_some(true),
        })
    }
}

/// The flag that chooses the backend.
#[derive(clap::Args, Debug)]
pub struct BackendFlag {
    /// cpu, or wgpu (Vulkan, Metal or DirectX 12).
    #[arg(long, value_name = "cpu|wgpu", default_value = "cpu")]
    backend: String,
}

impl ModelFlags {
    /// The model named by `--weights` (and `--model`).
    fn load(&self) -> std::result::Result<Model, CliError> {
        Ok(load_model_with(
            required(&self.weights, "weights")?,
            self.model.as_deref(),
            &self.input_choice()?,
        )?)
    }

    /// A session on `backend` with the model named by `--weights` loaded.
    fn session(&self, backend: &BackendFlag) -> std::result::Result<Session, CliError> {
        self.session_with(backend, required(&self.weights, "weights")?)
    }

    /// A session on `backend` with the model `spec` (of `--model`'s network) loaded, and
    /// `--labels` read.
    fn session_with(
        &self,
        backend: &BackendFlag,
        spec: &str,
    ) -> std::result::Result<Session, CliError> {
        let kind: BackendKind = backend.backend.parse()?;
        let session = Session::new(Backend::native(kind)?, Batches::NATIVE);
        // Every photo is fitted on unless `compress --held-back N` says otherwise: a folder
        // given to --calibrate is meant for calibration; `eval` measures accuracy.
        session.set_hold_back(HoldBack::None);
        session.load(
            load_model_with(spec, self.model.as_deref(), &self.input_choice()?)?,
            spec,
        )?;
        if let Some(path) = &self.labels {
            let text = String::from_utf8(read_file(Path::new(path))?).map_err(|_| {
                Error::Invalid(format!(
                    "{path}: not UTF-8 text; give one class name per line"
                ))
            })?;
            session.set_labels(path, &text)?;
        }
        Ok(session)
    }
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
