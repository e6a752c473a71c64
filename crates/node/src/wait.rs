//! Waiting for the cluster inside a step: check every interval until the check passes or
//! the timeout ends; the error names what was awaited and the last reason it was not so.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::Waits;

/// Runs `check` until it passes; each attempt is bounded so a hanging peer costs one
/// attempt, not the whole timeout.
pub(crate) async fn until<F, Fut>(waits: Waits, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + waits.timeout;
    let attempt = waits
        .interval
        .saturating_mul(5)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let last = match tokio::time::timeout(attempt, check()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "one check took longer than {} s",
                attempt.as_secs()
            )),
        };
        match last {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "{what}: not so after {} s; last check: {e}",
                    waits.timeout.as_secs()
                ));
            }
            Err(e) => tracing::debug!(what, reason = %e, "waiting"),
        }
        tokio::time::sleep(waits.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_turns_true_passes_and_one_that_never_does_names_itself() {
        let w = Waits {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        };
        let mut n = 0;
        let r = until(w, "node x Ready", || {
            n += 1;
            let ok = n >= 3;
            async move { if ok { Ok(()) } else { Err("NotReady".into()) } }
        })
        .await;
        assert_eq!((r, n), (Ok(()), 3));
        let e = until(w, "node x Ready", || async { Err("NotReady".to_string()) })
            .await
            .unwrap_err();
        assert!(
            e.starts_with("node x Ready: not so after 10 s") && e.ends_with("NotReady"),
            "{e}"
        );
    }
}
