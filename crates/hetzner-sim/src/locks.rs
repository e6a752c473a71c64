//! Which actions lock their resources, and for how long, as the API documents them.
//!
//! The spec's example answers tell three kinds of action apart:
//! - actions the API finishes within the request (their example answer is already
//!   `success`, progress 100): protection changes, backups on/off, enabling rescue, a
//!   primary IP's reverse DNS. They run for no time and lock nothing, so a client may send
//!   the next action at once.
//! - actions that run on the resource (`running` in the example: power, create, network,
//!   type changes …). They run for [`crate::SimConfig::action_time`] and their resources
//!   answer 423 `locked` meanwhile.
//! - DNS zone and rrset actions, also `running` in the examples, but the API takes the next
//!   one at once: a zone's changes queue and are applied in order. They lock nothing; each
//!   runs for the action time after the zone's queued changes before it.

/// How an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Finished in the request; locks nothing.
    Instant,
    /// Runs for the action time and locks its resources.
    Locking,
    /// Queued behind the zone's earlier changes; locks nothing.
    Queued,
}

/// Commands the API finishes within the request (per resource type of the action's first
/// resource; `change_protection` of a zone is queued like every zone change).
const INSTANT: &[(&str, &str)] = &[
    ("change_protection", "server"),
    ("change_protection", "network"),
    ("change_protection", "load_balancer"),
    ("change_protection", "volume"),
    ("change_protection", "primary_ip"),
    ("change_dns_ptr", "primary_ip"),
    ("enable_backup", "server"),
    ("disable_backup", "server"),
    ("enable_rescue", "server"),
];

/// The profile of `command` on a resource of type `kind` (the action's first resource).
pub fn profile(command: &str, kind: &str) -> Profile {
    if kind == "zone" {
        Profile::Queued
    } else if INSTANT.contains(&(command, kind)) {
        Profile::Instant
    } else {
        Profile::Locking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_changes_queue_and_protection_changes_are_instant() {
        assert_eq!(profile("change_ttl", "zone"), Profile::Queued);
        assert_eq!(profile("change_protection", "zone"), Profile::Queued);
        assert_eq!(profile("change_protection", "server"), Profile::Instant);
        assert_eq!(profile("start_server", "server"), Profile::Locking);
    }
}
