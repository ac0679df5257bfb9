//! `modelslim auto`: a budget (bytes of the deployed ONNX or TFLite file, share of the MACs, or
//! ms per image) or a deployment target, and an agreement floor, into a search on the
//! `--calibrate` photos; the kept candidate's files written, every candidate reported
//! (`--json`: the contract checks outside the repo read).

use std::path::{Path, PathBuf};

use modelslim::Error;
use modelslim::compress::auto::{AutoOptions, Budget, DeployFormat, Timed, runtime_pick};
use modelslim::export::tflite::{device_io, tflite_c_header, tflite_summary};
use modelslim::session::{AutoReport, FileFormat, Session, no_progress};

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
    /// At most this many bytes of the deployed file (--format).
    #[arg(long, value_name = "N")]
    budget_bytes: Option<u64>,
    /// Keep at most this share of the original's MACs (0 < R ≤ 1).
    #[arg(long, value_name = "R")]
    budget_macs: Option<f64>,
    /// At most this many milliseconds per image on the backend in use.
    #[arg(long, value_name = "X")]
    budget_ms: Option<f64>,
    /// The file deployed, whose bytes a byte budget counts: onnx, or tflite (full integer
    /// where the kept plan quantizes activations) [default: onnx; tflite with --target].
    #[arg(long, value_name = "onnx|tflite")]
    format: Option<String>,
    /// A device as `modelslim targets` names it (e.g. ESP32-S3, any case): the TFLite file
    /// must fit its flash, its activations its RAM, and its operators the device's (full
    /// integer where it runs only integers). Its flash is the byte budget unless one is given.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
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
    /// Time each candidate's deployed file (--format) with this shell command, `{file}` its
    /// path (else appended): the last number it prints is its ms per image — in onnxruntime
    /// or LiteRT (`python3 scripts/time_runtime.py {file}`), or on a device you reach.
    #[arg(long, value_name = "CMD")]
    time_with: Option<String>,
    /// With --time-with: keep the most faithful candidate within the budget that runs under
    /// X ms there (none does: nothing is written, exit 1).
    #[arg(long, value_name = "X")]
    runtime_ms: Option<f64>,
    /// The kept model: safetensors, or as ONNX, TFLite or the TFLite file as a C header
    /// when the name ends in .onnx, .tflite or .h.
    #[arg(long, value_name = "F.safetensors")]
    out: Option<String>,
    /// The kept model as ONNX.
    #[arg(long, value_name = "F.onnx")]
    onnx: Option<String>,
    /// The kept model as TFLite, as the budget counted it (full integer with int8 input and
    /// output where activations are quantized, float otherwise).
    #[arg(long, value_name = "F.tflite")]
    tflite: Option<String>,
    #[command(flatten)]
    backend: BackendFlag,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn auto(args: AutoArgs) -> std::result::Result<(), CliError> {
    let budget = match (args.budget_bytes, args.budget_macs, args.budget_ms) {
        (Some(b), _, _) => Some(Budget::Bytes(b)),
        (_, Some(r), _) => Some(Budget::Macs(r)),
        (_, _, Some(ms)) => Some(Budget::Ms(ms)),
        _ if args.target.is_some() => None,
        _ => {
            return Err(CliError::Usage(
                "give a budget (--budget-bytes N, --budget-macs R or --budget-ms X) or a device (--target NAME)".into(),
            ));
        }
    };
    if !(0.0..=1.0).contains(&args.min_agreement) {
        return Err(CliError::Usage(format!(
            "--min-agreement is a share between 0 and 1 (got {})",
            args.min_agreement
        )));
    }
    let format = args
        .format
        .as_deref()
        .map(str::parse::<DeployFormat>)
        .transpose()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    match (&args.time_with, args.runtime_ms) {
        (None, Some(_)) => {
            return Err(CliError::Usage(
                "--runtime-ms needs --time-with CMD: the command that times a candidate's file"
                    .into(),
            ));
        }
        (_, Some(ms)) if !(ms > 0.0 && ms.is_finite()) => {
            return Err(CliError::Usage(format!(
                "--runtime-ms is a number of ms above 0 (got {ms})"
            )));
        }
        _ => {}
    }
    let opts = AutoOptions::new(budget, args.min_agreement, format, args.target.as_deref())?;
    let calibrate = required(&args.calibrate, "calibrate")?;
    let session = args.model.session(&args.backend)?;
    session.measure_tflite_with(tflite_summary);
    keep_photos(&session, &[calibrate])?;
    let mut report = pollster::block_on(session.auto(
        &opts,
        args.held_out,
        args.distill_steps,
        progress_on_terminal,
    ))?;
    let under_limit = match &args.time_with {
        Some(cmd) => time_in_runtime(&session, &mut report, cmd, args.runtime_ms)?,
        None => true,
    };
    let search = &report.search;
    // A kept model outside the budget is the closest candidate, not a result: nothing is written.
    if search.budget_met && under_limit {
        for (path, kind) in outputs(&args) {
            write_file(&PathBuf::from(path), &kept_file(&session, kind, path)?)?;
        }
    }
    if args.json {
        print_json(&json_of(&report))?;
    } else {
        print_report(&report, &args);
    }
    match (&search.message, &report.runtime_message) {
        (Some(m), _) if !(search.budget_met && search.floor_met) => {
            Err(CliError::Run(Error::Invalid(m.clone())))
        }
        (_, Some(m)) if !under_limit => Err(CliError::Run(Error::Invalid(format!(
            "{m}: raise --runtime-ms, or search with a smaller budget"
        )))),
        _ => Ok(()),
    }
}

