//! Glue between apply and the backend's history: a [`Progress`] that turns every finished
//! resource change into a redacted [`ChangeRecord`] and a writer task that stores them in
//! batches as the apply goes, so a run that fails midway or is killed keeps what it did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::backend::{Backend, ChangeRecord, Redactor};
use cairn_core::{Address, Outcome, Planned, Progress};
use tokio::sync::mpsc;

/// Wraps a progress display and records each finished change.
pub struct Recorder {
    inner: Arc<dyn Progress>,
    redactor: Redactor,
    actions: HashMap<String, String>,
    started: Mutex<HashMap<String, String>>,
    tx: Mutex<Option<mpsc::UnboundedSender<ChangeRecord>>>,
}

/// The task storing a run's changes; [`Writer::finish`] waits for it.
pub struct Writer {
    task: tokio::task::JoinHandle<Result<usize, String>>,
}

impl Recorder {
    /// A recorder for `planned`'s run `run` on `backend`, showing progress on `inner`.
    pub fn start(
        backend: Arc<dyn Backend>,
        run: String,
        planned: &Planned,
        inner: Arc<dyn Progress>,
    ) -> (Arc<Recorder>, Writer) {
        let (tx, rx) = mpsc::unbounded_channel();
        let actions = planned
            .plan
            .resource_changes
            .iter()
            .map(|c| (c.address.0.clone(), c.actions.join("+")))
            .collect();
        let rec = Arc::new(Recorder {
            inner,
            redactor: Redactor::for_plan(planned),
            actions,
            started: Mutex::default(),
            tx: Mutex::new(Some(tx)),
        });
        let task = tokio::spawn(write_all(backend, run, rx));
        (rec, Writer { task })
    }

    /// No more changes: lets the writer drain and end.
    pub fn close(&self) {
        self.tx.lock().expect("recorder").take();
    }
}

impl Progress for Recorder {
    fn started(&self, address: &Address, what: &str) {
        self.started
            .lock()
            .expect("recorder")
            .insert(address.0.clone(), what.to_string());
        self.inner.started(address, what);
    }

    fn finished(&self, address: &Address, outcome: &Outcome, elapsed: Duration) {
        self.inner.finished(address, outcome, elapsed);
        let (outcome, error) = match outcome {
            Outcome::Unchanged => return,
            Outcome::Done => ("done", None),
            Outcome::Failed(e) => ("failed", Some(self.redactor.redact(e))),
            Outcome::Skipped(e) => ("skipped", Some(self.redactor.redact(e))),
        };
        let action = self
            .started
            .lock()
            .expect("recorder")
            .remove(&address.0)
            .or_else(|| self.actions.get(&address.0).cloned())
            .unwrap_or_else(|| "change".into());
        let record = ChangeRecord {
            address: address.0.clone(),
            action,
            outcome: outcome.into(),
            duration_ms: elapsed.as_millis() as i64,
            error,
        };
        if let Some(tx) = self.tx.lock().expect("recorder").as_ref() {
            let _ = tx.send(record);
        }
    }
}

/// Stores changes in batches; a failed write is retried (the database may be restarting)
/// for up to a minute before the writer gives up and says how many it could not store.
async fn write_all(
    backend: Arc<dyn Backend>,
    run: String,
    mut rx: mpsc::UnboundedReceiver<ChangeRecord>,
) -> Result<usize, String> {
    let mut written = 0;
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut tries = 0;
        loop {
            match backend.record_changes(&run, &batch).await {
                Ok(()) => break,
                Err(e) if tries < 120 => {
                    tries += 1;
                    tracing::warn!("storing changes of run {run}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "{} change(s) of run {run} not stored: {e}",
                        batch.len() + rx.len()
                    ));
                }
            }
        }
        written += batch.len();
        batch.clear();
    }
    Ok(written)
}

impl Writer {
    /// Waits until every recorded change is stored; the error says what was lost.
    pub async fn finish(self) -> Result<usize, String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}
