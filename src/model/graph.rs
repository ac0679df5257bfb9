//! A network as a list of operations over named values: the one description that the Burn
//! forward pass, the channel groups, the parameter shapes, the MAC count and the ONNX export
//! all read. An architecture only has to say how to build its graph.

use serde::{Deserialize, Serialize};

use super::channels::{Layer, Layout, Segment, Structure};

/// A height and a width (of an image, a kernel or a stride), in that order.
pub type Hw = [usize; 2];

fn undilated() -> Hw {
    [1, 1]
}

/// The extent of a kernel whose taps are `dilation` apart: `(k − 1)·d + 1` along each axis.
pub fn dilated(kernel: Hw, dilation: Hw) -> Hw {
    [
        (kernel[0].max(1) - 1) * dilation[0] + 1,
        (kernel[1].max(1) - 1) * dilation[1] + 1,
    ]
}

/// The output's height and width of a window (`kernel` at `stride`) sliding over `input`
/// padded by `pads` (`[top, left, bottom, right]`).
pub fn window_output(input: Hw, kernel: Hw, stride: Hw, pads: &[usize; 4]) -> Hw {
    let side = |a: usize| {
        (input[a] + pads[a] + pads[a + 2]).saturating_sub(kernel[a]) / stride[a].max(1) + 1
    };
    [side(0), side(1)]
}

/// One operation. Weight tensors are named `{name}.weight` (and `{name}.bias`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// 2-D convolution, weight `[out, in/groups, kh, kw]`; `pads` are `[top, left, bottom,
    /// right]` (TF-"same" padding is asymmetric).
    Conv {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel: Hw,
        stride: Hw,
        pads: [usize; 4],
        groups: usize,
        bias: bool,
        /// The spacing of the kernel's taps (1, 1: dense; 2: every other pixel, as DeepLab's
        /// and some backbones' last stages).
        #[serde(default = "undilated")]
        dilation: Hw,
    },
    /// Batch norm in eval mode (`{name}.weight/bias/running_mean/running_var`).
    BatchNorm {
        name: String,
        channels: usize,
        eps: f32,
    },
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Element-wise sum of two values.
    Add,
    /// Element-wise product of the first value and the second, which has its shape or is
    /// `[N, C, 1, 1]` (a squeeze-excitation gate, broadcast over the image).
    Mul,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `clamp(αx + β, 0, 1)`: PyTorch's α = 1/6, β = 1/2; Paddle's α = 0.2, β = 0.5.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x · clamp(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `x · sigmoid(x)` (SiLU, swish).
    Silu,
    /// Maximum over a window; `pads` as a conv's (padding never wins).
    MaxPool {
        kernel: Hw,
        stride: Hw,
        pads: [usize; 4],
    },
    /// Mean over a window; `pads` as a conv's. `count_include_pad`: padding counts as zeros
    /// in the mean (else a window over the edge averages its pixels only).
    AvgPool {
        kernel: Hw,
        stride: Hw,
        pads: [usize; 4],
        count_include_pad: bool,
    },
    /// `[N, C, H, W]` → `[N, C]` (mean over H and W).
    GlobalAvgPool,
    /// The inputs' channels one after another (ONNX `Concat` on the channel axis); every
    /// input has the same height and width (SqueezeNet's fire modules, DenseNet's dense
    /// blocks, Inception's branches).
    Concat,
    /// Channels `start..start + len` of the input (ONNX `Split` or `Slice` on the channel
    /// axis: ShuffleNetV2's halves).
    Channels {
        start: usize,
        len: usize,
    },
    /// ShuffleNet's channel shuffle: `[N, g·k, H, W]` seen as `[N, g, k, H, W]` with its two
    /// channel axes swapped, so output channel `j·g + i` is input channel `i·k + j`
    /// (`Reshape` → `Transpose` → `Reshape`, as torch and Paddle export it).
    ChannelShuffle {
        groups: usize,
    },
    /// `[N, C, H, W]` → `[N, C·H·W]`, channel by channel (ONNX's `Flatten` of an image, as
    /// VGG and AlexNet feed their classifier); `pixels` is `H·W`.
    Flatten {
        pixels: usize,
    },
    /// `y = x Wᵀ + b`, weight `[out, in]`.
    Linear {
        name: String,
        in_features: usize,
        out_features: usize,
    },
}

