//! cairn-core: the engine of cairn. Typed resources and references, the stack graph,
//! field-level diff, plans, apply with bounded concurrency, gates, locks and rendering.
//!
//! Core knows no provider and no provider API: providers implement [`provider::Provider`]
//! for their kinds ([`resource::Resource`]), and stacks glue them together.

pub mod gate;
pub mod net;
pub mod provider;
pub mod resource;
pub mod tls;
pub mod value;

pub use provider::{
    Change, CheckResult, Declared, Diagnostic, Marker, ObserveRequest, Observed, PlannedChange,
    Provider, ProviderError,
};
pub use resource::{FieldError, Handle, KeyedList, NodeRef, Resource, Schema};
pub use value::{Address, AttrRef, Field, RawRef};