/// Time every candidate's deployed file with `cmd` (see `--time-with`) and make the one
/// [`runtime_pick`] chooses under `limit` the kept model; whether it runs under the limit.
fn time_in_runtime(
    session: &Session,
    report: &mut AutoReport,
    cmd: &str,
    limit: Option<f64>,
) -> std::result::Result<bool, CliError> {
    let dir = std::env::temp_dir().join(format!("modelslim-time-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (kind, ext) = match report.options.format {
        DeployFormat::Onnx => (DeployedFile::Onnx, "onnx"),
        DeployFormat::Tflite => (DeployedFile::Tflite, "tflite"),
    };
    let n = report.search.candidates.len();
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        pollster::block_on(session.choose_candidate(i, no_progress))?;
        let path = dir.join(format!("candidate-{}.{ext}", i + 1));
        write_file(
            &path,
            &kept_file(session, kind, &path.display().to_string())?,
        )?;
        let t = run_timer(cmd, &path);
        std::fs::remove_file(&path).ok();
        ms.push(t?);
    }
    std::fs::remove_dir(&dir).ok();
    let timed: Vec<Timed> = report.search.candidates.iter().map(Timed::from).collect();
    let pick = runtime_pick(
        &timed,
        &ms,
        limit,
        report.options.min_agreement,
        report.search.chosen,
        &format!("`{cmd}`"),
    );
    for (c, t) in report.search.candidates.iter_mut().zip(&ms) {
        c.runtime_ms = Some(*t);
    }
    let (compression, plan) =
        pollster::block_on(session.choose_candidate(pick.index, no_progress))?;
    report.compression = compression;
    report.plan = plan;
    report.search.chosen = pick.index;
    report.runtime_message = Some(pick.message);
    Ok(pick.under_limit)
}

