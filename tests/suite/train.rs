//! Training: distillation gradients against finite differences, the loss falling on a fixed
//! batch, pruned weights and integer grids surviving training, and synthesized images
//! moving batch-norm statistics towards the running ones, repeatably.

use burn::tensor::{Device, Tensor, TensorData};
use modelslim::backend::Backend;
use modelslim::compress::{Granularity, Precision, QuantOptions, SparsityOptions, agreement};
use modelslim::model::exec::Network;
use modelslim::model::{Graph, Model, Op};
use modelslim::predict::read_values;
use modelslim::quant::Quantization;
use modelslim::rng::Rng;
use modelslim::tensor::{HostTensor, StateDict};
use modelslim::train::{
    DistillOptions, Leaves, SynthOptions, distill, distillation_loss, statistics_loss, synthesize,
};

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    pollster::block_on(f)
}

/// A small conv net with every kind of layer the networks use: conv + BN + ReLU6, a depthwise
/// conv with asymmetric padding, a residual add, max pool, global pool and a linear layer.
fn small_net() -> (Graph, StateDict) {
    let mut g = Graph::new();
    let a = g.conv_bn(0, "c1", "b1", (3, 4), 3, 1, [1, 1, 1, 1], 1, 1e-5, false);
    let a = g.push(Op::Relu6, &[a], "r1");
    let b = g.conv_bn(a, "dw", "b2", (4, 4), 3, 1, [0, 0, 2, 2], 4, 1e-5, false);
    let b = g.push(Op::Relu, &[b], "r2");
    let s = g.push(Op::Add, &[a, b], "add");
    let p = g.push(
        Op::MaxPool {
            kernel: [2; 2],
            stride: [2; 2],
            pads: [0; 4],
        },
        &[s],
        "pool",
    );
    let c = g.push(
        Op::Conv {
            name: "c3".into(),
            in_channels: 4,
            out_channels: 6,
            kernel: [1; 2],
            stride: [1; 2],
            pads: [0; 4],
            groups: 1,
            bias: true,
            dilation: [1, 1],
        },
        &[p],
        "c3",
    );
    let gp = g.push(Op::GlobalAvgPool, &[c], "gap");
    g.push(
        Op::Linear {
            name: "fc".into(),
            in_features: 6,
            out_features: 5,
        },
        &[gp],
        "fc",
    );
    let mut rng = Rng::new(3);
    let mut w = StateDict::new();
    for (key, shape) in g.param_shapes() {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| {
                if key.ends_with("running_var") {
                    rng.range(0.5, 1.5)
                } else if key.ends_with("weight") && shape.len() == 1 {
                    rng.range(0.8, 1.2)
                } else {
                    (rng.normal() * 0.4) as f32
                }
            })
            .collect();
        w.insert(key, HostTensor::new(shape, data));
    }
    (g, w)
}

fn images(n: usize, side: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * 3 * side * side)
        .map(|_| rng.normal() as f32)
        .collect()
}

fn input(values: &[f32], n: usize, side: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values.to_vec(), [n, 3, side, side]), device)
}

/// The distillation loss of `weights` against fixed teacher logits, computed without autodiff.
fn loss_at(graph: &Graph, weights: &StateDict, x: &[f32], teacher: &[f32], dev: &Device) -> f64 {
    let net = Network::build(graph, weights, &Quantization::default(), dev).unwrap();
    let out = net.forward(input(x, 2, 8, dev));
    let t = Tensor::<2>::from_data(TensorData::new(teacher.to_vec(), [2, 5]), dev);
    let l = distillation_loss(t, out, 2.0);
    block_on(read_values(l)).unwrap()[0] as f64
}

