//! The commands: select stacks and targets, then plan, apply, report drift or draw the graph.
//! `sim` serves a world instead.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_core::backend::{Backend, ChangeRecord, Checking, Holder, plan_digest, status};
use cairn_core::planner::stale_entries;
use cairn_core::render::{
    drift_summary, graph_dot, graph_svg, render_plan, render_report, use_color,
};
use cairn_core::{ApplyOptions, Plan, PlanError, Planned, apply, plan};

use super::args::{Cli, Command};
use super::progress::Lines;
use super::record::Recorder;
use super::rotate::{RotateArgs, Select, rotate};
use super::stack_def::{Loaded, StackDef, Target};
use super::world::{WorldFn, providers_world, serve};
use super::{bin_name, chain};

/// Exit code: no changes.
const SAME: u8 = 0;
/// Exit code: error.
const ERROR: u8 = 1;
/// Exit code: changes.
const CHANGES: u8 = 2;

/// Runs one command over the selected stacks; returns the aggregated exit code
/// (any error → 1, else any change → 2, else 0).
pub(crate) async fn run(
    cli: Cli,
    all: Vec<StackDef>,
    world: Option<WorldFn>,
) -> anyhow::Result<u8> {
    if matches!(cli.command, Command::Sim) {
        let world = match world {
            Some(make) => make().await?,
            None => providers_world(&all).await?,
        };
        return serve(world).await.map(|()| SAME);
    }
    let selected = selected_stack(&cli)?;
    let known: Vec<String> = all.iter().map(|d| d.name().to_string()).collect();
    if let Some(twice) = known
        .iter()
        .enumerate()
        .find_map(|(i, n)| known[..i].contains(n).then_some(n))
    {
        bail!("two stacks are named {twice:?}: --stack could not tell them apart");
    }
    let defs: Vec<StackDef> = all
        .into_iter()
        .filter(|d| selected.as_deref().is_none_or(|s| s == d.name()))
        .collect();
    if defs.is_empty() {
        bail!(
            "unknown stack {:?}; known stacks: {}",
            selected.unwrap_or_default(),
            known.join(", ")
        );
    }
    if let Command::Diff { out: Some(out) } = &cli.command
        && defs.len() > 1
    {
        bail!(
            "diff --out {} saves one stack's plan: pass --stack (one of {})",
            out.display(),
            defs.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
        );
    }
    if matches!(cli.command, Command::Rotate { .. }) && cli.stack.is_none() {
        bail!(
            "rotate needs --stack: it rotates one stack's nodes (one of {})",
            known.join(", ")
        );
    }
    let names: Vec<&str> = defs.iter().map(|d| d.name()).collect();
    // The backend's check (connect, authenticate, schema) starts now and runs while the
    // first stack loads; it is awaited before any provider call, so a bad backend still
    // fails first (see `first_load`).
    let mut checking = match &cli.command {
        Command::Apply { .. }
        | Command::Drift
        | Command::Lock
        | Command::Unlock { .. }
        | Command::Rotate { .. }
        | Command::History { .. } => Some(Checking::start(super::team::select(
            cli.backend.as_deref(),
        )?)),
        _ => None,
    };
    let mut backend = None;
    if matches!(
        cli.command,
        Command::Lock | Command::Unlock { .. } | Command::History { .. }
    ) && let Some(c) = checking.take()
    {
        backend = Some(c.ready().await?);
    }
    match (&cli.command, &backend) {
        (Command::Lock, Some(b)) => return super::team::lock(b.as_ref(), &names, cli.json).await,
        (Command::Unlock { force, yes }, Some(b)) => {
            return super::team::unlock(b.as_ref(), cli.stack.as_deref(), *force, *yes).await;
        }
        (Command::History { run, limit }, Some(b)) => {
            return super::team::history(
                b.as_ref(),
                cli.stack.as_deref(),
                run.as_deref(),
                *limit,
                cli.json,
            )
            .await;
        }
        _ => {}
    }
    let mut code = SAME;
    let mut plans = Vec::new();
    for def in &defs {
        let target = target_for(def)?;
        let loaded = match checking.take() {
            Some(c) => {
                let (ready, loaded) = first_load(c, def.load(target)).await;
                backend = Some(ready?);
                loaded
            }
            None => def.load(target).await,
        };
        announce(def, target, cli.json);
        // `rotate` runs one stack: its error is the command's (the caller prints it, exit 1).
        let single = matches!(cli.command, Command::Rotate { .. });
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) if single => return Err(e),
            Err(e) => {
                if cli.json && matches!(cli.command, Command::Diff { .. } | Command::Drift) {
                    println!("{}", errored_doc(def.name(), &chain(e.as_ref())));
                }
                eprintln!("error in stack {}: {}", def.name(), chain(e.as_ref()));
                code = ERROR;
                continue;
            }
        };
        let result = match &cli.command {
            Command::Diff { out } => diff(&cli, &loaded, out.as_deref(), &mut plans).await,
            Command::Drift => {
                let b = backend.clone().expect("drift has a backend");
                drift(&cli, &loaded, b.as_ref(), &mut plans).await
            }
            Command::Apply {
                plan,
                yes,
                parallelism,
                lock_wait,
            } => {
                let b = backend.clone().expect("apply has a backend");
                let opts = ApplyArgs {
                    saved: plan.as_deref(),
                    yes: *yes,
                    parallelism: *parallelism,
                    lock_wait: Duration::from_secs(*lock_wait),
                };
                apply_cmd(&loaded, b, opts).await
            }
            Command::Rotate {
                node,
                all,
                due,
                abandon,
                approve,
                lock_wait,
            } => {
                let b = backend.clone().expect("rotate has a backend");
                let select = match (node, all, due, abandon) {
                    (Some(n), _, _, _) => Select::Node(n.clone()),
                    (None, true, _, _) => Select::All,
                    (None, false, true, _) => Select::Due,
                    (None, false, false, true) => Select::Abandon,
                    (None, false, false, false) => {
                        bail!("rotate needs --node NODE, --all, --due or --abandon")
                    }
                };
                let args = RotateArgs {
                    select,
                    approve: *approve,
                    lock_wait: Duration::from_secs(*lock_wait),
                    json: cli.json,
                    terminal: std::io::stdin().is_terminal(),
                };
                rotate(&loaded, b, &args).await
            }
            Command::Graph { out } => graph(&loaded, out.as_deref()),
            Command::Sim | Command::Lock | Command::Unlock { .. } | Command::History { .. } => {
                unreachable!("handled above")
            }
        };
        if single {
            return result;
        }
        let c = result.unwrap_or_else(|e| {
            eprintln!("error in stack {}: {}", def.name(), chain(e.as_ref()));
            ERROR
        });
        code = aggregate(code, c);
    }
    if matches!(cli.command, Command::Drift)
        && let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY")
    {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .context("opening $GITHUB_STEP_SUMMARY")?;
        f.write_all(drift_summary(&plans).as_bytes())?;
    }
    Ok(code)
}

