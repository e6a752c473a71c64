//! A simulator process killed with SIGKILL (as `stacks sim` is in the CLI tests) cannot remove
//! its scratch directory; the next simulator to start removes it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cairn_pfsense_sim::{PfSenseSim, SimConfig};

const CHILD: &str = "CAIRN_PFSENSE_SIM_WORKDIR_CHILD";
const NAME: &str =
    "a_scratch_dir_left_by_a_sigkilled_simulator_is_removed_when_the_next_one_starts";

#[tokio::test]
async fn a_scratch_dir_left_by_a_sigkilled_simulator_is_removed_when_the_next_one_starts() {
    if let Ok(report) = std::env::var(CHILD) {
        // The child: start a simulator, say where its scratch dir is, wait to be killed.
        let sim = PfSenseSim::start(SimConfig::default()).await.unwrap();
        std::fs::write(&report, sim.workdir().to_str().unwrap()).unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let report = scratch.path().join("workdir");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture"])
        .env(CHILD, &report)
        .spawn()
        .unwrap();
    // Wait (bounded) for the child's simulator to report its directory.
    let mut dir = None;
    for _ in 0..1200 {
        if let Ok(p) = std::fs::read_to_string(&report)
            && !p.is_empty()
        {
            dir = Some(PathBuf::from(p));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = dir.expect("the child simulator started");
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(dir.exists(), "SIGKILL left {} behind", dir.display());

    let sim = PfSenseSim::start(SimConfig::default()).await.unwrap();

    assert!(
        !dir.exists(),
        "the next simulator removed {}",
        dir.display()
    );
    assert!(sim.workdir().exists());
}
