//! Storing a model's conv and linear weights in their precision (int8/int4 with their scales,
//! fp16 or fp32), layer by layer, after folding the batch norms — so that the weights the
//! forward pass uses are exactly the dequantized values the exported file holds.

use std::collections::BTreeMap;

use crate::model::Model;
use crate::quant::{
    EXACT_WEIGHT_SCALE_BITS, Granularity, Precision, quantize_with_scale_bits, round_to_f16,
};
use crate::{Error, Result};

/// How a layer's integers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantMethod {
    /// Round each weight to the nearest level: no photos needed.
    #[default]
    Rtn,
    /// GPTQ on the calibration photos' layer inputs: lower output error, same format.
    Gptq,
}

impl std::str::FromStr for QuantMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rtn" => Ok(QuantMethod::Rtn),
            "gptq" => Ok(QuantMethod::Gptq),
            other => Err(Error::Invalid(format!(
                "quantization method '{other}' is not one of rtn, gptq"
            ))),
        }
    }
}

impl QuantMethod {
    pub fn label(self) -> &'static str {
        match self {
            QuantMethod::Rtn => "rtn",
            QuantMethod::Gptq => "gptq",
        }
    }
}

/// What to quantize and how.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOptions {
    /// The precision of every conv and linear layer's weights.
    pub weights: Precision,
    /// Which weights share a scale (integer precisions).
    pub granularity: Granularity,
    /// Keep the first conv and the classifier one step higher (int4 → int8, else fp32).
    pub keep_first_last: bool,
    /// Per-layer precision, by layer name (`layer1.0.conv1`, `fc`).
    pub overrides: BTreeMap<String, Precision>,
    /// Round integer weight scales up to [`EXACT_WEIGHT_SCALE_BITS`] significant bits, so that
    /// with quantized activations the exported graph's arithmetic is exact (see [`ActQuant`]).
    /// The pipeline sets it whenever activations are quantized.
    pub exact_scales: bool,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            weights: Precision::F32,
            granularity: Granularity::PerChannel,
            keep_first_last: false,
            overrides: BTreeMap::new(),
            exact_scales: false,
        }
    }
}

impl Model {
    /// Each conv/linear layer and the precision `opts` gives it.
    pub fn layer_precisions(&self, opts: &QuantOptions) -> Vec<(String, Precision)> {
        let graph = self.graph();
        let (first, last) = (graph.first_conv(), graph.classifier());
        graph
            .nodes
            .iter()
            .filter_map(|n| n.op.layer_name())
            .map(|name| {
                let edge = Some(name) == first || Some(name) == last;
                let p = match opts.overrides.get(name) {
                    Some(p) => *p,
                    None if opts.keep_first_last && edge => opts.weights.higher(),
                    None => opts.weights,
                };
                (name.to_string(), p)
            })
            .collect()
    }

    /// Batch norms folded and every layer's weights stored in its precision; the weights the
    /// forward pass uses become exactly the dequantized values.
    pub fn quantized(&self, opts: &QuantOptions) -> Result<Model> {
        self.clone().into_quantized(opts)
    }

    /// [`Model::quantized`] in place: each layer's float weights give way to their dequantized
    /// values, with no second copy of the network.
    pub fn into_quantized(self, opts: &QuantOptions) -> Result<Model> {
        if !self.quant.is_empty() {
            return Err(Error::Invalid(
                "this model is already quantized: compress the original instead".into(),
            ));
        }
        let layers = self.layer_precisions(opts);
        if let Some(name) = opts
            .overrides
            .keys()
            .find(|name| !layers.iter().any(|(l, _)| l == *name))
        {
            return Err(Error::Invalid(format!("no layer named '{name}'")));
        }
        if layers.iter().all(|(_, p)| *p == Precision::F32) {
            return Ok(self);
        }
        let mut out = self.into_folded()?;
        // Folding turns a batch norm after anything but a conv into a layer of its own.
        let layers = out.layer_precisions(opts);
        for (name, p) in layers {
            let wkey = format!("{name}.weight");
            let bkey = format!("{name}.bias");
            match p {
                Precision::F32 => {}
                Precision::F16 => {
                    for key in [wkey, bkey] {
                        if let Some(t) = out.weights.get_mut(&key) {
                            *t = round_to_f16(t);
                            out.quant.f16.insert(key);
                        }
                    }
                }
                Precision::Int8 | Precision::Int4 => {
                    let bits = p.bits().unwrap_or(8);
                    let t = out
                        .weights
                        .get(&wkey)
                        .ok_or_else(|| Error::Structure(format!("'{wkey}' is missing")))?;
                    // A linear layer has no kernel positions: groups run along its inputs too.
                    let scale_bits = opts.exact_scales.then_some(EXACT_WEIGHT_SCALE_BITS);
                    let qt = quantize_with_scale_bits(t, bits, opts.granularity, scale_bits)?;
                    out.weights.insert(wkey.clone(), qt.dequantize());
                    out.quant.int.insert(wkey, qt);
                }
            }
        }
        Ok(out)
    }
}
