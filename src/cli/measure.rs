//! The commands that measure: `eval` (scores and agreement on labelled photos) and
//! `sensitivity` (each layer quantized alone).

use std::io::IsTerminal;

use modelslim::compress::{Granularity, Precision};
use modelslim::session::no_progress;
use serde::Serialize;

use super::images::{keep_photo_labels, keep_photos, keep_photos_skipping_bad};
use super::{BackendFlag, CliError, ModelFlags, load_model_as, print, print_json, required};

/// `eval --json`: the session's report and the photos left out.
#[derive(Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    report: &'a modelslim::session::Evaluation,
    /// Photos that could not be read (each named in a warning on stderr).
    skipped: usize,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// The model to measure agreement against (usually the uncompressed original).
    #[arg(long, value_name = "FILE")]
    reference: Option<String>,
    /// A folder of photos (repeat for more), labelled by folder (a wnid or a class name) or by
    /// a `labels.csv` in it (rows `file,class`).
    #[arg(long, value_name = "DIR")]
    images: Vec<String>,
    /// Fail on a photo that cannot be read, instead of skipping it with a warning.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    backend: BackendFlag,
    #[arg(long)]
    json: bool,
}

pub fn eval(args: EvalArgs) -> std::result::Result<(), CliError> {
    if args.images.is_empty() {
        return Err(CliError::Usage("--images is required".into()));
    }
    let dirs: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let session = args.model.session(&args.backend)?;
    let reference = args
        .reference
        .as_deref()
        .map(|r| load_model_as(r, None))
        .transpose()?;
    let skipped = if args.strict {
        keep_photos(&session, &dirs)?;
        0
    } else {
        keep_photos_skipping_bad(&session, &dirs)?
    };
    keep_photo_labels(&session, &dirs)?;
    let report = pollster::block_on(session.evaluate(reference, no_progress))?;
    if args.json {
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

#[derive(clap::Args, Debug)]
pub struct SensitivityArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// A folder of photos to measure the outputs on.
    #[arg(long, value_name = "DIR")]
    calibrate: Option<String>,
    /// The precision each layer is tried at: int8, int4 or fp16.
    #[arg(long, value_name = "int8|int4|fp16", default_value = "int8")]
    quant: String,
    /// channel, tensor or group:N.
    #[arg(long, value_name = "GRANULARITY", default_value = "channel")]
    granularity: String,
    /// Print only the N most sensitive layers.
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    #[command(flatten)]
    backend: BackendFlag,
    #[arg(long)]
    json: bool,
}

pub fn sensitivity(args: SensitivityArgs) -> std::result::Result<(), CliError> {
    let precision: Precision = args.quant.parse()?;
    if precision == Precision::F32 {
        return Err(CliError::Usage(
            "--quant must be int8, int4 or fp16 for a sensitivity scan".into(),
        ));
    }
    let granularity: Granularity = args.granularity.parse()?;
    let session = args.model.session(&args.backend)?;
    let n = keep_photos(&session, &[required(&args.calibrate, "calibrate")?])?;
    let json = args.json || !std::io::stderr().is_terminal();
    let rows = pollster::block_on(session.sensitivity(precision, granularity, |p| {
        if !json {
            eprint!("\r[{}/{}] {:<40}", p.step, p.steps, p.label);
        }
        async { true }
    }))?;
    if args.json {
        print_json(&rows)?;
    } else {
        if !json {
            eprintln!();
        }
        print::sensitivity(&rows, precision, n, args.top.unwrap_or(usize::MAX));
    }
    Ok(())
}
