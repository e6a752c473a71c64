//! The simulator's control socket: HTTP over a Unix socket in the simulator's temporary
//! directory. The programs a host provides (`kubeadm`, `systemctl`) are thin shell shims
//! that send their arguments here with their host's name and process id, and print what
//! comes back; `/_sim/` holds the test hooks.
//!
//! `POST /exec/{host}/{program}` — body: the argument count, then each argument, each
//! NUL-terminated; header `X-Pid` (the shim's pid: its files are read through
//! `/proc/<pid>/root`) and `X-Out` (a directory the shim made, where `out` and `err` are
//! written). Answers the exit code.
//! `POST /_sim/fail-next-join/{host}` — that host's next `kubeadm join` fails.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;

use crate::kubeadm::{Output, Proc};
use crate::world_state::Shared;

/// Serves the control socket until the runtime shuts down.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/exec/{host}/{prog}", post(exec))
        .route("/_sim/fail-next-join/{host}", post(fail_next_join))
        .with_state(shared)
}

async fn fail_next_join(
    State(shared): State<Arc<Shared>>,
    Path(host): Path<String>,
) -> &'static str {
    shared.lock().fail_next_join.insert(host);
    "ok\n"
}

fn parse_args(body: &[u8]) -> Option<Vec<String>> {
    let mut fields = body.split(|b| *b == 0);
    let n: usize = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    (0..n)
        .map(|_| {
            fields
                .next()
                .map(|f| String::from_utf8_lossy(f).into_owned())
        })
        .collect()
}

