//! `rotate` on core's in-memory provider with a fake rotation that records each call and
//! the machine's id at that moment: phases in order, one node at a time, refusals that
//! touch nothing, a failed apply that stops the rotation, resuming after an interruption,
//! and `--due`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::apply::NoProgress;
use cairn_core::backend::Backend;
use cairn_core::backend::local::LocalBackend;
use cairn_core::rotation::Rotation;
use cairn_core::testing::{MemoryProvider, Thing};
use cairn_core::{Address, ApplyOptions, Providers, StackBuilder, apply, plan};
use tokio::sync::Notify;

use super::{RotateArgs, Select, rotate};
use crate::cli::stack_def::Loaded;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// A rotation over `test_thing.m-<node>` machines that records `<phase> <node> <machine id>`.
struct Fake {
    m: Arc<MemoryProvider>,
    calls: Mutex<Vec<String>>,
    refuse: Option<&'static str>,
    /// `"<phase> <node>"` that never returns (the process is killed there).
    hang: Option<&'static str>,
    hung: Notify,
    period: Option<Duration>,
}

impl Fake {
    fn new(m: &Arc<MemoryProvider>) -> Fake {
        Fake {
            m: m.clone(),
            calls: Mutex::default(),
            refuse: None,
            hang: None,
            hung: Notify::new(),
            period: None,
        }
    }

    fn id(&self, node: &str) -> String {
        machine_id(&self.m, node)
    }

