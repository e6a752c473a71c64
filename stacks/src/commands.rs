//! The commands: select stacks and targets, then plan, apply, report drift or draw the graph.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use cairn_core::lock::{ApplyLock, LocalLock, state_dir};
use cairn_core::planner::stale_entries;
use cairn_core::render::{
    drift_summary, graph_dot, graph_svg, render_plan, render_report, use_color,
};
use cairn_core::{ApplyOptions, Plan, PlanError, Planned, apply, plan};

use crate::cli::{Cli, Command};
use crate::progress::Lines;
use crate::stacks::{self, Loaded, StackDef, Target};

/// Exit code: no changes.
const SAME: u8 = 0;
/// Exit code: error.
const ERROR: u8 = 1;
/// Exit code: changes.
const CHANGES: u8 = 2;

/// Runs one command over the selected stacks; returns the aggregated exit code
/// (any error → 1, else any change → 2, else 0).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    if matches!(cli.command, Command::Sim) {
        return crate::sims::serve().await.map(|()| SAME);
    }
    let selected = selected_stack(&cli)?;
    let defs: Vec<StackDef> = stacks::all()
        .into_iter()
        .filter(|d| selected.as_deref().is_none_or(|s| s == d.name))
        .collect();
    if defs.is_empty() {
        let names: Vec<_> = stacks::all().iter().map(|d| d.name).collect();
        bail!(
            "unknown stack {:?}; known stacks: {}",
            selected.unwrap_or_default(),
            names.join(", ")
        );
    }
    if let Command::Diff { out: Some(out) } = &cli.command
        && defs.len() > 1
    {
        bail!(
            "diff --out {} saves one stack's plan: pass --stack (one of {})",
            out.display(),
            defs.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
        );
    }
    let mut code = SAME;
    let mut plans = Vec::new();
    for def in &defs {
        let target = target_for(def)?;
        announce(def, target, cli.json);
        let loaded = match (def.load)(target).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error in stack {}: {e:#}", def.name);
                code = ERROR;
                continue;
            }
        };
        let result = match &cli.command {
            Command::Diff { out } => diff(&cli, &loaded, out.as_deref(), &mut plans).await,
            Command::Drift => diff(&cli, &loaded, None, &mut plans).await,
            Command::Apply {
                plan,
                yes,
                parallelism,
            } => apply_cmd(&loaded, plan.as_deref(), *yes, *parallelism).await,
            Command::Graph { out } => graph(&loaded, out.as_deref()),
            Command::Sim => unreachable!("handled above"),
        };
        let c = result.unwrap_or_else(|e| {
            eprintln!("error in stack {}: {e:#}", def.name);
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
    let has_creds = !def.credentials.is_empty()
        && def
            .credentials
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
            def.name,
            def.credentials.join(", ")
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
            def.name,
            def.credentials.join(", ")
        )),
        Target::Real if cairn_core::net::Dialer::from_env().is_ok_and(|d| d.loopback_only()) => {
            say(format!(
                "cairn: stack {} targets the APIs named in the environment, in loopback-only mode (a `stacks sim` world)",
                def.name
            ))
        }
        Target::Real => say(format!(
            "cairn: stack {} targets the live APIs named in the environment ({})",
            def.name,
            def.credentials.join(", ")
        )),
    }
}

fn color() -> bool {
    use_color(std::io::stdout().is_terminal())
}

async fn make_plan(loaded: &Loaded) -> Result<Planned, PlanError> {
    plan(&loaded.stack, &loaded.providers).await
}

/// Prints a refused plan's details (checks) and turns the error into an exit code.
fn report_plan_error(e: &PlanError, json: bool) -> u8 {
    if let PlanError::ChecksFailed { plan, .. } = e {
        if json {
            println!("{}", serde_json::to_string(plan).unwrap_or_default());
        } else {
            print!("{}", render_plan(plan, color()));
        }
    } else if json {
        println!(
            "{}",
            serde_json::json!({"format_version": cairn_core::plan::FORMAT_VERSION, "errored": true, "errors": [e.to_string()]})
        );
    }
    eprintln!("error: {e}");
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
        Err(e) => return Ok(report_plan_error(&e, cli.json)),
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
            "Saved the plan to {}; apply it with: stacks apply {}",
            out.display(),
            out.display()
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

async fn apply_cmd(
    loaded: &Loaded,
    saved: Option<&Path>,
    yes: bool,
    parallelism: usize,
) -> anyhow::Result<u8> {
    let _lock = LocalLock::new(state_dir()?).acquire(loaded.stack.name())?;
    let planned = match make_plan(loaded).await {
        Ok(p) => p,
        Err(e) => return Ok(report_plan_error(&e, false)),
    };
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
        return Ok(SAME);
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
    let progress = Arc::new(Lines::new(use_color(std::io::stderr().is_terminal())));
    let report = apply(
        &loaded.stack,
        &loaded.providers,
        &planned,
        ApplyOptions { parallelism },
        progress,
    )
    .await;
    print!("{}", render_report(&report, color()));
    Ok(if report.success() { SAME } else { ERROR })
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