impl Op {
    /// The name of the layer when this is a conv or a linear layer (the ops with weights that
    /// are pruned and quantized).
    pub fn layer_name(&self) -> Option<&str> {
        match self {
            Op::Conv { name, .. } | Op::Linear { name, .. } => Some(name),
            Op::BatchNorm { .. }
            | Op::Relu
            | Op::Relu6
            | Op::Add
            | Op::Mul
            | Op::Sigmoid
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Silu
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Concat
            | Op::Channels { .. }
            | Op::ChannelShuffle { .. }
            | Op::Flatten { .. } => None,
        }
    }

    /// Whether a conv of these widths and groups is depthwise (one filter per channel).
    pub fn is_depthwise(in_channels: usize, out_channels: usize, groups: usize) -> bool {
        groups > 1 && groups == in_channels && groups == out_channels
    }

    /// An element-wise function of one value (its shape kept).
    pub fn is_unary_elementwise(&self) -> bool {
        match self {
            Op::Relu
            | Op::Relu6
            | Op::Sigmoid
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Silu => true,
            Op::Conv { .. }
            | Op::BatchNorm { .. }
            | Op::Add
            | Op::Mul
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Concat
            | Op::Channels { .. }
            | Op::ChannelShuffle { .. }
            | Op::Flatten { .. }
            | Op::Linear { .. } => false,
        }
    }
}

/// One node: an operation, the values it reads and the value it writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// A network: value 0 is the `[N, 3, H, W]` input, `output` holds the logits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// Every value's name (`input`, `layer1.0.conv1`, …): stable, used by the ONNX export and
    /// to key activation quantization.
    pub values: Vec<String>,
    pub output: usize,
}

impl Graph {
    /// A graph whose only value is the input.
    pub fn new() -> Self {
        Graph {
            nodes: Vec::new(),
            values: vec!["input".into()],
            output: 0,
        }
    }

