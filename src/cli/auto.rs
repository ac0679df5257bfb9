//! `modelslim auto`: a budget (ONNX bytes, share of the MACs, or ms per image) and an agreement
//! floor into a search on the `--calibrate` photos; the kept candidate's files written, every
//! candidate reported (`--json`: the contract checks outside the repo read).

use std::path::{Path, PathBuf};

use modelslim::Error;
use modelslim::compress::auto::{AutoOptions, Budget};
use modelslim::session::{AutoReport, FileFormat};

use super::images::keep_photos;
use super::{
    BackendFlag, CliError, ModelFlags, print_json, progress_on_terminal, required, write_file,
};

// One budget at most (clap refuses two); none at all is refused in `auto` with a message
// naming the three.
#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("budget")
        .args(["budget_bytes", "budget_macs", "budget_ms"])
))]
pub struct AutoArgs {
    #[command(flatten)]
    model: ModelFlags,
    /// A folder of photos to search on: costs, GPTQ and refitting fit on most of them, the
    /// candidates are measured on the rest (--held-out).
    #[arg(long, value_name = "DIR")]
    calibrate: Option<String>,
    /// At most this many bytes of ONNX file.
    #[arg(long, value_name = "N")]
    budget_bytes: Option<u64>,
    /// Keep at most this share of the original's MACs (0 < R ≤ 1).
    #[arg(long, value_name = "R")]
    budget_macs: Option<f64>,
    /// At most this many milliseconds per image on the backend in use.
    #[arg(long, value_name = "X")]
    budget_ms: Option<f64>,
    /// The least share of held-out photos whose top-1 class stays the original's.
    #[arg(long, value_name = "A", default_value_t = 0.0)]
    min_agreement: f64,
    /// Photos held out of fitting to measure candidates on [default: a fifth, 1 to 50].
    #[arg(long, value_name = "N")]
    held_out: Option<usize>,
    /// Distil the kept candidate for N steps on the fitting photos (kept when it agrees
    /// better on the held-out photos).
    #[arg(long, value_name = "N", default_value_t = 0)]
    distill_steps: usize,
    /// The kept model, safetensors.
    #[arg(long, value_name = "F.safetensors")]
    out: Option<String>,
    /// The kept model as ONNX.
    #[arg(long, value_name = "F.onnx")]
    onnx: Option<String>,
    #[command(flatten)]
    backend: BackendFlag,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn auto(args: AutoArgs) -> std::result::Result<(), CliError> {
    let budget = match (args.budget_bytes, args.budget_macs, args.budget_ms) {
        (Some(b), _, _) => Budget::Bytes(b),
        (_, Some(r), _) => Budget::Macs(r),
        (_, _, Some(ms)) => Budget::Ms(ms),
        _ => {
            return Err(CliError::Usage(
                "give a budget: --budget-bytes N, --budget-macs R or --budget-ms X".into(),
            ));
        }
    }
    .checked()?;
    let opts = AutoOptions {
        budget,
        min_agreement: args.min_agreement,
    };
    if !(0.0..=1.0).contains(&opts.min_agreement) {
        return Err(CliError::Usage(format!(
            "--min-agreement is a share between 0 and 1 (got {})",
            opts.min_agreement
        )));
    }
    let calibrate = required(&args.calibrate, "calibrate")?;
    let session = args.model.session(&args.backend)?;
    keep_photos(&session, &[calibrate])?;
    let report = pollster::block_on(session.auto(
        &opts,
        args.held_out,
        args.distill_steps,
        progress_on_terminal,
    ))?;
    let search = &report.search;
    // A kept model outside the budget is the closest candidate, not a result: nothing is written.
    if search.budget_met {
        if let Some(out) = &args.out {
            write_file(&PathBuf::from(out), &session.file(FileFormat::Safetensors)?)?;
        }
        if let Some(path) = &args.onnx {
            write_file(Path::new(path), &session.file(FileFormat::Onnx)?)?;
        }
    }
    if args.json {
        print_json(&json_of(&report))?;
    } else {
        print_report(&report, &args);
    }
    match &search.message {
        Some(m) if !(search.budget_met && search.floor_met) => {
            Err(CliError::Run(Error::Invalid(m.clone())))
        }
        _ => Ok(()),
    }
}

/// The report without every photo's logits (the page's, not the contract's).
fn json_of(report: &AutoReport) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    if let Some(c) = v.get_mut("compression").and_then(|c| c.as_object_mut()) {
        c.remove("photos");
    }
    v
}

fn print_report(report: &AutoReport, args: &AutoArgs) {
    let s = &report.search;
    println!(
        "{} candidates for {} in {:.0} s (per-layer costs {:.0} s); fitted on {} photos, measured on {} held out:",
        s.candidates.len(),
        report.options.budget.label(),
        s.seconds,
        s.cost_seconds,
        report.fit_images,
        report.held_out_images
    );
    for (i, c) in s.candidates.iter().enumerate() {
        let mark = if i == s.chosen { "*" } else { " " };
        let ms = c.ms.map(|m| format!(", {m:.1} ms")).unwrap_or_default();
        println!(
            "{mark} {:>2}. {:.2} MB, {:.0} M MACs{ms}: agreement {:.3}, KL {:.5}{}{} ({:.0} s) — {}",
            i + 1,
            c.bytes as f64 / 1e6,
            c.macs as f64 / 1e6,
            c.agreement,
            c.kl,
            if c.fits { "" } else { ", over budget" },
            if c.pareto { ", Pareto" } else { "" },
            c.seconds,
            c.label
        );
    }
    if s.budget_met {
        if let Some(out) = &args.out {
            println!("wrote {out}");
        }
        if let Some(p) = &args.onnx {
            println!("wrote {p}");
        }
    }
}