/// Loads the first stack while the backend's check finishes (building the stack and its
/// provider clients makes no provider call); the check's outcome comes first.
async fn first_load<T>(
    checking: Checking,
    load: impl std::future::Future<Output = T>,
) -> (
    Result<Arc<dyn Backend>, cairn_core::backend::BackendError>,
    T,
) {
    tokio::join!(checking.ready(), load)
}

/// The stack to run: `--stack`, or for `apply FILE` the stack the saved plan was made for.
/// A saved plan for another stack than `--stack` names is refused, never skipped.
fn selected_stack(cli: &Cli) -> anyhow::Result<Option<String>> {
    let Command::Apply {
        plan: Some(path), ..
    } = &cli.command
    else {
        return Ok(cli.stack.clone());
    };
    let saved = read_saved_plan(path)?;
    match &cli.stack {
        Some(s) if *s != saved.stack => bail!(
            "{} is a plan for stack {:?}, not {s:?}",
            path.display(),
            saved.stack
        ),
        _ => Ok(Some(saved.stack)),
    }
}

fn read_saved_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading saved plan {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a cairn plan", path.display()))
}

/// Writes a plan file readable by its owner only: plans hold observed values.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(bytes)
}

fn aggregate(a: u8, b: u8) -> u8 {
    if a == ERROR || b == ERROR {
        ERROR
    } else {
        a.max(b)
    }
}

