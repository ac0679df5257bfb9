//! The session's models as TFLite files, and how the compressed one fits each deployment
//! target. The page's own module does not call these (its size budget leaves no room for the
//! TFLite writer): the module the page loads on demand does (`src/web.rs`).

use super::Session;
use crate::export::targets::{TargetFit, fit_targets};
use crate::export::tflite::TfliteIo;
use crate::export::{to_tflite, to_tflite_with_io};
use crate::model::Model;
use crate::{Error, Result};

impl Session {
    /// The last compression's model.
    pub fn compressed_model(&self) -> Result<Model> {
        let s = self.state.borrow();
        let c = s
            .compressed
            .as_ref()
            .ok_or_else(|| Error::Invalid("compress the model first".into()))?;
        Ok(c.loaded.model.clone())
    }

    /// The last compression as a TFLite file with input and output of type `io`.
    pub fn tflite(&self, io: TfliteIo) -> Result<Vec<u8>> {
        to_tflite_with_io(&self.compressed_model()?, io)
    }

    /// The loaded original as a TFLite file (fp32): the baseline a runtime check times the
    /// compressed file against.
    pub fn original_tflite(&self) -> Result<Vec<u8>> {
        to_tflite(&self.original()?.model)
    }

    /// How the last compression's TFLite file fits each deployment target.
    pub fn targets(&self) -> Result<Vec<TargetFit>> {
        fit_targets(&self.compressed_model()?)
    }
}
