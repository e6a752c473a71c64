//! Connecting to a backend while the stack loads. [`Checking::start`] runs
//! [`Backend::check`] (connect, authenticate, check the schema) in the background from the
//! moment the backend is selected; the command awaits [`Checking::ready`] before its first
//! provider call. A bad backend (unreachable, wrong credentials, newer schema) still fails
//! before anything touches a provider, but a good one's connect overlaps building the stack
//! and constructing its provider clients instead of preceding them.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{Backend, BackendError};

/// A backend whose check is under way.
pub struct Checking {
    backend: Arc<dyn Backend>,
    task: Option<JoinHandle<Result<(), BackendError>>>,
}

impl Checking {
    /// Starts checking `backend` on the runtime (needs a Tokio runtime).
    pub fn start(backend: Arc<dyn Backend>) -> Checking {
        let b = backend.clone();
        let task = tokio::spawn(async move { b.check().await });
        Checking {
            backend,
            task: Some(task),
        }
    }

    /// The backend once its check succeeded, or why it failed.
    pub async fn ready(mut self) -> Result<Arc<dyn Backend>, BackendError> {
        let task = self
            .task
            .take()
            .expect("a check is started with its handle");
        match task.await {
            Ok(Ok(())) => Ok(self.backend.clone()),
            Ok(Err(e)) => Err(e),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(BackendError::Storage {
                backend: self.backend.describe(),
                reason: format!("the backend check did not finish: {e}"),
            }),
        }
    }
}

impl Drop for Checking {
    fn drop(&mut self) {
        // Nobody will wait for it: do not keep connecting.
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalBackend;

    #[tokio::test]
    async fn a_started_check_hands_back_the_backend_once_it_passed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let b: Arc<dyn Backend> = Arc::new(LocalBackend::new(&state));
        let ready = Checking::start(b)
            .ready()
            .await
            .expect("local check passes");
        assert!(state.is_dir(), "the check ran: it created the state dir");
        assert!(ready.describe().contains("local"));
    }

    #[tokio::test]
    async fn a_failed_check_is_the_error_ready_returns() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let b: Arc<dyn Backend> = Arc::new(LocalBackend::new(file.join("state")));
        let err = Checking::start(b).ready().await.err().expect("check fails");
        assert!(matches!(err, BackendError::Storage { .. }), "{err}");
    }
}
