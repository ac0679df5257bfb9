//! A structure-aware mutation fuzzer for every parser a user's file reaches: the safetensors
//! reader with modelslim's metadata (a whole graph included), the ONNX reader, the PyTorch zip
//! checkpoint, the pickle machine, the legacy checkpoint, image decoding with preprocessing,
//! and the ONNX and TFLite writers on whatever the safetensors and ONNX readers accept. It runs on stable Rust (no
//! nightly toolchain for cargo-fuzz here): seeds are built below or read from
//! `tests/fuzz/corpus/<target>/`, mutated (bit flips, integer fields set to edge values,
//! numbers in JSON headers replaced, chunks repeated, deleted or spliced, opcodes inserted),
//! and each input is parsed in this process. A finding is a panic, an input slower than
//! `SLOW`, an allocation past `MEMORY_CAP` or a crash (stack overflow, abort): before each
//! input runs it is written to `<out>/<target>/current`, so a crash leaves it there for
//! `scripts/fuzz.sh` to keep. Findings become tests in `hostile.rs`.
//!
//! `cargo test --release --test fuzz` runs each target for a few seconds (CI);
//! `FUZZ_SECONDS=600 FUZZ_TARGETS=pickle,pth-zip` for longer (see `scripts/fuzz.sh`).

#[path = "common/hostile.rs"]
mod hostile;

#[path = "common/capped_alloc.rs"]
mod capped_alloc;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use capped_alloc::CappedAlloc;
use hostile::*;
use modelslim::model::Model;
use modelslim::model::onnx::read_onnx;
use modelslim::preprocess::Preprocess;
use modelslim::weights::{pickle, read_weights};

/// Live heap allowed to one input: far above what a valid small input needs, far below what
/// this machine has. Past it the allocation fails and the process aborts (a finding).
const MEMORY_CAP: usize = 3 << 30;
/// An input that takes longer than this to parse is a finding (a hang, or work that grows
/// faster than the input).
const SLOW: Duration = Duration::from_secs(3);

#[global_allocator]
static ALLOCATOR: CappedAlloc<MEMORY_CAP> = CappedAlloc;

/// xorshift64*: deterministic for a given `FUZZ_SEED`, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Integers parsers mistake most often: zero, one, signs, the edges of each width, powers of
/// two that overflow when multiplied.
const EDGES: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 40,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Numbers to put in JSON headers (shapes, offsets, widths, scales, group sizes).
const JSON_NUMBERS: [&str; 10] = [
    "0",
    "1",
    "-1",
    "7",
    "4294967296",
    "18446744073709551615",
    "1e39",
    "-0",
    "1099511627776",
    "3.5",
];

/// Pickle opcodes, for insertion (MARK, containers, memo, calls, long lengths).
const PICKLE_OPS: &[u8] = b"(]})NtlduaesRbQh0j2q\x85\x86\x87\x8a\x8c\x8d\x93\x94\x95.";

fn mutate(input: &[u8], seeds: &[Vec<u8>], rng: &mut Rng, pickle_aware: bool) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len().max(1);
        match rng.below(10) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = EDGES[rng.below(4) + 1] as u8;
            }
            2 if v.len() >= 8 => {
                // An integer field of 1, 2, 4 or 8 bytes set to an edge value.
                let width = [1, 2, 4, 8][rng.below(4)];
                let i = rng.below(v.len() - width + 1);
                let e = EDGES[rng.below(EDGES.len())].to_le_bytes();
                v[i..i + width].copy_from_slice(&e[..width]);
            }
            3 => {
                // A number in a JSON header replaced.
                let digits: Vec<usize> = (0..v.len().min(1 << 16))
                    .filter(|&i| v[i].is_ascii_digit() && (i == 0 || !v[i - 1].is_ascii_digit()))
                    .collect();
                if !digits.is_empty() {
                    let at = digits[rng.below(digits.len())];
                    let end = at + v[at..].iter().take_while(|b| b.is_ascii_digit()).count();
                    let n = JSON_NUMBERS[rng.below(JSON_NUMBERS.len())].as_bytes();
                    v.splice(at..end, n.iter().copied());
                }
            }
            4 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i.min(v.len())..i.min(v.len()), bytes);
            }
            5 if v.len() > 1 => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                v.drain(i..i + n);
            }
            6 if !v.is_empty() => {
                // A chunk repeated: deep nesting, long runs of one opcode.
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(8));
                let chunk = v[i..i + n].to_vec();
                let times = [2, 16, 1000, 100_000][rng.below(4)];
                let rep: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                v.splice(i..i, rep);
            }
            7 => {
                // Spliced with another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let (a, b) = (rng.below(v.len() + 1), rng.below(other.len()));
                    v.truncate(a);
                    v.extend_from_slice(&other[b..]);
                }
            }
            8 if pickle_aware => {
                let i = rng.below(v.len() + 1);
                v.insert(i, PICKLE_OPS[rng.below(PICKLE_OPS.len())]);
            }
            _ => v.truncate(rng.below(len)),
        }
    }
    v
}

