//! This simulator's own faults (the `sim` member of `/_sim/faults`): applies that fail.
//!
//! ```json
//! {"sim": {"fail_applies": [{"subsystem": "haproxy", "count": 1}]}}
//! ```
//!
//! The next `count` applies of the subsystem run and fail, as when pfSense rejects a
//! configuration: the subsystem stays pending (`GET …/apply` → `applied: false`), nothing
//! reaches the data plane (the running HAProxy keeps its configuration), and for HAProxy the
//! message becomes the last apply error. (An apply request answered with an injected error
//! by the kit's layer never runs at all: the same pending state, reached by an interrupted
//! apply.)

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::model::Subsystem;

/// The simulator-specific fault settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimFaults {
    /// Applies that fail, per subsystem.
    pub fail_applies: Vec<ApplyFault>,
}

/// Makes the next `count` applies of `subsystem` fail with `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyFault {
    /// The subsystem (`haproxy`, `virtual_ip`, `dns_resolver`, `firewall`).
    pub subsystem: Subsystem,
    /// How many applies fail.
    #[serde(default = "one")]
    pub count: u32,
    /// Why, as the apply log would say.
    #[serde(default = "default_message")]
    pub message: String,
}

fn one() -> u32 {
    1
}

fn default_message() -> String {
    "apply failed (fault injected by the simulator)".into()
}

/// The faults in force, shared by the handlers.
#[derive(Debug, Default)]
pub struct Faults(Mutex<SimFaults>);

impl Faults {
    /// The settings (for `GET /_sim/faults`).
    pub fn get(&self) -> SimFaults {
        self.0.lock().expect("faults").clone()
    }

    /// Replaces the settings.
    pub fn set(&self, f: SimFaults) {
        *self.0.lock().expect("faults") = f;
    }

    /// Whether this apply of `sub` fails (then one use of the fault is spent), and why.
    pub fn take_apply_failure(&self, sub: Subsystem) -> Option<String> {
        let mut f = self.0.lock().expect("faults");
        let fault = f
            .fail_applies
            .iter_mut()
            .find(|a| a.subsystem == sub && a.count > 0)?;
        fault.count -= 1;
        let message = fault.message.clone();
        f.fail_applies.retain(|a| a.count > 0);
        Some(message)
    }
}
