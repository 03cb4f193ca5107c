//! `steno-loadgen`: simulated live users against a running steno (or one it
//! starts), a JSON report, an SVG picture and a summary table out.
//!
//! `run` streams real speech as 20 ms Opus packets at real-time pace from N
//! concurrent users in a conversation pattern (speak, listen a few seconds,
//! speak again), measures end of speech to final, time to first partial and
//! WER per utterance, and samples the server's memory and CPU. `table` turns
//! several reports into the markdown table of docs/capacity.md.
//!
//! Modules: `corpus` (clips to say), `user` (one simulated user), `analysis`
//! (finals matched to clips, statistics), `progress` (live counters),
//! `server` (/metrics, /proc; spawning is `steno_testkit::server`), `stability` (memory growth
//! and p95 drift, the soak checks), `report` (the JSON report),
//! `svg` (the picture), `table` (summary and sweep tables), `cli` (arguments, limits).

mod analysis;
mod cli;
mod corpus;
mod progress;
mod report;
mod server;
mod stability;
mod svg;
mod table;
mod user;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, MAX_DURATION_S, RunArgs};
use server::{ProcSampler, ResourceSample};
use steno_testkit::http;
use steno_testkit::process::{load_average, machine_cpu_ticks, self_cpu_ticks};
use steno_testkit::server::{ServerCommand, ServerProcess};
use user::{Role, RunContext, UserPlan};

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Table { reports } => table::print(&reports),
        Command::Wer {
            reference,
            hypothesis,
        } => {
            let read = |p: &std::path::Path| -> Result<String> {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Ok(match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) if v["text"].is_string() => v["text"].as_str().unwrap_or("").to_string(),
                    _ => text,
                })
            };
            let (r, h) = (read(&reference)?, read(&hypothesis)?);
            let (edits, words) = steno_testkit::wer::edits(&r, &h);
            println!(
                "WER {:.2}% ({edits} edits over {words} reference words)",
                100.0 * edits as f64 / words.max(1) as f64
            );
            Ok(())
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("loadgen-io")
                .build()?;
            let ok = runtime.block_on(run(*args))?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Returns whether the report is ok (or true without --check).