/// Real APIs when the stack's credentials are set; otherwise the embedded simulators —
/// except under `CI=true`, where silently simulating would hide a misconfigured pipeline.
fn target_for(def: &StackDef) -> anyhow::Result<Target> {
    let has_creds = !def.credentials().is_empty()
        && def
            .credentials()
            .iter()
            .all(|v| std::env::var_os(v).is_some());
    if has_creds {
        return Ok(Target::Real);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let forced = std::env::var("CAIRN_SIMULATE").is_ok_and(|v| v == "1");
    if in_ci && !forced {
        bail!(
            "CI=true but the credentials for stack {} are not set ({}); refusing to run against simulators (set CAIRN_SIMULATE=1 to do so on purpose)",
            def.name(),
            def.credentials().join(", ")
        );
    }
    Ok(Target::Simulated)
}

fn announce(def: &StackDef, target: Target, json: bool) {
    // First line of stdout, so nobody mistakes a rehearsal for the real thing; stderr under --json.
    let say = |line: String| {
        if json {
            eprintln!("{line}")
        } else {
            println!("{line}")
        }
    };
    match target {
        Target::Simulated => say(format!(
            "cairn: SIMULATOR MODE for stack {}: no credentials ({}) set, running against embedded simulators seeded with its \"before\" world",
            def.name(),
            def.credentials().join(", ")
        )),
        Target::Real if cairn_core::net::Dialer::from_env().is_ok_and(|d| d.loopback_only()) => {
            say(format!(
                "cairn: stack {} targets the APIs named in the environment, in loopback-only mode (a `{} sim` world)",
                def.name(),
                bin_name()
            ))
        }
        Target::Real => say(format!(
            "cairn: stack {} targets the live APIs named in the environment ({})",
            def.name(),
            def.credentials().join(", ")
        )),
    }
}

fn color() -> bool {
    use_color(std::io::stdout().is_terminal())
}

async fn make_plan(loaded: &Loaded) -> Result<Planned, PlanError> {
    plan(&loaded.stack, &loaded.providers).await
}

/// The JSON Lines document of a stack that could not be planned.
fn errored_doc(stack: &str, error: &str) -> serde_json::Value {
    serde_json::json!({
        "format_version": cairn_core::plan::FORMAT_VERSION,
        "stack": stack,
        "errored": true,
        "errors": [error],
    })
}

/// Prints a refused plan's details (checks) and turns the error into an exit code.
fn report_plan_error(stack: &str, e: &PlanError, json: bool) -> u8 {
    if let PlanError::ChecksFailed { plan, .. } = e {
        if json {
            println!("{}", serde_json::to_string(plan).unwrap_or_default());
        } else {
            print!("{}", render_plan(plan, color()));
        }
    } else if json {
        println!("{}", errored_doc(stack, &chain(e)));
    }
    eprintln!("error: {}", chain(e));
    ERROR
}

async fn diff(
    cli: &Cli,
    loaded: &Loaded,
    out: Option<&Path>,
    plans: &mut Vec<Plan>,
) -> anyhow::Result<u8> {
    let planned = match make_plan(loaded).await {
        Ok(p) => p,
        Err(e) => return Ok(report_plan_error(loaded.stack.name(), &e, cli.json)),
    };
    if cli.json {
        // JSON Lines: one compact document per stack, so several stacks stay machine-readable.
        println!("{}", serde_json::to_string(&planned.to_json())?);
    } else {
        print!("{}", render_plan(&planned.plan, color()));
    }
    if let Some(out) = out {
        write_private(out, &serde_json::to_vec_pretty(&planned.to_json())?)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "Saved the plan to {0}; apply it with: {1} apply {0}",
            out.display(),
            bin_name()
        );
    }
    let code = if planned.plan.has_changes() {
        CHANGES
    } else {
        SAME
    };
    plans.push(planned.plan);
    Ok(code)
}

/// `drift`: the diff, plus its result in the backend's history (in sync, or the drifted
/// objects with the action a plan would take).
async fn drift(
    cli: &Cli,
    loaded: &Loaded,
    backend: &dyn Backend,
    plans: &mut Vec<Plan>,
) -> anyhow::Result<u8> {
    let name = loaded.stack.name();
    let run = backend.start_run(name, &Holder::current("drift")).await?;
    let before = plans.len();
    let code = match diff(cli, loaded, None, plans).await {
        Ok(c) => c,
        Err(e) => {
            backend
                .finish_run(&run, status::FAILED, "drift check failed")
                .await?;
            return Err(e);
        }
    };
    let Some(plan) = plans.get(before) else {
        backend
            .finish_run(&run, status::FAILED, "plan refused")
            .await?;
        return Ok(code);
    };
    let drifted: Vec<ChangeRecord> = plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_change())
        .map(|c| ChangeRecord {
            address: c.address.0.clone(),
            action: c.actions.join("+"),
            outcome: "drifted".into(),
            duration_ms: 0,
            error: c.action_reason.clone(),
        })
        .collect();
    backend.record_changes(&run, &drifted).await?;
    if drifted.is_empty() {
        backend
            .finish_run(&run, status::IN_SYNC, "no drift")
            .await?;
    } else {
        let summary = format!("{} object(s) drifted", drifted.len());
        backend.finish_run(&run, status::DRIFTED, &summary).await?;
    }
    Ok(code)
}

/// What `apply` was asked to do.
struct ApplyArgs<'a> {
    saved: Option<&'a Path>,
    yes: bool,
    parallelism: usize,
    lock_wait: Duration,
}

