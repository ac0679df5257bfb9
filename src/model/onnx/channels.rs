//! The ops of an ONNX file that move channels without computing: `Concat`, `Split` and
//! `Slice` on the channel axis, and the channel shuffle (`Reshape` to `[N, g, C/g, H, W]`,
//! `Transpose` of the two channel axes, `Reshape` back, as torch and Paddle export
//! ShuffleNet's), read as one op. The 5-D views in between are the same graph value with
//! another ONNX shape; nothing but the transpose and the reshape back may read them.

use super::{Attrs, Reader, Val, err};
use crate::Result;
use crate::export::proto::NodeProto;
use crate::model::graph::Op;
use crate::model::graph_edit::MAX_CONCAT;

/// An axis as a non-negative index of a value of `rank` axes.
fn axis(a: i64, rank: usize) -> i64 {
    if a < 0 { a + rank as i64 } else { a }
}

impl Reader {
    /// Whether input `i` of `n` is computed from the image (not a constant).
    pub(super) fn is_running(&mut self, n: &NodeProto, i: usize) -> Result<bool> {
        Ok(matches!(self.input(n, i)?, Some(Val::Run { .. })))
    }

    /// The image's values `[N, C, H, W]` read by `n` as input `i`.
    fn image(&mut self, n: &NodeProto, i: usize, what: &str) -> Result<(usize, Vec<usize>)> {
        match self.running(n, i)? {
            Some((id, shape, false)) if shape.len() == 4 => Ok((id, shape)),
            Some((_, shape, _)) => Err(err(format!(
                "{what} values of shape {shape:?}; modelslim reads this on [N, C, H, W] images only"
            ))),
            None => Err(err(format!("{what} a constant and the image's values"))),
        }
    }

    /// `Concat` of the image's values along the channels.
    pub(super) fn concat(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        if n.input.len() > MAX_CONCAT {
            return Err(err(format!(
                "concatenates {} values; modelslim reads up to {MAX_CONCAT}",
                n.input.len()
            )));
        }
        let mut ids = Vec::with_capacity(n.input.len());
        let mut channels = 0;
        let mut first: Option<Vec<usize>> = None;
        for i in 0..n.input.len() {
            let (id, shape) = self.image(n, i, "concatenates")?;
            if axis(a.int("axis", 1), 4) != 1 {
                return Err(err(format!(
                    "concatenates along axis {}; modelslim concatenates channels (axis 1) only",
                    a.int("axis", 1)
                )));
            }
            if let Some(f) = &first
                && f[2..] != shape[2..]
            {
                return Err(err(format!(
                    "concatenates images of sizes {:?} and {:?}",
                    &f[2..],
                    &shape[2..]
                )));
            }
            channels += shape[1];
            first.get_or_insert(shape);
            ids.push(id);
        }
        let Some(mut shape) = first else {
            return Err(err("concatenates nothing"));
        };
        if ids.len() == 1 {
            self.set(
                n,
                Val::Run {
                    id: ids[0],
                    shape,
                    flat: false,
                },
            );
            return Ok(());
        }
        shape[1] = channels;
        self.push(n, Op::Concat, &ids, shape, false);
        Ok(())
    }

    /// `Split` along the channels: one slice per output.
    pub(super) fn split(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let (id, shape) = self.image(n, 0, "splits")?;
        if axis(a.int("axis", 0), 4) != 1 {
            return Err(err("splits along an axis other than the channels"));
        }
        let c = shape[1];
        let outputs = n.output.len().max(1);
        let sizes: Vec<i64> = match (a.ints("split"), self.constant(n, 1, "split")?) {
            (Some(s), _) => s,
            (None, Some(s)) => s.ints(),
            (None, None) => {
                let each = c.div_ceil(outputs);
                (0..outputs)
                    .map(|k| (c.saturating_sub(k * each)).min(each) as i64)
                    .collect()
            }
        };
        if sizes.len() != outputs
            || sizes.iter().any(|&s| s <= 0)
            || sizes.iter().sum::<i64>() != c as i64
        {
            return Err(err(format!("splits {c} channels as {sizes:?}")));
        }
        let mut start = 0;
        for (out, &len) in n.output.iter().zip(&sizes) {
            let len = len as usize;
            let name = self.name_for(n, None);
            let v = self.graph.push(Op::Channels { start, len }, &[id], name);
            let mut s = shape.clone();
            s[1] = len;
            self.vals.insert(
                out.clone(),
                Val::Run {
                    id: v,
                    shape: s,
                    flat: false,
                },
            );
            start += len;
        }
        Ok(())
    }