    /// Append `op` reading `inputs`; returns the new value (named `name`).
    pub fn push(&mut self, op: Op, inputs: &[usize], name: impl Into<String>) -> usize {
        self.values.push(name.into());
        let output = self.values.len() - 1;
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            output,
        });
        self.output = output;
        output
    }

    /// A square conv named `conv` reading `x`, then its batch norm `bn` — or, when `folded`, the conv
    /// alone with a bias (the batch norm folded into it, as quantized models are). Returns the
    /// value the next layer reads.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_bn(
        &mut self,
        x: usize,
        conv: &str,
        bn: &str,
        (in_channels, out_channels): (usize, usize),
        kernel: usize,
        stride: usize,
        pads: [usize; 4],
        groups: usize,
        eps: f32,
        folded: bool,
    ) -> usize {
        let c = self.push(
            Op::Conv {
                name: conv.into(),
                in_channels,
                out_channels,
                kernel: [kernel; 2],
                stride: [stride; 2],
                pads,
                groups,
                bias: folded,
                dilation: undilated(),
            },
            &[x],
            conv,
        );
        if folded {
            return c;
        }
        self.push(
            Op::BatchNorm {
                name: bn.into(),
                channels: out_channels,
                eps,
            },
            &[c],
            bn,
        )
    }

    /// The conv that is the first operation (the stem), if any.
    pub fn first_conv(&self) -> Option<&str> {
        self.nodes.iter().find_map(|n| match &n.op {
            Op::Conv { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// The last linear layer (the classifier), if any.
    pub fn classifier(&self) -> Option<&str> {
        self.nodes.iter().rev().find_map(|n| match &n.op {
            Op::Linear { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Every parameter tensor and its shape, in graph order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            match &n.op {
                Op::Conv {
                    name,
                    in_channels,
                    out_channels,
                    kernel,
                    groups,
                    bias,
                    ..
                } => {
                    out.push((
                        format!("{name}.weight"),
                        vec![*out_channels, in_channels / groups, kernel[0], kernel[1]],
                    ));
                    if *bias {
                        out.push((format!("{name}.bias"), vec![*out_channels]));
                    }
                }
                Op::BatchNorm { name, channels, .. } => {
                    for p in ["weight", "bias", "running_mean", "running_var"] {
                        out.push((format!("{name}.{p}"), vec![*channels]));
                    }
                }
                Op::Linear {
                    name,
                    in_features,
                    out_features,
                } => {
                    out.push((format!("{name}.weight"), vec![*out_features, *in_features]));
                    out.push((format!("{name}.bias"), vec![*out_features]));
                }
                Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Concat
                | Op::Channels { .. }
                | Op::ChannelShuffle { .. }
                | Op::Flatten { .. } => {}
            }
        }
        out
    }

    /// Height and width of every value for an input of `input` (`[0, 0]` for pooled values;
    /// a conv reading one sees a 1×1 image).
    pub fn spatial_sizes(&self, input: Hw) -> Vec<Hw> {
        let mut s = vec![[0usize; 2]; self.values.len()];
        s[0] = input;
        for n in &self.nodes {
            let x = n.inputs.first().map(|&i| s[i]).unwrap_or([0; 2]);
            s[n.output] = match &n.op {
                Op::Conv {
                    kernel,
                    stride,
                    pads,
                    dilation,
                    ..
                } => window_output(x, dilated(*kernel, *dilation), *stride, pads),
                Op::MaxPool {
                    kernel,
                    stride,
                    pads,
                }
                | Op::AvgPool {
                    kernel,
                    stride,
                    pads,
                    ..
                } => window_output(x, *kernel, *stride, pads),
                Op::GlobalAvgPool | Op::Linear { .. } | Op::Flatten { .. } => [0; 2],
                Op::BatchNorm { .. }
                | Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::Concat
                | Op::Channels { .. }
                | Op::ChannelShuffle { .. } => x,
            };
        }
        s
    }

    /// Multiply-accumulates of convs and linear layers for an input of `input`.
    pub fn macs(&self, input: Hw) -> u64 {
        let s = self.spatial_sizes(input);
        self.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv {
                    in_channels,
                    out_channels,
                    kernel,
                    groups,
                    ..
                } => {
                    let [h, w] = s[n.output];
                    let per_pixel = *out_channels * (in_channels / groups) * kernel[0] * kernel[1];
                    (h * w) as u64 * per_pixel as u64
                }
                Op::Linear {
                    in_features,
                    out_features,
                    ..
                } => (*in_features * *out_features) as u64,
                Op::BatchNorm { .. }
                | Op::Relu
                | Op::Relu6
                | Op::Add
                | Op::Mul
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Concat
                | Op::Channels { .. }
                | Op::ChannelShuffle { .. }
                | Op::Flatten { .. } => 0,
            })
            .sum()
    }

    /// The channel structure: every value has a layout of channel spaces; a conv starts a
    /// new space (a depthwise conv keeps its input's), an add merges its inputs', a
    /// concatenation lays its inputs' segments one after another. The stem's output space is
    /// protected by default; what no rule can keep in step is fixed, with the reason.
    pub fn structure(&self) -> Structure {
        let mut st = Structure::default();
        let widths = self.channels();
        let mut layout: Vec<Layout> = vec![Vec::new(); self.values.len()];
        layout[0] = vec![Segment { space: 0, width: 3 }];
        let spaces = |l: &Layout| l.iter().map(|s| s.space).collect::<Vec<_>>();
        // Channel `j` of a value, as (space, channel of that space).
        let channel_at = |l: &Layout, mut j: usize| {
            for seg in l {
                if j < seg.width {
                    return (seg.space, j);
                }
                j -= seg.width;
            }
            (0, 0)
        };
        // The batch norm that reads each conv's output, if any.
        let bn_after = |conv_out: usize| {
            self.nodes.iter().find_map(|m| match &m.op {
                Op::BatchNorm { name, .. } if m.inputs == [conv_out] => Some(name.clone()),
                _ => None,
            })
        };
        for n in &self.nodes {
            let x = n
                .inputs
                .first()
                .map(|&i| layout[i].clone())
                .unwrap_or_default();
            let width = widths[n.output];
            let fresh = |st: &mut Structure| {
                vec![Segment {
                    space: st.space(),
                    width,
                }]
            };
            layout[n.output] = match &n.op {
                Op::Conv {
                    name,
                    in_channels,
                    out_channels,
                    groups,
                    ..
                } => {
                    let depthwise = Op::is_depthwise(*in_channels, *out_channels, *groups);
                    let output = if depthwise { x.clone() } else { fresh(&mut st) };
                    if !depthwise && st.protected.is_empty() {
                        st.protected.push(output[0].space);
                    }
                    // Each of a grouped conv's groups reads and writes its own block of
                    // channels: the same channel of every block goes at once (channels.rs),
                    // which a block that straddles concatenated segments cannot follow.
                    if *groups > 1 && !depthwise && x.len() > 1 {
                        let mut all = spaces(&x);
                        all.extend(spaces(&output));
                        st.layers.push(Layer::Fixed {
                            spaces: all,
                            why: format!(
                                "{name} is a conv in {groups} groups that reads concatenated values"
                            ),
                        });
                    }
                    st.layers.push(Layer::Conv {
                        name: name.clone(),
                        bn: bn_after(n.output),
                        input: x,
                        output: output.clone(),
                        depthwise,
                        groups: *groups,
                    });
                    output
                }
                // A residual add, or a squeeze-excitation block's gate times the image it
                // scales: the same channels on both sides, segment by segment.
                Op::Add | Op::Mul => {
                    let y = &layout[n.inputs[1]];
                    let in_step =
                        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.width == b.width);
                    if in_step {
                        for (a, b) in x.iter().zip(y) {
                            st.layers.push(match n.op {
                                Op::Add => Layer::Add {
                                    a: a.space,
                                    b: b.space,
                                },
                                _ => Layer::Mul {
                                    a: a.space,
                                    b: b.space,
                                },
                            });
                        }
                        x
                    } else {
                        let mut all = spaces(&x);
                        all.extend(spaces(y));
                        st.layers.push(Layer::Fixed {
                            spaces: all,
                            why: format!(
                                "{} combines values whose channels are concatenated differently",
                                self.values[n.output]
                            ),
                        });
                        x
                    }
                }
                // A batch norm after anything but a conv (whose own joins the conv's layer).
                Op::BatchNorm { name, .. } => {
                    let after_conv = self
                        .nodes
                        .iter()
                        .any(|m| m.output == n.inputs[0] && matches!(m.op, Op::Conv { .. }));
                    if !after_conv {
                        st.layers.push(Layer::Norm {
                            name: name.clone(),
                            input: x.clone(),
                        });
                    }
                    x
                }
                Op::Linear { name, .. } => {
                    st.layers.push(Layer::Linear {
                        name: name.clone(),
                        input: x,
                    });
                    vec![Segment { space: 0, width }]
                }
                Op::Concat => n
                    .inputs
                    .iter()
                    .flat_map(|&i| layout[i].iter().copied())
                    .collect(),
                // A slice's channels are its input's, moved (channels.rs follows each).
                Op::Channels { start, len } => {
                    let out = fresh(&mut st);
                    st.layers.push(Layer::Moved {
                        space: out[0].space,
                        from: (*start..start + len).map(|j| channel_at(&x, j)).collect(),
                    });
                    out
                }
                // Each channel becomes `pixels` features in a row.
                Op::Flatten { .. } => {
                    let out = fresh(&mut st);
                    let mut all = spaces(&x);
                    all.extend(spaces(&out));
                    st.layers.push(Layer::Fixed {
                        spaces: all,
                        why: format!(
                            "{} flattens them, with their pixels, into a linear layer's features",
                            self.values[n.output]
                        ),
                    });
                    out
                }
                // A shuffle interleaves its groups: output channel `j·g + i` is input channel
                // `i·k + j`, and channel `j` of every group goes at once, so that the rest
                // stay a shuffle in `g` groups.
                Op::ChannelShuffle { groups } => {
                    let g = (*groups).max(1);
                    let k = width / g;
                    let out = fresh(&mut st);
                    st.layers.push(Layer::Moved {
                        space: out[0].space,
                        from: (0..width)
                            .map(|o| channel_at(&x, (o % g) * k + o / g))
                            .collect(),
                    });
                    st.layers.push(Layer::Together {
                        channels: (0..k)
                            .map(|j| (0..g).map(|i| channel_at(&x, i * k + j)).collect())
                            .collect(),
                    });
                    out
                }
                // Per-channel ops keep their input's layout.
                Op::Relu
                | Op::Relu6
                | Op::Sigmoid
                | Op::HardSigmoid { .. }
                | Op::HardSwish
                | Op::Silu
                | Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool => x,
            };
        }
        // Logits a conv computes (SqueezeNet's classifier): the classes stay.
        let classes = spaces(&layout[self.output]);
        if classes.iter().any(|&s| s != 0) {
            st.layers.push(Layer::Fixed {
                spaces: classes,
                why: "they are the classes".into(),
            });
        }
        st
    }
}
