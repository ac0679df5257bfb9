//! A MAC target: the network the session builds keeps at most the share asked, and misses it
//! by less than one channel step; a block that costs nothing is dropped; the groups' ratios
//! come back in the report.

use crate::common;
use common::{sample, zero_branch};
use modelslim::backend::Backend;
use modelslim::compress::prune::blocks::network_macs;
use modelslim::compress::{PruneOptions, Settings};
use modelslim::model::Model;
use modelslim::session::{Batches, HoldBack, Session, no_progress};

/// The most MACs one channel of any block-internal group costs.
fn largest_channel_step(m: &Model) -> u64 {
    let macs = network_macs(m);
    m.channel_groups()
        .iter()
        .filter(|g| !g.residual && !g.features && !g.protected)
        .map(|g| {
            let width = m.weights[&g.members[0].key].shape[0];
            let opts = PruneOptions {
                overrides: [(g.name.clone(), 1.0 / width as f32)].into_iter().collect(),
                ..PruneOptions::default()
            };
            macs - network_macs(&m.pruned(&opts).unwrap())
        })
        .max()
        .unwrap()
}

#[test]
fn a_mac_target_is_met_within_one_channel_step() {
    let model = Model::seeded_resnet18(9);
    let step = largest_channel_step(&model);
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(model, "seeded").unwrap();
    s.set_hold_back(HoldBack::None);
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        s.keep_photo(name, sample(name)).unwrap();
    }
    let keep = 0.8;
    let settings = Settings {
        target_macs: Some(keep),
        ..Settings::default()
    };
    let r = pollster::block_on(s.compress(&settings, no_progress)).unwrap();
    let target = (r.before.macs as f64 * keep as f64).floor() as u64;
    assert!(r.after.macs <= target, "{} > {target}", r.after.macs);
    assert!(
        target - r.after.macs < step,
        "{} MACs under the target, more than one channel step ({step})",
        target - r.after.macs
    );
    // Not the uniform split: the groups were given different shares.
    let ratios: Vec<f32> = r.shape.group_ratios.values().copied().collect();
    let (lo, hi) = ratios
        .iter()
        .fold((1f32, 0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    assert!(
        hi - lo > 0.05 || !r.shape.dropped_blocks.is_empty(),
        "{ratios:?}"
    );
    assert!(r.file_stem.contains("m80"), "{}", r.file_stem);
}

#[test]
fn a_block_that_costs_nothing_is_dropped_to_meet_a_target() {
    // layer2.1's branch computes zero: dropping it saves 13 % of the MACs at no loss, so
    // whichever combination wins, measured whole, drops it and takes the rest from channels.
    let model = zero_branch(&Model::seeded_resnet18(9), "layer2.1.bn2");
    let s = Session::new(Backend::cpu(), Batches::NATIVE);
    s.load(model, "seeded").unwrap();
    s.set_hold_back(HoldBack::None);
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        s.keep_photo(name, sample(name)).unwrap();
    }
    let settings = Settings {
        target_macs: Some(0.85),
        ..Settings::default()
    };
    let r = pollster::block_on(s.compress(&settings, no_progress)).unwrap();
    let dropped: Vec<(&str, &str)> = r
        .shape
        .dropped_blocks
        .iter()
        .map(|b| (b.name.as_str(), b.chosen_by.as_str()))
        .collect();
    assert_eq!(dropped, [("layer2.1", "budget")]);
    assert!(
        !r.shape.group_ratios.is_empty(),
        "the rest comes from channels"
    );
    assert!(r.after.macs as f64 <= 0.85 * r.before.macs as f64);
}

#[test]
fn a_mac_target_refuses_a_share_of_channels_beside_it() {
    let settings = Settings {
        target_macs: Some(0.7),
        prune_channels: 0.3,
        ..Settings::default()
    };
    let e = modelslim::compress::Plan::of(&settings).unwrap_err();
    assert!(e.to_string().contains("MAC target"), "{e}");
}
