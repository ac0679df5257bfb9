//! Hostile files: each class of finding from fuzzing `modelslim predict` (issue 12) as a
//! regression test, the input built here. Every case must end in one clean line that names
//! what is wrong — no panic, no abort, no hang. Peak memory is checked in
//! `hostile_memory.rs`, whose allocator counts.

#[path = "../common/hostile.rs"]
mod files;

use std::collections::HashMap;

use crate::common;
use common::sample;
use files::*;
use modelslim::compress::{Granularity, Precision, QuantOptions};
use modelslim::model::{Model, ResNetConfig};
use modelslim::preprocess::Preprocess;
use modelslim::weights::pickle;
use modelslim::weights::safetensors::{METADATA_KEY, read_raw, write_raw};
use modelslim::weights::{read_weights, safetensors::write_safetensors};

/// The error's message, checked to be one line.
fn message<T>(r: modelslim::Result<T>) -> String {
    let Err(e) = r else {
        panic!("a hostile input was accepted");
    };
    let m = e.to_string();
    assert!(!m.contains('\n'), "not one line: {m:?}");
    m
}

fn assert_says(m: &str, needle: &str) {
    assert!(m.contains(needle), "{m:?} should say {needle:?}");
}

/// `bytes` (a modelslim safetensors file) with its metadata JSON passed through `edit`.
fn with_metadata(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let (raw, meta) = read_raw(bytes).unwrap();
    let json = edit(&meta[METADATA_KEY]);
    write_raw(&raw, HashMap::from([(METADATA_KEY.to_string(), json)])).unwrap()
}

fn int4_groups() -> Vec<u8> {
    let opts = QuantOptions {
        weights: Precision::Int4,
        granularity: Granularity::Group(32),
        ..Default::default()
    };
    Model::seeded_resnet18(1)
        .quantized(&opts)
        .unwrap()
        .to_safetensors()
        .unwrap()
}

#[test]
fn compressed_metadata_with_impossible_groups_is_refused_naming_the_tensor() {
    let file = int4_groups();
    let zero = with_metadata(&file, |j| j.replace("\"group\":32", "\"group\":0"));
    let m = message(Model::from_bytes(&zero));
    assert_says(&m, "groups of 0");
    // Group scales on a 1-D tensor: the metadata claims the fc bias is int4 by groups.
    let one_d = with_metadata(&file, |j| {
        j.replacen(
            "\"tensors\":{",
            "\"tensors\":{\"fc.bias\":{\"int\":{\"bits\":4,\"granularity\":{\"group\":32}}},",
            1,
        )
    });
    let m = message(Model::from_bytes(&one_d));
    assert_says(&m, "'fc.bias'");
    assert_says(&m, "groups of inputs on a tensor of shape [1000]");
}

/// A file written before networks were stored as graphs holds ResNet18's config (metadata
/// without a format): a changed stride or a wider layer in it is refused. A stored graph is
/// its own network, but a layer wider than the channel cap is refused naming it, and one
/// that disagrees with its tensor naming the tensor.
#[test]
fn a_changed_stride_or_a_wider_layer_in_the_metadata_is_refused() {
    let file = Model::seeded_resnet18(1).to_safetensors().unwrap();
    let legacy = |edit: fn(String) -> String| {
        with_metadata(&file, |j| {
            let mut v: serde_json::Value = serde_json::from_str(j).unwrap();
            v["architecture"] = "resnet18".into();
            v["config"] = serde_json::to_value(ResNetConfig::resnet18(1000)).unwrap();
            v.as_object_mut().unwrap().remove("format");
            edit(v.to_string())
        })
    };
    let unchanged = Model::from_bytes(&legacy(|j| j)).unwrap();
    assert_eq!(unchanged.arch, Model::seeded_resnet18(1).arch);
    let strided = legacy(|j| j.replacen("\"stride\":2", "\"stride\":7", 1));
    assert_says(
        &message(Model::from_bytes(&strided)),
        "stride 7, expected 2",
    );
    let wide = legacy(|j| j.replacen("\"stem_channels\":64", "\"stem_channels\":6400000", 1));
    assert_says(
        &message(Model::from_bytes(&wide)),
        "wider than the original",
    );
    let wide = with_metadata(&file, |j| {
        j.replacen("\"out_channels\":64", "\"out_channels\":6400000", 1)
    });
    assert_says(
        &message(Model::from_bytes(&wide)),
        "conv conv1 has 3 → 6400000",
    );
    let wide = with_metadata(&file, |j| {
        j.replacen("\"out_features\":1000", "\"out_features\":999", 1)
    });
    assert_says(
        &message(Model::from_bytes(&wide)),
        "'fc.bias' has shape [1000]",
    );
}

