//! Shared helpers for the end-to-end tests: a probe loop through the VIP and a progress
//! recorder.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::gate::{HttpProbe, Probe};
use cairn_core::{Address, Outcome, Progress};

/// One probe result.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it ended.
    pub at: Instant,
    /// `Ok` or why it failed.
    pub result: Result<(), String>,
}

/// Probes a URL continuously until stopped.
pub struct ProbeLoop {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProbeLoop {
    /// Starts probing every `every`.
    pub fn start(probe: HttpProbe, every: Duration) -> ProbeLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let result = tokio::time::timeout(Duration::from_secs(2), probe.check())
                    .await
                    .unwrap_or_else(|_| Err("probe timed out".into()));
                out.lock().unwrap().push(Sample {
                    at: Instant::now(),
                    result,
                });
                tokio::time::sleep(every).await;
            }
        });
        ProbeLoop {
            stop,
            samples,
            task,
        }
    }

    /// Stops and returns every sample.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.samples.lock().unwrap().clone()
    }
}

/// When the VIP first served.
pub fn first_success(samples: &[Sample]) -> Option<Instant> {
    samples.iter().find(|s| s.result.is_ok()).map(|s| s.at)
}

/// Every failure at or after `t`.
pub fn failures_since(samples: &[Sample], t: Instant) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.at >= t)
        .filter_map(|s| s.result.clone().err())
        .collect()
}

/// Records when each node started and how it ended.
#[derive(Default)]
pub struct Recorder {
    /// Start times by address.
    pub started: Mutex<HashMap<Address, Instant>>,
    /// Outcomes by address.
    pub outcomes: Mutex<HashMap<Address, Outcome>>,
}

impl Progress for Recorder {
    fn started(&self, address: &Address, _what: &str) {
        self.started
            .lock()
            .unwrap()
            .insert(address.clone(), Instant::now());
    }

    fn finished(&self, address: &Address, outcome: &Outcome, _elapsed: Duration) {
        self.outcomes
            .lock()
            .unwrap()
            .insert(address.clone(), outcome.clone());
    }
}

impl Recorder {
    /// Explains when each failed sample happened relative to the nodes that had started.
    pub fn timeline(&self, samples: &[Sample]) -> String {
        let started = self.started.lock().unwrap();
        let Some(t0) = started.values().min().copied() else {
            return String::new();
        };
        let mut events: Vec<(f64, String)> = started
            .iter()
            .map(|(a, t)| (t.duration_since(t0).as_secs_f64(), format!("start {a}")))
            .collect();
        let first_ok = samples
            .iter()
            .find(|s| s.result.is_ok())
            .map_or(t0, |s| s.at);
        events.push((
            first_ok.duration_since(t0).as_secs_f64(),
            "VIP first served".into(),
        ));
        for s in samples
            .iter()
            .filter(|s| s.result.is_err() && s.at >= first_ok)
        {
            events.push((
                s.at.duration_since(t0).as_secs_f64(),
                format!("PROBE FAILED: {}", s.result.clone().unwrap_err()),
            ));
        }
        events.sort_by(|a, b| a.0.total_cmp(&b.0));
        events
            .iter()
            .map(|(t, e)| format!("{t:7.3}s {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// When `address` started.
    pub fn started_at(&self, address: &str) -> Option<Instant> {
        self.started
            .lock()
            .unwrap()
            .get(&Address(address.into()))
            .copied()
    }

    /// How `address` ended.
    pub fn outcome(&self, address: &str) -> Option<Outcome> {
        self.outcomes
            .lock()
            .unwrap()
            .get(&Address(address.into()))
            .cloned()
    }
}
