//! What every single-object pfSense kind shares (firewall alias, virtual IP, HAProxy
//! frontend, DNS host override): one entry of one API collection, written whole. Observe
//! lists the collection once; create and update look the object up by its key (ids are array
//! indexes that shift), then patch it or post it, apply the subsystem and observe the result;
//! delete looks it up right before deleting and applies. A kind states only what differs in
//! [`Single`] (endpoints, the key's list filter, the wire mapping, its subsystem);
//! [`single_kind!`] derives the kit's `Kind` from it.

use cairn_core::kit::{Found, NoStep, Op, Query};
use cairn_core::{Marker, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::wire::{self, Indexed, WithId};

/// A kind whose object is one entry of one pfSense collection.
pub(crate) trait Single: Send + Sync + 'static {
    /// The spec.
    type Spec: Resource;
    /// The object as the API sends it.
    type Api: DeserializeOwned + Indexed + Send;
    /// The observed form (spec shape, as the API reports it).
    type Observed: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The list endpoint, e.g. `/firewall/aliases`.
    const PLURAL: &'static str;
    /// The one-object endpoint (POST, PATCH, DELETE), e.g. `/firewall/alias`.
    const SINGULAR: &'static str;
    /// The list filter field that narrows a lookup by key (`None`: list everything).
    const LOOKUP: Option<&'static str>;
    /// The subsystem applied after a write.
    const SUBSYSTEM: Subsystem;

    /// API object → observed form, with its key, marker and what it uses.
    fn observed(api: Self::Api) -> Found<Self::Observed>;
    /// The body of a create or update (the marker appended to the description).
    fn body(spec: &Self::Spec, marker: &Marker) -> Value;
    /// A fully populated spec (the kit's schema check walks it).
    fn example() -> Self::Spec;
}

fn lookup<K: Single>(key: &str) -> Vec<(&'static str, String)> {
    K::LOOKUP
        .map(|f| (f, key.to_string()))
        .into_iter()
        .collect()
}

async fn list<K: Single>(ctx: &PfCtx) -> Result<Vec<Found<K::Observed>>, PfError> {
    let items = ctx.client.list(K::PLURAL, &[]).await?;
    Ok(wire::decode_all::<K::Api>(K::PLURAL, items)
        .into_iter()
        .map(K::observed)
        .collect())
}

/// Every object of the collection the query asks for (one list call).
pub(crate) async fn observe<K: Single>(
    ctx: &PfCtx,
    q: Query<'_>,
) -> Result<Vec<Found<K::Observed>>, PfError> {
    Ok(super::wanted(list::<K>(ctx).await?, q))
}

/// Creates or patches the object (looked up by key first), applies, observes it.
pub(crate) async fn write<K: Single>(
    ctx: &PfCtx,
    spec: &K::Spec,
    op: &Op<'_, NoStep>,
) -> Result<K::Observed, PfError> {
    let body = K::body(spec, op.marker);
    let filter = lookup::<K>(op.key);
    match wire::find::<K::Api>(&ctx.client, K::PLURAL, &filter, op.key).await? {
        Some((id, _)) => {
            let b = WithId {
                id,
                parent_id: None,
                body: &body,
            };
            ctx.client.patch(K::SINGULAR, &wire::body(&b)).await?;
        }
        None => {
            ctx.client.post(K::SINGULAR, &body).await?;
        }
    }
    ctx.client.apply(K::SUBSYSTEM).await?;
    super::written(list::<K>(ctx).await?, K::Spec::KIND, op.key)
}

/// Deletes the object with the operation's key (gone already counts as done) and applies.
pub(crate) async fn delete<K: Single>(ctx: &PfCtx, op: &Op<'_, NoStep>) -> Result<(), PfError> {
    let filter = lookup::<K>(op.key);
    let what = (K::PLURAL, K::SINGULAR);
    wire::delete_by_key::<K::Api>(&ctx.client, what, &filter, op.key, K::SUBSYSTEM).await?;
    Ok(())
}

/// Implements the kit's `Kind<PfCtx>` for a [`Single`] kind `$t` with spec `$spec` and
/// observed form `$observed` (named again because the kind type is public and `Single` is not).
macro_rules! single_kind {
    ($t:ty, $spec:ty, $observed:ty) => {
        #[async_trait::async_trait]
        impl cairn_core::kit::Kind<$crate::context::PfCtx> for $t {
            type Spec = $spec;
            type Observed = $observed;
            type Step = cairn_core::kit::NoStep;

            async fn observe(
                &self,
                ctx: &$crate::context::PfCtx,
                q: cairn_core::kit::Query<'_>,
            ) -> Result<Vec<cairn_core::kit::Found<Self::Observed>>, $crate::context::PfError> {
                $crate::kinds::single::observe::<$t>(ctx, q).await
            }

            async fn create(
                &self,
                ctx: &$crate::context::PfCtx,
                spec: &Self::Spec,
                op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Result<Self::Observed, $crate::context::PfError> {
                $crate::kinds::single::write::<$t>(ctx, spec, &op).await
            }

            async fn update(
                &self,
                ctx: &$crate::context::PfCtx,
                _prior: &Self::Observed,
                spec: &Self::Spec,
                op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Result<Self::Observed, $crate::context::PfError> {
                $crate::kinds::single::write::<$t>(ctx, spec, &op).await
            }

            async fn delete(
                &self,
                ctx: &$crate::context::PfCtx,
                _prior: &Self::Observed,
                op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Result<(), $crate::context::PfError> {
                $crate::kinds::single::delete::<$t>(ctx, &op).await
            }

            fn example() -> Self::Spec {
                <$t as $crate::kinds::single::Single>::example()
            }
        }
    };
}

pub(crate) use single_kind;