/// Takes the stack's lock (its run is opened with it), applies, closes the run with its
/// outcome and releases the lock — also when the apply fails midway.
async fn apply_cmd(
    loaded: &Loaded,
    backend: Arc<dyn Backend>,
    args: ApplyArgs<'_>,
) -> anyhow::Result<u8> {
    let name = loaded.stack.name();
    let lease = backend
        .acquire(name, &Holder::current("apply"), args.lock_wait)
        .await?;
    if let Some(prev) = lease.took_over() {
        eprintln!(
            "cairn: took over the lock of stack {name} from {prev}: its lease expired; its run is closed as interrupted"
        );
    }
    let run = lease.run_id().to_string();
    let result = tokio::select! {
        r = apply_locked(loaded, &backend, lease.as_ref(), &run, &args) => r,
        reason = lease.lost() => Err(anyhow::anyhow!("lost the lock of stack {name}: {reason}; stopped the apply")),
    };
    let (st, summary) = match &result {
        Ok((_, st, summary)) => (*st, summary.clone()),
        Err(e) => (status::FAILED, format!("{e:#}")),
    };
    // Closing the run and releasing the lock: one call (one statement on PostgreSQL).
    if let Err(e) = lease.finish(backend.as_ref(), st, &summary).await {
        eprintln!(
            "warning: could not close run {run} or release the lock of stack {name} in {}: {e}; the lock expires with its lease",
            backend.describe()
        );
    }
    result.map(|(code, _, _)| code)
}

/// The apply under the lock: its exit code, the run's status and summary.
async fn apply_locked(
    loaded: &Loaded,
    backend: &Arc<dyn Backend>,
    lease: &dyn cairn_core::backend::Lease,
    run: &str,
    args: &ApplyArgs<'_>,
) -> anyhow::Result<(u8, &'static str, String)> {
    let (saved, yes, parallelism) = (args.saved, args.yes, args.parallelism);
    let planned = match make_plan(loaded).await {
        Ok(p) => p,
        Err(e) => {
            let code = report_plan_error(loaded.stack.name(), &e, false);
            return Ok((code, status::FAILED, format!("plan refused: {e}")));
        }
    };
    lease.set_plan_digest(&plan_digest(&planned)).await?;
    if let Some(path) = saved {
        let saved = read_saved_plan(path)?;
        if saved.stack != loaded.stack.name() {
            bail!(
                "{} is a plan for stack {:?}, not {:?}",
                path.display(),
                saved.stack,
                loaded.stack.name()
            );
        }
        let stale = stale_entries(&saved, &planned.plan);
        if !stale.is_empty() {
            return Err(PlanError::Stale(stale).into());
        }
    }
    print!("{}", render_plan(&planned.plan, color()));
    if !planned.plan.has_changes() {
        return Ok((SAME, status::SUCCEEDED, "no changes".into()));
    }
    if !yes && saved.is_none() {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to apply without confirmation: stdin is not a terminal; pass --yes");
        }
        eprint!(
            "\nApply these changes to stack {}? Only 'yes' is accepted: ",
            loaded.stack.name()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("apply cancelled");
        }
    }
    let lines = Arc::new(Lines::new(use_color(std::io::stderr().is_terminal())));
    let (recorder, writer) = Recorder::start(backend.clone(), run.to_string(), &planned, lines);
    let report = apply(
        &loaded.stack,
        &loaded.providers,
        &planned,
        ApplyOptions {
            parallelism,
            ..ApplyOptions::default()
        },
        recorder.clone(),
    )
    .await;
    recorder.close();
    print!("{}", render_report(&report, color()));
    if let Err(e) = writer.finish().await {
        eprintln!("warning: history incomplete: {e}");
    }
    let (done, failed, skipped) = report.counts();
    let summary = format!("{done} done, {failed} failed, {skipped} skipped");
    Ok(if report.success() {
        (SAME, status::SUCCEEDED, summary)
    } else {
        (ERROR, status::FAILED, summary)
    })
}

/// Prints the graph as DOT; with `--out DIR` also writes `DIR/<stack>.dot` and `DIR/<stack>.svg`.
fn graph(loaded: &Loaded, out: Option<&Path>) -> anyhow::Result<u8> {
    let dot = graph_dot(&loaded.stack);
    print!("{dot}");
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = loaded.stack.name();
        std::fs::write(dir.join(format!("{name}.dot")), &dot)?;
        std::fs::write(dir.join(format!("{name}.svg")), graph_svg(&loaded.stack))?;
        eprintln!("Wrote {0}/{name}.dot and {0}/{name}.svg", dir.display());
    }
    Ok(SAME)
}
