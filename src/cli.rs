//! Argument parsing and the commands. Every failure a user can cause ends in one line on stderr
//! and a non-zero exit status.

use std::path::{Path, PathBuf};
use std::time::Instant;

use modelslim::backend::{Backend, BackendKind};
use modelslim::compress::{Importance, Metrics, PruneOptions, SparsityOptions};
use modelslim::model::Model;
use modelslim::predict::{Classifier, Prediction};
use modelslim::preprocess::Preprocess;
use modelslim::{Error, Result};
use serde::Serialize;

const USAGE: &str = "\
usage:
  modelslim predict --weights FILE --image FILE [--image FILE ...] [--backend cpu|wgpu] [--json]
  modelslim init-weights --seed N --out FILE.safetensors
  modelslim bench --weights FILE [--backend cpu|wgpu] [--runs N]
  modelslim compress --weights IN --out OUT.safetensors [--prune-channels R] [--importance l1|l2|bn]
                     [--round-to N] [--steps N] [--global] [--prune-stem] [--sparsity R]
                     [--recalibrate-bn DIR] [--json]

FILE for --weights is a .safetensors or PyTorch .pth state_dict in torchvision's ResNet18
layout, or `seeded:N` for deterministic random weights (meaningless predictions).";

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

/// `seeded:N` or a weights file.
pub fn load_model(spec: &str) -> Result<Model> {
    if let Some(seed) = spec.strip_prefix("seeded:") {
        let seed = seed
            .parse()
            .map_err(|_| Error::Invalid(format!("'{spec}': the seed must be an integer")))?;
        return Ok(Model::seeded_resnet18(seed));
    }
    let path = PathBuf::from(spec);
    let bytes = read_file(&path)?;
    Model::from_bytes(&bytes).map_err(|e| match e {
        Error::Io { .. } => e,
        other => Error::Invalid(format!("{}: {other}", path.display())),
    })
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
    args.check_known(&["weights", "image", "backend"])?;
    let images = args.all("image");
    if images.is_empty() {
        return Err(CliError::Usage("--image is required".into()));
    }
    let model = load_model(args.required("weights")?)?;
    let classifier = Classifier::new(&model, backend_arg(&args)?)?;
    for path in images {
        let bytes = read_file(Path::new(path))?;
        let input = Preprocess::IMAGENET
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
    let model = load_model(&format!("seeded:{seed}"))?;
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
    args.check_known(&["weights", "backend", "runs"])?;
    let runs: usize = args
        .one("runs")
        .unwrap_or("10")
        .parse()
        .map_err(|_| CliError::Usage("--runs must be a number".into()))?;
    let model = load_model(args.required("weights")?)?;
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
    let mut warm = (0..runs.max(1))
        .map(|_| time())
        .collect::<Result<Vec<_>>>()?;
    warm.sort_by(f64::total_cmp);
    let pct = |p: f64| warm[((warm.len() - 1) as f64 * p).round() as usize];
    println!(
        "backend: {}\nupload: {upload_ms:.1} ms\ncold first forward: {cold:.1} ms\nwarm ({} runs): min {:.1} ms, median {:.1} ms, p90 {:.1} ms",
        classifier.backend.description,
        warm.len(),
        warm[0],
        pct(0.5),
        pct(0.9)
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
}

fn compress(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json", "global", "prune-stem"])?;
    args.check_known(&[
        "weights",
        "out",
        "prune-channels",
        "importance",
        "round-to",
        "steps",
        "sparsity",
        "recalibrate-bn",
    ])?;
    let model = load_model(args.required("weights")?)?;
    let out = PathBuf::from(args.required("out")?);
    let steps = number(&args, "steps", 1usize)?;
    let prune = PruneOptions {
        ratio: number(&args, "prune-channels", 0f32)?,
        importance: args
            .one("importance")
            .unwrap_or("l1")
            .parse::<Importance>()?,
        global: args.has("global"),
        round_to: number(&args, "round-to", 1usize)?,
        steps,
        prune_stem: args.has("prune-stem"),
        ..Default::default()
    };
    let sparsity = SparsityOptions {
        sparsity: number(&args, "sparsity", 0f32)?,
        steps,
        ..Default::default()
    };
    let mut compressed = model.pruned(&prune)?.sparsified(&sparsity)?;
    if let Some(dir) = args.one("recalibrate-bn") {
        let batches = image_batches(Path::new(dir), 16)?;
        compressed = pollster::block_on(modelslim::compress::recalibrate_bn(
            &compressed,
            Backend::cpu(),
            &batches,
        ))?;
    }
    let bytes = compressed.to_safetensors()?;
    std::fs::write(&out, &bytes).map_err(|e| Error::io(&out, e))?;
    let report = CompressReport {
        before: model.metrics()?,
        after: compressed.metrics_of_file(&bytes),
    };
    if args.has("json") {
        let json = serde_json::to_string(&report).map_err(|e| Error::Invalid(e.to_string()))?;
        println!("{json}");
    } else {
        let (b, a) = (&report.before, &report.after);
        let ratio = |x: f64, y: f64| if x > 0.0 { y / x } else { 0.0 };
        println!("wrote {}", out.display());
        println!("{:<22}{:>14}{:>14}{:>8}", "", "before", "after", "ratio");
        for (name, x, y) in [
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
        ] {
            println!("{name:<22}{x:>14.0}{y:>14.0}{:>8.3}", ratio(x, y));
        }
    }
    Ok(())
}

/// Every JPEG/PNG/WebP directly in `dir`, preprocessed, in name order, in batches of `size`.
fn image_batches(dir: &Path, size: usize) -> Result<Vec<Vec<Vec<f32>>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                matches!(
                    x.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "webp"
                )
            })
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Invalid(format!(
            "calibration folder {} has no JPEG, PNG or WebP images",
            dir.display()
        )));
    }
    let mut images = Vec::with_capacity(paths.len());
    for p in &paths {
        let input = Preprocess::IMAGENET
            .run(&read_file(p)?)
            .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
        images.push(input);
    }
    Ok(images
        .chunks(size.max(1))
        .map(<[Vec<f32>]>::to_vec)
        .collect())
}
