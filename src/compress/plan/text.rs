//! Typed settings written as the CLI's words: `#[serde(with = "text")]` stores a choice as the
//! string its `FromStr` reads (`"int8"`, `"group:32"`), so the page's JSON and the model card
//! keep one spelling while the code matches on enums.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serializer};

use crate::compress::{Augment, Calibration, Granularity, Importance, PruneScope, QuantMethod};
use crate::quant::Precision;

/// A value with a word for it that its `FromStr` reads back.
pub trait AsText: FromStr<Err = crate::Error> {
    fn text(&self) -> String;
}

impl AsText for Importance {
    fn text(&self) -> String {
        self.label().into()
    }
}
impl AsText for crate::compress::prune::blocks::BlockDrop {
    fn text(&self) -> String {
        self.label()
    }
}
impl AsText for PruneScope {
    fn text(&self) -> String {
        self.label().into()
    }
}
impl AsText for Augment {
    fn text(&self) -> String {
        self.label().into()
    }
}
impl AsText for QuantMethod {
    fn text(&self) -> String {
        self.label().into()
    }
}
impl AsText for Granularity {
    fn text(&self) -> String {
        self.to_string()
    }
}
impl AsText for Calibration {
    fn text(&self) -> String {
        match self {
            Calibration::MinMax => "minmax".into(),
            Calibration::Percentile(p) => format!("percentile:{p}"),
        }
    }
}
/// `none` for fp32, as the CLI's `--quant none`.
impl AsText for Precision {
    fn text(&self) -> String {
        match self {
            Precision::F32 => "none".into(),
            p => p.label().into(),
        }
    }
}

pub fn serialize<T: AsText, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.text())
}

pub fn deserialize<'de, T: AsText, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// The same for a map's values.
pub mod map {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::AsText;

    pub fn serialize<T: AsText, S: Serializer>(
        v: &BTreeMap<String, T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, x) in v {
            m.serialize_entry(k, &x.text())?;
        }
        m.end()
    }

    pub fn deserialize<'de, T: AsText, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, T>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| Ok((k, v.parse().map_err(serde::de::Error::custom)?)))
            .collect()
    }
}
