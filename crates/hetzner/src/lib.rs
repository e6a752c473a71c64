//! cairn provider for Hetzner Cloud: resource kinds ([`kinds`]), a rate-limit-aware client
//! ([`client`]), the [`HetznerProvider`] and a load-balancer health gate ([`gate`]). Its
//! simulator is the separate crate `cairn-hetzner-sim`, which imports nothing from here.
//!
//! # Kinds
//! `hetzner_ssh_key`, `hetzner_network` (subnets, routes), `hetzner_server`,
//! `hetzner_primary_ip`, `hetzner_load_balancer` (services, targets, network attachment),
//! `hetzner_firewall` (rules, apply_to), `hetzner_zone`, `hetzner_rrset`, `hetzner_volume`
//! (size, attachment by reference). Each is a typed kind of the provider kit
//! (`cairn_core::kit`), registered in [`kinds`]; observed values have
//! the spec's field names plus computed fields (`id`, `ipv4`, …). Typed references come from
//! the `*Attrs` traits on handles (`lb.ipv4()`, `net.id()`), since core owns `Handle`; the
//! [`prelude`] brings them all into scope. Kinds have builders with sensible defaults
//! (`Server::new(..).label(..).network(&net, ip)`, `LoadBalancer::new(..).service(..)
//! .target(&srv)`, `Firewall::new(..).allow_tcp_in(..).apply_to(&srv)`,
//! `RRSet::a(&zone, "www", srv.ipv4())`), and name other declared objects by handle, so the
//! dependency comes from the reference.
//!
//! # How the provider behaves
//! - **Observe in bulk**: per kind, one paged list with
//!   `label_selector=cairn.dev/stack=<stack>`; declared keys not found that way are looked up
//!   with `name=` (up to 3) or one full paged listing. Pages after the first are fetched
//!   concurrently. RRsets are listed per zone.
//! - **Ownership marker**: labels `cairn.dev/stack` and `cairn.dev/fingerprint`, split off the
//!   observed `labels` into `Observed::marker`. User labels are kept and diffed.
//! - **Write-only fields** (`Server::user_data`, `Server::ssh_keys`): the API never returns
//!   them, so keyed digests (HMAC-SHA256 under `CAIRN_DIGEST_KEY` or the state directory's
//!   key file, [`cairn_core::digest_key`]) are kept in the labels `cairn.dev/user-data` /
//!   `cairn.dev/ssh-keys` and compared with the declared values (seen by
//!   `Provider::validate`). An object with no digest (made by hand, being adopted) is trusted
//!   to match; a digest made with another key, or an unkeyed one from an older cairn, means
//!   "cannot tell": no change, and a plan warning naming the server and the fix.
//!   `HetznerProvider::with_digest_key` sets the key explicitly (tests, embedding).
//! - **Changes converge from a fresh read**: an update reads the object and issues only the
//!   actions still needed, repeating after an ambiguous failure (lost response, 5xx) or a
//!   conflict-type error, so a retry never repeats a change blindly. A create that may have
//!   happened is re-observed by name first; `uniqueness_error` after a lost response means
//!   adopt.
//! - **Limits**: `RateLimit-*` headers pace requests before the budget is gone; a 429 holds
//!   every request until the reset; `locked`/`conflict`/429/503 are retried under the shared
//!   `cairn-http` retry policy (capped jittered backoff, `RateLimit-Reset`, a deadline).
//!   Actions are awaited by one shared poller per client (`GET /actions?id=…&id=…`, 50 ids a
//!   request, backoff); an action ending in `error` fails the resource with its code and
//!   message.
//! - **Lists whose identity is a reference** (server `networks`, LB `targets` and
//!   `private_net`, firewall `apply_to`) are keyed lists: the engine resolves references
//!   before keying, so a different API order is neither a change nor a disruption, and
//!   observing needs nothing but one list per kind (a no-op plan costs the same requests
//!   every run). RRset `records` are positional and written in declared order.
//! - **Plan-time checks** refuse what apply would refuse, naming the resource, the field and
//!   the valid choices, before anything is written. Before any request (`validate`): fixed
//!   private IPs inside a subnet and not its network address or gateway, no IP claimed twice,
//!   room in the subnets for the members the API places. Against the live catalog
//!   ([`catalog`], read at most once per plan, only the lists the plan needs): server types,
//!   images, locations and load balancer types exist and fit each other (architecture,
//!   offered in the location, not past `unavailable_after`, in stock in a datacenter there;
//!   a deprecation not yet in effect is a warning), a server or load balancer is in the network zone of its network's
//!   subnets, and a zone, SSH key, network or firewall a change names is declared or exists.
//!   Only what a change writes is checked, so a no-op plan reads no catalog.
//! - Token from `HCLOUD_TOKEN`, endpoint from `HCLOUD_ENDPOINT`; the token is in no output,
//!   `Debug` or error. The endpoint goes through the `cairn-http` kit: with
//!   `CAIRN_LOOPBACK_ONLY=1` a non-loopback endpoint is refused; redirects are not followed.

#![warn(missing_docs)]

pub mod catalog;
mod checks;
pub mod cidr;
pub mod client;
pub mod gate;
pub mod kinds;
pub mod provider;
mod subnets;
mod validate;

pub use gate::LbTargetsHealthy;

/// Everything a stack author needs from this provider in one import
/// (`use cairn::hetzner::prelude::*`): the kinds and their parts, and every accessor trait,
/// so `srv.ipv4()`, `net.id()` and `lb.ipv4()` work without naming the traits.
pub mod prelude {
    pub use crate::HetznerProvider;
    pub use crate::kinds::{
        AlgorithmType, ApplyTo, Firewall, FirewallAttrs, HealthCheck, LoadBalancer,
        LoadBalancerAttrs, Network, NetworkAttachment, NetworkAttrs, PrimaryIp, PrimaryIpAttrs,
        RRSet, Record, RecordType, Rule, RuleProtocol, Server, ServerAttrs, Service, SshKey,
        SshKeyAttrs, Target, Volume, VolumeAttrs, Zone, ZoneAttrs,
    };
}
pub use kinds::*;
pub use provider::HetznerProvider;