/// One parser and how its inputs are made.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    /// Mutate the pickle inside a zip checkpoint and zip it again (mutating the zip's bytes
    /// mostly breaks its checksums, which hides the pickle reader behind it).
    rezip: bool,
    pickle_aware: bool,
    parse: fn(&[u8]),
}

fn seeded_files() -> (Vec<u8>, Vec<u8>) {
    let model = Model::seeded_resnet18(1);
    let opts = modelslim::compress::QuantOptions {
        weights: modelslim::compress::Precision::Int4,
        granularity: modelslim::compress::Granularity::Group(32),
        ..Default::default()
    };
    let int4 = model.quantized(&opts).unwrap().to_safetensors().unwrap();
    // A small file with the same metadata layout: fc alone, which the reader checks first.
    let mut sd = modelslim::tensor::StateDict::new();
    sd.insert(
        "fc.bias".into(),
        modelslim::tensor::HostTensor::new(vec![4], vec![0.5; 4]),
    );
    let small = modelslim::weights::safetensors::write_safetensors(
        &sd,
        HashMap::from([(
            "modelslim".to_string(),
            r#"{"architecture":"resnet18","config":{"stem_channels":64,"stages":[],"num_classes":4},"folded":true,"tensors":{"fc.bias":{"int":{"bits":4,"granularity":{"group":32}}}},"activations":{"x":{"scale":0.5,"zero_point":3}}}"#.to_string(),
        )]),
    )
    .unwrap();
    (int4, small)
}

/// ResNet18 at a quarter of its widths with int8 weights: every operator the writers know, in a
/// file small enough to mutate quickly.
/// A small network as modelslim's own ONNX export writes it (ResNet18 with three quarters of
/// its channels pruned), and the same read back from it and stored int8: a compressed file
/// whose metadata holds a whole graph.
fn narrow_onnx() -> (Vec<u8>, Vec<u8>) {
    let prune = modelslim::compress::PruneOptions {
        ratio: 0.75,
        prune_stem: true,
        scope: modelslim::compress::PruneScope::All,
        ..Default::default()
    };
    let narrow = Model::seeded_resnet18(1).pruned(&prune).unwrap();
    let onnx = modelslim::export::to_onnx(&narrow).unwrap();
    let graph = read_onnx(&onnx, "narrow", None).unwrap();
    let quant = modelslim::compress::QuantOptions {
        weights: modelslim::compress::Precision::Int8,
        ..Default::default()
    };
    let stored = graph.quantized(&quant).unwrap().to_safetensors().unwrap();
    (onnx, stored)
}

fn narrow_int8() -> Vec<u8> {
    let prune = modelslim::compress::PruneOptions {
        ratio: 0.75,
        prune_stem: true,
        scope: modelslim::compress::PruneScope::All,
        ..Default::default()
    };
    let quant = modelslim::compress::QuantOptions {
        weights: modelslim::compress::Precision::Int8,
        ..Default::default()
    };
    let narrow = Model::seeded_resnet18(1).pruned(&prune).unwrap();
    narrow.quantized(&quant).unwrap().to_safetensors().unwrap()
}

fn state_dict() -> Vec<TensorSpec> {
    vec![
        TensorSpec::contiguous("conv.weight", &[2, 1, 3, 3]),
        TensorSpec {
            name: "t".into(),
            offset: 1,
            size: vec![3, 2],
            stride: vec![1, 3],
            numel: 7,
        },
    ]
}

fn image_seeds() -> Vec<Vec<u8>> {
    let img = image::RgbImage::from_fn(24, 16, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 15) as u8, 90])
    });
    [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::WebP,
    ]
    .into_iter()
    .map(|f| {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), f)
            .unwrap();
        out
    })
    .collect()
}

