//! An in-memory provider with configurable latency and failures, a call log and an
//! in-flight counter — for the engine's own tests, benches and the demo stack.
//! Its kinds: [`Thing`] and [`CbdThing`] (the same, but replaced create-before-destroy).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::{Change, Marker, ObserveRequest, Observed, Pending, Provider, ProviderError};
use crate::resource::{FieldError, Handle, Resource, Schema};
use crate::value::{AttrRef, Field};

/// A generic test resource: a name, a size, inputs that may reference other things' ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thing {
    /// Its key.
    pub name: String,
    /// Changing it is an in-place update.
    pub size: i64,
    /// Changing it forces a replace.
    pub zone: String,
    /// Values, often other things' ids.
    pub inputs: Vec<Field<String>>,
    /// Labels (authoritative map).
    pub labels: BTreeMap<String, String>,
    /// Never shown.
    pub secret: Option<String>,
    /// Multi-line text, diffed line by line.
    pub script: Option<String>,
}

const THING_SCHEMA: Schema = Schema {
    replace: &["zone"],
    computed: &["id"],
    sensitive: &["secret"],
    keyed: &[],
    unordered: &[],
    restart: &[],
    attributes: &["id"],
    create_before_destroy: false,
    read_only: false,
};

impl Resource for Thing {
    const KIND: &'static str = "test_thing";
    const PROVIDER: &'static str = "memory";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        THING_SCHEMA
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if self.name.is_empty() {
            out.push(FieldError::new("name", "must not be empty"));
        }
        if self.size < 0 {
            out.push(FieldError::new(
                "size",
                format!("must be ≥ 0, got {}", self.size),
            ));
        }
        out
    }
}

impl Handle<Thing> {
    /// The id the provider assigns (unknown until created).
    pub fn id(&self) -> AttrRef<String> {
        self.attr("id")
    }
}

/// A [`Thing`] whose replace creates the new one before destroying the old one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CbdThing(pub Thing);

impl Resource for CbdThing {
    const KIND: &'static str = "test_cbd_thing";
    const PROVIDER: &'static str = "memory";

    fn key(&self) -> String {
        self.0.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            create_before_destroy: true,
            ..THING_SCHEMA
        }
    }
}

impl Handle<CbdThing> {
    /// The id the provider assigns.
    pub fn id(&self) -> AttrRef<String> {
        self.attr("id")
    }
}

/// One stored object. Its value is kept as compact JSON text and read into a [`Value`] only
/// when observed, so a world of 100,000 objects stays small.
#[derive(Debug, Clone)]
struct Obj {
    id: String,
    key: String,
    json: Box<str>,
    marker: Option<Marker>,
}

impl Obj {
    fn value(&self) -> Value {
        compact(serde_json::from_str(&self.json).expect("stored values are valid JSON"))
    }
}

fn to_json(v: &Value) -> Box<str> {
    serde_json::to_string(v)
        .expect("values serialise")
        .into_boxed_str()
}

/// Waits until `deadline`, neither less nor noticeably more: the timer wheel (millisecond
/// ticks, deadlines rounded up) alone would overshoot each write by up to 1–2 ms, which a
/// bench comparing apply time with the critical path would wrongly charge to the engine. The
/// timer covers all but the last 2 ms; one shared thread ([`Sleeper`]) wakes the task at the
/// deadline itself (a blocking-pool task per write cost more than the engine's own work).
async fn sleep_until(deadline: Instant) {
    let coarse = deadline - Duration::from_millis(2);
    if Instant::now() < coarse {
        tokio::time::sleep_until(coarse.into()).await;
    }
    PreciseSleep {
        deadline,
        shared: None,
    }
    .await
}

/// What a [`PreciseSleep`] and the sleeper thread share: whether the deadline passed, and
/// the waker to call when it does.
struct Wake {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// A wait for an exact instant, woken by the [`Sleeper`] thread.
struct PreciseSleep {
    deadline: Instant,
    shared: Option<Arc<Wake>>,
}

impl Future for PreciseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline
            || self
                .shared
                .as_ref()
                .is_some_and(|w| w.done.load(Ordering::Acquire))
        {
            return Poll::Ready(());
        }
        match &self.shared {
            Some(w) => {
                *w.waker.lock().expect("waker lock") = Some(cx.waker().clone());
                // The sleeper may have fired between the check above and storing the waker.
                if w.done.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
            }
            None => {
                let w = Arc::new(Wake {
                    done: AtomicBool::new(false),
                    waker: Mutex::new(Some(cx.waker().clone())),
                });
                Sleeper::get().add(self.deadline, w.clone());
                self.shared = Some(w);
            }
        }
        Poll::Pending
    }
}

