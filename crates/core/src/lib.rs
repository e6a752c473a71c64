//! cairn-core: the engine of cairn. Typed resources and references, the stack graph,
//! field-level diff, plans, apply with bounded concurrency, gates, locks and rendering.
//!
//! Core knows no provider and no provider API: providers implement [`provider::Provider`]
//! for their kinds ([`resource::Resource`]), and stacks glue them together.
//!
//! The flow: [`stack::StackBuilder`] → [`stack::Stack`] → [`planner::plan`] →
//! [`planner::Planned`] (shown with [`render`], saved as JSON) → [`apply::apply`].

pub mod apply;
pub mod backend;
pub mod diff;
pub mod digest_key;
pub mod gate;
pub mod kit;
pub mod lock;
pub mod net;
pub mod plan;
pub mod planner;
pub mod provider;
pub mod render;
pub mod resource;
pub mod rotation;
pub mod spec;
pub mod stack;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod value;

pub use apply::{ApplyOptions, ApplyReport, Outcome, Progress, apply};
pub use plan::{Action, Plan, ResourceChange};
pub use planner::{PlanError, PlanOptions, Planned, Providers, plan, plan_with};
pub use provider::{
    Change, CheckResult, Declared, Diagnostic, Marker, ObserveRequest, Observed, Origin, Pending,
    PlannedChange, Provider, ProviderError,
};
pub use resource::{FieldError, Handle, KeyedList, NodeRef, Resource, Schema};
pub use stack::{BuildError, GateHandle, Stack, StackBuilder};
pub use value::{Address, AttrRef, Field, KeyRef, RawRef};
