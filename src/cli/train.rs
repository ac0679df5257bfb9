//! `distill` and `synth`: flags to options, the session's run, files and a report. The work is
//! the session's (`Session::distill`, `Session::synthesize`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use modelslim::session::FileFormat;
use modelslim::train::{DistillOptions, SynthOptions};

use super::args::Args;
use super::images::keep_photos_skipping_bad;
use super::{CliError, load_model_as, print_json, session_with, write_file};

pub fn distill(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json", "no-augment", "no-mixup", "learn-scales"])?;
    args.check_known(&[
        "weights",
        "teacher",
        "model",
        "images",
        "out",
        "onnx",
        "steps",
        "lr",
        "batch",
        "temperature",
        "features",
        "held-out",
        "seed",
        "backend",
    ])?;
    let d = DistillOptions::default();
    let opts = DistillOptions {
        steps: args.number("steps", d.steps)?,
        lr: args.number("lr", d.lr)?,
        batch: args.number("batch", d.batch)?,
        temperature: args.number("temperature", d.temperature)?,
        augment: !args.has("no-augment"),
        mixup: !args.has("no-mixup"),
        learn_scales: args.has("learn-scales"),
        features: args.number("features", d.features)?,
        held_out: args
            .one("held-out")
            .map(|_| args.number("held-out", 0))
            .transpose()?,
        seed: args.number("seed", d.seed)?,
        ..d
    };
    let out = PathBuf::from(args.required("out")?);
    let dirs = args.all("images");
    if dirs.is_empty() {
        return Err(CliError::Usage("--images is required".into()));
    }
    let student = load_model_as(args.required("weights")?, args.one("model"))?;
    let session = session_with(&args, args.required("teacher")?)?;
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
    if let Some(onnx) = args.one("onnx") {
        write_file(Path::new(onnx), &session.file(FileFormat::Onnx)?)?;
    }
    if args.has("json") {
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
        println!("wrote {}", out.display());
    }
    Ok(())
}

pub fn synth(args: &[String]) -> std::result::Result<(), CliError> {
    let args = Args::parse(args, &["json"])?;
    args.check_known(&[
        "weights", "model", "out", "n", "seed", "steps", "lr", "batch", "backend",
    ])?;
    let d = SynthOptions::default();
    let opts = SynthOptions {
        n: args.number("n", d.n)?,
        seed: args.number("seed", d.seed)?,
        steps: args.number("steps", d.steps)?,
        lr: args.number("lr", d.lr)?,
        batch: args.number("batch", d.batch)?,
        side: None,
    };
    let dir = PathBuf::from(args.required("out")?);
    let session = session_with(&args, args.required("weights")?)?;
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
    if args.has("json") {
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
