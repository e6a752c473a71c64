//! The resource model: what a provider implements to add a kind, and the schema facts
//! (replace-forcing, computed, sensitive, keyed lists) that the diff engine reads.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::value::{Address, AttrRef};

/// A resource kind. The spec type *is* the kind: a provider writes a serde struct, implements
/// this trait, and the engine can plan and apply it.
///
/// The serialised spec is what is diffed against the observed value the provider reports,
/// so the provider's observe must produce the same shape (same field names), plus computed
/// fields such as ids and assigned addresses.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The kind name used in addresses and plans, e.g. `hetzner_server`.
    const KIND: &'static str;
    /// The name of the provider that manages this kind, e.g. `hetzner`.
    const PROVIDER: &'static str;

    /// The natural identity used to find the object remotely: server name, VMID, pool name,
    /// VIP address, `name/TYPE` of a record. Must not depend on references.
    fn key(&self) -> String;

    /// Schema facts for the diff engine.
    fn schema() -> Schema {
        Schema::default()
    }

    /// Checks the spec on its own; every problem names the field. Called at plan time,
    /// before anything is observed or touched.
    fn validate(&self) -> Vec<FieldError> {
        Vec::new()
    }

    /// The resources this spec names by their key rather than through an attribute (a DNS
    /// record's zone, a server's SSH keys), as `(field path, address)`: each is a graph edge
    /// like an attribute reference, and one to an undeclared resource is a build error
    /// naming the field. Fields of type [`KeyRef`](crate::value::KeyRef) made from a handle
    /// are the usual source.
    fn key_refs(&self) -> Vec<(String, Address)> {
        Vec::new()
    }
}

/// Schema facts of a kind. Paths use dots for object fields and `[*]` for "every item of a
/// list", e.g. `services[*].protocol`; a path also covers everything below it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Schema {
    /// Changing these fields forces a replace.
    pub replace: &'static [&'static str],
    /// Fields the API computes; never diffed, readable through references.
    pub computed: &'static [&'static str],
    /// Fields whose values never appear in output, logs or plan files.
    pub sensitive: &'static [&'static str],
    /// Lists diffed as keyed sets: items are matched by these key fields, not by position,
    /// so adding one item is one change, e.g. `services` keyed by `listen_port`.
    pub keyed: &'static [KeyedList],
    /// Lists diffed as sets of scalars (order-insensitive), e.g. `source_ips`.
    pub unordered: &'static [&'static str],
    /// Fields whose change takes effect only on the next restart (shown as such in plans).
    pub restart: &'static [&'static str],
    /// Attribute paths other resources may reference (the kind's typed accessors, declared
    /// with [`attributes!`](crate::attributes)). A reference to any other path of this kind
    /// is refused at plan time, naming the referring resource and field. Empty: not checked.
    pub attributes: &'static [&'static str],
    /// Whether a replace may create the new object before destroying the old one.
    pub create_before_destroy: bool,
    /// A read-only lookup (data source): observed, never created, updated or deleted.
    pub read_only: bool,
}

/// A list diffed as a keyed set.
#[derive(Debug, Clone, Copy)]
pub struct KeyedList {
    /// Path of the list, e.g. `services` or `rules`.
    pub path: &'static str,
    /// Fields of an item that together identify it, e.g. `["listen_port"]`.
    pub key: &'static [&'static str],
}

/// A problem with one field of one resource, found before anything is touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field path, e.g. `rules[0].port`.
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl FieldError {
    /// Makes a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Anything that is a node of the stack graph (a resource or a gate) and can be depended on.
pub trait NodeRef {
    /// The node's address.
    fn address(&self) -> &Address;
}

impl NodeRef for Address {
    fn address(&self) -> &Address {
        self
    }
}

/// A typed handle to a resource declared in a stack, returned by `StackBuilder::add`.
/// Provider crates give it typed accessors with [`attributes!`](crate::attributes), one
/// trait per kind (the orphan rule forbids inherent impls on a foreign type), so an
/// unknown attribute is a compile error:
///
/// ```ignore
/// cairn_core::attributes! {
///     /// Typed attributes of a load balancer.
///     pub trait LoadBalancerAttrs for LoadBalancer {
///         /// Its public IPv4.
///         fn ipv4 -> std::net::Ipv4Addr = "ipv4";
///     }
/// }
/// // stack code: RRSet::a(&zone, "www", lb.ipv4())
/// ```
pub struct Handle<R> {
    address: Address,
    key: Box<str>,
    _r: PhantomData<fn() -> R>,
}

impl<R> Handle<R> {
    pub(crate) fn new(address: Address, key: impl Into<Box<str>>) -> Self {
        Handle {
            address,
            key: key.into(),
            _r: PhantomData,
        }
    }

    /// The resource's natural key (its name at the provider), for specs that name it by
    /// key (see [`KeyRef`](crate::value::KeyRef)).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A typed reference to an attribute path of this resource's observed value (core's
    /// own test kinds; providers declare theirs with [`attributes!`](crate::attributes)).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn attr<T>(&self, path: &str) -> AttrRef<T> {
        AttrRef::new(self.address.clone(), path)
    }
}

impl<R> NodeRef for Handle<R> {
    fn address(&self) -> &Address {
        &self.address
    }
}

impl<R> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Handle::new(self.address.clone(), self.key.clone())
    }
}

impl<R> fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.address)
    }
}

/// Declares a kind's typed attributes: a trait with one accessor per attribute, implemented
/// for the kind's [`Handle`], and the constant `<Kind>::ATTRIBUTES` listing their paths (put
/// it in the kind's [`Schema::attributes`], so the plan refuses a reference to a path the
/// kind does not have and the schema check walks each path through the kind's examples).
///
/// ```ignore
/// cairn_core::attributes! {
///     /// Typed attributes of a server.
///     pub trait ServerAttrs for Server {
///         /// The server's id.
///         fn id -> u64 = "id";
///         /// Its public IPv4 address.
///         fn ipv4 -> std::net::Ipv4Addr = "ipv4";
///     }
/// }
/// ```
#[macro_export]
macro_rules! attributes {
    (
        $(#[$tmeta:meta])*
        $vis:vis trait $tr:ident for $kind:ty {
            $( $(#[$mmeta:meta])* fn $m:ident -> $t:ty = $path:literal; )*
        }
    ) => {
        $(#[$tmeta])*
        $vis trait $tr {
            $( $(#[$mmeta])* fn $m(&self) -> $crate::AttrRef<$t>; )*
        }

        impl $tr for $crate::Handle<$kind> {
            $(
                fn $m(&self) -> $crate::AttrRef<$t> {
                    $crate::AttrRef::new($crate::NodeRef::address(self).clone(), $path)
                }
            )*
        }

        impl $kind {
            /// The attribute paths other resources may reference (the typed accessors).
            pub const ATTRIBUTES: &'static [&'static str] = &[$($path),*];
        }
    };
}
