//! Weight loading: round trips and every malformed case with its own error.

use std::collections::HashMap;
use std::path::PathBuf;

use modelslim::Error;
use modelslim::model::Model;
use modelslim::tensor::HostTensor;
use modelslim::weights::safetensors::write_safetensors;

fn seeded() -> Model {
    Model::seeded_resnet18(42)
}

fn bytes_without(key: &str) -> Vec<u8> {
    let mut w = seeded().weights;
    w.remove(key);
    write_safetensors(&w, HashMap::new()).unwrap()
}

#[test]
fn safetensors_round_trip_is_exact() {
    let m = seeded();
    let bytes = m.to_safetensors().unwrap();
    let back = Model::from_bytes(&bytes).unwrap();
    assert_eq!(back.arch, m.arch);
    assert_eq!(back.weights, m.weights);
    assert_eq!(back.num_params(), 11_689_512);
}

#[test]
fn plain_torchvision_layout_without_metadata_loads() {
    let m = seeded();
    let mut w = m.weights.clone();
    // torchvision's state_dict carries num_batches_tracked counters; they are ignored.
    w.insert(
        "bn1.num_batches_tracked".into(),
        HostTensor::new(vec![], vec![0.0]),
    );
    let bytes = write_safetensors(&w, HashMap::new()).unwrap();
    let back = Model::from_bytes(&bytes).unwrap();
    assert_eq!(back.weights, m.weights);
}

#[test]
fn missing_key_names_the_key_and_shape() {
    let err = Model::from_bytes(&bytes_without("layer2.0.downsample.0.weight")).unwrap_err();
    match &err {
        Error::MissingKey { key, expected, .. } => {
            assert_eq!(key, "layer2.0.downsample.0.weight");
            assert_eq!(expected, &vec![128, 64, 1, 1]);
        }
        other => panic!("expected MissingKey, got {other}"),
    }
    assert!(err.to_string().contains("layer2.0.downsample.0.weight"));
}

#[test]
fn wrong_shape_names_both_shapes() {
    let mut w = seeded().weights;
    w.insert(
        "fc.weight".into(),
        HostTensor::new(vec![10, 512], vec![0.0; 5120]),
    );
    let err = Model::from_bytes(&write_safetensors(&w, HashMap::new()).unwrap()).unwrap_err();
    match &err {
        Error::ShapeMismatch {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "fc.weight");
            assert_eq!(expected, &vec![1000, 512]);
            assert_eq!(found, &vec![10, 512]);
        }
        other => panic!("expected ShapeMismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("[1000, 512]") && msg.contains("[10, 512]"),
        "{msg}"
    );
}

#[test]
fn extra_key_is_reported() {
    let mut w = seeded().weights;
    w.insert("head.extra".into(), HostTensor::new(vec![3], vec![0.0; 3]));
    let err = Model::from_bytes(&write_safetensors(&w, HashMap::new()).unwrap()).unwrap_err();
    assert!(
        matches!(&err, Error::ExtraKey { key, found, .. } if key == "head.extra" && found == &vec![3]),
        "{err}"
    );
}

#[test]
fn truncated_file_is_reported_as_truncated() {
    let bytes = seeded().to_safetensors().unwrap();
    for cut in [bytes.len() - 1000, bytes.len() / 2, 200] {
        let err = Model::from_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, Error::Truncated(_)), "cut at {cut}: {err}");
    }
}

#[test]
fn other_files_are_not_safetensors() {
    let png =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/samples/chelsea.png"))
            .unwrap();
    for bytes in [png.as_slice(), b"hello world, not weights", b"abc"] {
        let err = Model::from_bytes(bytes).unwrap_err();
        assert!(matches!(err, Error::NotSafetensors(_)), "{err}");
    }
}

#[test]
fn integer_tensors_are_refused_by_dtype() {
    use safetensors::{Dtype, tensor::TensorView};
    let data: Vec<u8> = (0..1000i32).flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![(
        "fc.bias",
        TensorView::new(Dtype::I32, vec![1000], &data).unwrap(),
    )];
    let bytes = safetensors::serialize(views, None).unwrap();
    let err = Model::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&err, Error::DType { key, .. } if key == "fc.bias"),
        "{err}"
    );
}

#[test]
fn pytorch_zip_checkpoint_is_read() {
    // Fixture from tests/golden/make_pth_fixture.py (torch.save's zip layout).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_state_dict.pth");
    let bytes = std::fs::read(path).unwrap();
    let sd = modelslim::weights::pth::read_pth_zip(&bytes).unwrap();
    assert_eq!(sd["a.weight"].shape, vec![2, 3]);
    assert_eq!(sd["a.weight"].data, vec![0., 1., 2., 3., 4., 5.]);
    // A transposed view of the same storage is gathered, not copied raw.
    assert_eq!(sd["b.weight"].shape, vec![3, 2]);
    assert_eq!(sd["b.weight"].data, vec![0., 3., 1., 4., 2., 5.]);
    assert_eq!(sd["bn.num_batches_tracked"].data, vec![7.0]);
    assert_eq!(sd["h.weight"].data, vec![0.5, -2.0]);
    // It is neither network: detection says so; loading it as a ResNet18 names the first
    // missing tensor.
    let err = Model::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
    let err = Model::from_bytes_as(&bytes, Some("resnet18")).unwrap_err();
    assert!(
        matches!(&err, Error::MissingKey { key, .. } if key == "conv1.weight"),
        "{err}"
    );
    // A truncated checkpoint is an error, not a panic.
    assert!(Model::from_bytes(&bytes[..bytes.len() - 40]).is_err());
}
