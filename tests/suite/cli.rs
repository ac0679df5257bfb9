//! The `modelslim` command line: its JSON contract and its one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common;
use common::root;

fn modelslim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelslim"))
        .args(args)
        .output()
        .unwrap()
}

fn sample(name: &str) -> String {
    root().join("www/samples").join(name).display().to_string()
}

/// The command succeeded; else its stderr is the message.
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A failure is one line on stderr, a non-zero status, and no panic or backtrace.
fn assert_clean_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks '{needle}': {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// `compress` with `extra` flags on seeded weights fails with one line containing `needle`.
fn refused(extra: &[&str], needle: &str) {
    let mut args = vec!["compress", "--weights", "seeded:1", "--out", "/dev/null"];
    args.extend_from_slice(extra);
    assert_clean_failure(&modelslim(&args), needle);
}

#[test]
fn predict_json_is_one_object_per_image() {
    let out = modelslim(&[
        "predict",
        "--weights",
        "seeded:42",
        "--image",
        &sample("chelsea.png"),
        "--image",
        &sample("rocket.jpg"),
        "--json",
    ]);
    assert_success(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    for (line, name) in lines.iter().zip(["chelsea.png", "rocket.jpg"]) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["image"].as_str().unwrap().ends_with(name));
        let logits = v["logits"].as_array().unwrap();
        assert_eq!(logits.len(), 1000);
        let top5 = v["top5"].as_array().unwrap();
        assert_eq!(top5.len(), 5);
        let probs: Vec<f64> = top5.iter().map(|c| c["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]));
        // top-1 is the arg-max of the logits, and its label is the ImageNet name.
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
            .unwrap()
            .0;
        assert_eq!(top5[0]["index"].as_u64().unwrap() as usize, best);
        let label = top5[0]["label"].as_str().unwrap();
        assert_eq!(label, modelslim::labels::class_name(best));
    }
}

#[test]
fn weights_written_by_init_weights_predict_like_seeded() {
    let dir = std::env::temp_dir().join(format!("modelslim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("w.safetensors");
    let out = modelslim(&[
        "init-weights",
        "--seed",
        "42",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_success(&out);
    let a = modelslim(&[
        "predict",
        "--weights",
        file.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
        "--json",
    ]);
    let b = modelslim(&[
        "predict",
        "--weights",
        "seeded:42",
        "--image",
        &sample("coffee.png"),
        "--json",
    ]);
    assert!(a.status.success() && b.status.success());
    let la: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let lb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(la["logits"], lb["logits"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let text = root().join("Cargo.toml").display().to_string();
    let out = modelslim(&["predict", "--weights", "seeded:1", "--image", &text]);
    assert_clean_failure(&out, "not a readable image");

    let out = modelslim(&[
        "predict",
        "--weights",
        "/nonexistent/w.safetensors",
        "--image",
        &sample("coffee.png"),
    ]);
    assert_clean_failure(&out, "/nonexistent/w.safetensors");

    let out = modelslim(&[
        "predict",
        "--weights",
        &sample("coffee.png"),
        "--image",
        &sample("coffee.png"),
    ]);
    assert_clean_failure(&out, "not a safetensors file");

    let out = modelslim(&[
        "predict",
        "--weights",
        "seeded:1",
        "--image",
        &sample("coffee.png"),
        "--backend",
        "tpu",
    ]);
    assert_clean_failure(&out, "unknown backend 'tpu'");
}

#[test]
fn usage_errors_exit_2() {
    let out = modelslim(&["predict", "--image", &sample("coffee.png")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--weights is required"));
    let out = modelslim(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compress_reports_before_and_after_and_writes_a_loadable_file() {
    let dir = std::env::temp_dir().join(format!("modelslim-compress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join("c30-s50.safetensors");
    let out = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--out",
        out_file.to_str().unwrap(),
        "--prune-channels",
        "0.3",
        "--prune-scope",
        "all",
        "--round-to",
        "8",
        "--sparsity",
        "0.5",
        "--json",
    ]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (b, a) = (&v["before"], &v["after"]);
    assert_eq!(b["params"], 11_689_512);
    assert_eq!(b["macs"], 1_814_073_344u64);
    assert!(a["params"].as_u64().unwrap() < b["params"].as_u64().unwrap() * 6 / 10);
    assert!(a["nonzero_params"].as_u64().unwrap() < a["params"].as_u64().unwrap() * 6 / 10);
    assert!(a["macs"].as_u64().unwrap() < b["macs"].as_u64().unwrap());
    let raw = a["bytes"]["safetensors"]["raw"].as_u64().unwrap();
    assert_eq!(raw, std::fs::metadata(&out_file).unwrap().len());
    // Zeros do not shrink the dense file, but they do compress.
    assert!(a["bytes"]["safetensors"]["gzip"].as_u64().unwrap() < raw * 8 / 10);

    let p = modelslim(&[
        "predict",
        "--weights",
        out_file.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
        "--json",
    ]);
    assert_success(&p);

    let bad = modelslim(&[
        "compress",
        "--weights",
        "seeded:1",
        "--out",
        out_file.to_str().unwrap(),
        "--prune-channels",
        "1.0",
    ]);
    assert_clean_failure(&bad, "impossible");

    // Recalibration from a folder of photos; an empty folder is a one-line error.
    let recal_file = dir.join("c30-bn.safetensors");
    let samples = root().join("www/samples").display().to_string();
    let out = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--out",
        recal_file.to_str().unwrap(),
        "--prune-channels",
        "0.3",
        "--recalibrate-bn",
        &samples,
    ]);
    assert_success(&out);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = modelslim(&[
        "compress",
        "--weights",
        "seeded:1",
        "--out",
        recal_file.to_str().unwrap(),
        "--recalibrate-bn",
        empty.to_str().unwrap(),
    ]);
    assert_clean_failure(&bad, "no JPEG, PNG or WebP images");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn compress_quantizes_exports_onnx_and_reports_agreement() {
    let dir = std::env::temp_dir().join(format!("modelslim-quant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (st, onnx) = (dir.join("c30-int8.safetensors"), dir.join("c30-int8.onnx"));
    let samples = root().join("www/samples").display().to_string();
    let out = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--out",
        st.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
        "--prune-channels",
        "0.3",
        "--quant",
        "int8",
        "--act-quant",
        "--calibrate",
        &samples,
        "--json",
    ]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (b, a) = (&v["before"], &v["after"]);
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len();
    assert_eq!(a["bytes"]["onnx"]["raw"].as_u64().unwrap(), size(&onnx));
    assert_eq!(
        a["bytes"]["safetensors"]["raw"].as_u64().unwrap(),
        size(&st)
    );
    let fp32_onnx = b["bytes"]["onnx"]["raw"].as_u64().unwrap();
    assert!(
        size(&onnx) * 5 <= fp32_onnx,
        "30 % + int8 must be ≤ 20 % of fp32"
    );
    let agreement = v["agreement"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&agreement));
    assert_eq!(v["calibration_images"], 4);
    assert!(v["quantization"].as_str().unwrap().contains("int8"));
    assert_eq!(v["pruning"]["sparsity_method"], "none");
    assert_eq!(v["augment"], "none");
    assert_eq!(v["pruning"]["reconstruct"], false);

    // The compressed file predicts, evaluates and re-exports.
    let p = modelslim(&[
        "predict",
        "--weights",
        st.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
        "--json",
    ]);
    assert_success(&p);
    let again = dir.join("again.onnx");
    let e = modelslim(&[
        "export",
        "--weights",
        st.to_str().unwrap(),
        "--onnx",
        again.to_str().unwrap(),
    ]);
    assert_success(&e);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&onnx).unwrap()
    );

    // Impossible requests: one line each.
    refused(
        &["--quant", "int4", "--act-quant", "--calibrate", &samples],
        "int4",
    );
    refused(&["--quant", "int8", "--act-quant"], "--calibrate");
    refused(
        &["--quant", "int4", "--quant-method", "gptq"],
        "--calibrate",
    );
    refused(
        &[
            "--quant",
            "fp16",
            "--quant-method",
            "gptq",
            "--calibrate",
            &samples,
        ],
        "int8 or int4",
    );
    refused(&["--quant-method", "obq"], "rtn, gptq");
    refused(&["--prune-scope", "some"], "internal, all");
    refused(&["--quant", "int8", "--bias-correction"], "--calibrate");
    refused(&["--quant", "int3"], "not one of none, int8, int4, fp16");
    refused(
        &["--quant", "int8", "--granularity", "group:0"],
        "granularity",
    );
    refused(
        &["--layer-quant", "nope=int8", "--quant", "int8"],
        "no layer",
    );
    std::fs::remove_dir_all(dir).ok();
}

/// `compress --tflite` and `export --tflite` write the same TFLite file (LiteRT runs it in
/// `tests/suite/tflite.rs`); a model TFLite cannot hold yet writes nothing and says what to do.
#[test]
fn compress_and_export_write_tflite() {
    let dir = std::env::temp_dir().join(format!("modelslim-tflite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).display().to_string();
    let (st, onnx, tfl) = (path("c.safetensors"), path("c.onnx"), path("c.tflite"));
    let out = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--quant",
        "int8",
        "--out",
        &st,
        "--onnx",
        &onnx,
        "--tflite",
        &tfl,
    ]);
    assert_success(&out);
    let file = std::fs::read(&tfl).unwrap();
    assert_eq!(&file[4..8], b"TFL3");
    let (onnx2, tfl2) = (path("e.onnx"), path("e.tflite"));
    let e = modelslim(&[
        "export",
        "--weights",
        &st,
        "--tflite",
        &tfl2,
        "--onnx",
        &onnx2,
    ]);
    assert_success(&e);
    assert_eq!(std::fs::read(&tfl2).unwrap(), file);
    assert_eq!(
        std::fs::read(&onnx2).unwrap(),
        std::fs::read(&onnx).unwrap()
    );
    // The contract's flags: float I/O by default; int8 I/O (a full-integer file only) and
    // per-tensor scales on a per-channel model are refused with what to do.
    let export_tflite = |extra: &[&str]| {
        let mut args = vec!["export", "--weights", &st, "--tflite", &tfl2];
        args.extend_from_slice(extra);
        modelslim(&args)
    };
    assert_success(&export_tflite(&["--tflite-io", "float"]));
    assert_eq!(std::fs::read(&tfl2).unwrap(), file);
    let int8_io = export_tflite(&["--tflite-io", "int8"]);
    assert_clean_failure(&int8_io, "full-integer");
    let odd_io = export_tflite(&["--tflite-io", "int16"]);
    assert_eq!(odd_io.status.code(), Some(2));
    assert_clean_failure(&odd_io, "int8 or float");
    assert_clean_failure(&export_tflite(&["--per-tensor"]), "--granularity tensor");
    let pt = path("pt.safetensors");
    assert_success(&modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--quant",
        "int8",
        "--granularity",
        "tensor",
        "--out",
        &pt,
    ]));
    assert_success(&modelslim(&[
        "export",
        "--weights",
        &pt,
        "--tflite",
        &tfl2,
        "--per-tensor",
    ]));
    let none = modelslim(&["export", "--weights", &st]);
    assert_eq!(none.status.code(), Some(2));
    assert_clean_failure(&none, "--tflite");
    let grouped = path("grouped.safetensors");
    let refused = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--quant",
        "int4",
        "--granularity",
        "group:32",
        "--out",
        &grouped,
        "--tflite",
        &path("grouped.tflite"),
    ]);
    assert_clean_failure(&refused, "per channel");
    assert!(!Path::new(&grouped).exists(), "nothing is written");

    // The targets table (contract fields); the Pi takes the file, the int8-only MCU does not.
    let t = modelslim(&["targets", "--weights", &st, "--json"]);
    assert_success(&t);
    let v: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        for field in [
            "name",
            "flash_bytes",
            "ram_bytes",
            "file_bytes",
            "peak_activation_bytes",
        ] {
            assert!(!r[field].is_null(), "{field} in {r}");
        }
        assert!(r["unsupported_ops"].is_array() && r["fits"].is_boolean());
        assert_eq!(r["file_bytes"].as_u64().unwrap(), file.len() as u64);
    }
    assert_eq!(rows[0]["fits"], true);
    assert_eq!(rows[3]["fits"], false);

    // Activations quantized too: a full-integer file, with int8 input and output on request,
    // and no operator left in float for the int8-only targets.
    let calib = root().join("tests/fixtures/imagenet-subset/calib");
    let a8 = path("a8.safetensors");
    let a8_float = path("a8-float.tflite");
    assert_success(&modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--quant",
        "int8",
        "--act-quant",
        "--calibrate",
        &calib.display().to_string(),
        "--out",
        &a8,
        "--tflite",
        &a8_float,
    ]));
    let a8_int8 = path("a8-int8.tflite");
    assert_success(&modelslim(&[
        "export",
        "--weights",
        &a8,
        "--tflite",
        &a8_int8,
        "--tflite-io",
        "int8",
    ]));
    let (float_io, int8_io) = (
        std::fs::read(&a8_float).unwrap(),
        std::fs::read(&a8_int8).unwrap(),
    );
    assert_eq!(&int8_io[4..8], b"TFL3");
    assert!(int8_io.len() < float_io.len(), "no QUANTIZE or DEQUANTIZE");
    let t = modelslim(&["targets", "--weights", &a8, "--json"]);
    assert_success(&t);
    let v: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    for r in v.as_array().unwrap() {
        assert_eq!(r["unsupported_ops"], serde_json::json!([]), "{r}");
        assert_eq!(r["file_bytes"].as_u64().unwrap(), int8_io.len() as u64);
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn eval_reads_labels_from_names_and_compares_with_a_reference() {
    let dir = std::env::temp_dir().join(format!("modelslim-eval-{}", std::process::id()));
    let cats = dir.join("n02123045");
    std::fs::create_dir_all(&cats).unwrap();
    std::fs::copy(sample("chelsea.png"), cats.join("chelsea.png")).unwrap();
    std::fs::copy(sample("coffee.png"), dir.join("n07920052_espresso.png")).unwrap();
    std::fs::copy(sample("rocket.jpg"), dir.join("rocket.jpg")).unwrap();
    // A folder named by one of the class's names.
    let named = dir.join("Egyptian_cat");
    std::fs::create_dir_all(&named).unwrap();
    std::fs::copy(sample("astronaut.png"), named.join("a.png")).unwrap();
    let out = modelslim(&[
        "eval",
        "--weights",
        "seeded:42",
        "--reference",
        "seeded:42",
        "--images",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n"], 4);
    assert_eq!(v["labelled"], 3);
    // Counts with their 95 % intervals, per class: the same model as reference changes nothing.
    let top1 = &v["top1_count"];
    assert_eq!(top1["n"], 3);
    assert!(
        top1["low"].as_f64() <= top1["share"].as_f64()
            && top1["share"].as_f64() <= top1["high"].as_f64()
    );
    assert_eq!(v["agreement_count"]["k"], 4);
    assert_eq!(v["classes"].as_array().unwrap().len(), 3, "{v}");
    assert!(
        v.get("changed").is_none() && v.get("new_confusions").is_none(),
        "{v}"
    );
    // Another reference: the photos whose answer differs are listed, lost ones first.
    let other = modelslim(&[
        "eval",
        "--weights",
        "seeded:42",
        "--reference",
        "seeded:43",
        "--images",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&other);
    let o: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    let differ = 4 - o["agreement_count"]["k"].as_u64().unwrap();
    assert_eq!(
        o["changed"].as_array().map_or(0, Vec::len) as u64,
        differ,
        "{o}"
    );
    // With the model's own class names, folders are read by those (wnids then say nothing).
    let labels = dir.join("classes.txt");
    let names: Vec<String> = (0..1000).map(|i| format!("kind {i}")).collect();
    std::fs::write(&labels, names.join("\n")).unwrap();
    std::fs::create_dir_all(dir.join("own").join("Kind_7")).unwrap();
    std::fs::copy(sample("rocket.jpg"), dir.join("own/Kind_7/r.jpg")).unwrap();
    let own = modelslim(&[
        "eval",
        "--weights",
        "seeded:42",
        "--labels",
        labels.to_str().unwrap(),
        "--images",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&own);
    let o: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
    assert_eq!(
        (o["n"].as_u64(), o["labelled"].as_u64()),
        (Some(5), Some(1)),
        "{o}"
    );
    let (t1, t5) = (v["top1"].as_f64().unwrap(), v["top5"].as_f64().unwrap());
    assert!(t1 <= t5 && t5 <= 1.0);
    assert_eq!(v["agreement"], 1.0);
    assert_eq!(v["kl"], 0.0);

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = modelslim(&[
        "eval",
        "--weights",
        "seeded:1",
        "--images",
        empty.to_str().unwrap(),
    ]);
    assert_clean_failure(&bad, "no JPEG, PNG or WebP images");
    std::fs::remove_dir_all(dir).ok();
}

/// A `labels.csv` in a folder labels its photos by file name or path (a class number, wnid or
/// name), before their paths; a class the model lacks is named, a bad row refused by line.
#[test]
fn eval_reads_a_labels_csv() {
    let dir = std::env::temp_dir().join(format!("modelslim-csv-{}", std::process::id()));
    let shots = dir.join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    for name in ["chelsea.png", "coffee.png", "rocket.jpg"] {
        std::fs::copy(sample(name), shots.join(name)).unwrap();
    }
    // The folder says tench (a wnid); the labels file says otherwise and wins.
    let tench = dir.join("n01440764");
    std::fs::create_dir_all(&tench).unwrap();
    std::fs::copy(sample("astronaut.png"), tench.join("a.png")).unwrap();
    let csv = dir.join("labels.csv");
    std::fs::write(
        &csv,
        "file,label\nshots/chelsea.png,n02123045\ncoffee.png,\"espresso\"\nrocket.jpg,no such class\nn01440764/a.png,281\n",
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let out = modelslim(&["eval", "--weights", "seeded:42", "--images", d, "--json"]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["n"].as_u64(), v["labelled"].as_u64()),
        (Some(4), Some(3)),
        "{v}"
    );
    assert_eq!(
        v["unknown_classes"],
        serde_json::json!(["no such class"]),
        "{v}"
    );
    let classes: Vec<&str> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        classes.iter().any(|c| c.starts_with("espresso"))
            && classes.iter().any(|c| c.starts_with("tabby"))
            && !classes.iter().any(|c| c.starts_with("tench")),
        "{v}"
    );
    let text = modelslim(&["eval", "--weights", "seeded:42", "--images", d]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("does not have (those photos are unlabelled): no such class")
    );
    std::fs::write(&csv, "shots/chelsea.png,1\nshots/coffee.png\n").unwrap();
    let bad = modelslim(&["eval", "--weights", "seeded:42", "--images", d]);
    assert_clean_failure(&bad, "labels.csv: line 2: 1 fields");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn sensitivity_lists_every_layer_most_sensitive_first() {
    let samples = root().join("www/samples").display().to_string();
    let out = modelslim(&[
        "sensitivity",
        "--weights",
        "seeded:42",
        "--calibrate",
        &samples,
        "--quant",
        "int4",
        "--json",
    ]);
    assert_success(&out);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    // 20 convs and the classifier.
    assert_eq!(rows.len(), 21);
    let kls: Vec<f64> = rows.iter().map(|r| r["kl"].as_f64().unwrap()).collect();
    assert!(kls.windows(2).all(|w| w[0] >= w[1]));
    assert!(kls[0] > 0.0);
}

/// The contract of structured compression: `--drop-blocks` and `--target-macs` with
/// `--reconstruct`, and the JSON's `dropped_blocks` and `group_ratios`.
#[test]
fn compress_drops_blocks_and_meets_a_mac_target_as_its_json_says() {
    let dir = std::env::temp_dir().join(format!("modelslim-blocks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = dir.join("d2.safetensors");
    let onnx = dir.join("d2.onnx");
    let samples = root().join("www/samples").display().to_string();
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "compress",
            "--weights",
            "seeded:42",
            "--out",
            st.to_str().unwrap(),
            "--onnx",
            onnx.to_str().unwrap(),
            "--calibrate",
            &samples,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = modelslim(&args);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = run(&["--drop-blocks", "2"]);
    let blocks = v["dropped_blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    for b in blocks {
        assert_eq!(b["chosen_by"], "measured");
        assert!(b["macs"].as_u64().unwrap() > 0 && b["kl"].as_f64().is_some());
    }
    let (before, after) = (
        v["before"]["macs"].as_u64().unwrap(),
        v["after"]["macs"].as_u64().unwrap(),
    );
    let saved: u64 = blocks.iter().map(|b| b["macs"].as_u64().unwrap()).sum();
    assert_eq!(before - after, saved);
    // The shorter file predicts.
    assert_success(&modelslim(&[
        "predict",
        "--weights",
        st.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
    ]));

    // EfficientNet-Lite0 refits in seconds where ResNet18's 4,608-wide convs take minutes.
    let v = run(&[
        "--model",
        "efficientnet-lite0",
        "--target-macs",
        "0.75",
        "--reconstruct",
    ]);
    let (before, after) = (
        v["before"]["macs"].as_u64().unwrap(),
        v["after"]["macs"].as_u64().unwrap(),
    );
    assert!(after as f64 <= 0.75 * before as f64, "{after} of {before}");
    assert!(after as f64 > 0.7 * before as f64, "{after} of {before}");
    assert!((v["pruning"]["target_macs"].as_f64().unwrap() - 0.75).abs() < 1e-6);
    assert!(v["group_ratios"].as_object().unwrap().len() > 3);
    assert_eq!(v["pruning"]["reconstruct"], true);

    refused(&["--drop-blocks", "2"], "--calibrate");
    refused(&["--target-macs", "0.7"], "--calibrate");
    refused(
        &["--drop-blocks", "layer2.0", "--calibrate", &samples],
        "layer2.0",
    );
    refused(&["--target-macs", "1.5", "--calibrate", &samples], "MACs");
}

#[test]
fn compress_with_reconstruction_reports_what_each_method_did() {
    let dir = std::env::temp_dir().join(format!("modelslim-refit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = dir.join("c30-refit.safetensors");
    let samples = root().join("www/samples").display().to_string();
    let out = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--out",
        st.to_str().unwrap(),
        "--prune-channels",
        "0.3",
        "--importance",
        "output",
        "--prune-scope",
        "internal",
        "--sparsity",
        "0.3",
        "--reconstruct",
        "--calibrate",
        &samples,
        "--augment",
        "flip-crop",
        "--json",
    ]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["augment"], "flip-crop");
    let p = &v["pruning"];
    assert_eq!(p["importance"], "output");
    assert_eq!(p["scope"], "internal");
    assert_eq!(p["sparsity_method"], "sparsegpt");
    assert_eq!(p["reconstruct"], true);
    assert!((p["channels"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert!(v["after"]["macs"].as_u64().unwrap() < v["before"]["macs"].as_u64().unwrap());
    assert_eq!(v["calibration_images"], 4);
    let predicted = modelslim(&[
        "predict",
        "--weights",
        st.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
    ]);
    assert_success(&predicted);

    refused(&["--prune-channels", "0.3", "--reconstruct"], "--calibrate");
    refused(
        &["--reconstruct", "--calibrate", &samples],
        "channel pruning or sparsity",
    );
    refused(
        &["--prune-channels", "0.3", "--importance", "output"],
        "--calibrate",
    );
    refused(
        &[
            "--prune-channels",
            "0.3",
            "--importance",
            "hessian",
            "--steps",
            "2",
            "--calibrate",
            &samples,
        ],
        "one step",
    );
    refused(&["--importance", "taylor"], "l1, l2, bn, output or hessian");
    // Copies of the photos only feed the layer statistics.
    refused(
        &[
            "--quant",
            "int8",
            "--act-quant",
            "--augment",
            "flip",
            "--calibrate",
            &samples,
        ],
        "GPTQ, refitting and measured importance",
    );
    refused(&["--augment", "rotate"], "none, flip or flip-crop");
    std::fs::remove_dir_all(dir).ok();
}

/// `modelslim` run with `args`, killed if it has not ended within `seconds` (a hang fails).
fn modelslim_within(args: &[&str], seconds: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelslim"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > seconds {
            child.kill().ok();
            panic!("modelslim {args:?} still running after {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn a_fifo_or_a_folder_is_refused_not_waited_on() {
    let dir = std::env::temp_dir().join(format!("modelslim-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("photo.jpg");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let fifo = fifo.display().to_string();
    for image in [fifo.as_str(), dir.to_str().unwrap()] {
        let out = modelslim_within(&["predict", "--weights", "seeded:1", "--image", image], 60);
        assert_clean_failure(&out, "not a regular file");
        assert_clean_failure(&out, image);
    }
    let out = modelslim_within(&["predict", "--weights", &fifo, "--image", &fifo], 60);
    assert_clean_failure(&out, "not a regular file");
    std::fs::remove_dir_all(dir).ok();
}

#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_the_program_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelslim"))
        .args([
            "predict",
            "--weights",
            "seeded:1",
            "--image",
            &sample("coffee.png"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the program writes (`modelslim predict … | head -c 0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    // Ended by SIGPIPE (as `yes | head` ends `yes`), or successfully: never status 101.
    assert!(
        out.status.success() || out.status.signal() == Some(libc_sigpipe()),
        "{:?}",
        out.status
    );
}

/// SIGPIPE's number on Linux and the BSDs.
#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn eval_skips_an_unreadable_photo_with_a_warning_unless_strict() {
    let dir = std::env::temp_dir().join(format!("modelslim-skip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(sample("coffee.png"), dir.join("n07920052_coffee.png")).unwrap();
    let png = std::fs::read(sample("chelsea.png")).unwrap();
    std::fs::write(dir.join("n02123045_cut.png"), &png[..png.len() / 4]).unwrap();
    std::fs::write(dir.join("notes.jpg"), b"not an image\n").unwrap();
    let d = dir.to_str().unwrap();
    let out = modelslim(&["eval", "--weights", "seeded:1", "--images", d, "--json"]);
    assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings.iter().any(|w| w.contains("n02123045_cut.png")),
        "{stderr}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("notes.jpg: not a readable image")),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["skipped"], 2);
    assert_eq!(v["n"], 1, "{v}");
    let strict = modelslim(&["eval", "--weights", "seeded:1", "--images", d, "--strict"]);
    assert_clean_failure(&strict, "n02123045_cut.png");
    std::fs::remove_dir_all(dir).ok();
}

/// The contract: `distill --weights --teacher --images --out [--onnx] [--steps]
/// [--lr] [--batch] [--json]` and `synth --weights --out DIR [--n] [--seed]`.
#[test]
fn distill_and_synth_follow_their_contract() {
    let dir = std::env::temp_dir().join(format!("modelslim-distill-{}", std::process::id()));
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        std::fs::copy(sample(name), photos.join(name)).unwrap();
    }
    let p = |name: &str| dir.join(name).display().to_string();
    let teacher = p("teacher.safetensors");
    assert_success(&modelslim(&[
        "init-weights",
        "--seed",
        "3",
        "--out",
        &teacher,
    ]));
    let student = p("student.safetensors");
    assert_success(&modelslim(&[
        "compress",
        "--weights",
        &teacher,
        "--out",
        &student,
        "--quant",
        "int8",
    ]));
    let images = photos.display().to_string();
    let distill = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "distill",
            "--weights",
            &student,
            "--teacher",
            &teacher,
            "--images",
            &images,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        modelslim(&args)
    };
    let onnx = p("kd.onnx");
    let out = distill(
        &p("kd.safetensors"),
        &[
            "--onnx", &onnx, "--steps", "2", "--lr", "0.00001", "--batch", "2", "--json",
        ],
    );
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["loss"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["loss"][0].as_f64().unwrap() >= 0.0);
    assert!(v["ms_per_step"].as_f64().unwrap() > 0.0);
    assert_eq!(v["train_images"], 3);
    assert_eq!(v["held_out_images"], 1);
    for side in ["before", "after"] {
        assert_eq!(v[side]["n"], 1, "{v}");
        assert!(v[side]["agreement"].is_number() && v[side]["kl"].is_number());
    }
    assert!(
        v.get("photos").is_none(),
        "the JSON carries every photo's logits"
    );
    assert!(std::fs::metadata(p("kd.onnx")).unwrap().len() > 1000);
    assert_success(&modelslim(&[
        "predict",
        "--weights",
        &p("kd.safetensors"),
        "--image",
        &sample("chelsea.png"),
    ]));
    // Impossible options are one line.
    let no_steps = distill(&p("x.safetensors"), &["--steps", "0"]);
    assert_clean_failure(&no_steps, "steps must be");

    // synth: PNGs any --calibrate accepts, the same for a seed.
    let synth = |out: &str, seed: &str| {
        modelslim(&[
            "synth",
            "--weights",
            &teacher,
            "--out",
            out,
            "--n",
            "2",
            "--seed",
            seed,
            "--steps",
            "2",
            "--batch",
            "2",
        ])
    };
    assert_success(&synth(&p("synth-a"), "1"));
    assert_success(&synth(&p("synth-b"), "1"));
    let files = |d: &str| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(files(&p("synth-a")).len(), 2);
    assert_eq!(
        files(&p("synth-a")),
        files(&p("synth-b")),
        "same seed, other images"
    );
    assert_success(&modelslim(&[
        "compress",
        "--weights",
        &teacher,
        "--out",
        &p("a8.safetensors"),
        "--quant",
        "int8",
        "--act-quant",
        "--calibrate",
        &p("synth-a"),
    ]));
    let folded = modelslim(&[
        "synth",
        "--weights",
        &student,
        "--out",
        &p("synth-c"),
        "--n",
        "1",
    ]);
    assert_clean_failure(&folded, "use the original model");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--version`, and per-command help listing every flag the core describes, with its default
/// and range: the flags are generated from the descriptions, so a setting cannot be missing.
#[test]
fn help_and_version_list_every_flag() {
    let v = modelslim(&["--version"]);
    assert_success(&v);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("modelslim {}", env!("CARGO_PKG_VERSION"))
    );
    let sets = [
        ("compress", modelslim::compress::SETTINGS),
        ("distill", modelslim::train::DISTILL),
        ("synth", modelslim::train::SYNTH),
    ];
    for (command, fields) in sets {
        let out = modelslim(&[command, "--help"]);
        assert_success(&out);
        let help = String::from_utf8_lossy(&out.stdout);
        for f in fields {
            let flag = f.name.replace('_', "-");
            assert!(
                help.contains(&format!("--{flag}")) || help.contains(&format!("--no-{flag}")),
                "{command} --help lacks --{flag}"
            );
            if let Some(r) = f.range {
                assert!(
                    help.contains(&format!("{}–{}]", r.min, r.max)),
                    "{command} --help lacks the range of --{flag}"
                );
            }
        }
        assert!(help.contains("[default: "), "{help}");
    }
    // Every command answers --help.
    for command in [
        "predict",
        "init-weights",
        "bench",
        "eval",
        "sensitivity",
        "export",
        "targets",
        "convert",
    ] {
        assert_success(&modelslim(&[command, "--help"]));
    }
    // A flag the command does not have is one line and status 2.
    let out = modelslim(&["compress", "--prune-chanels", "0.3"]);
    assert_eq!(out.status.code(), Some(2));
    assert_clean_failure(&out, "--prune-chanels");
}

/// A labels file names the classes in the answers, and the compressed file carries them.
#[test]
fn a_labels_file_names_the_classes_and_travels_with_the_file() {
    let dir = std::env::temp_dir().join(format!("modelslim-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = dir.join("classes.txt");
    let names: Vec<String> = (0..1000).map(|i| format!("part-{i}")).collect();
    std::fs::write(&labels, names.join("\n") + "\n").unwrap();
    let st = dir.join("int8.safetensors");
    let out = modelslim(&[
        "compress",
        "--weights",
        "seeded:42",
        "--labels",
        labels.to_str().unwrap(),
        "--quant",
        "int8",
        "--out",
        st.to_str().unwrap(),
    ]);
    assert_success(&out);
    // Without --labels, the compressed file's own names answer.
    let out = modelslim(&[
        "predict",
        "--weights",
        st.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
        "--json",
    ]);
    assert_success(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = &v["top5"][0];
    assert_eq!(
        top["label"],
        format!("part-{}", top["index"].as_u64().unwrap())
    );
    // A file with the wrong count is refused in one line naming it.
    std::fs::write(&labels, "cat\ndog\n").unwrap();
    let out = modelslim(&[
        "predict",
        "--weights",
        "seeded:1",
        "--labels",
        labels.to_str().unwrap(),
        "--image",
        &sample("coffee.png"),
    ]);
    assert_clean_failure(&out, "classes.txt: 2 names for a model with 1000 classes");
    std::fs::remove_dir_all(dir).ok();
}

/// ResNet18's layout at a quarter of its widths, seeded, written into `dir` (created): the
/// search's many passes stay quick. Its path and the model.
fn narrow_resnet18(dir: &std::path::Path) -> (std::path::PathBuf, modelslim::model::Model) {
    std::fs::create_dir_all(dir).unwrap();
    let narrow = modelslim::model::Model::seeded_resnet18(2)
        .pruned(&modelslim::compress::PruneOptions {
            ratio: 0.75,
            prune_stem: true,
            scope: modelslim::compress::PruneScope::All,
            ..Default::default()
        })
        .unwrap();
    let weights = dir.join("narrow.safetensors");
    std::fs::write(&weights, narrow.to_safetensors().unwrap()).unwrap();
    (weights, narrow)
}

/// `auto --time-with CMD --runtime-ms X`: each candidate's deployed file is given to the
/// command, whose last number is its time; the kept one is the least KL under the limit.
/// Timed by the file's size in bytes (`stat`), so each candidate's time is its file's bytes —
/// the timed file is the candidate's — and then in onnxruntime by scripts/time_runtime.py.
#[test]
fn auto_times_candidates_with_a_command_and_keeps_the_best_under_the_limit() {
    let dir = std::env::temp_dir().join(format!("modelslim-time-with-{}", std::process::id()));
    let (weights, narrow) = narrow_resnet18(&dir);
    let fp32 = modelslim::export::to_onnx(&narrow).unwrap().len() as u64;
    let photos = root().join("www/samples").display().to_string();
    let (w, onnx) = (
        weights.display().to_string(),
        dir.join("kept.onnx").display().to_string(),
    );
    let budget = (fp32 / 3).to_string();
    let base = [
        "auto",
        "--weights",
        &w,
        "--calibrate",
        &photos,
        "--budget-bytes",
        &budget,
    ];

    let mut alone = base.to_vec();
    alone.extend(["--runtime-ms", "5"]);
    let o = modelslim(&alone);
    assert_eq!(o.status.code(), Some(2));
    assert_clean_failure(&o, "--runtime-ms needs --time-with");

    // Each candidate's "time" is its file's bytes: without a limit, timed only.
    let mut sized = base.to_vec();
    sized.extend(["--time-with", "stat -c %s {file}", "--json"]);
    let o = modelslim(&sized);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut fitting: Vec<f64> = Vec::new();
    for c in v["candidates"].as_array().unwrap() {
        assert_eq!(c["runtime_ms"].as_f64(), c["bytes"].as_f64(), "{c}");
        if c["fits"] == true {
            fitting.push(c["bytes"].as_f64().unwrap());
        }
    }
    // A limit half of the fitting candidates meet.
    fitting.sort_by(f64::total_cmp);
    assert!(fitting.len() >= 2, "{v}");
    let limit = fitting[(fitting.len() - 1) / 2];
    let limit_arg = limit.to_string();
    sized.extend(["--runtime-ms", &limit_arg, "--onnx", &onnx]);
    let o = modelslim(&sized);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let candidates = v["candidates"].as_array().unwrap();
    let under: Vec<&serde_json::Value> = candidates
        .iter()
        .filter(|c| c["fits"] == true && c["runtime_ms"].as_f64().unwrap() <= limit)
        .collect();
    assert!(!under.is_empty(), "{v}");
    let best = under
        .iter()
        .map(|c| c["kl"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    let kept = &candidates[v["chosen"].as_u64().unwrap() as usize];
    assert_eq!(kept["kl"].as_f64(), Some(best), "{v}");
    assert_eq!(
        std::fs::metadata(&onnx).unwrap().len(),
        kept["bytes"].as_u64().unwrap()
    );
    assert!(
        v["runtime_message"]
            .as_str()
            .unwrap()
            .contains("most faithful"),
        "{v}"
    );

    // In onnxruntime, with a limit nothing meets: nothing written, exit 1, the times reported.
    std::fs::remove_file(&onnx).unwrap();
    let python = std::env::var("MODELSLIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = root().join("scripts/time_runtime.py").display().to_string();
    let cmd = format!("{python} {script} --runs 3 {{file}}");
    let mut real = base.to_vec();
    real.extend([
        "--time-with",
        &cmd,
        "--runtime-ms",
        "0.000001",
        "--onnx",
        &onnx,
        "--json",
    ]);
    let o = modelslim(&real);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !std::path::Path::new(&onnx).exists(),
        "written though no candidate is fast enough"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in v["candidates"].as_array().unwrap() {
        let ms = c["runtime_ms"].as_f64().unwrap();
        assert!(ms > 0.0 && ms < 10_000.0, "{c}");
    }
    assert!(String::from_utf8_lossy(&o.stderr).contains("none within the budget runs under"));

    // A command that prints no number is named.
    let mut mute = base.to_vec();
    mute.extend(["--time-with", "true"]);
    assert_clean_failure(&modelslim(&mute), "printed no number");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn auto_follows_its_contract_and_keeps_the_file_within_the_budget() {
    let dir = std::env::temp_dir().join(format!("modelslim-auto-{}", std::process::id()));
    let (weights, narrow) = narrow_resnet18(&dir);
    let fp32 = modelslim::export::to_onnx(&narrow).unwrap().len() as u64;
    // The folder is the samples: the search reads every photo in it.
    let photos = root().join("www/samples").display().to_string();
    let (w, onnx, out) = (
        weights.display().to_string(),
        dir.join("a.onnx").display().to_string(),
        dir.join("a.safetensors").display().to_string(),
    );
    let budget = (fp32 / 5).to_string();
    let base = ["auto", "--weights", &w, "--calibrate", &photos];

    // Exactly one budget.
    let mut none = base.to_vec();
    none.extend(["--out", &out]);
    let o = modelslim(&none);
    assert_eq!(o.status.code(), Some(2));
    assert_clean_failure(&o, "budget");
    let mut two = base.to_vec();
    two.extend(["--budget-bytes", &budget, "--budget-macs", "0.5"]);
    assert_eq!(modelslim(&two).status.code(), Some(2));

    let mut args = base.to_vec();
    args.extend([
        "--budget-bytes",
        &budget,
        "--min-agreement",
        "0",
        "--held-out",
        "1",
    ]);
    args.extend(["--out", &out, "--onnx", &onnx, "--json"]);
    let o = modelslim(&args);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let chosen = v["chosen"].as_u64().unwrap() as usize;
    let candidates = v["candidates"].as_array().unwrap();
    for c in candidates {
        for field in ["bytes", "macs", "agreement", "kl", "seconds"] {
            assert!(c[field].is_number(), "{field} in {c}");
        }
    }
    let size = std::fs::metadata(&onnx).unwrap().len();
    assert_eq!(candidates[chosen]["bytes"].as_u64(), Some(size));
    assert!(size <= fp32 / 5, "{size} > {}", fp32 / 5);
    assert_eq!(v["held_out_images"], 1);
    // One held-out photo: the floor is said to be a guess.
    assert!(
        v["floor_note"]
            .as_str()
            .is_some_and(|n| n.starts_with("only 1 of")),
        "{v}"
    );
    assert!(v["seconds"].is_number());
    let plan = v["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 21);
    for l in plan {
        assert!(
            l["precision"].is_string()
                && l["kept_channels"].is_number()
                && l["dropped"].is_boolean(),
            "{l}"
        );
        // Integer layers name their granularity.
        assert_eq!(
            l["precision"].as_str().unwrap().starts_with("int"),
            l["granularity"].is_string(),
            "{l}"
        );
    }
    // The written file reloads and keeps the plan's precisions.
    let m = modelslim::model::Model::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    let ints = plan
        .iter()
        .filter(|l| l["precision"].as_str().unwrap().starts_with("int"))
        .count();
    assert_eq!(m.quant.int.len(), ints);

    // Distillation after the search: a candidate of its own, the same format and bytes.
    let mut args = base.to_vec();
    args.extend(["--budget-bytes", &budget, "--distill-steps", "2", "--json"]);
    let o = modelslim(&args);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = v["candidates"].as_array().unwrap();
    let last = c.last().unwrap();
    assert!(
        last["label"]
            .as_str()
            .unwrap()
            .ends_with("distilled 2 steps"),
        "{last}"
    );
    let chosen = v["chosen"].as_u64().unwrap() as usize;
    assert!(last["bytes"].as_u64().unwrap() <= fp32 / 5);
    // Kept only when it moved the outputs less than the candidate it started from.
    let label = last["label"].as_str().unwrap();
    let start = label.trim_end_matches(", distilled 2 steps");
    let from = c.iter().find(|x| x["label"] == start).unwrap();
    assert_eq!(from["bytes"], last["bytes"]);
    if chosen == c.len() - 1 {
        assert!(last["kl"].as_f64() < from["kl"].as_f64());
    }

    // A budget nothing meets: one line naming the closest candidate, nothing written.
    let tiny = dir.join("tiny.onnx").display().to_string();
    let mut args = base.to_vec();
    args.extend(["--budget-bytes", "1000", "--onnx", &tiny]);
    assert_clean_failure(&modelslim(&args), "closest");
    assert!(!std::path::Path::new(&tiny).exists());

    // A device: its flash is the budget, the written file the TFLite file it takes, full
    // integer where it runs only integers.
    let tflite = dir.join("a.tflite").display().to_string();
    let kept_weights = dir.join("device.safetensors").display().to_string();
    let mut args = base.to_vec();
    args.extend([
        "--target",
        "esp32-s3",
        "--tflite",
        &tflite,
        "--out",
        &kept_weights,
    ]);
    args.push("--json");
    let o = modelslim(&args);
    assert_success(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["options"]["target"], "ESP32-S3");
    assert_eq!(v["options"]["format"], "tflite");
    let kept = &v["candidates"][v["chosen"].as_u64().unwrap() as usize];
    assert_eq!(kept["full_integer"], true, "{kept}");
    let file = std::fs::read(&tflite).unwrap();
    assert_eq!(kept["bytes"].as_u64(), Some(file.len() as u64));
    // The targets table, on the kept model, agrees.
    let o = modelslim(&["targets", "--weights", &kept_weights, "--json"]);
    assert_success(&o);
    let table: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let esp = table
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ESP32-S3")
        .unwrap();
    assert_eq!(esp["fits"], true, "{esp}");
    assert_eq!(esp["file_bytes"], kept["bytes"]);
    assert!(esp["file_bytes"].as_u64() <= esp["flash_bytes"].as_u64());
    assert!(esp["peak_activation_bytes"].as_u64() <= esp["ram_bytes"].as_u64());
    // The same file as a C header for the firmware: its bytes, its length, a C compiler takes
    // it as it is.
    let header = dir.join("esp32_model.h");
    let h = header.display().to_string();
    assert_success(&modelslim(&[
        "export",
        "--weights",
        &kept_weights,
        "--c-header",
        &h,
    ]));
    let text = std::fs::read_to_string(&header).unwrap();
    let body = text.split_once("esp32_model_tflite[] = {").unwrap().1;
    let hex: Vec<u8> = body
        .split_once("};")
        .unwrap()
        .0
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).unwrap())
        .collect();
    assert!(hex == file, "the header's array is not the TFLite file");
    assert!(text.contains(&format!("esp32_model_tflite_len = {};", file.len())));
    let arena = format!(
        "esp32_model_arena_bytes = {};",
        esp["peak_activation_bytes"]
    );
    assert!(text.contains(&arena), "{arena}");
    let c = dir.join("use_model.c");
    std::fs::write(&c, "#include \"esp32_model.h\"\nint main(void) { return esp32_model_tflite[0] + (int)esp32_model_tflite_len; }\n").unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only"])
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    // --format tflite with a byte budget: --out by its extension writes that TFLite file.
    let fp32_tflite = modelslim::export::tflite::tflite_summary(&narrow)
        .unwrap()
        .file_bytes;
    let budget = (fp32_tflite as u64 / 3).to_string();
    let mut args = base.to_vec();
    let out_tflite = dir.join("b.tflite").display().to_string();
    args.extend([
        "--format",
        "tflite",
        "--budget-bytes",
        &budget,
        "--out",
        &out_tflite,
    ]);
    assert_success(&modelslim(&args));
    let size = std::fs::metadata(&out_tflite).unwrap().len();
    assert!(size <= fp32_tflite as u64 / 3, "{size}");
    // ONNX is not what a device runs; an unknown device names the ones there are.
    let mut args = base.to_vec();
    args.extend(["--target", "esp32-s3", "--format", "onnx"]);
    assert_clean_failure(&modelslim(&args), "TFLite");
    let mut args = base.to_vec();
    args.extend(["--target", "uno"]);
    assert_clean_failure(&modelslim(&args), "ESP32-S3");
    std::fs::remove_dir_all(&dir).ok();
}
