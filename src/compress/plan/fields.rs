//! The description of every field of [`Settings`](super::Settings): label, help, group, kind,
//! range and choices. The CLI's flags and `--help`, the page's compress form and the range
//! checks are generated from [`SETTINGS`].

use crate::spec::{Choice, Field, Kind, Range};

const PRECISIONS: &[Choice] = &[
    Choice {
        value: "none",
        label: "fp32 (none)",
    },
    Choice {
        value: "fp16",
        label: "fp16",
    },
    Choice {
        value: "int8",
        label: "int8",
    },
    Choice {
        value: "int4",
        label: "int4",
    },
];

/// Every field of [`Settings`], in the order forms and `--help` show them. Beyond the ranges
/// a setting empties layers or does nothing useful: 90 % of a group's channels is the most
/// that still leaves every layer a few; 95 % sparsity likewise; widths rounded to more than 64
/// and more than 10 steps have no use on these networks.
pub const SETTINGS: &[Field] = &[
    Field {
        range: Some(Range::closed(0.0, 0.9)),
        what: "the share of channels to remove",
        ..Field::new(
            "prune_channels",
            "Channels to remove",
            "prune",
            Kind::Number,
            "Share of each channel group to remove (0 keeps all): the network gets physically narrower, fewer MACs and a smaller file.",
        )
    },
    Field {
        placeholder: Some("2, or layer3.1,layer4.1"),
        ..Field::new(
            "drop_blocks",
            "Blocks to drop",
            "prune",
            Kind::Text,
            "Remove whole residual blocks (each becomes its shortcut): a count, chosen on the calibration photos by what their absence costs, or block names separated by commas. none keeps every block.",
        )
    },
    Field {
        range: Some(Range::above(0.0, 1.0)),
        what: "the share of MACs to keep",
        ..Field::new(
            "target_macs",
            "MACs to keep",
            "prune",
            Kind::OptionalNumber,
            "Keep at most this share of the original's MACs (0.7: 30 % fewer), choosing per group between removing channels and dropping its block by the loss each option measures on the calibration photos. Replaces the share of channels to remove.",
        )
    },
    Field {
        choices: &[
            Choice {
                value: "l1",
                label: "L1 norm of the weights",
            },
            Choice {
                value: "l2",
                label: "L2 norm of the weights",
            },
            Choice {
                value: "bn",
                label: "batch-norm scale",
            },
            Choice {
                value: "output",
                label: "output energy on your photos",
            },
            Choice {
                value: "hessian",
                label: "Hessian saliency on your photos",
            },
        ],
        ..Field::new(
            "importance",
            "Channel importance",
            "prune",
            Kind::Choice,
            "How channels are ranked: from the weights (l1, l2, bn) or measured on the calibration photos (output, hessian).",
        )
    },
    Field {
        choices: &[
            Choice {
                value: "internal",
                label: "inside blocks only",
            },
            Choice {
                value: "all",
                label: "every group",
            },
        ],
        ..Field::new(
            "prune_scope",
            "Groups pruned",
            "prune",
            Kind::Choice,
            "internal: only the channels inside blocks (residual streams and final features keep their width); all: every group but the stem.",
        )
    },
    Field {
        range: Some(Range::closed(1.0, 64.0)),
        what: "the width multiple",
        ..Field::new(
            "round_to",
            "Round widths to",
            "prune",
            Kind::Integer,
            "Keep every pruned width a multiple of this (8 suits most SIMD kernels).",
        )
    },
    Field {
        range: Some(Range::closed(1.0, 10.0)),
        what: "the number of steps",
        advanced: true,
        ..Field::new(
            "steps",
            "Steps",
            "prune",
            Kind::Integer,
            "Prune (and sparsify) in this many steps, re-scoring the channels between them.",
        )
    },
    Field {
        advanced: true,
        ..Field::new(
            "global",
            "Rank across groups",
            "prune",
            Kind::Bool,
            "Rank channels across all groups instead of removing the same share from each.",
        )
    },
    Field {
        advanced: true,
        ..Field::new(
            "prune_stem",
            "Prune the stem",
            "prune",
            Kind::Bool,
            "Let the stem's group lose channels too.",
        )
    },
    Field {
        range: Some(Range::closed(0.0, 0.95)),
        what: "the share of weights to zero",
        ..Field::new(
            "sparsity",
            "Weights to zero",
            "sparsity",
            Kind::Number,
            "Share of the conv and linear weights to zero (same shapes: only gzip or a sparse runtime turns zeros into savings).",
        )
    },
    Field::new(
        "reconstruct",
        "Refit on your photos",
        "sparsity",
        Kind::Bool,
        "After pruning, refit the layers that read pruned channels by least squares on the calibration photos; sparsity by SparseGPT instead of by magnitude.",
    ),
    Field {
        choices: PRECISIONS,
        ..Field::new(
            "quant",
            "Weights",
            "quantize",
            Kind::Choice,
            "The precision of the conv and linear weights.",
        )
    },
    Field {
        placeholder: Some("group:32"),
        ..Field::new(
            "granularity",
            "Scales per",
            "quantize",
            Kind::Text,
            "Which weights share a scale: channel (per output channel), tensor, or group:N (blocks of N input channels).",
        )
    },
    Field {
        choices: &[
            Choice {
                value: "rtn",
                label: "round to nearest",
            },
            Choice {
                value: "gptq",
                label: "GPTQ on your photos",
            },
        ],
        ..Field::new(
            "quant_method",
            "Integers chosen by",
            "quantize",
            Kind::Choice,
            "rtn rounds each weight to the nearest level; gptq chooses the integers layer by layer so the layer's outputs on the calibration photos change least.",
        )
    },
    Field::new(
        "keep_first_last",
        "First and last layer higher",
        "quantize",
        Kind::Bool,
        "Keep the first conv and the classifier one step higher (int4 → int8, others fp32).",
    ),
    Field {
        placeholder: Some("_fc=int8"),
        advanced: true,
        ..Field::new(
            "layer_quant",
            "Per-layer precision",
            "quantize",
            Kind::Pairs,
            "LAYER=none|int8|int4|fp16 for single layers, over the precision above.",
        )
    },
    Field::new(
        "act_quant",
        "int8 activations",
        "calibration",
        Kind::Bool,
        "Quantize activations to u8, their ranges measured on the calibration photos (needs int8 weights per channel or per tensor): a full int8 QDQ graph.",
    ),
    Field {
        placeholder: Some("percentile:99.99"),
        advanced: true,
        ..Field::new(
            "calibration",
            "Activation ranges",
            "calibration",
            Kind::Text,
            "How activation ranges are estimated: minmax, or percentile[:P] (50 < P ≤ 100), which ignores rare outliers.",
        )
    },
    Field::new(
        "bias_correction",
        "Bias correction",
        "calibration",
        Kind::Bool,
        "Remove the mean output shift each integer layer's rounding causes on the calibration photos from its bias.",
    ),
    Field::new(
        "recalibrate_bn",
        "Recalibrate batch norms",
        "calibration",
        Kind::Bool,
        "Re-estimate every batch norm's statistics on the calibration photos after pruning.",
    ),
    Field {
        choices: &[
            Choice {
                value: "none",
                label: "the photos as they are",
            },
            Choice {
                value: "flip",
                label: "and mirrored (×2)",
            },
            Choice {
                value: "flip-crop",
                label: "and mirrored and cropped (×4)",
            },
        ],
        advanced: true,
        ..Field::new(
            "augment",
            "Layer statistics on",
            "calibration",
            Kind::Choice,
            "Copies of the calibration photos that GPTQ, refitting and measured importance also measure their layer statistics on.",
        )
    },
];