/// Run `cmd` on `file` (`{file}` replaced by its quoted path, else appended) and read the last
/// number it prints (a unit such as `ms` after it is ignored).
fn run_timer(cmd: &str, file: &Path) -> modelslim::Result<f64> {
    let quoted = format!("'{}'", file.display().to_string().replace('\'', r"'\''"));
    let line = if cmd.contains("{file}") {
        cmd.replace("{file}", &quoted)
    } else {
        format!("{cmd} {quoted}")
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .map_err(|e| Error::Invalid(format!("--time-with: sh cannot run: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "--time-with: `{line}` failed ({}): {}",
            out.status,
            super::one_line(stderr.lines().last().unwrap_or(""))
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|t| t.trim_end_matches(|c: char| c.is_alphabetic()).parse::<f64>().ok())
        .rfind(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "--time-with: `{line}` printed no number: it must print the file's ms per image last"
            ))
        })
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
    if let Some(note) = &report.floor_note {
        println!("note: {note}");
    }
    if let Some(m) = &report.runtime_message {
        println!("{m}");
    }
    println!(
        "{} candidates for {} in {:.0} s (per-layer costs {:.0} s); fitted on {} photos, measured on {} held out:",
        s.candidates.len(),
        report.options.label(),
        s.seconds,
        s.cost_seconds,
        report.fit_images,
        report.held_out_images
    );
    for (i, c) in s.candidates.iter().enumerate() {
        let mark = if i == s.chosen { "*" } else { " " };
        let ms = c.ms.map(|m| format!(", {m:.1} ms")).unwrap_or_default()
            + &c.runtime_ms
                .map(|m| format!(", {m:.1} ms timed"))
                .unwrap_or_default();
        let arena = c
            .peak_activation_bytes
            .map(|b| format!(", {:.2} MB of activations", b as f64 / 1e6))
            .unwrap_or_default();
        // What keeps it off the device, without the advice that follows.
        let over = match &c.target_problem {
            Some(p) => format!(
                ", not for the device: {}",
                p.split("; would fit").next().unwrap_or(p)
            ),
            None if !c.fits => ", over budget".to_string(),
            None => String::new(),
        };
        println!(
            "{mark} {:>2}. {:.2} MB{arena}, {:.0} M MACs{ms}: agreement {:.3}, KL {:.5}{over}{} ({:.0} s) — {}",
            i + 1,
            c.bytes as f64 / 1e6,
            c.macs as f64 / 1e6,
            c.agreement,
            c.kl,
            if c.pareto { ", Pareto" } else { "" },
            c.seconds,
            c.label
        );
    }
    if s.budget_met {
        for (path, _) in outputs(args) {
            println!("wrote {path}");
        }
    }
}

/// The files asked for: each path and what it holds (`--out` by its extension).
fn outputs(args: &AutoArgs) -> Vec<(&str, DeployedFile)> {
    let by_extension = |path: &str| match Path::new(path).extension().and_then(|x| x.to_str()) {
        Some(x) if x.eq_ignore_ascii_case("tflite") => DeployedFile::Tflite,
        Some(x) if x.eq_ignore_ascii_case("onnx") => DeployedFile::Onnx,
        Some(x) if x.eq_ignore_ascii_case("h") => DeployedFile::CHeader,
        _ => DeployedFile::Safetensors,
    };
    let mut files = Vec::new();
    if let Some(out) = &args.out {
        files.push((out.as_str(), by_extension(out)));
    }
    if let Some(p) = &args.onnx {
        files.push((p.as_str(), DeployedFile::Onnx));
    }
    if let Some(p) = &args.tflite {
        files.push((p.as_str(), DeployedFile::Tflite));
    }
    files
}

#[derive(Clone, Copy)]
enum DeployedFile {
    Safetensors,
    Onnx,
    Tflite,
    /// The TFLite file as a C header (`.h`).
    CHeader,
}

/// The kept model's file of `kind`, to be written at `path`; a TFLite file (or its C header)
/// as a device takes it, the file a TFLite budget counted.
fn kept_file(session: &Session, kind: DeployedFile, path: &str) -> modelslim::Result<Vec<u8>> {
    match kind {
        DeployedFile::Safetensors => session.file(FileFormat::Safetensors),
        DeployedFile::Onnx => session.file(FileFormat::Onnx),
        DeployedFile::Tflite => session.tflite(device_io(&session.compressed_model()?)),
        DeployedFile::CHeader => {
            let model = session.compressed_model()?;
            let name = Path::new(path)
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy());
            Ok(tflite_c_header(&model, device_io(&model), &name)?.into_bytes())
        }
    }
}
