//! `distill` and `synth`: flags to options, the session's run, files and a report. The work is
//! the session's (`Session::distill`, `Session::synthesize`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use modelslim::session::FileFormat;
use modelslim::train::{DistillOptions, SynthOptions};

use super::images::keep_photos_skipping_bad;
use super::options::Flags;
use super::{BackendFlag, CliError, ModelFlags, print_json, required, write_file};

#[derive(clap::Args, Debug)]
pub struct DistillArgs {
    /// The compressed model (the student).
    #[command(flatten)]
    model: ModelFlags,
    /// The original model (the teacher).
    #[arg(long, value_name = "ORIGINAL")]
    teacher: Option<String>,
    /// A folder of photos, unlabelled (repeat for more).
    #[arg(long, value_name = "DIR")]
    images: Vec<String>,
    #[arg(long, value_name = "OUT.safetensors")]
    out: Option<String>,
    #[arg(long, value_name = "OUT.onnx")]
    onnx: Option<String>,
    #[command(flatten)]
    options: Flags<DistillOptions>,
    #[command(flatten)]
    backend: BackendFlag,
    #[arg(long)]
    json: bool,
}

pub fn distill(args: DistillArgs) -> std::result::Result<(), CliError> {
    let opts = args.options.options()?;
    let out = PathBuf::from(required(&args.out, "out")?);
    if args.images.is_empty() {
        return Err(CliError::Usage("--images is required".into()));
    }
    let dirs: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let student = args.model.load()?;
    let session = args
        .model
        .session_with(&args.backend, required(&args.teacher, "teacher")?)?;
    keep_photos_skipping_bad(&session, &dirs)?;
    let terminal = std::io::stderr().is_terminal();
    let report = pollster::block_on(session.distill(Some(student), &opts, |s| {
        if terminal {
            let held = s
                .held_out
                .as_ref()
                .map(|a| format!(", held-back agreement {:.3} KL {:.4}", a.agreement, a.kl))
                .unwrap_or_default();
            eprintln!(
                "[{}/{}] loss {:.4} ({:.2} s/step, {:.0} s left){held}",
                s.step,
                s.steps,
                s.loss,
                s.ms_per_step / 1e3,
                s.remaining_s
            );
        }
        async { true }
    }))?;
    write_file(&out, &session.file(FileFormat::Safetensors)?)?;
    if let Some(onnx) = &args.onnx {
        write_file(Path::new(onnx), &session.file(FileFormat::Onnx)?)?;
    }
    if args.json {
        let mut v =
            serde_json::to_value(&report).map_err(|e| modelslim::Error::Invalid(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            // Every kept photo's logits: the page's, not the report's.
            o.remove("photos");
        }
        print_json(&v)?;
    } else {
        println!(
            "distilled {} steps on {} photos ({:.2} s/step, {:.0} s); held-back photos: {}",
            report.run.steps,
            report.run.train_images,
            report.run.ms_per_step / 1e3,
            report.run.seconds,
            report.run.held_out_images
        );
        println!(
            "  agreement with the original {:.3} → {:.3}, KL {:.4} → {:.4} (model of step {})",
            report.run.before.agreement,
            report.run.after.agreement,
            report.run.before.kl,
            report.run.after.kl,
            report.run.best_step
        );
        if !report.improved {
            println!("  no step improved on the start: the model written is the one given");
        }
        println!("wrote {}", out.display());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// The original model.
    #[command(flatten)]
    model: ModelFlags,
    /// The folder the PNG images are written to.
    #[arg(long, value_name = "DIR")]
    out: Option<String>,
    #[command(flatten)]
    options: Flags<SynthOptions>,
    #[command(flatten)]
    backend: BackendFlag,
    #[arg(long)]
    json: bool,
}

pub fn synth(args: SynthArgs) -> std::result::Result<(), CliError> {
    let opts = args.options.options()?;
    let dir = PathBuf::from(required(&args.out, "out")?);
    let session = args.model.session(&args.backend)?;
    let terminal = std::io::stderr().is_terminal();
    let report = pollster::block_on(session.synthesize(&opts, |s| {
        if terminal && (s.step == s.steps || s.step % 10 == 0) {
            eprintln!(
                "[batch {}/{}] step {}/{} statistics loss {:.3}",
                s.batch, s.batches, s.step, s.steps, s.loss
            );
        }
        async { true }
    }))?;
    std::fs::create_dir_all(&dir).map_err(|e| modelslim::Error::io(&dir, e))?;
    let mut files = Vec::new();
    for (i, png) in report.png.iter().enumerate() {
        let path = dir.join(format!("synth-{:04}-seed{}.png", i, opts.seed));
        write_file(&path, png)?;
        files.push(path.display().to_string());
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct SynthJson<'a> {
            #[serde(flatten)]
            report: &'a modelslim::session::SynthReport,
            files: &'a [String],
        }
        print_json(&SynthJson {
            report: &report,
            files: &files,
        })?;
    } else {
        println!(
            "wrote {} images of {}×{} to {} in {:.0} s (statistics loss per batch {:?} → {:?})",
            files.len(),
            report.side,
            report.side,
            dir.display(),
            report.seconds,
            report
                .loss_before
                .iter()
                .map(|v| (v * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            report
                .loss_after
                .iter()
                .map(|v| (v * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}
