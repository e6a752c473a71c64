//! What every collection-backed kind (`/servers`, `/networks`, …) shares: bulk observe by
//! label selector, creates that re-observe by name before retrying (a lost response is
//! adopted, never duplicated), and changes that converge from a fresh read, repeating after an
//! ambiguous failure or a conflict-type error. A kind states its wire type and its few
//! API calls in [`Collection`]; [`collection_kind!`](crate::collection_kind) derives the kit's
//! `Kind` from it.

use async_trait::async_trait;
use cairn_core::kit::{Found, Op, Query};
use cairn_core::{Marker, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Labels, Ops, STACK_LABEL, labels_with_marker, split_labels};
use crate::client::ApiError;
use crate::provider::Hetzner;

/// Error codes after which a converge round is simply re-read and retried.
pub(crate) const RECONVERGE: &[&str] = &[
    "target_already_defined",
    "server_already_attached",
    "load_balancer_already_attached",
    "firewall_already_applied",
    "firewall_already_removed",
    "source_port_already_used",
    "conflict",
    "locked",
    "rate_limit_exceeded",
    "unavailable",
];

/// Whether a failed round of changes should be re-read and tried again.
pub(crate) fn reconverge(e: &ApiError) -> bool {
    e.ambiguous() || e.code().is_some_and(|c| RECONVERGE.contains(&c))
}

/// A kind backed by one API collection with `id`, `name` and `labels`.
#[async_trait]
pub(crate) trait Collection: Send + Sync + 'static {
    /// The spec.
    type Spec: Resource;
    /// The object as the API returns it.
    type Api: DeserializeOwned + Send + Sync + 'static;
    /// The observed form (spec shape plus computed fields).
    type Observed: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The collection, e.g. `servers`.
    const COLLECTION: &'static str;
    /// The envelope key of one object, e.g. `server`.
    const SINGULAR: &'static str;

    /// The API object's id.
    fn id(api: &Self::Api) -> u64;
    /// The API object's name (its key).
    fn name(api: &Self::Api) -> &str;
    /// The API object's labels (marker included).
    fn labels(api: &Self::Api) -> &Labels;
    /// The observed object's id.
    fn observed_id(o: &Self::Observed) -> u64;
    /// The spec's user labels.
    fn spec_labels(spec: &Self::Spec) -> &Labels;
    /// API object → observed form. `declared` is the declared spec of the same key, if any
    /// (write-only fields are compared against it).
    fn observe(api: &Self::Api, declared: Option<&Self::Spec>) -> Self::Observed;
    /// [`observe`](Self::observe) for kinds that need the provider's context (the digest key
    /// of write-only fields) and may report what they could not tell as plan warnings.
    fn observe_in(
        _ctx: &Hetzner,
        api: &Self::Api,
        declared: Option<&Self::Spec>,
    ) -> Result<(Self::Observed, Vec<String>), ApiError> {
        Ok((Self::observe(api, declared), Vec::new()))
    }
    /// Extra cairn labels to write (keyed digests of write-only fields).
    fn extra_labels(
        _ctx: &Hetzner,
        _spec: &Self::Spec,
    ) -> Result<Vec<(&'static str, String)>, ApiError> {
        Ok(Vec::new())
    }
    /// Plan-time checks of a change against what was observed (e.g. a size that may only
    /// grow); each problem names the field.
    fn check(
        _before: Option<&Self::Observed>,
        _after: Option<&Self::Spec>,
    ) -> Vec<cairn_core::FieldError> {
        Vec::new()
    }
    /// A fully populated spec (the kit's schema check walks it).
    fn example() -> Self::Spec;
    /// A fully populated observed value.
    fn example_observed() -> Self::Observed;
    /// Creates the object; returns its id.
    async fn create(ops: &Ops<'_>, spec: &Self::Spec, labels: &Labels) -> Result<u64, ApiError>;
    /// Brings an existing object (as just read) to the spec and labels.
    async fn converge(
        ops: &Ops<'_>,
        cur: &Self::Api,
        spec: &Self::Spec,
        labels: &Labels,
    ) -> Result<(), ApiError>;
    /// Deletes the object (as just read).
    async fn delete(ops: &Ops<'_>, cur: &Self::Api) -> Result<(), ApiError> {
        ops.delete(&format!("/{}/{}", Self::COLLECTION, Self::id(cur)))
            .await
    }
}

fn found_of<K: Collection>(ctx: &Hetzner, api: &K::Api) -> Result<Found<K::Observed>, ApiError> {
    let name = K::name(api);
    let declared = ctx.declared::<K::Spec>(name);
    let (_, marker, _) = split_labels(K::labels(api));
    let (value, warnings) = K::observe_in(ctx, api, declared.as_ref())?;
    Ok(Found::new(name, value, marker).with_warnings(warnings))
}