/// One thread for the whole process that wakes [`PreciseSleep`]s at their deadlines.
struct Sleeper {
    queue: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
}

/// A deadline in the sleeper's queue (ordered by deadline, then by arrival).
struct Entry {
    at: Instant,
    seq: u64,
    wake: Arc<Wake>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

impl Sleeper {
    fn get() -> &'static Sleeper {
        static SLEEPER: OnceLock<&'static Sleeper> = OnceLock::new();
        SLEEPER.get_or_init(|| {
            let s: &'static Sleeper = Box::leak(Box::new(Sleeper {
                queue: Mutex::new(BinaryHeap::new()),
                changed: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("memory-provider-sleeper".into())
                .spawn(move || s.run())
                .expect("sleeper thread");
            s
        })
    }

    fn add(&self, at: Instant, wake: Arc<Wake>) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut q = self.queue.lock().expect("sleeper lock");
        let earliest = q.peek().is_none_or(|Reverse(e)| at < e.at);
        q.push(Reverse(Entry { at, seq, wake }));
        drop(q);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut q = self.queue.lock().expect("sleeper lock");
        loop {
            let now = Instant::now();
            match q.peek() {
                None => q = self.changed.wait(q).expect("sleeper lock"),
                Some(Reverse(e)) if e.at <= now => {
                    let Reverse(e) = q.pop().expect("peeked");
                    e.wake.done.store(true, Ordering::Release);
                    if let Some(w) = e.wake.waker.lock().expect("waker lock").take() {
                        w.wake();
                    }
                }
                Some(Reverse(e)) => {
                    let left = e.at - now;
                    q = self.changed.wait_timeout(q, left).expect("sleeper lock").0;
                }
            }
        }
    }
}

/// A copy of `v` whose objects and lists hold no spare capacity.
fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, c)| (k, compact(c))).collect()),
        Value::Array(a) => {
            let mut a: Vec<Value> = a.into_iter().map(compact).collect();
            a.shrink_to_fit();
            Value::Array(a)
        }
        other => other,
    }
}

/// One provider call, for ordering assertions.
#[derive(Debug, Clone)]
pub struct Call {
    /// `observe`, `create`, `update` or `delete`.
    pub op: &'static str,
    /// The kind.
    pub kind: String,
    /// The key.
    pub key: String,
    /// When it started.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
}

/// The in-memory provider.
pub struct MemoryProvider {
    name: String,
    latency: Duration,
    fail: Mutex<HashSet<String>>,
    flaky: Mutex<HashMap<String, usize>>,
    objects: Mutex<HashMap<String, Vec<Obj>>>,
    next_id: AtomicU64,
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    writes: AtomicUsize,
    concurrency: usize,
    pending: Mutex<Vec<Pending>>,
    applied_pending: Mutex<Vec<String>>,
}

impl MemoryProvider {
    /// A provider called `memory` with no latency and a concurrency limit of 64.
    pub fn new() -> Self {
        MemoryProvider {
            name: "memory".into(),
            latency: Duration::ZERO,
            fail: Mutex::default(),
            flaky: Mutex::default(),
            objects: Mutex::default(),
            next_id: AtomicU64::new(1),
            calls: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            concurrency: 64,
            pending: Mutex::default(),
            applied_pending: Mutex::default(),
        }
    }

    /// Every write takes this long.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The provider's own concurrency limit.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Writes to objects with this key fail.
    pub fn fail_on(&self, key: &str) {
        self.fail.lock().expect("lock").insert(key.to_string());
    }

    /// The next `times` writes to objects with this key fail with a `retryable` error
    /// (code `busy`), as an API does while it is busy; later writes succeed.
    pub fn fail_retryable(&self, key: &str, times: usize) {
        self.flaky
            .lock()
            .expect("lock")
            .insert(key.to_string(), times);
    }