async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((host, prog)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> String {
    let pid: u32 = headers
        .get("x-pid")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let out_dir = headers
        .get("x-out")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let args = parse_args(&body).unwrap_or_default();
    let proc_ = Proc { pid };
    let out = match prog.as_str() {
        "kubeadm" => crate::kubeadm::run(shared.clone(), &host, &args, &proc_).await,
        "systemctl" => systemctl(&shared, &host, &args),
        "k3s" => crate::k3s::binary(&shared, &host, &args),
        "journalctl" => crate::k3s::journalctl(&shared, &host, &args),
        "k3s-killall" | "k3s-uninstall" | "k3s-agent-uninstall" => {
            crate::k3s::uninstall(&shared, &host, &prog)
        }
        "k3s-install" => {
            // The variables the script was run with, from the shim's private 0600 file.
            let env = std::fs::read_to_string(
                std::path::PathBuf::from(format!("/proc/{pid}/root"))
                    .join(out_dir.trim_start_matches('/'))
                    .join("env"),
            )
            .map(|t| crate::k3s::parse_env(&t))
            .unwrap_or_default();
            crate::k3s::install(&shared, &host, &env, &args)
        }
        other => Output {
            code: 127,
            stdout: String::new(),
            stderr: format!("{other}: command not found\n"),
        },
    };
    let base =
        std::path::PathBuf::from(format!("/proc/{pid}/root")).join(out_dir.trim_start_matches('/'));
    let _ = std::fs::write(base.join("out"), &out.stdout);
    let _ = std::fs::write(base.join("err"), &out.stderr);
    out.code.to_string()
}

/// `systemctl` for the units a kubeadm node has. A restarted kubelet is NotReady for the
/// simulator's restart delay, then Ready again only if it reaches its server.
fn systemctl(shared: &Shared, host: &str, args: &[String]) -> Output {
    let fail = |code: i32, msg: String| Output {
        code,
        stdout: String::new(),
        stderr: msg + "\n",
    };
    let Some((cmd, units)) = args.split_first() else {
        return fail(1, "Too few arguments.".into());
    };
    let units: Vec<String> = units
        .iter()
        .filter(|u| !u.starts_with('-'))
        .map(|u| {
            // `systemctl enable /etc/systemd/system/k3s.service` names the unit by its file.
            let u = u.rsplit('/').next().unwrap_or(u);
            u.trim_end_matches(".service").to_string()
        })
        .collect();
    let mut w = shared.lock();
    if cmd == "daemon-reload" {
        return Output::default();
    }
    if let Some(out) = crate::k3s::systemctl(&mut w, host, cmd, &units) {
        return out;
    }
    let delay = w.kubelet_restart_delay;
    let Some(h) = w.hosts.get_mut(host) else {
        return fail(
            1,
            "System has not been booted with systemd as init system (PID 1). Can't operate.".into(),
        );
    };
    match cmd.as_str() {
        "start" | "stop" | "restart" | "reload" | "enable" | "disable" | "try-restart" => {
            if units.is_empty() {
                return fail(1, "Too few arguments.".into());
            }
            if let Some(u) = units.iter().find(|u| !h.units.contains_key(*u)) {
                return fail(
                    5,
                    format!("Failed to {cmd} {u}.service: Unit {u}.service not found."),
                );
            }
            let mut log =
                std::fs::read_to_string(h.dir.join("state/systemctl.log")).unwrap_or_default();
            for u in &units {
                log.push_str(&format!("{cmd} {u}\n"));
                match cmd.as_str() {
                    "start" | "restart" | "reload" | "try-restart" => {
                        let was_active = h.units.insert(u.clone(), true).unwrap_or(false);
                        if u == "kubelet" && cmd != "reload" {
                            // A new kubelet process (it re-reads kubelet.conf); starting an
                            // active unit leaves its process alone.
                            if cmd != "start" || !was_active {
                                h.kubelet_started = std::time::SystemTime::now();
                                h.kubelet_starts += 1;
                            }
                            h.restarting_until = Some(Instant::now() + delay);
                            h.live.ready = false;
                            h.live.reason = "KubeletNotReady".into();
                            h.live.message = "kubelet is starting".into();
                        }
                    }
                    "stop" => {
                        h.units.insert(u.clone(), false);
                    }
                    _ => {}
                }
            }
            let _ = std::fs::write(h.dir.join("state/systemctl.log"), log);
            Output::default()
        }
        "show" => show(h, &args[1..]),
        "is-active" => {
            let mut out = Output::default();
            for u in &units {
                let active = h.units.get(u).copied().unwrap_or(false);
                out.stdout
                    .push_str(if active { "active\n" } else { "inactive\n" });
                if !active {
                    out.code = 3;
                }
            }
            out
        }
        other => fail(1, format!("Unknown command verb {other}.")),
    }
}

/// `systemctl show UNIT -p PROP... [--value]` for the properties the simulator models:
/// `ActiveState` and the kubelet's `ActiveEnterTimestamp` (as systemd prints it, e.g.
/// `Mon 2026-11-30 17:34:00 UTC`; the simulator's hosts run in UTC).
fn show(h: &crate::world_state::HostRt, args: &[String]) -> Output {
    let fail = |msg: String| Output {
        code: 1,
        stdout: String::new(),
        stderr: msg + "\n",
    };
    let (mut units, mut props, mut value) = (Vec::new(), Vec::new(), false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--value" => value = true,
            "-p" | "--property" => match it.next() {
                Some(p) => props.extend(p.split(',').map(str::to_string)),
                None => return fail("option requires an argument -- 'p'".into()),
            },
            p if p.starts_with("--property=") => {
                props.extend(p["--property=".len()..].split(',').map(str::to_string))
            }
            o if o.starts_with('-') => return fail(format!("show option {o} is not simulated")),
            u => units.push(u.trim_end_matches(".service").to_string()),
        }
    }
    let [unit] = units.as_slice() else {
        return fail("the simulator shows exactly one unit".into());
    };
    if props.is_empty() {
        return fail("the simulator shows only the properties named with -p".into());
    }
    let active = h.units.get(unit).copied();
    let mut out = Output::default();
    for p in &props {
        let v = match p.as_str() {
            "ActiveState" => match active {
                Some(true) => "active".to_string(),
                _ => "inactive".to_string(),
            },
            // Units never started have no timestamp (systemd prints it empty).
            "ActiveEnterTimestamp" if unit == "kubelet" && active.is_some() => {
                systemd_timestamp(h.kubelet_started)
            }
            "ActiveEnterTimestamp" => String::new(),
            other => return fail(format!("property {other} is not simulated")),
        };
        if value {
            out.stdout.push_str(&format!("{v}\n"));
        } else {
            out.stdout.push_str(&format!("{p}={v}\n"));
        }
    }
    out
}

/// A wall-clock time as systemd prints timestamps in UTC: `Mon 2026-11-30 17:34:00 UTC`.
pub(crate) fn systemd_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    format!(
        "{wd} {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::systemd_timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_print_as_systemd_prints_them_in_utc() {
        let t = |s| systemd_timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "Thu 1970-01-01 00:00:00 UTC");
        assert_eq!(t(1_796_060_040), "Mon 2026-11-30 17:34:00 UTC");
        assert_eq!(t(951_782_400), "Tue 2000-02-29 00:00:00 UTC");
    }
}
