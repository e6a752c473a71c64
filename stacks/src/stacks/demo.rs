//! A small demo stack on the engine's in-memory provider, until the provider crates land:
//! a database, an app that references the database's id, a gate, and an edge proxy — with a
//! "before" world where the database was made by hand, the app drifted, and an old cache is
//! still owned by the stack.

use std::sync::Arc;
use std::time::Duration;

use cairn_core::gate::{GateTiming, TcpProbe};
use cairn_core::net::Dialer;
use cairn_core::testing::{MemoryProvider, Thing};
use cairn_core::{Marker, Providers, StackBuilder};

use super::{Loaded, StackDef, Target};

/// The demo stack's definition.
pub const DEF: StackDef = StackDef {
    name: "demo",
    credentials: &[],
    load,
};

fn thing(name: &str, size: i64, zone: &str) -> Thing {
    Thing {
        name: name.into(),
        size,
        zone: zone.into(),
        ..Default::default()
    }
}

fn load(_target: Target) -> anyhow::Result<Loaded> {
    let memory = Arc::new(MemoryProvider::new().with_latency(Duration::from_millis(20)));
    // The "before" world.
    let db_id = memory.seed(&thing("db", 2, "fsn1"), None);
    let mut app = thing("app", 1, "fsn1");
    app.inputs = vec![db_id.into()];
    memory.seed(
        &app,
        Some(Marker {
            stack: "demo".into(),
            fingerprint: None,
        }),
    );
    memory.seed(
        &thing("old-cache", 1, "fsn1"),
        Some(Marker {
            stack: "demo".into(),
            fingerprint: None,
        }),
    );

    let mut b = StackBuilder::new("demo");
    let db = b.add("db", thing("db", 2, "fsn1"));
    b.protect(&db);
    let mut app = thing("app", 2, "fsn1");
    app.inputs = vec![db.id().into()];
    app.script = Some("#cloud-config\npackages:\n  - curl\n  - jq\n".into());
    let app = b.add("app", app);
    let mut edge = thing("edge", 1, "nbg1");
    edge.inputs = vec![app.id().into()];
    let edge = b.add("edge", edge);
    // The "app" listens on loopback for the demo gate to find (kept for the process's life).
    let listener = Box::leak(Box::new(std::net::TcpListener::bind("127.0.0.1:0")?));
    let port = listener.local_addr()?.port();
    let ready = b.gate(
        "app-listening",
        TcpProbe::new("127.0.0.1", port, Dialer::new(Default::default(), true)),
        GateTiming {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
        },
    );
    b.depends_on(&ready, &app);
    b.depends_on(&edge, &ready);
    Ok(Loaded {
        stack: b.build()?,
        providers: Providers::new().with(memory),
    })
}