/// Bulk observe: one paged list by the stack's label; declared keys not found that way are
/// looked up with `name=` (up to 3) or one full paged listing.
pub(crate) async fn observe<K: Collection>(
    ctx: &Hetzner,
    q: Query<'_>,
) -> Result<Vec<Found<K::Observed>>, ApiError> {
    let ops = ctx.ops();
    let sel = vec![(
        "label_selector".to_string(),
        format!("{STACK_LABEL}={}", q.stack),
    )];
    let mut found: Vec<K::Api> = ops.list::<K::Api>(K::COLLECTION, &sel).await?;
    let names: std::collections::HashSet<&str> = found.iter().map(K::name).collect();
    let missing: Vec<&String> = q
        .keys
        .iter()
        .filter(|k| !names.contains(k.as_str()))
        .collect();
    if missing.len() <= 3 {
        let got = futures::future::join_all(missing.iter().map(|k| {
            let ops = &ops;
            async move {
                ops.list::<K::Api>(K::COLLECTION, &[("name".into(), k.to_string())])
                    .await
            }
        }))
        .await;
        for g in got {
            found.extend(g?);
        }
    } else {
        let all = ops.list::<K::Api>(K::COLLECTION, &[]).await?;
        let wanted: std::collections::HashSet<&str> = missing.iter().map(|s| s.as_str()).collect();
        found.extend(all.into_iter().filter(|a| wanted.contains(K::name(a))));
    }
    found.iter().map(|a| found_of::<K>(ctx, a)).collect()
}

async fn find_api_by_name<K: Collection>(
    ops: &Ops<'_>,
    name: &str,
) -> Result<Option<K::Api>, ApiError> {
    Ok(ops
        .list::<K::Api>(K::COLLECTION, &[("name".into(), name.into())])
        .await?
        .into_iter()
        .next())
}

/// An object found under the name a create wanted: it is taken over only when it carries
/// this stack's marker (what a create whose response was lost leaves behind). Anything else
/// appeared between plan and apply and is not cairn's to take.
async fn find_own_by_name<K: Collection>(
    ops: &Ops<'_>,
    name: &str,
    stack: &str,
) -> Result<Option<u64>, ApiError> {
    let Some(api) = find_api_by_name::<K>(ops, name).await? else {
        return Ok(None);
    };
    let (_, marker, _) = super::split_labels(K::labels(&api));
    if marker.is_some_and(|m| m.owned_by(stack)) {
        Ok(Some(K::id(&api)))
    } else {
        Err(ApiError::Api {
            status: 409,
            code: "uniqueness_error".into(),
            message: format!(
                "a {} named {name:?} now exists that this stack did not create (no marker of stack {stack:?}); refusing to take it over — plan again to adopt it",
                K::SINGULAR
            ),
            details: serde_json::Value::Null,
        })
    }
}

async fn read<K: Collection>(ops: &Ops<'_>, id: u64) -> Result<K::Api, ApiError> {
    ops.get::<K::Api>(&format!("/{}/{id}", K::COLLECTION), K::SINGULAR)
        .await?
        .ok_or_else(|| gone(K::SINGULAR, id))
}

/// The error for an object that disappeared while being changed.
pub(crate) fn gone(what: &str, id: u64) -> ApiError {
    ApiError::Api {
        status: 404,
        code: "not_found".into(),
        message: format!("{what} {id} disappeared"),
        details: serde_json::Value::Null,
    }
}

fn labels_for<K: Collection>(
    ctx: &Hetzner,
    spec: &K::Spec,
    marker: &Marker,
) -> Result<Labels, ApiError> {
    Ok(labels_with_marker(
        K::spec_labels(spec),
        marker,
        &K::extra_labels(ctx, spec)?,
    ))
}

