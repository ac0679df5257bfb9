//! Your own classes: a model with another class count is named by a labels file in its answers,
//! and its compressed file carries the names.

use crate::common;
use common::sample;
use modelslim::backend::Backend;
use modelslim::compress::{Precision, Settings};
use modelslim::model::{Model, ResNetConfig};
use modelslim::session::{Batches, FileFormat, Session, no_progress};
use modelslim::weights::seeded::seeded_state_dict;

fn ten_class_resnet18() -> Model {
    let arch = ResNetConfig::resnet18(10).net();
    let weights = seeded_state_dict(&arch.graph(false).param_shapes(), 5);
    Model::new(arch, weights).unwrap()
}

#[test]
fn a_labels_file_renames_the_classes_and_the_file_keeps_them() {
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(ten_class_resnet18(), "ten classes").unwrap();
    let before = pollster::block_on(s.add_photo("coffee.png", sample("coffee.png"))).unwrap();
    // Without names, the classes of a 10-class model are numbered.
    let first = &before.original.unwrap().top5[0];
    assert_eq!(first.label, format!("class {}", first.index));

    let names: Vec<String> = (0..10).map(|i| format!("widget {i}")).collect();
    assert_eq!(s.set_labels("parts.txt", &names.join("\n")).unwrap(), 10);
    let settings = Settings {
        quant: Precision::Int8,
        ..Default::default()
    };
    let r = pollster::block_on(s.compress(&settings, no_progress)).unwrap();
    let top = &r.photos[0].top5[0];
    assert_eq!(top.label, names[top.index]);

    // The compressed file carries the names; a session loading it answers with them.
    let file = s.file(FileFormat::Safetensors).unwrap();
    let reloaded = Model::from_bytes(&file).unwrap();
    assert_eq!(reloaded.labels.as_deref(), Some(&names));
    let card: serde_json::Value =
        serde_json::from_slice(&s.file(FileFormat::Card).unwrap()).unwrap();
    assert_eq!(card["labels"][3], "widget 3");
    let other = Session::new(Backend::cpu(), Batches::NATIVE);
    other.load(reloaded, "compressed").unwrap();
    let a = pollster::block_on(other.add_photo("coffee.png", sample("coffee.png"))).unwrap();
    let top = &a.original.unwrap().top5[0];
    assert_eq!(top.label, names[top.index]);

    // The wrong count, or an empty name, is refused with the file named.
    let e = s.set_labels("parts.txt", "a\nb\n").unwrap_err().to_string();
    assert!(
        e.starts_with("parts.txt: 2 names for a model with 10 classes"),
        "{e}"
    );
    let e = s
        .set_labels("parts.txt", "a\n\nc\nd\ne\nf\ng\nh\ni\nj")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
}

/// A file of 1000-class ImageNet weights without names writes no names.
#[test]
fn imagenet_files_stay_as_they_were() {
    let m = Model::seeded_resnet18(1);
    assert!(m.labels.is_none());
    assert!(
        Model::from_bytes(&m.to_safetensors().unwrap())
            .unwrap()
            .labels
            .is_none()
    );
}
