//! A Phoenix rotation killed with SIGKILL is finished by a rerun without rotating any node
//! twice: `stacks rotate --all --approve` runs as a child process against `stacks sim`'s
//! hetzner-k3s world (which outlives it), is killed right after the first node's Hetzner
//! server was replaced, and a second `rotate --all --approve` resumes the journaled
//! rotation. The test follows every node's server id throughout. Needs root (real sshd
//! hosts); loopback only.

#[path = "common/k3s.rs"]
mod k3s;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_core::backend::Backend;
use k3s::{NODES, server_ids, try_server_ids};

/// A running `stacks sim`, killed on drop.
struct StacksSim {
    child: Child,
    env: BTreeMap<String, String>,
    /// Locks and run history of this world's commands.
    state: tempfile::TempDir,
    /// The `stacks sim` process's temp dir (its simulators' scratch dirs), removed after
    /// the kill (fields drop after `drop`).
    _tmp: tempfile::TempDir,
}

impl Drop for StacksSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StacksSim {
    /// Starts `stacks sim` on its own loopback range.
    fn start(map: &str) -> StacksSim {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stacks"))
            .arg("sim")
            .env("TMPDIR", tmp.path())
            .env(cairn_core::net::ADDR_MAP_ENV, map)
            .env("CAIRN_SIM_BOOT_MS", "1000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(tmp.path().join("sim.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("first line is not JSON ({e}): {line:?}"));
        let env = info["env"]
            .as_object()
            .expect("an env map")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        StacksSim {
            child,
            env,
            state: tempfile::tempdir().unwrap(),
            _tmp: tmp,
        }
    }

    /// `stacks --stack hetzner-k3s ARGS…` pointed at this world.
    fn stacks(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stacks"));
        cmd.args(["--stack", "hetzner-k3s"])
            .args(args)
            .envs(&self.env)
            .env("NO_COLOR", "1")
            .env("CAIRN_STATE_DIR", self.state.path())
            .env("CAIRN_GATE_TIMEOUT_SECS", "120")
            .env("CAIRN_DRAIN_TIMEOUT_SECS", "60")
            .env_remove("CI");
        cmd
    }

    /// What `stacks sim` logged (its warnings: e.g. a host that did not follow its server).
    fn log(&self) -> String {
        std::fs::read_to_string(self._tmp.path().join("sim.log")).unwrap_or_default()
    }

    fn ids_source(&self) -> (String, String) {
        (
            self.env["HCLOUD_ENDPOINT"].clone(),
            self.env["HCLOUD_TOKEN"].clone(),
        )
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_rotation_killed_midway_is_finished_by_a_rerun_without_rotating_a_node_twice() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = StacksSim::start("10.0.0.0/16=127.60.0.0/16");
        let (endpoint, token) = sim.ids_source();
        let boot = sim.stacks(&["apply", "--yes"]).output().unwrap();
        assert_eq!(boot.status.code(), Some(0), "bootstrap: {}", text(&boot));
        let ids0 = server_ids(&endpoint, &token).await;

        // Every node's server ids over time, sampled every ~100 ms across both runs.
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<BTreeMap<String, Vec<u64>>>> = Arc::default();
        let sampler = {
            let (stop, seen, endpoint, token) =
                (stop.clone(), seen.clone(), endpoint.clone(), token.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    // Every ~300 ms: the simulated API is rate-limited like the real one.
                    let Ok(now) = try_server_ids(&endpoint, &token).await else {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    };
                    for (name, id) in now {
                        let mut seen = seen.lock().unwrap();
                        let ids = seen.entry(name).or_default();
                        if ids.last() != Some(&id) {
                            ids.push(id);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };

        let mut first = sim
            .stacks(&["rotate", "--all", "--approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it right after the first node's server was replaced: the node is started
        // and its machine new, but it is not done.
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            if let Some(status) = first.try_wait().unwrap() {
                panic!("the rotation ended ({status}) before the first node was replaced");
            }
            let Ok(now) = try_server_ids(&endpoint, &token).await else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            };
            if now.get(NODES[0]).is_some_and(|id| *id != ids0[NODES[0]]) {
                break;
            }
            assert!(Instant::now() < deadline, "k3s-mgr was never replaced");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        first.kill().unwrap(); // SIGKILL
        first.wait().unwrap();
        let at_kill = server_ids(&endpoint, &token).await;
        for node in &NODES[1..] {
            assert_eq!(at_kill[*node], ids0[*node], "{node} was already replaced");
        }

        let second = sim
            .stacks(&["rotate", "--all", "--approve"])
            .output()
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        sampler.await.unwrap();
        assert_eq!(
            second.status.code(),
            Some(0),
            "rerun: {}\nstacks sim logged:\n{}",
            text(&second),
            sim.log()
        );

        let last = server_ids(&endpoint, &token).await;
        assert_eq!(
            last[NODES[0]], at_kill[NODES[0]],
            "the node replaced before the kill was replaced again"
        );
        let seen = seen.lock().unwrap().clone();
        for node in NODES {
            assert_eq!(
                seen[node],
                [ids0[node], last[node]],
                "{node}'s server ids over time: exactly one replacement"
            );
        }
        let diff = sim.stacks(&["diff"]).output().unwrap();
        assert_eq!(diff.status.code(), Some(0), "{}", text(&diff));

        // The history shows the killed rotation and the one that finished it.
        let b = cairn_core::backend::local::LocalBackend::new(sim.state.path());
        let runs: Vec<_> = b
            .runs(Some("hetzner-k3s"), 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.holder.operation == "rotate")
            .collect();
        assert!(runs.len() >= 2, "{runs:?}");
        assert_eq!(
            runs[0].status,
            cairn_core::backend::status::SUCCEEDED,
            "{runs:?}"
        );
    })
}
