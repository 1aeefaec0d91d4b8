//! Consul as a source of backends. Consul's words (service name, instance,
//! node) stay in this module; what leaves it is a list of [`Backend`]s.

pub mod client;
pub mod parse;
pub mod poll;

use std::net::SocketAddr;

/// Consul's aggregated health of one instance, as the official client's
/// `AggregatedStatus()` computes it (maintenance > critical > warning > passing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceHealth {
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl SourceHealth {
    pub fn name(self) -> &'static str {
        match self {
            SourceHealth::Passing => "passing",
            SourceHealth::Warning => "warning",
            SourceHealth::Critical => "critical",
            SourceHealth::Maintenance => "maintenance",
        }
    }
}

/// One backend as a source reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: SocketAddr,
    /// The weight to program while the backend is healthy: `Weights.Passing`,
    /// or `Weights.Warning` while its worst check is warning.
    pub weight: u32,
    pub health: SourceHealth,
}
