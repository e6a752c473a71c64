//! Request counters by method and route, as `GET /_sim/counters` returns them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a simulator has been asked: every counted API request by `METHOD /route` (ids and
/// names replaced by placeholders where the simulator normalises them), how many were
/// writes, and the faults injected by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// All counted API requests, including rejected ones.
    pub total: u64,
    /// Counted requests the simulator classifies as writes.
    pub writes: u64,
    /// Requests by `METHOD /route`.
    pub requests: BTreeMap<String, u64>,
    /// Faults injected, by name (`error`, `reset`, `drop`, or a simulator's own, e.g. `locked`).
    pub faults: BTreeMap<String, u64>,
}

impl Counters {
    /// Counts one request.
    pub fn count(&mut self, method: &str, route: &str, write: bool) {
        self.total += 1;
        if write {
            self.writes += 1;
        }
        *self
            .requests
            .entry(format!("{method} {route}"))
            .or_default() += 1;
    }

    /// Counts one injected fault.
    pub fn fault(&mut self, name: &str) {
        *self.faults.entry(name.to_string()).or_default() += 1;
    }

    /// Requests whose `METHOD /route` starts with `prefix` (e.g. `GET /v1/servers`).
    pub fn matching(&self, prefix: &str) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests to exactly `METHOD /route` (0 when none).
    pub fn get(&self, method_route: &str) -> u64 {
        self.requests.get(method_route).copied().unwrap_or(0)
    }

    /// Whether no request was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl std::ops::Index<&str> for Counters {
    type Output = u64;

    /// Requests to exactly `METHOD /route` (0 when none).
    fn index(&self, method_route: &str) -> &u64 {
        self.requests.get(method_route).unwrap_or(&0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_writes_and_prefix() {
        let mut c = Counters::default();
        c.count("GET", "/v1/servers", false);
        c.count("POST", "/v1/servers", true);
        c.count("POST", "/v1/servers/{id}/actions/poweron", true);
        assert_eq!((c.total, c.writes), (3, 2));
        assert_eq!(c.matching("POST /v1/servers"), 2);
        assert_eq!(c["GET /v1/servers"], 1);
        assert_eq!(c["DELETE /v1/servers"], 0);
        assert!(!c.is_empty());
    }
}
