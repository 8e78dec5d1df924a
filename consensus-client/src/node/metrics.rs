//! Prometheus metrics of the running node (served by `--metrics`).

use metrics::{Counter, Gauge, counter, gauge};

/// The node's gauges and counters.
#[derive(Clone)]
pub struct NodeMetrics {
    /// Current round.
    pub round: Gauge,
    /// Committed height.
    pub committed_height: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Blocks committed since start.
    pub commits: Counter,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeMetrics")
    }
}

impl NodeMetrics {
    /// Registers the metrics with the global recorder (no-ops without one).
    pub fn new() -> Self {
        Self {
            round: gauge!("tandem_cl_round"),
            committed_height: gauge!("tandem_cl_committed_height"),
            peers: gauge!("tandem_cl_peers"),
            commits: counter!("tandem_cl_commits_total"),
        }
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}
