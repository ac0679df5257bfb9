//! The commands on one model: `predict`, `init-weights`, `bench`, `convert`, `export`.

use std::path::{Path, PathBuf};

use modelslim::export::targets::{capacity, fit_targets};
use modelslim::export::tflite::{TfliteIo, device_io, tflite_c_header};
use modelslim::export::{to_onnx, to_tflite_with_io};
use modelslim::session::{Which, no_progress};
use serde::Serialize;

use super::{
    BackendFlag, CliError, ModelFlags, load_model_as, print, print_json, read_file, required,
    write_file,
};

#[derive(Serialize)]
struct PredictLine<'a> {
    image: &'a str,
    top5: &'a [modelslim::predict::ClassScore],
    logits: &'a [f32],
}

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// A photo to classify (repeat the flag for more).
    #[arg(long, value_name = "FILE")]
    image: Vec<String>,
    #[command(flatten)]
    backend: BackendFlag,
    /// One JSON line per photo.
    #[arg(long)]
    json: bool,
}

pub fn predict(args: PredictArgs) -> std::result::Result<(), CliError> {
    if args.image.is_empty() {
        return Err(CliError::Usage("--image is required".into()));
    }
    let session = args.model.session(&args.backend)?;
    for path in &args.image {
        let bytes = read_file(Path::new(path))?;
        let a = pollster::block_on(session.classify(path, &bytes))?.answer;
        if args.json {
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

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The seed (the same seed, the same weights).
    #[arg(long, value_name = "N")]
    seed: Option<String>,
    #[arg(long, value_name = "FILE.safetensors")]
    out: Option<String>,
}

pub fn init_weights(args: InitArgs) -> std::result::Result<(), CliError> {
    let seed = required(&args.seed, "seed")?;
    let model = load_model_as(&format!("seeded:{seed}"), None)?;
    let out = PathBuf::from(required(&args.out, "out")?);
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

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelFlags,
    #[command(flatten)]
    backend: BackendFlag,
    /// Timed forward passes after one warm-up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    runs: usize,
}

pub fn bench(args: BenchArgs) -> std::result::Result<(), CliError> {
    let session = args.model.session(&args.backend)?;
    let b = pollster::block_on(session.benchmark(Which::Original, args.runs, no_progress))?;
    print::benchmark(&b);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    #[command(flatten)]
    model: ModelFlags,
    #[arg(long, value_name = "FILE.safetensors")]
    out: Option<String>,
}

pub fn convert(args: ConvertArgs) -> std::result::Result<(), CliError> {
    let model = args.model.load()?;
    let out = PathBuf::from(required(&args.out, "out")?);
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

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// The model as ONNX.
    #[arg(long, value_name = "OUT.onnx")]
    onnx: Option<String>,
    /// The model as TFLite (LiteRT), NHWC input [1,224,224,3]: fp32, fp16 or int8 weights,
    /// or full integer when the activations are quantized too (--act-quant).
    #[arg(long, value_name = "OUT.tflite")]
    tflite: Option<String>,
    /// The TFLite file as a C header for a microcontroller's firmware (TensorFlow Lite Micro,
    /// Edge Impulse): `alignas(16) const unsigned char NAME_tflite[]`, `NAME_tflite_len` and
    /// `NAME_arena_bytes` (the activations' arena), NAME from the file's name.
    #[arg(long, value_name = "OUT.h")]
    c_header: Option<String>,
    /// The TFLite file's input and output: float, or int8 with their scale and zero point in
    /// the file (a full-integer file only) [default: float for --tflite; for --c-header int8
    /// when the file is full integer].
    #[arg(long, value_name = "int8|float")]
    tflite_io: Option<String>,
    /// Require one weight scale per tensor (what some NPUs take): the model must have been
    /// compressed with --granularity tensor.
    #[arg(long)]
    per_tensor: bool,
}

pub fn export(args: ExportArgs) -> std::result::Result<(), CliError> {
    if args.onnx.is_none() && args.tflite.is_none() && args.c_header.is_none() {
        return Err(CliError::Usage(
            "give --onnx OUT.onnx, --tflite OUT.tflite, --c-header OUT.h or several".into(),
        ));
    }
    let io: Option<TfliteIo> = args
        .tflite_io
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: modelslim::Error| CliError::Usage(e.to_string()))?;
    let model = args.model.load()?;
    if args.per_tensor
        && let Some((key, _)) = model
            .quant
            .int
            .iter()
            .find(|(_, q)| q.granularity != modelslim::quant::Granularity::PerTensor)
    {
        return Err(CliError::Run(modelslim::Error::Invalid(format!(
            "--per-tensor: '{key}' has a scale per channel or group; compress with --granularity tensor"
        ))));
    }
    // Both files are made before either is written: a model one format cannot hold writes
    // nothing.
    let onnx = args.onnx.as_ref().map(|_| to_onnx(&model)).transpose()?;
    let tflite = args
        .tflite
        .as_ref()
        .map(|_| to_tflite_with_io(&model, io.unwrap_or_default()))
        .transpose()?;
    let header = args
        .c_header
        .as_ref()
        .map(|path| {
            let name = Path::new(path)
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy());
            tflite_c_header(&model, io.unwrap_or(device_io(&model)), &name).map(String::into_bytes)
        })
        .transpose()?;
    for (path, bytes) in [
        (&args.onnx, onnx),
        (&args.tflite, tflite),
        (&args.c_header, header),
    ] {
        let (Some(path), Some(bytes)) = (path, bytes) else {
            continue;
        };
        write_file(Path::new(path), &bytes)?;
        eprintln!(
            "wrote {path} ({} bytes, {})",
            bytes.len(),
            model.quant.describe()
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct TargetsArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// One JSON array, an object per target (`name`, `flash_bytes`, `ram_bytes`, `file_bytes`,
    /// `peak_activation_bytes`, `unsupported_ops`, `fits`, `message`).
    #[arg(long)]
    json: bool,
}

pub fn targets(args: TargetsArgs) -> std::result::Result<(), CliError> {
    let model = args.model.load()?;
    let fits = fit_targets(&model)?;
    if args.json {
        print_json(&fits)?;
        return Ok(());
    }
    println!(
        "{:<22} {:>9} {:>9} {:>11} {:>9}  fits",
        "target", "file MB", "flash", "peak act MB", "RAM"
    );
    for t in &fits {
        let mb = |b: u64| format!("{:.2}", b as f64 / 1e6);
        println!(
            "{:<22} {:>9} {:>9} {:>11} {:>9}  {}",
            t.name,
            mb(t.file_bytes),
            capacity(t.flash_bytes),
            mb(t.peak_activation_bytes),
            capacity(t.ram_bytes),
            if t.fits { "yes" } else { "no" }
        );
        if !t.fits {
            println!("    {}", t.message);
            if !t.unsupported_ops.is_empty() {
                println!("    cannot run: {}", t.unsupported_ops.join(", "));
            }
        }
    }
    Ok(())
}