fn targets() -> Vec<Target> {
    let (int4, small) = seeded_files();
    let (onnx, graph_file) = narrow_onnx();
    let sd = state_dict_pickle(&state_dict());
    vec![
        Target {
            name: "safetensors",
            seeds: vec![small.clone(), int4.clone(), graph_file],
            rezip: false,
            pickle_aware: false,
            parse: |b| drop(Model::from_bytes(b)),
        },
        Target {
            // What the loader accepts, the exporters write or refuse with an error.
            name: "export",
            seeds: vec![small.clone(), int4.clone(), narrow_int8()],
            rezip: false,
            pickle_aware: false,
            parse: |b| {
                if let Ok(m) = Model::from_bytes(b) {
                    drop(modelslim::export::to_tflite(&m));
                    drop(modelslim::export::to_onnx(&m));
                }
            },
        },
        Target {
            // A user's ONNX file: read, then both exports of what was read.
            name: "onnx",
            seeds: vec![onnx],
            rezip: false,
            pickle_aware: false,
            parse: |b| {
                if let Ok(m) = read_onnx(b, "fuzz", None) {
                    drop(modelslim::export::to_tflite(&m));
                    drop(modelslim::export::to_onnx(&m));
                }
            },
        },
        Target {
            name: "pickle",
            seeds: vec![sd.clone(), nested_lists(50), memo_doubling(4)],
            rezip: false,
            pickle_aware: true,
            parse: |b| drop(pickle::load(b)),
        },
        Target {
            name: "pth-zip",
            seeds: vec![sd.clone()],
            rezip: true,
            pickle_aware: true,
            parse: |b| drop(read_weights(b)),
        },
        Target {
            name: "legacy",
            seeds: vec![pth_legacy(&sd, &[(18, floats(18)), (7, floats(7))])],
            rezip: false,
            pickle_aware: true,
            parse: |b| drop(read_weights(b)),
        },
        Target {
            name: "image",
            seeds: image_seeds(),
            rezip: false,
            pickle_aware: false,
            parse: |b| drop(Preprocess::IMAGENET.run(b)),
        },
    ]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_parser_survives_mutated_inputs() {
    let seconds: f64 = env_or("FUZZ_SECONDS", 4.0);
    let seed: u64 = env_or("FUZZ_SEED", 0x5eed);
    let only: Option<Vec<String>> = std::env::var("FUZZ_TARGETS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let out = std::env::var("FUZZ_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz"));
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    // Panics are findings, counted below; their default report would flood the output.
    std::panic::set_hook(Box::new(|_| {}));
    let mut findings = Vec::new();
    for t in targets() {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == t.name))
        {
            continue;
        }
        let dir = out.join(t.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut seeds = t.seeds.clone();
        if let Ok(entries) = std::fs::read_dir(corpus.join(t.name)) {
            for e in entries.flatten() {
                seeds.push(std::fs::read(e.path()).unwrap());
            }
        }
        // Never 0: xorshift stays at 0 from there.
        let mut rng = Rng((seed ^ (t.name.len() as u64 * 0x9E37_79B9)) | 1);
        let (start, mut execs, mut slowest) = (Instant::now(), 0u64, Duration::ZERO);
        let mut pool = seeds.clone();
        while start.elapsed().as_secs_f64() < seconds {
            let parent = &pool[rng.below(pool.len())];
            let input = if t.rezip {
                let pickle = mutate(parent, &seeds, &mut rng, true);
                let storages = [floats(18), floats(7)];
                let mut zip = pth_zip(&pickle, &storages, rng.below(2) == 0);
                if rng.below(4) == 0 {
                    zip = mutate(&zip, &seeds, &mut rng, false);
                }
                zip
            } else {
                mutate(parent, &seeds, &mut rng, t.pickle_aware)
            };
            std::fs::write(dir.join("current"), &input).unwrap();
            let t0 = Instant::now();
            let result = std::panic::catch_unwind(|| (t.parse)(&input));
            let took = t0.elapsed();
            slowest = slowest.max(took);
            execs += 1;
            let kind = match (result, took > SLOW) {
                (Err(_), _) => Some("panic"),
                (Ok(()), true) => Some("slow"),
                _ => None,
            };
            if let Some(kind) = kind {
                let path = dir.join(format!("{kind}-{execs}"));
                std::fs::write(&path, &input).unwrap();
                findings.push(format!("{}: {kind} ({})", t.name, path.display()));
            } else if execs % 64 == 0 && pool.len() < 256 && input.len() < 1 << 20 {
                // Keep some inputs as parents: mutations of mutations reach deeper.
                pool.push(input);
            }
        }
        std::fs::remove_file(dir.join("current")).ok();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "fuzz {:<12} {execs:>8} inputs in {secs:5.1} s ({:>7.0}/s), slowest {:.0} ms, {} findings",
            t.name,
            execs as f64 / secs,
            slowest.as_secs_f64() * 1e3,
            findings.iter().filter(|f| f.starts_with(t.name)).count()
        );
    }
    let _ = std::panic::take_hook();
    assert!(findings.is_empty(), "findings:\n{}", findings.join("\n"));
}