    /// `Slice` of the image's values along the channels, step 1.
    pub(super) fn slice(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let (id, shape) = self.image(n, 0, "slices")?;
        let bound = |s: &mut Self, i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
            if s.opset < 10 {
                Ok(a.ints(attr))
            } else {
                Ok(s.constant(n, i, "slice bound")?.map(|c| c.ints()))
            }
        };
        let (starts, ends) = (bound(self, 1, "starts")?, bound(self, 2, "ends")?);
        let (axes, steps) = (bound(self, 3, "axes")?, bound(self, 4, "steps")?);
        let (Some(starts), Some(ends)) = (starts, ends) else {
            return Err(err("a slice without starts and ends"));
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let c = shape[1] as i64;
        let mut range = (0, c);
        for (k, &ax) in axes.iter().enumerate() {
            let (Some(&s), Some(&e)) = (starts.get(k), ends.get(k)) else {
                return Err(err("a slice with fewer bounds than axes"));
            };
            let step = steps.as_ref().and_then(|v| v.get(k).copied()).unwrap_or(1);
            let dim = *shape.get(axis(ax, 4) as usize).unwrap_or(&0) as i64;
            let at = |v: i64| (if v < 0 { v + dim } else { v }).clamp(0, dim);
            let (s, e) = (at(s), at(e));
            if axis(ax, 4) != 1 {
                if step == 1 && s == 0 && e == dim {
                    continue;
                }
                return Err(err(format!(
                    "slices axis {ax}; modelslim slices channels (axis 1) only"
                )));
            }
            if step != 1 || e <= s {
                return Err(err(format!("slices channels {s}..{e} in steps of {step}")));
            }
            range = (s, e);
        }
        let (start, end) = (range.0 as usize, range.1 as usize);
        let mut out = shape.clone();
        out[1] = end - start;
        if start == 0 && end == shape[1] {
            self.set(
                n,
                Val::Run {
                    id,
                    shape,
                    flat: false,
                },
            );
        } else {
            self.push(
                n,
                Op::Channels {
                    start,
                    len: end - start,
                },
                &[id],
                out,
                false,
            );
        }
        Ok(())
    }

    /// `Transpose` of a channel shuffle's 5-D view `[N, g, C/g, H, W]`, its two channel axes
    /// swapped.
    pub(super) fn transpose(&mut self, n: &NodeProto, a: &Attrs) -> Result<()> {
        let perm = a.ints("perm").unwrap_or_default();
        match self.running(n, 0)? {
            Some((id, shape, false)) if shape.len() == 5 && perm == [0, 2, 1, 3, 4] => {
                let out = vec![shape[0], shape[2], shape[1], shape[3], shape[4]];
                self.push(
                    n,
                    Op::ChannelShuffle { groups: shape[1] },
                    &[id],
                    out,
                    false,
                );
                Ok(())
            }
            Some((_, shape, _)) => Err(err(format!(
                "transposes values of shape {shape:?} by {perm:?}; modelslim reads a transpose only inside a channel shuffle ([N, g, C/g, H, W] by [0, 2, 1, 3, 4])"
            ))),
            None => Err(err("transposes a constant")),
        }
    }
}

/// Whether reshaping the image's values of ONNX shape `from` to `to` only views the channel
/// axis as two (`[N, C, H, W]` → `[N, g, C/g, H, W]`) or merges them back: a channel
/// shuffle's first and last step, which leave the values where they are.
pub(super) fn shuffle_view(from: &[usize], to: &[usize]) -> bool {
    match (from.len(), to.len()) {
        (4, 5) => from[0] == to[0] && from[1] == to[1] * to[2] && from[2..] == to[3..],
        (5, 4) => from[0] == to[0] && to[1] == from[1] * from[2] && from[3..] == to[2..],
        _ => false,
    }
}