#[test]
fn distillation_gradients_equal_finite_differences_including_an_int8_layer() {
    let (graph, mut weights) = small_net();
    let dev = Backend::cpu().device;
    let x = images(2, 8, 11);
    let teacher: Vec<f32> = images(1, 1, 5)[..3]
        .iter()
        .chain(&[0.5, -1.0, 2.0, 0.1, -0.3, 0.7, 1.5])
        .copied()
        .collect();
    // c3 is stored as int8: its weights are on the grid, and the straight-through gradient
    // there is the float network's gradient.
    let mut quant = Quantization::default();
    let q = modelslim::quant::quantize(&weights["c3.weight"], 8, Granularity::PerChannel).unwrap();
    weights.insert("c3.weight".into(), q.dequantize());
    quant.int.insert("c3.weight".into(), q);

    let ad = dev.clone().autodiff();
    let leaves = Leaves::new(&weights, &quant, true, &[], &ad).unwrap();
    let net = Network::build_from(&graph, &leaves.effective(), &Quantization::default()).unwrap();
    let out = net.forward(input(&x, 2, 8, &ad));
    let t = Tensor::<2>::from_data(TensorData::new(teacher.clone(), [2, 5]), &ad);
    let loss = distillation_loss(t, out, 2.0);
    let grads = loss.backward();

    let (mut checked, mut worst, mut kinks) = (0, 0f64, 0);
    // The weights and biases (a scale's effect on the rounded weights is a step function,
    // which finite differences cannot see through).
    for key in leaves.names().filter(|k| weights.contains_key(*k)) {
        let g = block_on(read_values(
            leaves.value(key).unwrap().grad(&grads).unwrap(),
        ))
        .unwrap();
        let n = g.len();
        for i in [0, n / 3, n / 2, n - 1] {
            let difference = |h: f32| {
                let mut plus = weights.clone();
                plus.get_mut(key).unwrap().data[i] += h;
                let mut minus = weights.clone();
                minus.get_mut(key).unwrap().data[i] -= h;
                (loss_at(&graph, &plus, &x, &teacher, &dev)
                    - loss_at(&graph, &minus, &x, &teacher, &dev))
                    / (2.0 * h as f64)
            };
            let (numeric, half) = (difference(2e-3), difference(1e-3));
            // A ReLU, ReLU6 or max-pool kink within ±h bends the difference quotient; there
            // the two step sizes disagree and the entry says nothing about the gradient.
            if (numeric - half).abs() > 0.005 * numeric.abs().max(0.05) {
                kinks += 1;
                continue;
            }
            let analytic = g[i] as f64;
            // Central differences are exact to O(h²) on smooth parts and f32 rounding leaves
            // ~1e-4 here, far below a wrong or missing term.
            let err = (analytic - numeric).abs() / numeric.abs().max(0.05);
            worst = worst.max(err);
            assert!(
                err < 0.02,
                "{key}[{i}]: autodiff {analytic:.6}, finite differences {numeric:.6}"
            );
            checked += 1;
        }
    }
    // Ten tensors, four entries each.
    assert!(
        checked + kinks == 40 && kinks <= 5,
        "{checked} checked, {kinks} at kinks"
    );
    eprintln!("{checked} gradient entries, worst relative error {worst:.2e}, {kinks} at kinks");
}

/// Seeded ResNet18 and a copy compressed as asked; photos of 64×64 keep training fast (the
/// network is convolutional).
fn resnet_pair(sparsity: f32, precision: Precision) -> (Model, Model) {
    let mut teacher = Model::seeded_resnet18(5);
    // Random weights give nearly uniform outputs, whose KL is near zero whatever the student
    // does; a sharper classifier gives the loss something to fall from.
    for v in &mut teacher.weights.get_mut("fc.weight").unwrap().data {
        *v *= 30.0;
    }
    let mut student = teacher.clone();
    if sparsity > 0.0 {
        student = student
            .sparsified(&SparsityOptions {
                sparsity,
                ..Default::default()
            })
            .unwrap();
    }
    if precision != Precision::F32 {
        student = student
            .quantized(&QuantOptions {
                weights: precision,
                ..Default::default()
            })
            .unwrap();
    }
    (teacher, student)
}

fn photos(n: usize, side: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| images(1, side, 100 + i as u64)).collect()
}

#[test]
fn the_loss_falls_over_a_short_run_on_a_fixed_batch() {
    let (teacher, student) = resnet_pair(0.5, Precision::Int8);
    let opts = DistillOptions {
        steps: 12,
        lr: 2e-5,
        batch: 2,
        augment: false,
        mixup: false,
        held_out: Some(0),
        ..Default::default()
    };
    let (run, _) = block_on(distill(
        &teacher,
        &student,
        &photos(2, 64),
        &opts,
        &Backend::cpu(),
        4,
        |_| async { true },
    ))
    .unwrap();
    assert_eq!(run.loss.len(), 12);
    let first = run.loss[0];
    let last = *run.loss.last().unwrap();
    eprintln!("loss {first:.4} → {last:.4}: {:?}", run.loss);
    assert!(last < 0.7 * first, "loss {first} → {last}");
}

#[test]
fn a_frozen_classifier_and_the_batch_norm_statistics_stay_bit_identical_through_training() {
    // A pruned student with two blocks dropped, trained on the features before pooling too.
    let (teacher, _) = resnet_pair(0.0, Precision::F32);
    let student = teacher
        .with_blocks_dropped(&["layer1.1".into(), "layer3.1".into()])
        .unwrap();
    let opts = DistillOptions {
        steps: 4,
        lr: 3e-4,
        batch: 2,
        freeze_head: true,
        head_features: 1.0,
        held_out: Some(0),
        ..Default::default()
    };
    let (run, model) = block_on(distill(
        &teacher,
        &student,
        &photos(3, 64),
        &opts,
        &Backend::cpu(),
        4,
        |_| async { true },
    ))
    .unwrap();
    assert_eq!(run.steps, 4);
    let mut moved = 0;
    for (key, before) in &student.weights {
        let after = &model.weights[key];
        let frozen = key.starts_with("fc.") || key.contains("running_");
        if frozen {
            assert!(after.data == before.data, "{key} changed in training");
        } else if after.data != before.data {
            moved += 1;
        }
    }
    // Everything else trained.
    assert!(moved > 20, "only {moved} tensors moved");
}

