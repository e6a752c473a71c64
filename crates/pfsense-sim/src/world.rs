//! The simulated configuration (`config.xml` as JSON collections), per-subsystem dirty
//! flags: everything `/_sim/state` dumps and loads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{Collection, Subsystem};

/// The configuration the simulated pfSense holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct World {
    /// Objects per collection; an object's REST `id` is its index here.
    #[serde(default)]
    pub collections: BTreeMap<Collection, Vec<Value>>,
    /// HAProxy global settings (`/services/haproxy/settings`).
    #[serde(default = "default_settings")]
    pub haproxy_settings: Value,
    /// Subsystems with changes written but not applied.
    #[serde(default)]
    pub dirty: BTreeMap<Subsystem, bool>,
    /// The next `serverid` handed to a new backend server.
    #[serde(default = "first_server_id")]
    pub next_server_id: u64,
}

fn default_settings() -> Value {
    json!({"enable": true, "maxconn": 1000, "nbthread": 1, "hard_stop_after": "15s",
           "advanced": ""})
}

fn first_server_id() -> u64 {
    101
}

impl World {
    /// An empty configuration with HAProxy enabled.
    pub fn new() -> Self {
        World {
            collections: BTreeMap::new(),
            haproxy_settings: default_settings(),
            dirty: BTreeMap::new(),
            next_server_id: first_server_id(),
        }
    }

    /// The objects of a collection.
    pub fn list(&self, c: Collection) -> &[Value] {
        self.collections.get(&c).map_or(&[], Vec::as_slice)
    }

    /// The objects of a collection, mutably.
    pub fn list_mut(&mut self, c: Collection) -> &mut Vec<Value> {
        self.collections.entry(c).or_default()
    }

    /// Whether a subsystem has unapplied changes.
    pub fn is_dirty(&self, s: Subsystem) -> bool {
        self.dirty.get(&s).copied().unwrap_or(false)
    }

    /// Marks a subsystem dirty (or clean).
    pub fn set_dirty(&mut self, s: Subsystem, dirty: bool) {
        self.dirty.insert(s, dirty);
    }
}
