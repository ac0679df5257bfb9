//! How a long run tells its caller where it is: a [`Progress`] before each step, awaited, so
//! the page's event loop runs there and the caller can cancel by answering `false`.

use std::future::Future;

use serde::Serialize;

use crate::{Error, Result};

/// One step of a run, for progress reports.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// 1-based step number and the total (0 and 0 for a step outside a numbered sequence).
    pub step: usize,
    pub steps: usize,
    /// What the step does, for people.
    pub label: String,
}

impl Progress {
    /// Step `step` of `steps`.
    pub fn new(step: usize, steps: usize, label: String) -> Progress {
        Progress { step, steps, label }
    }
}

/// Tell `progress` about step `p` and wait for its answer: `false` cancels the run.
pub async fn report<P, F>(progress: &mut P, p: Progress) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    if progress(p).await {
        Ok(())
    } else {
        Err(Error::Cancelled)
    }
}

/// A step outside a numbered sequence, announced the same way (no step number).
pub async fn announce<P, F>(progress: &mut P, label: &str) -> Result<()>
where
    P: FnMut(Progress) -> F,
    F: Future<Output = bool>,
{
    let p = Progress {
        step: 0,
        steps: 0,
        label: label.into(),
    };
    report(progress, p).await
}