#[test]
fn masks_and_integer_grids_survive_training_and_the_file_reloads_to_the_trained_logits() {
    let (teacher, student) = resnet_pair(0.5, Precision::Int8);
    assert!(!student.quant.sparse.is_empty());
    let images = photos(3, 64);
    let opts = DistillOptions {
        steps: 4,
        lr: 3e-4,
        batch: 2,
        augment: true,
        held_out: Some(0),
        ..Default::default()
    };
    let backend = Backend::cpu();
    let (run, model) = block_on(distill(
        &teacher,
        &student,
        &images,
        &opts,
        &backend,
        4,
        |_| async { true },
    ))
    .unwrap();
    assert_eq!(
        run.best_step, 4,
        "without held-back photos the last model is returned"
    );
    let trained = &model;
    let mut moved = 0usize;
    for (key, before) in &student.weights {
        let after = &trained.weights[key];
        if student.quant.sparse.contains(key) {
            for (b, a) in before.data.iter().zip(&after.data) {
                assert!(
                    *b != 0.0 || *a == 0.0,
                    "{key}: a pruned weight moved to {a}"
                );
            }
        }
        if let Some(q) = trained.quant.int.get(key) {
            assert_eq!(&q.dequantize(), after, "{key} is off its integer grid");
            moved += q
                .values
                .iter()
                .zip(&student.quant.int[key].values)
                .filter(|(a, b)| a != b)
                .count();
        }
    }
    assert!(moved > 1000, "only {moved} integers changed");

    // The written file computes what the trained model computed in training (the same grid
    // values; the straight-through sum w + (q − w) differs from q by rounding only).
    let reloaded = Model::from_bytes(&trained.to_safetensors().unwrap()).unwrap();
    let ad = backend.device.clone().autodiff();
    let leaves = Leaves::new(&trained.weights, &trained.quant, false, &[], &ad).unwrap();
    let net = Network::build_from(
        &trained.graph(),
        &leaves.effective(),
        &Quantization::default(),
    )
    .unwrap();
    let flat: Vec<f32> = images.concat();
    let trained_logits =
        block_on(read_values(net.forward(input(&flat, 3, 64, &ad)).inner())).unwrap();
    let net2 = Network::build(
        &reloaded.graph(),
        &reloaded.weights,
        &reloaded.quant,
        &backend.device,
    )
    .unwrap();
    let file_logits = block_on(read_values(net2.forward(input(
        &flat,
        3,
        64,
        &backend.device,
    ))))
    .unwrap();
    let scale = trained_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = trained_logits
        .iter()
        .zip(&file_logits)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-4 * scale,
        "logits differ by {worst} (scale {scale})"
    );
    let a = agreement(
        &trained_logits
            .chunks(1000)
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>(),
        &file_logits
            .chunks(1000)
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>(),
    );
    assert_eq!(a.agreement, 1.0);
}

#[test]
fn synthesized_images_move_batch_norm_statistics_towards_the_running_ones_repeatably() {
    let model = Model::seeded_resnet18(9);
    let backend = Backend::cpu();
    let opts = SynthOptions {
        n: 2,
        seed: 4,
        steps: 15,
        lr: 0.1,
        batch: 2,
        side: Some(64),
    };
    let run = block_on(synthesize(&model, &opts, &backend, |_| async { true })).unwrap();
    assert_eq!(run.images.len(), 2);
    let noise = photos(2, 64);
    let before = block_on(statistics_loss(&model, &noise, &backend)).unwrap();
    let after = block_on(statistics_loss(&model, &run.images, &backend)).unwrap();
    eprintln!("statistics loss: noise {before:.3}, synthesized {after:.3}");
    assert!(after < 0.6 * before, "{before} → {after}");
    let again = block_on(synthesize(&model, &opts, &backend, |_| async { true })).unwrap();
    assert_eq!(run.images, again.images, "same seed, other images");
    let other = SynthOptions { seed: 5, ..opts };
    let other = block_on(synthesize(&model, &other, &backend, |_| async { true })).unwrap();
    assert_ne!(run.images, other.images);
    // A folded (quantized) model has no running statistics left: refused in one line.
    let folded = resnet_pair(0.0, Precision::Int8).1;
    let err = block_on(synthesize(&folded, &opts, &backend, |_| async { true })).unwrap_err();
    assert!(err.to_string().contains("original"), "{err}");
}