    /// Reports changes `id` of `kinds` as written but not in effect until they are applied.
    pub fn set_pending(&self, id: &str, kinds: &[&str]) {
        self.pending.lock().expect("lock").push(Pending {
            id: id.to_string(),
            description: format!("{id} has changes written but not applied"),
            step: format!("apply {id}"),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        });
    }

    /// The pending changes applied so far, by id, in order.
    pub fn applied_pending(&self) -> Vec<String> {
        self.applied_pending.lock().expect("lock").clone()
    }

    /// Stores an object as if made outside cairn (`marker: None`) or by a stack.
    pub fn seed<R: Resource>(&self, spec: &R, marker: Option<Marker>) -> String {
        let id = format!("id-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let mut value = serde_json::to_value(spec).expect("spec serialises");
        value["id"] = Value::String(id.clone());
        self.objects
            .lock()
            .expect("lock")
            .entry(R::KIND.to_string())
            .or_default()
            .push(Obj {
                id: id.clone(),
                key: spec.key(),
                json: to_json(&value),
                marker,
            });
        id
    }

    /// Changes a field of a stored object out of band (drift).
    pub fn tamper(&self, kind: &str, key: &str, field: &str, v: Value) {
        let mut objs = self.objects.lock().expect("lock");
        if let Some(o) = objs
            .get_mut(kind)
            .and_then(|l| l.iter_mut().find(|o| o.key == key))
        {
            let mut value = o.value();
            value[field] = v;
            o.json = to_json(&value);
        }
    }

    /// How many objects of `kind` with `key` exist (duplicates would show as > 1).
    pub fn count(&self, kind: &str, key: &str) -> usize {
        self.objects
            .lock()
            .expect("lock")
            .get(kind)
            .map_or(0, |l| l.iter().filter(|o| o.key == key).count())
    }

    /// The stored value of an object.
    pub fn value(&self, kind: &str, key: &str) -> Option<Value> {
        self.objects
            .lock()
            .expect("lock")
            .get(kind)?
            .iter()
            .find(|o| o.key == key)
            .map(Obj::value)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    /// Number of create/update/delete calls so far.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// The most writes that ever ran at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Carries out a write that began at `start` (its own work counts toward its latency):
    /// waits until `start + latency`, then applies `f`.
    async fn write<T>(
        &self,
        op: &'static str,
        start: Instant,
        change: &Change<'_>,
        f: impl FnOnce(&mut HashMap<String, Vec<Obj>>) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.latency.is_zero() {
            sleep_until(start + self.latency).await;
        }
        let failing = self.fail.lock().expect("lock").contains(change.key);
        let busy = self
            .flaky
            .lock()
            .expect("lock")
            .get_mut(change.key)
            .is_some_and(|left| {
                let hit = *left > 0;
                *left = left.saturating_sub(1);
                hit
            });
        let result = if busy {
            Err(
                ProviderError::new(format!("{op} {}", change.address), "busy, try again")
                    .with_code("busy")
                    .with_retryable(true),
            )
        } else if failing {
            Err(
                ProviderError::new(format!("{op} {}", change.address), "injected failure")
                    .with_code("injected"),
            )
        } else {
            f(&mut self.objects.lock().expect("lock"))
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.calls.lock().expect("lock").push(Call {
            op,
            kind: change.kind.to_string(),
            key: change.key.to_string(),
            start,
            end: Instant::now(),
        });
        result
    }

    /// The marker stored on an object, if any.
    pub fn marker(&self, kind: &str, key: &str) -> Option<Marker> {
        self.objects
            .lock()
            .expect("lock")
            .get(kind)?
            .iter()
            .find(|o| o.key == key)?
            .marker
            .clone()
    }

    /// The objects a value's `inputs` point at, by id.
    fn uses(by_id: &HashMap<&str, (&str, &str)>, value: &Value) -> Vec<(String, String)> {
        value["inputs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|id| by_id.get(id))
                    .map(|(k, key)| (k.to_string(), key.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for MemoryProvider {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self, kind: &str) -> Option<Schema> {
        match kind {
            Thing::KIND => Some(Thing::schema()),
            CbdThing::KIND => Some(CbdThing::schema()),
            _ => None,
        }
    }

    fn kinds(&self) -> &[&'static str] {
        &[Thing::KIND, CbdThing::KIND]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn validates(&self) -> bool {
        false
    }

    async fn pending(&self) -> Result<Vec<Pending>, ProviderError> {
        Ok(self.pending.lock().expect("lock").clone())
    }

    async fn apply_pending(&self, id: &str) -> Result<(), ProviderError> {
        let mut pending = self.pending.lock().expect("lock");
        let before = pending.len();
        pending.retain(|p| p.id != id);
        if pending.len() == before {
            return Err(ProviderError::new(
                format!("apply pending {id}"),
                "nothing pending",
            ));
        }
        self.applied_pending
            .lock()
            .expect("lock")
            .push(id.to_string());
        Ok(())
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        let objs = self.objects.lock().expect("lock");
        let keys: HashSet<&str> = req.keys.iter().map(String::as_str).collect();
        let by_id: HashMap<&str, (&str, &str)> = objs
            .iter()
            .flat_map(|(kind, l)| {
                l.iter()
                    .map(move |o| (o.id.as_str(), (kind.as_str(), o.key.as_str())))
            })
            .collect();
        Ok(objs
            .get(req.kind)
            .map(|l| {
                l.iter()
                    .filter(|o| {
                        keys.contains(o.key.as_str())
                            || o.marker.as_ref().is_some_and(|m| m.stack == req.stack)
                    })
                    .map(|o| {
                        let value = o.value();
                        Observed {
                            key: o.key.clone(),
                            uses: Self::uses(&by_id, &value),
                            value,
                            marker: o.marker.clone(),
                            warnings: Vec::new(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let start = Instant::now();
        let id = format!("id-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let mut value = change.desired.cloned().unwrap_or(Value::Null);
        value["id"] = Value::String(id.clone());
        let json = to_json(&value);
        self.write("create", start, &change, |objs| {
            objs.entry(change.kind.to_string()).or_default().push(Obj {
                id,
                key: change.key.to_string(),
                json,
                marker: Some(change.marker.clone()),
            });
            Ok(value)
        })
        .await
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        let start = Instant::now();
        let prior_id = change
            .prior
            .and_then(|p| p.value["id"].as_str())
            .unwrap_or_default()
            .to_string();
        self.write("update", start, &change, |objs| {
            let obj = objs
                .get_mut(change.kind)
                .and_then(|l| l.iter_mut().find(|o| o.id == prior_id))
                .ok_or_else(|| {
                    ProviderError::new(format!("update {}", change.address), "object not found")
                        .with_code("not_found")
                })?;
            let mut value = change.desired.cloned().unwrap_or(Value::Null);
            value["id"] = Value::String(obj.id.clone());
            obj.json = to_json(&value);
            obj.marker = Some(change.marker.clone());
            Ok(value)
        })
        .await
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        let start = Instant::now();
        let prior_id = change
            .prior
            .and_then(|p| p.value["id"].as_str())
            .unwrap_or_default()
            .to_string();
        self.write("delete", start, &change, |objs| {
            let list = objs.entry(change.kind.to_string()).or_default();
            let before = list.len();
            list.retain(|o| o.id != prior_id);
            if list.len() == before {
                return Err(ProviderError::new(
                    format!("delete {}", change.address),
                    "object not found",
                )
                .with_code("not_found"));
            }
            Ok(())
        })
        .await
    }

    async fn release(&self, change: Change<'_>) -> Result<(), ProviderError> {
        let start = Instant::now();
        let prior_id = change
            .prior
            .and_then(|p| p.value["id"].as_str())
            .unwrap_or_default()
            .to_string();
        self.write("release", start, &change, |objs| {
            let obj = objs
                .entry(change.kind.to_string())
                .or_default()
                .iter_mut()
                .find(|o| o.id == prior_id)
                .ok_or_else(|| {
                    ProviderError::new(format!("release {}", change.address), "object not found")
                        .with_code("not_found")
                })?;
            obj.marker = None;
            Ok(())
        })
        .await
    }
}