/// Converges object `id` from fresh reads until one round succeeds; returns the final read.
async fn converge_from_reads<K: Collection>(
    ops: &Ops<'_>,
    id: u64,
    spec: &K::Spec,
    labels: &Labels,
) -> Result<K::Api, ApiError> {
    let mut last = None;
    for _round in 0..8 {
        let cur = read::<K>(ops, id).await?;
        match K::converge(ops, &cur, spec, labels).await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) if reconverge(&e) => {
                tracing::debug!(%e, "re-reading {} {id} and converging again", K::SINGULAR);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    read::<K>(ops, id).await
}

/// Creates the object (adopting one a lost response already made) and converges it.
pub(crate) async fn create<K: Collection>(
    ctx: &Hetzner,
    spec: &K::Spec,
    op: &Op<'_, cairn_core::kit::NoStep>,
) -> Result<K::Observed, ApiError> {
    let ops = ctx.ops();
    let labels = labels_for::<K>(ctx, spec, op.marker)?;
    let mut id = None;
    for attempt in 0..6 {
        if attempt > 0
            && let Some(found) = find_own_by_name::<K>(&ops, op.key, &op.marker.stack).await?
        {
            // A previous attempt did happen (its response was lost): adopt it.
            id = Some(found);
            break;
        }
        match K::create(&ops, spec, &labels).await {
            Ok(i) => {
                id = Some(i);
                break;
            }
            Err(e) if e.code() == Some("uniqueness_error") => {
                if let Some(found) = find_own_by_name::<K>(&ops, op.key, &op.marker.stack).await? {
                    id = Some(found);
                    break;
                }
                return Err(e);
            }
            Err(e) if e.ambiguous() && attempt < 5 => {
                tracing::debug!(%e, "create {} {} outcome unknown; re-observing by name", K::SINGULAR, op.key);
            }
            Err(e) => return Err(e),
        }
    }
    let id = id.ok_or_else(|| {
        ApiError::Transport(format!("could not create {} {}", K::SINGULAR, op.key))
    })?;
    let api = converge_from_reads::<K>(&ops, id, spec, &labels).await?;
    ctx.remember(spec);
    Ok(K::observe_in(ctx, &api, Some(spec))?.0)
}

/// Brings the observed object to the spec in place.
pub(crate) async fn update<K: Collection>(
    ctx: &Hetzner,
    prior: &K::Observed,
    spec: &K::Spec,
    op: &Op<'_, cairn_core::kit::NoStep>,
) -> Result<K::Observed, ApiError> {
    let ops = ctx.ops();
    let labels = labels_for::<K>(ctx, spec, op.marker)?;
    let api = converge_from_reads::<K>(&ops, K::observed_id(prior), spec, &labels).await?;
    ctx.remember(spec);
    Ok(K::observe_in(ctx, &api, Some(spec))?.0)
}

/// Deletes the object from a fresh read (absent counts as done).
pub(crate) async fn delete<K: Collection>(
    ctx: &Hetzner,
    prior: &K::Observed,
) -> Result<(), ApiError> {
    let ops = ctx.ops();
    let id = K::observed_id(prior);
    for attempt in 0..6 {
        let path = format!("/{}/{id}", K::COLLECTION);
        let Some(cur) = ops.get::<K::Api>(&path, K::SINGULAR).await? else {
            return Ok(());
        };
        match K::delete(&ops, &cur).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 && reconverge(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Releases the object: removes cairn's labels (marker and digests), keeps the user's, and
/// changes nothing else.
pub(crate) async fn release<K: Collection>(
    ctx: &Hetzner,
    prior: &K::Observed,
) -> Result<(), ApiError> {
    let ops = ctx.ops();
    let id = K::observed_id(prior);
    let path = format!("/{}/{id}", K::COLLECTION);
    let Some(cur) = ops.get::<K::Api>(&path, K::SINGULAR).await? else {
        return Ok(());
    };
    let (user, _, own) = split_labels(K::labels(&cur));
    if !own.is_empty() {
        ops.put(&path, &super::LabelsOnly { labels: &user }).await?;
    }
    Ok(())
}

/// Implements the kit's `Kind<Hetzner>` for a [`Collection`] with single-step changes.
#[macro_export]
#[doc(hidden)]
macro_rules! collection_kind {
    ($t:ty) => {
        #[async_trait::async_trait]
        impl cairn_core::kit::Kind<$crate::provider::Hetzner> for $t {
            type Spec = <$t as $crate::kinds::collection::Collection>::Spec;
            type Observed = <$t as $crate::kinds::collection::Collection>::Observed;
            type Step = cairn_core::kit::NoStep;

            async fn observe(
                &self,
                ctx: &$crate::provider::Hetzner,
                q: cairn_core::kit::Query<'_>,
            ) -> Result<Vec<cairn_core::kit::Found<Self::Observed>>, $crate::client::ApiError> {
                $crate::kinds::collection::observe::<$t>(ctx, q).await
            }

            async fn create(
                &self,
                ctx: &$crate::provider::Hetzner,
                spec: &Self::Spec,
                op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Result<Self::Observed, $crate::client::ApiError> {
                $crate::kinds::collection::create::<$t>(ctx, spec, &op).await
            }

            async fn update(
                &self,
                ctx: &$crate::provider::Hetzner,
                prior: &Self::Observed,
                spec: &Self::Spec,
                op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Result<Self::Observed, $crate::client::ApiError> {
                $crate::kinds::collection::update::<$t>(ctx, prior, spec, &op).await
            }

            async fn delete(
                &self,
                ctx: &$crate::provider::Hetzner,
                prior: &Self::Observed,
                _op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Result<(), $crate::client::ApiError> {
                $crate::kinds::collection::delete::<$t>(ctx, prior).await
            }

            async fn release(
                &self,
                ctx: &$crate::provider::Hetzner,
                prior: &Self::Observed,
                _op: cairn_core::kit::Op<'_, Self::Step>,
            ) -> Option<Result<(), $crate::client::ApiError>> {
                Some($crate::kinds::collection::release::<$t>(ctx, prior).await)
            }

            fn identity(o: &Self::Observed) -> Option<String> {
                Some(<$t as $crate::kinds::collection::Collection>::observed_id(o).to_string())
            }

            fn check(
                &self,
                _ctx: &$crate::provider::Hetzner,
                before: Option<&Self::Observed>,
                after: Option<&Self::Spec>,
            ) -> Vec<cairn_core::FieldError> {
                <$t as $crate::kinds::collection::Collection>::check(before, after)
            }

            fn example() -> Self::Spec {
                <$t as $crate::kinds::collection::Collection>::example()
            }

            fn example_observed() -> Option<Self::Observed> {
                Some(<$t as $crate::kinds::collection::Collection>::example_observed())
            }
        }
    };
}