#[test]
fn non_finite_weights_and_activation_scales_are_refused_at_load_naming_the_tensor() {
    let mut model = Model::seeded_resnet18(1);
    model.weights.get_mut("layer2.0.conv1.weight").unwrap().data[5] = f32::NAN;
    let bytes = write_safetensors(&model.weights, HashMap::new()).unwrap();
    let m = message(Model::from_bytes(&bytes));
    assert_says(
        &m,
        "'layer2.0.conv1.weight' holds NaN or an infinity (element 5)",
    );

    // Activation scales: an int8 file with quantized activations, one scale made 1e39.
    let session = modelslim::session::Session::new(
        modelslim::backend::Backend::cpu(),
        modelslim::session::Batches::NATIVE,
    );
    session.load(Model::seeded_resnet18(1), "seeded").unwrap();
    session
        .keep_photo("coffee.png", sample("coffee.png"))
        .unwrap();
    let settings = modelslim::compress::Settings {
        quant: Precision::Int8,
        act_quant: true,
        ..Default::default()
    };
    pollster::block_on(session.compress(&settings, modelslim::session::no_progress)).unwrap();
    let file = session
        .file(modelslim::session::FileFormat::Safetensors)
        .unwrap();
    let huge = with_metadata(&file, |j| {
        let at = j.find("\"scale\":").unwrap() + "\"scale\":".len();
        let end = at + j[at..].find([',', '}']).unwrap();
        format!("{}1e39{}", &j[..at], &j[end..])
    });
    assert_says(
        &message(Model::from_bytes(&huge)),
        "not a positive finite number",
    );
}

#[test]
fn weights_that_overflow_give_an_error_not_nan() {
    let mut model = Model::seeded_resnet18(1);
    for v in &mut model.weights.get_mut("fc.weight").unwrap().data {
        *v = 3e38;
    }
    let classifier =
        modelslim::predict::Classifier::new(&model, modelslim::backend::Backend::cpu()).unwrap();
    let image = Preprocess::IMAGENET.run(&sample("coffee.png")).unwrap();
    let m = message(pollster::block_on(classifier.logits(&[image])));
    assert_says(&m, "NaN or an infinity");
}

#[test]
fn checkpoint_fields_that_lie_are_refused_in_one_line() {
    let ok = TensorSpec::contiguous("w", &[2, 3]);
    let read = |t: TensorSpec, storage: Vec<u8>| {
        message(read_weights(&pth_zip(
            &state_dict_pickle(&[t]),
            &[storage],
            false,
        )))
    };
    // A negative storage offset.
    let m = read(
        TensorSpec {
            offset: -1,
            ..ok.clone()
        },
        floats(6),
    );
    assert_says(&m, "tensor 'w': negative storage offset");
    // A view past its storage, and a huge view over stride 0 (a 4 TB allocation before).
    let m = read(
        TensorSpec {
            offset: 4,
            ..ok.clone()
        },
        floats(6),
    );
    assert_says(&m, "reaches outside its storage of 6 values");
    let m = read(
        TensorSpec {
            size: vec![1 << 20, 1 << 20],
            stride: vec![0, 0],
            numel: 1,
            ..ok.clone()
        },
        floats(1),
    );
    assert_says(&m, "reaches outside its storage of 1 values");
    // A pickle opcode whose length field is 2^64 − 1.
    let mut long = Pickle::new().op(&[0x8d]).0;
    long.extend_from_slice(&u64::MAX.to_le_bytes());
    let m = pickle::load(&long).unwrap_err().to_string();
    assert_says(&m, "claims 18446744073709551615 bytes");
    // Raw bytes from the file are escaped and cut in messages.
    let junk = Pickle::new()
        .op(b"I\x01\x02\x1b[31m")
        .op(&[b'x'; 200])
        .op(b"\n")
        .stop();
    let m = pickle::load(&junk).unwrap_err().to_string();
    assert!(!m.chars().any(char::is_control), "{m:?}");
    assert!(m.len() < 120, "{m:?}");
    assert_says(&m, "\\u{1}");
}

