//! The CLI's human-readable output of what a session returned (`--json` prints the structs).

use modelslim::compress::{Precision, Sensitivity};
use modelslim::session::{AgreementPhotos, Benchmark, CompressionReport, Evaluation};

pub fn benchmark(b: &Benchmark) {
    println!("backend: {}\nupload: {:.1} ms", b.backend, b.upload_ms);
    if let Some(cold) = b.cold_ms {
        println!("cold first forward: {cold:.1} ms");
    }
    let t = &b.warm;
    println!(
        "warm ({} runs): min {:.1} ms, median {:.1} ms, p90 {:.1} ms",
        t.runs, t.min_ms, t.median_ms, t.p90_ms
    );
}

/// Before, after and their ratio for each size, then agreement and time.
pub fn compression(r: &CompressionReport) {
    let (b, a, q) = (&r.before, &r.after, &r.ratios);
    println!("{:<22}{:>14}{:>14}{:>8}", "", "before", "after", "ratio");
    let mut rows = vec![
        ("parameters", b.params, a.params, q.params),
        (
            "non-zero parameters",
            b.nonzero_params,
            a.nonzero_params,
            q.nonzero_params,
        ),
        ("MACs", b.macs as usize, a.macs as usize, q.macs),
        (
            "safetensors bytes",
            b.bytes.safetensors.raw,
            a.bytes.safetensors.raw,
            q.safetensors_raw,
        ),
        (
            "safetensors gzip",
            b.bytes.safetensors.gzip,
            a.bytes.safetensors.gzip,
            q.safetensors_gzip,
        ),
    ];
    if let (Some(x), Some(y), Some(raw), Some(gzip)) =
        (b.bytes.onnx, a.bytes.onnx, q.onnx_raw, q.onnx_gzip)
    {
        rows.push(("onnx bytes", x.raw, y.raw, raw));
        rows.push(("onnx gzip", x.gzip, y.gzip, gzip));
    }
    for (name, x, y, ratio) in rows {
        println!("{name:<22}{x:>14}{y:>14}{ratio:>8.3}");
    }
    if let Some(a) = &r.agreement {
        let on = match r.agreement_photos {
            AgreementPhotos::HeldBack => "photos held back from fitting",
            AgreementPhotos::Fitting => "the photos it was fitted on (optimistic)",
            AgreementPhotos::Unfitted => "photos (none was fitted on)",
        };
        println!(
            "on {} {on}: top-1 agreement {:.3}, mean KL {:.4}",
            a.n, a.agreement, a.kl
        );
    }
    println!("took {:.1} s", r.seconds);
}

pub fn evaluation(r: &Evaluation) {
    println!("images: {} ({} labelled)", r.n, r.labelled);
    if !r.unknown_classes.is_empty() {
        println!(
            "labels.csv names classes the model does not have (those photos are unlabelled): {}",
            r.unknown_classes.join(", ")
        );
    }
    let count = |c: &modelslim::scores::Count| {
        format!(
            "{} of {} (95 % interval {:.1}–{:.1} %)",
            c.k,
            c.n,
            100.0 * c.low,
            100.0 * c.high
        )
    };
    let s = &r.scores;
    if let (Some(t1), Some(t5)) = (r.top1, r.top5) {
        let n = s.top1_count.as_ref().map(count).unwrap_or_default();
        println!("top-1: {t1:.4}, {n}\ntop-5: {t5:.4}");
    }
    if let Some(c) = &s.reference_top1 {
        println!("the reference's top-1: {:.4}, {}", c.share, count(c));
    }
    if let (Some(a), Some(kl)) = (r.agreement, r.kl) {
        let n = s.agreement_count.as_ref().map(count).unwrap_or_default();
        println!("top-1 agreement with the reference: {a:.4}, {n}\nmean KL: {kl:.5}");
    }
    if !s.classes.is_empty() {
        println!(
            "per class (right of photos{}):",
            if s.reference_top1.is_some() {
                "; the reference's"
            } else {
                ""
            }
        );
        for c in &s.classes {
            let reference = c
                .reference_correct
                .map(|k| format!("; {k}"))
                .unwrap_or_default();
            println!("  {:<30} {} of {}{reference}", c.name, c.correct, c.photos);
        }
    }
    if !s.new_confusions.is_empty() {
        println!("new confusions (the reference was right):");
        for c in &s.new_confusions {
            println!(
                "  {} → {}: {} photo(s)",
                c.truth_name, c.answer_name, c.photos
            );
        }
    }
    if !s.changed.is_empty() {
        println!("photos whose answer changed (lost first):");
        for c in &s.changed {
            println!(
                "  {} {}: class {} → {}",
                c.change, c.photo, c.reference, c.model
            );
        }
    }
}

pub fn sensitivity(rows: &[Sensitivity], precision: Precision, images: usize, top: usize) {
    println!(
        "{} one layer at a time, {images} images; most sensitive first",
        precision.label()
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