    async fn call(&self, phase: &str, node: &str) {
        let id = self.id(node);
        self.calls
            .lock()
            .unwrap()
            .push(format!("{phase} {node} {id}"));
        if self.hang == Some(&format!("{phase} {node}")) {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Rotation for Fake {
    fn nodes(&self) -> Vec<String> {
        NODES.iter().map(|n| n.to_string()).collect()
    }
    fn machine(&self, node: &str) -> Option<Address> {
        NODES
            .contains(&node)
            .then(|| Address(format!("test_thing.m-{node}")))
    }
    fn period(&self) -> Option<Duration> {
        self.period
    }
    async fn preflight(&self, node: &str) -> Result<(), String> {
        self.call("preflight", node).await;
        match self.refuse {
            Some(n) if n == node => Err(format!("node {node} is NotReady")),
            _ => Ok(()),
        }
    }
    fn before_steps(&self, node: &str) -> Vec<String> {
        vec![format!("cordon and drain {node}")]
    }
    async fn before(&self, node: &str) -> Result<(), String> {
        self.call("before", node).await;
        Ok(())
    }
    fn after_steps(&self, node: &str) -> Vec<String> {
        vec![format!("wait until {node} is Ready, uncordon it")]
    }
    async fn after(&self, node: &str) -> Result<(), String> {
        self.call("after", node).await;
        Ok(())
    }
}

fn machine_id(m: &MemoryProvider, node: &str) -> String {
    m.value("test_thing", &format!("m-{node}"))
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Per node a machine `m-<node>` and the node `k-<node>` installed on it (using its id).
fn loaded(m: &Arc<MemoryProvider>, fake: &Arc<Fake>) -> Loaded {
    let mut b = StackBuilder::new("k3s");
    for n in NODES {
        let machine = b.add(
            &format!("m-{n}"),
            Thing {
                name: format!("m-{n}"),
                size: 1,
                zone: "a".into(),
                ..Default::default()
            },
        );
        b.add(
            &format!("k-{n}"),
            Thing {
                name: format!("k-{n}"),
                size: 1,
                zone: "a".into(),
                inputs: vec![machine.id().into()],
                ..Default::default()
            },
        );
    }
    Loaded {
        stack: b.build().unwrap(),
        providers: Providers::new().with(m.clone()),
        keep: Vec::new(),
        rotation: Some(fake.clone()),
    }
}

/// The world with the stack applied, a fake rotation over it and a local backend.
async fn world() -> (Arc<MemoryProvider>, Arc<dyn Backend>, tempfile::TempDir) {
    let m = Arc::new(MemoryProvider::new());
    let l = loaded(&m, &Arc::new(Fake::new(&m)));
    let planned = plan(&l.stack, &l.providers).await.unwrap();
    let report = apply(
        &l.stack,
        &l.providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:?}");
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
    (m, backend, dir)
}

fn args(select: Select) -> RotateArgs {
    RotateArgs {
        select,
        approve: true,
        // An interrupted holder's lease must expire first on PostgreSQL.
        lock_wait: Duration::from_secs(60),
        json: false,
        terminal: false,
    }
}

fn ids(m: &MemoryProvider) -> Vec<String> {
    NODES.iter().map(|n| machine_id(m, n)).collect()
}

/// The rotation records (`address action detail`) of the newest run.
async fn journal(backend: &dyn Backend) -> (String, Vec<String>) {
    let runs = backend.runs(Some("k3s"), 1).await.unwrap();
    let (run, changes) = backend.run(&runs[0].id).await.unwrap();
    assert_eq!(run.holder.operation, "rotate");
    let lines = changes
        .iter()
        .filter(|c| c.address.starts_with("rotation."))
        .map(|c| {
            format!(
                "{} {} {}",
                c.address,
                c.action,
                c.error.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string()
        })
        .collect();
    (run.status, lines)
}

/// Runs a rotation until `fake` hangs, then drops it there (as a killed process stops).
async fn interrupt(
    m: &Arc<MemoryProvider>,
    fake: &Arc<Fake>,
    backend: &Arc<dyn Backend>,
    select: Select,
) {
    let (l, a) = (loaded(m, fake), args(select));
    tokio::select! {
        r = rotate(&l, backend.clone(), &a) => panic!("the rotation ended: {r:?}"),
        () = fake.hung.notified() => {}
    }
}

#[tokio::test]
async fn one_node_is_rotated_with_its_phases_in_order() {
    let (m, backend, _dir) = world().await;
    let fake = Arc::new(Fake::new(&m));
    let old = ids(&m);
    let code = rotate(
        &loaded(&m, &fake),
        backend.clone(),
        &args(Select::Node("n2".into())),
    )
    .await
    .unwrap();
    assert_eq!(code, 0);
    let new = ids(&m);
    assert_ne!(new[1], old[1], "n2's machine was not replaced");
    assert_eq!(
        (&new[0], &new[2]),
        (&old[0], &old[2]),
        "other machines touched"
    );
    assert_eq!(
        fake.calls(),
        [
            format!("preflight n2 {}", old[1]),
            format!("before n2 {}", old[1]),
            format!("after n2 {}", new[1]),
        ]
    );
    assert_eq!(
        m.value("test_thing", "k-n2").unwrap()["inputs"][0],
        new[1].as_str(),
        "the node on the machine followed its replacement"
    );
    let (status, records) = journal(backend.as_ref()).await;
    assert_eq!(status, "succeeded");
    assert_eq!(
        records,
        [
            format!("rotation.n2 started machine {}", old[1]),
            format!("rotation.n2 replaced machine {}", old[1]),
            "rotation.n2 done".to_string(),
        ]
    );
}

#[tokio::test]
async fn all_rotates_every_node_one_at_a_time_in_order() {
    let (m, backend, _dir) = world().await;
    let fake = Arc::new(Fake::new(&m));
    rotate(&loaded(&m, &fake), backend, &args(Select::All))
        .await
        .unwrap();
    let phases: Vec<String> = fake
        .calls()
        .iter()
        .map(|c| c.rsplit_once(' ').unwrap().0.to_string())
        .collect();
    assert_eq!(
        phases,
        [
            "preflight n1",
            "before n1",
            "after n1",
            "preflight n2",
            "before n2",
            "after n2",
            "preflight n3",
            "before n3",
            "after n3"
        ]
    );
    // Each node's machine was replaced between its before and after, none earlier.
    for c in fake.calls().chunks(3) {
        let id = |s: &str| s.rsplit_once(' ').unwrap().1.to_string();
        assert_eq!(id(&c[0]), id(&c[1]), "{c:?}");
        assert_ne!(id(&c[1]), id(&c[2]), "{c:?}");
    }
}

#[tokio::test]
async fn a_refused_preflight_stops_the_rotation_naming_the_node_and_touches_nothing() {
    let (m, backend, _dir) = world().await;
    let mut fake = Fake::new(&m);
    fake.refuse = Some("n1");
    let fake = Arc::new(fake);
    let writes = m.writes();
    let err = rotate(&loaded(&m, &fake), backend.clone(), &args(Select::All))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("rotation of node n1 stopped: preflight refused: node n1 is NotReady"),
        "{msg}"
    );
    assert_eq!(m.writes(), writes, "something was written");
    assert_eq!(fake.calls().len(), 1, "{:?}", fake.calls());
    let (status, records) = journal(backend.as_ref()).await;
    assert_eq!(status, "failed");
    assert_eq!(
        records,
        ["rotation.n1 failed preflight refused: node n1 is NotReady"]
    );
}

#[tokio::test]
async fn without_a_terminal_or_approve_it_refuses_and_touches_nothing() {
    let (m, backend, _dir) = world().await;
    let fake = Arc::new(Fake::new(&m));
    let writes = m.writes();
    let mut a = args(Select::All);
    a.approve = false;
    let err = rotate(&loaded(&m, &fake), backend, &a).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to rotate stack k3s without approval: stdin is not a terminal; pass --approve"
    );
    assert_eq!(m.writes(), writes);
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn a_failed_apply_stops_the_rotation_before_the_next_node() {
    let (m, backend, _dir) = world().await;
    let fake = Arc::new(Fake::new(&m));
    m.fail_on("m-n2");
    let old = ids(&m);
    let err = rotate(&loaded(&m, &fake), backend.clone(), &args(Select::All))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("rotation of node n2 stopped: apply failed"),
        "{msg}"
    );
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.contains("n3") || c.starts_with("after n2")),
        "{:?}",
        fake.calls()
    );
    assert_eq!(ids(&m)[2], old[2], "n3's machine was touched");
    let (status, records) = journal(backend.as_ref()).await;
    assert_eq!(status, "failed");
    assert!(
        records
            .last()
            .is_some_and(|r| r.starts_with("rotation.n2 failed apply failed")),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_rerun_resumes_an_interrupted_rotation_without_replacing_a_replaced_machine_again() {
    let (m, backend, _dir) = world().await;
    resumes_after_interruption(&m, backend).await;
}

#[tokio::test]
async fn the_journal_in_postgresql_resumes_an_interrupted_rotation_too() {
    let (m, _, _dir) = world().await;
    let cluster = cairn_backend_pg::testing::Cluster::start();
    let pg = cairn_backend_pg::PgBackend::new(&cluster.url())
        .unwrap()
        .with_lease(Duration::from_millis(500));
    pg.check().await.unwrap();
    resumes_after_interruption(&m, Arc::new(pg)).await;
}

/// Interrupts `--all` in n2's `after` (n2's machine replaced), reruns it, and checks that
/// n1 is skipped, n2 not replaced again, n3 rotated, and the journal says so.
async fn resumes_after_interruption(m: &Arc<MemoryProvider>, backend: Arc<dyn Backend>) {
    let mut fake = Fake::new(m);
    fake.hang = Some("after n2");
    let fake = Arc::new(fake);
    let old = ids(m);
    interrupt(m, &fake, &backend, Select::All).await;
    let replaced = ids(m);
    assert_ne!(replaced[0], old[0]);
    assert_ne!(replaced[1], old[1]);
    assert_eq!(replaced[2], old[2]);

    let again = Arc::new(Fake::new(m));
    rotate(&loaded(m, &again), backend.clone(), &args(Select::All))
        .await
        .unwrap();
    let now = ids(m);
    assert_eq!(now[0], replaced[0], "n1 was rotated twice");
    assert_eq!(now[1], replaced[1], "n2's machine was replaced again");
    assert_ne!(now[2], old[2]);
    assert_eq!(
        again.calls(),
        [
            format!("after n2 {}", now[1]),
            format!("preflight n3 {}", old[2]),
            format!("before n3 {}", old[2]),
            format!("after n3 {}", now[2]),
        ]
    );
    let (status, records) = journal(backend.as_ref()).await;
    assert_eq!(status, "succeeded");
    assert_eq!(
        records[0],
        format!("rotation.n2 replaced machine {}", old[1])
    );
    assert_eq!(records[1], "rotation.n2 done");
}

#[tokio::test]
async fn a_rerun_rotates_an_interrupted_node_whose_machine_is_unchanged_from_before() {
    let (m, backend, _dir) = world().await;
    let mut fake = Fake::new(&m);
    fake.hang = Some("before n1");
    let fake = Arc::new(fake);
    let old = ids(&m);
    interrupt(&m, &fake, &backend, Select::Node("n1".into())).await;
    assert_eq!(ids(&m), old);

    let again = Arc::new(Fake::new(&m));
    rotate(
        &loaded(&m, &again),
        backend,
        &args(Select::Node("n1".into())),
    )
    .await
    .unwrap();
    let now = ids(&m);
    assert_ne!(now[0], old[0]);
    assert_eq!(
        again.calls(),
        [
            format!("before n1 {}", old[0]),
            format!("after n1 {}", now[0])
        ]
    );
}

#[tokio::test]
async fn due_rotates_the_nodes_not_rotated_within_the_period() {
    let (m, backend, _dir) = world().await;
    let mut fake = Fake::new(&m);
    fake.period = Some(Duration::from_secs(86_400));
    let fake = Arc::new(fake);
    rotate(
        &loaded(&m, &fake),
        backend.clone(),
        &args(Select::Node("n2".into())),
    )
    .await
    .unwrap();
    let after_n2 = ids(&m);
    rotate(&loaded(&m, &fake), backend.clone(), &args(Select::Due))
        .await
        .unwrap();
    let now = ids(&m);
    assert_eq!(now[1], after_n2[1], "n2 was rotated a day early");
    assert_ne!(now[0], after_n2[0]);
    assert_ne!(now[2], after_n2[2]);
    let calls = fake.calls().len();
    rotate(&loaded(&m, &fake), backend, &args(Select::Due))
        .await
        .unwrap();
    assert_eq!(
        fake.calls().len(),
        calls,
        "a node was rotated while none is due"
    );
    assert_eq!(ids(&m), now);
}

#[tokio::test]
async fn a_stack_without_a_rotation_is_refused_naming_it() {
    let (m, backend, _dir) = world().await;
    let mut l = loaded(&m, &Arc::new(Fake::new(&m)));
    l.rotation = None;
    let err = rotate(&l, backend, &args(Select::All)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stack k3s has no rotation: it declares no nodes to rotate"
    );
}

#[tokio::test]
async fn the_rotation_plan_shows_each_node_s_steps_and_its_destructive_replacement() {
    let (m, backend, _dir) = world().await;
    let fake = Arc::new(Fake::new(&m));
    let l = loaded(&m, &fake);
    let a = args(Select::All);
    let lease = backend
        .acquire(
            "k3s",
            &cairn_core::backend::Holder::current("rotate"),
            Duration::ZERO,
        )
        .await
        .unwrap();
    let r = super::Rotator {
        loaded: &l,
        rotation: fake.as_ref(),
        backend: &backend,
        lease: lease.as_ref(),
        run: "test",
        args: &a,
    };
    let mut plans = Vec::new();
    for n in ["n1", "n3"] {
        plans.push(r.node_plan(n, None).await.unwrap());
    }
    let text = r.render(&plans, false);
    let n1 = text
        .find("1. node n1 — machine test_thing.m-n1")
        .expect(&text);
    let n3 = text
        .find("2. node n3 — machine test_thing.m-n3")
        .expect(&text);
    assert!(n1 < n3, "{text}");
    let first = &text[n1..n3];
    for want in [
        "» cordon and drain n1",
        "replace (DESTROYS test_thing.m-n1):",
        "-/+ test_thing.m-n1  (replace (destroy, then create) — replacement requested)",
        "~ test_thing.k-n1  (update in place — follows the requested replacement of test_thing.m-n1",
        "» wait until n1 is Ready, uncordon it",
    ] {
        assert!(first.contains(want), "{want:?} missing in:\n{first}");
    }
    assert!(
        !first.contains("m-n2") && !first.contains("m-n3"),
        "{first}"
    );
    assert!(fake.calls().is_empty(), "showing the plan ran a step");
}

#[tokio::test]
async fn an_abandoned_rotation_is_not_resumed_and_the_next_one_starts_afresh() {
    let (m, backend, _dir) = world().await;
    let mut fake = Fake::new(&m);
    fake.hang = Some("after n2");
    let fake = Arc::new(fake);
    interrupt(&m, &fake, &backend, Select::All).await;
    let replaced = ids(&m);

    let quiet = Arc::new(Fake::new(&m));
    rotate(&loaded(&m, &quiet), backend.clone(), &args(Select::Abandon))
        .await
        .unwrap();
    assert!(
        quiet.calls().is_empty(),
        "abandon touched a node: {:?}",
        quiet.calls()
    );
    assert_eq!(ids(&m), replaced, "abandon replaced a machine");
    let err = rotate(&loaded(&m, &quiet), backend.clone(), &args(Select::Abandon))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("has no unfinished rotation to abandon"),
        "{err}"
    );

    // n1 was done in the abandoned rotation; a new rotation rotates it again, from its
    // preflight, instead of skipping it.
    let again = Arc::new(Fake::new(&m));
    rotate(
        &loaded(&m, &again),
        backend,
        &args(Select::Node("n1".into())),
    )
    .await
    .unwrap();
    let now = ids(&m);
    assert_ne!(
        now[0], replaced[0],
        "n1 was skipped as if the rotation resumed"
    );
    assert_eq!(
        again.calls(),
        [
            format!("preflight n1 {}", replaced[0]),
            format!("before n1 {}", replaced[0]),
            format!("after n1 {}", now[0]),
        ]
    );
}

#[tokio::test]
async fn a_stack_with_changes_of_its_own_is_not_rotated_and_nothing_is_touched() {
    let (m, backend, _dir) = world().await;
    // Drift on another node's installation: the replacing apply would carry it out too.
    m.tamper("test_thing", "k-n3", "size", serde_json::json!(7));
    let fake = Arc::new(Fake::new(&m));
    let old = ids(&m);
    let writes = m.writes();
    let err = rotate(
        &loaded(&m, &fake),
        backend,
        &args(Select::Node("n1".into())),
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("not part of the rotation (test_thing.k-n3)"),
        "{msg}"
    );
    assert_eq!(ids(&m), old, "a machine was replaced");
    assert_eq!(m.writes(), writes, "something was written");
    assert_eq!(fake.calls(), [format!("preflight n1 {}", old[0])]);
}