#[test]
fn deeply_nested_pickles_are_refused_without_overflowing_the_stack() {
    let deep = nested_lists(300_000);
    assert_says(
        &pickle::load(&deep).unwrap_err().to_string(),
        "deeper than 256",
    );
    // The same inside a zip checkpoint and a legacy one, and as a state_dict value.
    assert_says(
        &message(read_weights(&pth_zip(&deep, &[], true))),
        "deeper than 256",
    );
    assert_says(
        &message(read_weights(&pth_legacy(&deep, &[]))),
        "deeper than 256",
    );
    let mut value = Pickle::new().ordered_dict().op(b"(").str("w").0;
    value.extend(std::iter::repeat_n(b']', 10_000));
    value.extend(std::iter::repeat_n(b'a', 9_999));
    let value = Pickle(value).op(b"u").stop();
    assert_says(
        &message(read_weights(&pth_zip(&value, &[], false))),
        "deeper than 256",
    );
    // Shallow nesting still reads.
    assert!(pickle::load(&nested_lists(100)).is_ok());
}

#[test]
fn legacy_checkpoint_messages_say_truncated_once() {
    let root = state_dict_pickle(&[TensorSpec::contiguous("w", &[2, 3])]);
    let file = pth_legacy(&root, &[(6, floats(6))]);
    for cut in [20, 40, file.len() - 10] {
        let m = message(read_weights(&file[..cut]));
        assert!(m.matches("truncated").count() <= 1, "{m:?}");
    }
    let m = message(read_weights(&pth_legacy(
        &root,
        &[(u64::MAX / 2, floats(6))],
    )));
    assert_says(&m, "more than the file holds");
}

#[test]
fn safetensors_entries_that_do_not_fit_their_data_name_the_tensor() {
    let mut sd = modelslim::tensor::StateDict::new();
    sd.insert(
        "a".into(),
        modelslim::tensor::HostTensor::new(vec![2], vec![1.0, 2.0]),
    );
    let bytes = write_safetensors(&sd, HashMap::new()).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let lying = header.replace("\"shape\":[2]", "\"shape\":[3]");
    let mut out = (lying.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(lying.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    assert_says(
        &message(read_weights(&out)),
        "tensor 'a': shape [3] of F32 does not fill its 8 bytes",
    );
}

#[test]
fn images_too_thin_or_damaged_give_one_line_without_decoder_internals() {
    let strip = image::RgbImage::new(1, 12_000);
    let mut png = Vec::new();
    strip
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let m = message(Preprocess::IMAGENET.run(&png));
    assert_says(&m, "1×12000 pixels, more than 16 times longer than wide");
    let coffee = sample("coffee.png");
    let mut damaged = coffee.clone();
    let at = damaged.len() / 2;
    damaged[at..at + 64].fill(0xAB);
    for bytes in [&coffee[..coffee.len() / 3], &damaged[..]] {
        let m = message(Preprocess::IMAGENET.run(bytes));
        assert!(!m.contains('{') && !m.contains("ChunkType"), "{m:?}");
        assert_says(&m, "not a readable image");
    }
}
