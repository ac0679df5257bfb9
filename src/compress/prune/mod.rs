//! Making the network smaller by removing weights: whole channels along the channel groups
//! ([`channels`], ranked by [`importance`] or [`measured_importance`]), then refitting what
//! reads them ([`reconstruct`]); single weights by magnitude ([`sparsity`]) or by SparseGPT
//! ([`sparsegpt`]).

pub mod blocks;
pub mod budget;
pub mod channels;
pub mod importance;
pub mod measured_importance;
pub mod reconstruct;
pub mod sparsegpt;
pub mod sparsity;

pub use channels::{
    KeptChannels, PruneOptions, PruneScope, prune_channels, prune_channels_by, prune_channels_kept,
};