async fn run(a: RunArgs) -> Result<bool> {
    cli::validate(&a)?;
    let corpus_dir = (!a.no_corpus).then(|| a.corpus.clone());
    let espeak = a.espeak;
    let mut corpus =
        tokio::task::spawn_blocking(move || corpus::Corpus::load(corpus_dir.as_deref(), espeak))
            .await??;
    if a.max_clip_s > 0.0 {
        corpus.keep_speech_up_to(a.max_clip_s)?;
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let spawned = if a.spawn_server {
        let bin = match &a.server_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.with_file_name("steno"),
        };
        let log = a.out.with_extension("server.log");
        eprintln!("starting {} (log in {})", bin.display(), log.display());
        let mut command = ServerCommand::new(bin).log(log);
        command.config = a.server_config.clone();
        Some(ServerProcess::start(&command, Duration::from_secs(300)).await?)
    } else {
        None
    };
    let addr = spawned.as_ref().map_or(a.addr, |s| s.addr);
    let pid = spawned.as_ref().map(ServerProcess::pid).or(a.server_pid);
    match http::get(addr, "/health").await {
        Ok((200, _)) => {}
        other => bail!("no healthy steno on {addr} (GET /health: {other:?})"),
    }
    if let Ok((_, body)) = http::get(addr, "/ready").await {
        eprintln!("server {addr}: /ready {body}");
    }
    let metrics_start = server::scrape_metrics(addr).await.ok();
    let settings = report::Settings {
        target: addr.to_string(),
        users: a.users,
        extra_users: a.extra_users,
        idle_users: a.idle_users,
        duration_s: a.duration,
        ramp_up_s: a.ramp_up,
        pause_s: (a.pause_min, a.pause_max),
        max_clip_s: (a.max_clip_s > 0.0).then_some(a.max_clip_s),
        pace: a.pace,
        partials: !a.no_partials,
        seed: a.seed,
        clips: corpus.clips.len(),
        server_env: std::env::vars()
            .filter(|(k, _)| k.starts_with("STENO_"))
            .collect(),
    };

    let t0 = Instant::now();
    let live = Arc::new(progress::Live::default());
    let hard_stop = CancellationToken::new();
    let ctx = Arc::new(RunContext {
        url: format!(
            "ws://{addr}/v1/listen?encoding=opus&partials={}",
            !a.no_partials
        ),
        corpus,
        t0,
        end_at: t0 + Duration::from_secs_f64(a.ramp_up + a.duration),
        pause_min_ms: (a.pause_min * 1000.0) as u64,
        pause_max_ms: (a.pause_max * 1000.0) as u64,
        min_tail_ms: a.min_tail_ms,
        pace: a.pace,
        drain: Duration::from_secs_f64(a.drain),
        hard_stop: hard_stop.clone(),
        live: live.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans(&a) {
        tasks.spawn(user::run(plan, ctx.clone()));
    }
    let samples = Arc::new(Mutex::new(Vec::<ResourceSample>::new()));
    let sampling = tokio::spawn(sample_and_report(
        pid,
        addr,
        t0,
        a.progress_s,
        live.clone(),
        samples.clone(),
    ));
    let loadgen_ticks = self_cpu_ticks();
    let machine_ticks = machine_cpu_ticks();
    let load_average_at_start = load_average().unwrap_or(0.0);

    let max_run = a
        .max_run_s
        .unwrap_or(a.ramp_up + a.duration + a.drain + 30.0);
    let hard_deadline = t0 + Duration::from_secs_f64(max_run.min(2.0 * MAX_DURATION_S));
    let mut outcomes = Vec::new();
    let mut timed_out = false;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(r) => outcomes.push(r.context("a simulated user panicked")?),
                None => break,
            },
            _ = tokio::time::sleep_until(hard_deadline), if !timed_out => {
                eprintln!("hard time limit of {max_run:.0} s reached: stopping every user");
                timed_out = true;
                hard_stop.cancel();
            }
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    sampling.abort();
    let loadgen_cpu_pct = (self_cpu_ticks() - loadgen_ticks) as f64 / wall_s;
    let machine_cpu_pct = match (machine_ticks, machine_cpu_ticks()) {
        (Some((busy0, _)), Some((busy1, _))) => (busy1 - busy0) as f64 / wall_s,
        _ => 0.0,
    };
    let metrics_end = server::scrape_metrics(addr).await.ok();
    let exit = match spawned {
        Some(s) => Some(s.stop(Duration::from_secs(30)).await?),
        None => None,
    };
    outcomes.sort_by_key(|o| o.id);
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let mut report = report::build(
        &outcomes,
        report::RunFacts {
            settings,
            wall_s,
            timed_out,
            samples,
            pid,
            metrics_start,
            metrics_end,
            loadgen_cpu_pct,
            machine_cpu_pct,
            load_average_at_start,
            bucket_s: (a.duration / 30.0).clamp(2.0, 30.0),
            limits: stability::Limits {
                max_rss_slope_mb_per_10min: a.max_rss_slope_mb_per_10min,
                rss_warmup_s: a.rss_warmup_s,
                max_p95_drift: a.max_p95_drift,
                p95_drift_slack_s: a.p95_drift_slack_s,
                max_heap_growth_mb: a.max_heap_growth_mb,
            },
        },
    );
    report.server.exit = exit;
    let json = a.out.with_extension("json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = a.out.with_extension("svg");
    std::fs::write(&svg, svg::render(&report))
        .with_context(|| format!("writing {}", svg.display()))?;
    table::print_summary(&report);
    println!("{:<24}{} and {}", "report", json.display(), svg.display());
    Ok(report.ok || !a.check)
}

/// Speakers and idle users arrive evenly over the ramp-up; extra users arrive
/// over the first half of the steady part, when every slot should be taken.
fn plans(a: &RunArgs) -> Vec<UserPlan> {
    let regular = a.users + a.idle_users;
    let mut plans: Vec<UserPlan> = (0..regular)
        .map(|i| UserPlan {
            id: i,
            role: if i < a.users {
                Role::Speaker
            } else {
                Role::Idle
            },
            arrive_at: Duration::from_secs_f64(a.ramp_up * i as f64 / regular.max(1) as f64),
            seed: a.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        })
        .collect();
    for j in 0..a.extra_users {
        let after = a.duration / 2.0 * (j + 1) as f64 / (a.extra_users + 1) as f64;
        plans.push(UserPlan {
            id: regular + j,
            role: Role::Extra,
            arrive_at: Duration::from_secs_f64(a.ramp_up + after.max(0.5)),
            seed: 0,
        });
    }
    plans
}

async fn sample_and_report(
    pid: Option<u32>,
    addr: std::net::SocketAddr,
    t0: Instant,
    progress_s: f64,
    live: Arc<progress::Live>,
    samples: Arc<Mutex<Vec<ResourceSample>>>,
) {
    let mut sampler = pid.map(ProcSampler::new);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next_line = progress_s;
    loop {
        tick.tick().await;
        let t = t0.elapsed().as_secs_f64();
        let mut sample = sampler
            .as_mut()
            .and_then(|s| s.sample(t, live.open_sessions()));
        if let Some(s) = &mut sample {
            // The live heap, when the server counts it (the `steno` binary does).
            s.heap_mb = server::scrape_metrics(addr)
                .await
                .ok()
                .and_then(|m| m.series.get(server::HEAP_LIVE).copied())
                .map(|bytes| bytes / 1_048_576.0);
        }
        if let Some(s) = &sample {
            samples.lock().unwrap().push(s.clone());
        }
        if progress_s > 0.0 && t + 0.5 >= next_line {
            next_line += progress_s;
            let (rss, cpu) = (
                sample.as_ref().map(|s| s.rss_mb),
                sample.as_ref().map(|s| s.cpu_pct),
            );
            eprintln!("{}", live.line(t, rss, cpu));
        }
    }
}
