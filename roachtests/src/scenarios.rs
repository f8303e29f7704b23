//! The registry of scenarios and the one runner they share: start the pair, load, measure the
//! primary without a stream, replicate (injecting the scenario's fault in its phase), measure
//! the lag, cut over, then validate.

use crate::footprint::Footprint;
use crate::launcher::{Cluster, SmallDisk};
use crate::monitor::{
    LagSampler, http_addrs, ingested_bytes, plain_metric, replicated_time, retained_time, vars,
};
use crate::pair::{
    Pair, REPL_PASSWORD, ReplStatus, VC, current_assignments, fingerprint, jobs, poll, repl_status,
    wait_replicating_past,
};
use crate::proxy::Link;
use crate::sql::{self, col, exec, query};
use crate::workload::Workload;
use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Which suite a scenario belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Part of the README's test command (CI): under 10 minutes on 2 cores in all.
    Quick,
    /// Longer runs, by hand: `cargo run -p roachtests -- run --suite nightly`.
    Nightly,
    /// Benchmarks that print figures (release binaries recommended).
    Bench,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Quick => "quick",
            Suite::Nightly => "nightly",
            Suite::Bench => "bench",
        }
    }
}

/// Where in a run a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    InitialScan,
    Steady,
    Cutover,
}

/// Which cluster a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Primary,
    Standby,
}

/// The fault a scenario injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// SIGKILL of a node, then a restart once the job has shown it noticed.
    Kill(Side, Phase),
    /// SIGSTOP of a primary node for this long, then SIGCONT.
    Stall(Duration),
    /// The link to one primary node partitioned for this long, then healed.
    Disconnect(Duration),
    /// The link to one primary node slowed (latency or a bandwidth cap) for this long.
    SlowLink(Link, Duration),
    /// PAUSE REPLICATION, then RESUME REPLICATION.
    PauseResume,
    /// A standby node's store fills its small filesystem.
    DiskFull,
    /// Every CREATE mistake, and a cutover before retained_time.
    BadInput,
    /// No replication: one 3-node cluster whose node 3 is stopped while the workload loads,
    /// then restarted; it catches up by a Raft snapshot (the log was truncated meanwhile).
    FollowerSnapshot,
}

/// Where to cut over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutover {
    Latest,
    /// `TO SYSTEM TIME '-Ns'`.
    Past(Duration),
    /// A decimal HLC time this far ahead when the statement is sent: the job waits in
    /// `replication pending cutover` until replication reaches it, so a fault can land
    /// inside the cutover.
    Ahead(Duration),
}

/// A scenario.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: &'static str,
    pub about: &'static str,
    /// Nodes of the primary and of the standby.
    pub nodes: (usize, usize),
    pub profiles: (&'static str, &'static str),
    pub workload: Workload,
    /// How long the steady state lasts (the workload runs throughout).
    pub run_time: Duration,
    pub cutover: Cutover,
    /// The longest any wait may take.
    pub timeout: Duration,
    /// The accepted p99 replication lag in the steady state.
    pub max_lag: Duration,
    pub suite: Suite,
    pub fault: Fault,
    /// Testing only: the standby drops one replicated version; the run must then fail with
    /// an error containing this text (the harness shows it can fail).
    pub broken: Option<&'static str>,
    /// ERROR-level log lines containing one of these are expected.
    pub expected_errors: &'static [&'static str],
    /// After the initial scan, report every node's store size, peak RSS and store/logical
    /// ratio (the benchmark's figures; see [`crate::footprint`]).
    pub footprint: bool,
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The size of the filesystem under the disk-full scenario's standby store.
const SMALL_DISK_BYTES: u64 = 1 << 30;
/// What the disk-full scenario leaves free: below the standby's reserve
/// (`physical_replication.consumer.min_free_disk_bytes`, 256 MiB), enough for the job's own
/// records and Raft's small entries.
const SMALL_DISK_LEFT: u64 = 64 << 20;

/// What the Raft library logs at ERROR on any loaded machine: an append that took longer
/// than its heartbeat interval is abandoned and retried. Expected in every scenario (a design
/// debt: openraft ties the append timeout to the heartbeat interval).
const TRANSIENT: &[&str] = &["openraft::replication: RPCError err=timeout after"];

/// What the Raft library logs at ERROR while a peer is down or stopped: its appends to it
/// fail or time out (and are retried).
const NODE_DOWN: &[&str] = &[
    "openraft::replication: RPCError err=Unreachable node",
    "openraft::replication: RPCError err=timeout after",
];

fn base(name: &'static str, about: &'static str, suite: Suite) -> Spec {
    Spec {
        name,
        about,
        nodes: (3, 3),
        profiles: ("replication-source", "replication-target"),
        workload: Workload::Kv {
            rows: 2000,
            block_bytes: 256,
        },
        run_time: SECS(15),
        cutover: Cutover::Past(SECS(10)),
        timeout: SECS(120),
        max_lag: SECS(10),
        suite,
        fault: Fault::None,
        broken: None,
        expected_errors: &[],
        footprint: false,
    }
}

/// Every scenario, in the order `list` prints them.
pub fn registry() -> Vec<Spec> {
    use Suite::*;
    let kill = |name, about, side, phase, suite| Spec {
        fault: Fault::Kill(side, phase),
        cutover: if phase == Phase::Cutover {
            Cutover::Ahead(SECS(3))
        } else {
            Cutover::Past(SECS(10))
        },
        expected_errors: NODE_DOWN,
        max_lag: SECS(60),
        // A big enough initial scan to kill a node during it.
        workload: Workload::Kv {
            rows: 20_000,
            block_bytes: 512,
        },
        ..base(name, about, suite)
    };
    vec![
        base(
            "c2c/basic",
            "3 to 3 nodes, kv workload, cutover to 10 s in the past",
            Quick,
        ),
        Spec {
            cutover: Cutover::Latest,
            ..base(
                "c2c/latest",
                "cutover to LATEST; prints cutover_latest_ms (to the first write on the standby)",
                Nightly,
            )
        },
        Spec {
            workload: Workload::Bank { rows: 1000 },
            ..base(
                "c2c/bank",
                "bank workload; the total balance is exact on the promoted standby",
                Nightly,
            )
        },
        Spec {
            fault: Fault::PauseResume,
            ..base(
                "c2c/pause-resume",
                "PAUSE stops replicated_time, RESUME moves it again",
                Nightly,
            )
        },
        kill(
            "c2c/shutdown/source/initial-scan",
            "SIGKILL of a primary node during the initial scan",
            Side::Primary,
            Phase::InitialScan,
            Nightly,
        ),
        kill(
            "c2c/shutdown/source/steady",
            "SIGKILL of a primary node in the steady state",
            Side::Primary,
            Phase::Steady,
            Nightly,
        ),
        kill(
            "c2c/shutdown/source/cutover",
            "SIGKILL of a primary node during cutover",
            Side::Primary,
            Phase::Cutover,
            Nightly,
        ),
        kill(
            "c2c/shutdown/standby/initial-scan",
            "SIGKILL of a standby node during the initial scan",
            Side::Standby,
            Phase::InitialScan,
            Quick,
        ),
        kill(
            "c2c/shutdown/standby/steady",
            "SIGKILL of a standby node in the steady state",
            Side::Standby,
            Phase::Steady,
            Quick,
        ),
        kill(
            "c2c/shutdown/standby/cutover",
            "SIGKILL of the coordinating standby node during cutover",
            Side::Standby,
            Phase::Cutover,
            Quick,
        ),
        Spec {
            fault: Fault::Disconnect(SECS(30)),
            run_time: SECS(40),
            max_lag: SECS(60),
            workload: Workload::Kv {
                rows: 20_000,
                block_bytes: 512,
            },
            ..base(
                "c2c/disconnect",
                "the link to one primary node partitioned for 30 s, then healed: catch-up without a rescan",
                Nightly,
            )
        },
        Spec {
            fault: Fault::SlowLink(Link::Latency(SECS(1)), SECS(20)),
            run_time: SECS(30),
            max_lag: SECS(60),
            ..base(
                "c2c/slow-link/latency",
                "1 s added to every chunk on the link to one primary node for 20 s: the lag shows it, then catches up",
                Nightly,
            )
        },
        Spec {
            fault: Fault::SlowLink(Link::Bandwidth(2048), SECS(20)),
            run_time: SECS(30),
            max_lag: SECS(60),
            ..base(
                "c2c/slow-link/bandwidth",
                "the link to one primary node capped at 2 KiB/s for 20 s: the lag shows it, then catches up",
                Nightly,
            )
        },
        Spec {
            fault: Fault::Stall(SECS(20)),
            expected_errors: NODE_DOWN,
            run_time: SECS(30),
            max_lag: SECS(60),
            ..base(
                "c2c/stall",
                "a primary node stopped (SIGSTOP) for 20 s, then continued",
                Nightly,
            )
        },
        Spec {
            nodes: (3, 1),
            ..base(
                "c2c/topology/3to1",
                "3 primary nodes to 1 standby node",
                Nightly,
            )
        },
        Spec {
            nodes: (1, 3),
            ..base(
                "c2c/topology/1to3",
                "1 primary node to 3 standby nodes",
                Nightly,
            )
        },
        Spec {
            fault: Fault::DiskFull,
            nodes: (3, 1),
            run_time: SECS(30),
            max_lag: SECS(3600),
            timeout: SECS(180),
            expected_errors: &["replication job paused"],
            ..base(
                "c2c/disk-full",
                "the standby's store runs out of disk: the job reports it and pauses, then resumes once space is freed",
                Nightly,
            )
        },
        Spec {
            fault: Fault::BadInput,
            workload: Workload::None,
            ..base(
                "c2c/bad-input",
                "wrong password, missing privilege, wrong CA, unknown source, cutover before retained_time: clear errors, nothing left behind",
                Quick,
            )
        },
        Spec {
            broken: Some("fingerprint mismatch"),
            run_time: SECS(5),
            ..base(
                "c2c/selftest/skip-one-event",
                "the standby drops one replicated version (a test-only flag); the fingerprint validation must fail",
                Quick,
            )
        },
        Spec {
            fault: Fault::FollowerSnapshot,
            nodes: (3, 0),
            workload: Workload::Kv {
                rows: 40_000,
                block_bytes: 1024,
            },
            expected_errors: NODE_DOWN,
            timeout: SECS(600),
            ..base(
                "kv/follower-snapshot/40mb",
                "a node stopped while 40 MB are loaded catches up by a Raft snapshot; its store matches",
                Nightly,
            )
        },
        Spec {
            fault: Fault::FollowerSnapshot,
            nodes: (3, 0),
            workload: Workload::Kv {
                rows: 524_288,
                block_bytes: 4096,
            },
            expected_errors: NODE_DOWN,
            timeout: SECS(3600),
            ..base(
                "kv/follower-snapshot/2gib",
                "a node stopped while 2 GiB are loaded catches up by a Raft snapshot; prints its peak RSS (run with --release)",
                Bench,
            )
        },
        Spec {
            workload: Workload::Kv {
                rows: 262_144,
                block_bytes: 4096,
            },
            run_time: SECS(60),
            cutover: Cutover::Latest,
            timeout: SECS(3600),
            max_lag: SECS(30),
            footprint: true,
            ..base(
                "c2c/bench",
                "initial scan of 1 GiB, replication lag under the kv workload, cutover to LATEST (run with --release)",
                Bench,
            )
        },
    ]
}

/// Every node's store size on disk and peak RSS, and each store's ratio to the logical bytes
/// of one replica. The standby's single range holds everything ingested (`ingested`, keys and
/// values of all revisions, summed over the standby's nodes), and every node holds a replica
/// of it; the primary's range holds the same data, which the scan read.
fn report_footprint(pair: &Pair, ingested: f64, figures: &mut Figures, log: &Log) -> Result<()> {
    let logical = ingested.max(1.0);
    figures.add("logical_mb_per_replica", logical / 1e6, "MB");
    let mut peak_max = 0u64;
    for cluster in [&pair.primary, &pair.standby] {
        for node in &cluster.nodes {
            let who = format!("{}{}", cluster.name, node.id);
            let f = Footprint::of(node).with_context(|| format!("the footprint of {who}"))?;
            let ratio = f.store_bytes as f64 / logical;
            log.say(format!(
                "{who}: store {:.1} MB on disk ({ratio:.2}x the logical {:.1} MB), peak RSS {} MiB",
                f.store_bytes as f64 / 1e6,
                logical / 1e6,
                f.peak_rss_bytes >> 20
            ));
            figures.add(&format!("store_mb_{who}"), f.store_bytes as f64 / 1e6, "MB");
            figures.add(&format!("store_to_logical_{who}"), ratio, "x");
            figures.add(
                &format!("peak_rss_mib_{who}"),
                f.peak_rss_bytes as f64 / f64::from(1 << 20),
                "MiB",
            );
            peak_max = peak_max.max(f.peak_rss_bytes);
        }
    }
    figures.add(
        "peak_rss_mib_max",
        peak_max as f64 / f64::from(1 << 20),
        "MiB",
    );
    Ok(())
}

/// The figures a scenario prints as `name: value unit`.
#[derive(Debug, Default)]
pub struct Figures(Vec<(String, f64, &'static str)>);

impl Figures {
    fn add(&mut self, name: &str, value: f64, unit: &'static str) {
        self.0.push((name.to_string(), value, unit));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (n, v, u) in &self.0 {
            // Ratios are compared with goals such as 1.3x: two decimals.
            let _ = match *u {
                "x" => writeln!(out, "{n}: {v:.2} {u}"),
                _ => writeln!(out, "{n}: {v:.1} {u}"),
            };
        }
        out
    }
}

/// What a scenario needs from the harness.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
}

/// Progress lines, prefixed with the time since the scenario started.
#[derive(Debug)]
struct Log {
    name: &'static str,
    started: Instant,
}

impl Log {
    fn say(&self, what: impl std::fmt::Display) {
        eprintln!(
            "[{} {:>6.1}s] {what}",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Runs `spec`; figures on success.
pub async fn run(spec: &Spec, ctx: &Ctx<'_>) -> Result<Figures> {
    let log = Log {
        name: spec.name,
        started: Instant::now(),
    };
    let mut figures = Figures::default();
    let mut env = Vec::new();
    if spec.broken.is_some() {
        env.push(("ROACH_TESTING_SKIP_ONE_EVENT".to_string(), "1".to_string()));
    }
    if spec.fault == Fault::FollowerSnapshot {
        return follower_snapshot(spec, ctx, &log).await;
    }
    // Declared before the pair, so that it is unmounted after the pair's processes are gone.
    let small_disk = match spec.fault {
        Fault::DiskFull => {
            let at = ctx.dir.join("standby1");
            log.say(format!(
                "mounting a {} MiB tmpfs for standby node 1's store",
                SMALL_DISK_BYTES >> 20
            ));
            Some(SmallDisk::mount(&at, SMALL_DISK_BYTES)?)
        }
        _ => None,
    };
    log.say(format!(
        "starting a {}-node primary and a {}-node standby",
        spec.nodes.0, spec.nodes.1
    ));
    let mut pair = Pair::start(ctx.bin, ctx.dir, spec.nodes, spec.profiles, &env).await?;
    if spec.fault == Fault::BadInput {
        bad_input(&pair, &log).await?;
        return finish(&mut pair, spec, figures).await;
    }

    let app_url = pair.primary.url(0, VC);
    log.say(format!("workload init {}", spec.workload.name()));
    spec.workload.init(ctx.bin, &app_url)?;
    let mut measured = None;
    if spec.workload != Workload::None {
        let mut w =
            spec.workload
                .start(ctx.bin, &app_url, 2, &ctx.dir.join("workload-before.log"))?;
        let window = SECS(5);
        tokio::time::sleep(window).await; // a measurement window, not synchronisation
        let qps = w.stop().await?;
        figures.add("primary_qps_without_stream", qps, "ops/s");
        measured = Some(qps);
    }
    let mut bg = match spec.workload {
        Workload::None => None,
        w => Some(w.start(ctx.bin, &app_url, 2, &ctx.dir.join("workload.log"))?),
    };

    let standby_http = http_addrs(&pair.standby.nodes);
    let created = Instant::now();
    log.say("CREATE VIRTUAL CLUSTER ... FROM REPLICATION OF ...");
    pair.create().await?;
    if spec.fault == Fault::Kill(Side::Primary, Phase::InitialScan)
        || spec.fault == Fault::Kill(Side::Standby, Phase::InitialScan)
    {
        kill_and_recover(&mut pair, spec, &log).await?;
    }
    let first = wait_replicating_past(&pair, None, spec.timeout).await?;
    let scan = created.elapsed().as_secs_f64();
    let bytes = ingested_bytes(&standby_http, VC).await;
    log.say(format!(
        "replicating after {scan:.1}s ({:.1} MB ingested)",
        bytes / 1e6
    ));
    figures.add(
        "initial_scan_mb_per_s",
        bytes / 1e6 / scan.max(0.001),
        "MB/s",
    );
    must_spread(&pair, spec).await?;
    if spec.footprint {
        report_footprint(&pair, bytes, &mut figures, &log)?;
    }

    // The steady state begins once the writes made during the initial scan are caught up.
    let catching_up = Instant::now();
    poll(
        "the catch-up after the initial scan",
        spec.timeout,
        || async {
            let t = replicated_time(&standby_http, VC).await?;
            (crate::monitor::now_secs() - t < 5.0).then_some(())
        },
    )
    .await?;
    figures.add(
        "catch_up_after_scan_s",
        catching_up.elapsed().as_secs_f64(),
        "s",
    );

    // The steady state, with the scenario's fault.
    let lag = LagSampler::start(standby_http.clone(), VC);
    let steady = Instant::now();
    let mut last = first;
    match spec.fault {
        Fault::Kill(_, Phase::Steady) => {
            tokio::time::sleep(spec.run_time / 3).await;
            kill_and_recover(&mut pair, spec, &log).await?;
        }
        Fault::Stall(d) => {
            tokio::time::sleep(spec.run_time / 5).await;
            let victim = pair.primary.nodes.len() - 1;
            log.say(format!("SIGSTOP primary node {}", victim + 1));
            pair.primary.nodes[victim].signal("STOP")?;
            let before = last.replicated.clone();
            let stalled = Instant::now();
            let lagging = lag_shows(&standby_http, "the stall", SECS(3), spec.timeout).await;
            tokio::time::sleep(d.saturating_sub(stalled.elapsed())).await;
            pair.primary.nodes[victim].signal("CONT")?;
            lagging?;
            log.say(format!("SIGCONT primary node {}", victim + 1));
            lag_heals(&standby_http, spec.timeout).await?;
            last = wait_replicating_past(&pair, before.as_deref(), spec.timeout).await?;
            pair.primary.nodes[victim].wait_ready(spec.timeout).await?;
        }
        Fault::SlowLink(link, d) => {
            tokio::time::sleep(spec.run_time / 5).await;
            let victim = pair.proxies.len() - 1;
            log.say(format!(
                "{link:?} on the link to primary node {}",
                victim + 1
            ));
            pair.proxies[victim].set(link);
            let slowed = Instant::now();
            // Added latency shows as a lag above it; a bandwidth cap as a lag that grows.
            let behind = match link {
                Link::Latency(d) => d,
                _ => SECS(3),
            };
            let lagging = lag_shows(&standby_http, "the slow link", behind, spec.timeout).await;
            tokio::time::sleep(d.saturating_sub(slowed.elapsed())).await;
            pair.proxies[victim].set(Link::Up);
            lagging?;
            log.say("the link is back to normal");
            last = wait_replicating_past(&pair, last.replicated.as_deref(), spec.timeout).await?;
            lag_heals(&standby_http, spec.timeout).await?;
        }
        Fault::Disconnect(d) => {
            tokio::time::sleep(spec.run_time / 5).await;
            let victim = pair.proxies.len() - 1;
            let bytes_before = ingested_bytes(&standby_http, VC).await;
            log.say(format!("partition the link to primary node {}", victim + 1));
            pair.proxies[victim].set(Link::Partitioned);
            let cut = Instant::now();
            let lagging = lag_shows(&standby_http, "the partition", SECS(3), spec.timeout).await;
            tokio::time::sleep(d.saturating_sub(cut.elapsed())).await;
            pair.proxies[victim].set(Link::Up);
            lagging?;
            log.say("healed the link");
            let healed = replicated_time(&standby_http, VC).await.unwrap_or(0.0);
            poll("replication to catch up", spec.timeout, || async {
                let t = replicated_time(&standby_http, VC).await?;
                (t > healed + d.as_secs_f64()).then_some(())
            })
            .await?;
            let resent = ingested_bytes(&standby_http, VC).await - bytes_before;
            log.say(format!(
                "{:.1} MB ingested across the partition",
                resent / 1e6
            ));
            if resent > bytes * 0.5 {
                bail!(
                    "the partition caused a rescan: {:.1} MB ingested after healing, the initial scan was {:.1} MB",
                    resent / 1e6,
                    bytes / 1e6
                );
            }
        }
        Fault::PauseResume => {
            let s = pair.standby_sql().await?;
            exec(&s, &format!("ALTER VIRTUAL CLUSTER {VC} PAUSE REPLICATION")).await?;
            let paused = poll("the job to pause", spec.timeout, || async {
                let st = repl_status(&s).await.ok()?;
                (st.status == "replication paused").then_some(st)
            })
            .await?;
            log.say(format!("paused at {:?}", paused.replicated));
            holds_still(&s, &paused, SECS(3)).await?;
            exec(
                &s,
                &format!("ALTER VIRTUAL CLUSTER {VC} RESUME REPLICATION"),
            )
            .await?;
            last = wait_replicating_past(&pair, paused.replicated.as_deref(), spec.timeout).await?;
            log.say("resumed");
        }
        Fault::DiskFull => {
            let disk = small_disk
                .as_ref()
                .ok_or_else(|| anyhow!("no small disk mounted"))?;
            tokio::time::sleep(spec.run_time / 5).await;
            // About a second of writing to memory: blocking is fine on the multi-threaded runtime.
            let filler = tokio::task::block_in_place(|| disk.fill_leaving(SMALL_DISK_LEFT))?;
            let filled = Instant::now();
            log.say(format!(
                "filled standby node 1's filesystem: a {} MiB filler, {} MiB left",
                filler >> 20,
                disk.available()? >> 20
            ));
            let s = pair.standby_sql().await?;
            let job = poll(
                "the job to report the full disk and pause",
                spec.timeout,
                || async {
                    let j = jobs(&s, "REPLICATION STREAM INGESTION").await.ok()?;
                    let j = j.first()?.clone();
                    (j[1] == "paused").then_some(j)
                },
            )
            .await?;
            figures.add("disk_full_to_pause_s", filled.elapsed().as_secs_f64(), "s");
            if !job[4].contains("nearly out of disk") || !job[4].contains("RESUME REPLICATION") {
                bail!(
                    "the job paused without saying the disk is full: running_status {:?}, error {:?}",
                    job[2],
                    job[4]
                );
            }
            log.say(format!("the job paused: {}", job[4]));
            let paused = repl_status(&s).await?;
            holds_still(&s, &paused, SECS(3)).await?;
            if !pair.standby.nodes[0].ready().await {
                bail!("standby node 1 is not ready while its disk is full");
            }
            disk.free_filler()?;
            log.say(format!(
                "deleted the filler ({} MiB free); RESUME REPLICATION",
                disk.available()? >> 20
            ));
            exec(
                &s,
                &format!("ALTER VIRTUAL CLUSTER {VC} RESUME REPLICATION"),
            )
            .await?;
            last = wait_replicating_past(&pair, paused.replicated.as_deref(), spec.timeout).await?;
            lag_heals(&standby_http, spec.timeout).await?;
            log.say("resumed and caught up");
        }
        _ => {}
    }
    tokio::time::sleep(spec.run_time.saturating_sub(steady.elapsed())).await;
    last = wait_replicating_past(&pair, last.replicated.as_deref(), spec.timeout).await?;
    let (p50, p99, n) = lag.stop();
    log.say(format!(
        "lag over {n} samples: p50 {p50:.0} ms, p99 {p99:.0} ms"
    ));
    figures.add("replication_lag_p50_ms", p50, "ms");
    figures.add("replication_lag_p99_ms", p99, "ms");
    if n == 0 {
        bail!("no replicated_time on the standby's /_status/vars");
    }
    if p99 > spec.max_lag.as_secs_f64() * 1000.0 {
        bail!(
            "replication lag p99 {p99:.0} ms is above the scenario's maximum {:?}",
            spec.max_lag
        );
    }
    if let Some(mut w) = bg.take() {
        let qps = w.stop().await?;
        figures.add("primary_qps_with_stream", qps, "ops/s");
        if let Some(without) = measured {
            figures.add(
                "primary_qps_ratio_with_to_without",
                qps / without.max(0.001),
                "x",
            );
        }
    }

    // Cut over.
    let to = match spec.cutover {
        Cutover::Latest => "LATEST".to_string(),
        Cutover::Past(d) => {
            poll(
                "the retained window to reach back far enough",
                spec.timeout,
                || async {
                    let retained = retained_time(&standby_http, VC).await?;
                    (crate::monitor::now_secs() - retained > d.as_secs_f64() + 2.0).then_some(())
                },
            )
            .await?;
            format!("SYSTEM TIME '-{}s'", d.as_secs())
        }
        Cutover::Ahead(d) => {
            let ns = (crate::monitor::now_secs() * 1e9) as u128 + d.as_nanos();
            format!("SYSTEM TIME '{ns}.0000000000'")
        }
    };
    let retained = last
        .retained
        .clone()
        .ok_or_else(|| anyhow!("no retained_time"))?;
    let s = pair.standby_sql().await?;
    let t_cut = Instant::now();
    log.say(format!("COMPLETE REPLICATION TO {to}"));
    let cutover = sql::one(
        &s,
        &format!("ALTER VIRTUAL CLUSTER {VC} COMPLETE REPLICATION TO {to}"),
    )
    .await?;
    if matches!(spec.fault, Fault::Kill(_, Phase::Cutover)) {
        kill_and_recover(&mut pair, spec, &log).await?;
    }
    let done: ReplStatus = poll("the cutover to finish", spec.timeout, || async {
        let c = pair.standby_sql().await.ok()?;
        let st = repl_status(&c).await.ok()?;
        (st.status == "ready").then_some(st)
    })
    .await?;
    figures.add("cutover_s", t_cut.elapsed().as_secs_f64(), "s");
    if done.cutover.as_deref() != Some(cutover.as_str()) {
        bail!(
            "cutover_time {:?} after cutover, the statement said {cutover}",
            done.cutover
        );
    }
    let s = pair.standby_sql().await?;
    exec(
        &s,
        &format!("ALTER VIRTUAL CLUSTER {VC} START SERVICE SHARED"),
    )
    .await?;
    first_write(&pair, spec).await?;
    if spec.cutover == Cutover::Latest {
        figures.add(
            "cutover_latest_ms",
            t_cut.elapsed().as_secs_f64() * 1000.0,
            "ms",
        );
    }
    log.say(format!("cut over to {cutover}; validating"));
    validate_data(&pair, spec, ctx, &cutover, &retained).await?;
    finish(&mut pair, spec, figures).await
}

/// Fails if replicated_time moves away from `paused`'s within `period` (a paused job).
async fn holds_still(
    s: &tokio_postgres::Client,
    paused: &ReplStatus,
    period: Duration,
) -> Result<()> {
    let hold = Instant::now();
    while hold.elapsed() < period {
        let st = repl_status(s).await?;
        if st.replicated != paused.replicated {
            bail!(
                "replicated_time moved while paused: {:?} then {:?}",
                paused.replicated,
                st.replicated
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Waits until a fault shows as lag: the replicated time more than `behind` behind.
async fn lag_shows(
    standby_http: &[String],
    what: &str,
    behind: Duration,
    within: Duration,
) -> Result<()> {
    poll(&format!("{what} to show as lag"), within, || async {
        let t = replicated_time(standby_http, VC).await?;
        (crate::monitor::now_secs() - t > behind.as_secs_f64()).then_some(())
    })
    .await
}

/// Waits until the lag is back under 3 s after a fault healed.
async fn lag_heals(standby_http: &[String], within: Duration) -> Result<()> {
    poll("the lag to heal", within, || async {
        let t = replicated_time(standby_http, VC).await?;
        (crate::monitor::now_secs() - t < 3.0).then_some(())
    })
    .await
}

/// Partitions come from every primary node and go to at least two standby nodes (when there
/// are two standby nodes and two partitions: the plan has one partition per primary node).
async fn must_spread(pair: &Pair, spec: &Spec) -> Result<()> {
    if matches!(spec.fault, Fault::Kill(_, Phase::InitialScan)) {
        return Ok(());
    }
    let (p, s) = spec.nodes;
    poll(
        "partitions from every primary node",
        spec.timeout,
        || async {
            let a = current_assignments(pair).await?;
            let sources: std::collections::BTreeSet<_> = a.iter().map(|x| x.0).collect();
            let sinks: std::collections::BTreeSet<_> = a.iter().map(|x| x.1).collect();
            (sources.len() == p && sinks.len() >= s.min(2).min(p)).then_some(())
        },
    )
    .await
}

/// SIGKILL of the scenario's victim, wait until the job has re-planned without it (or the
/// phase's progress shows), restart it, wait until it is ready.
async fn kill_and_recover(pair: &mut Pair, spec: &Spec, log: &Log) -> Result<()> {
    let Fault::Kill(side, phase) = spec.fault else {
        return Ok(());
    };
    let victim = match side {
        Side::Primary => pair.primary.nodes.len() - 1,
        Side::Standby => {
            // During cutover, the coordinator when it is not the node we talk through.
            let s = pair.standby_sql().await?;
            let coordinator: usize = jobs(&s, "REPLICATION STREAM INGESTION")
                .await?
                .first()
                .and_then(|j| j[3].parse().ok())
                .unwrap_or(0);
            if phase == Phase::Cutover && coordinator > 1 {
                coordinator - 1
            } else {
                pair.standby.nodes.len() - 1
            }
        }
    };
    // The kill must land in its phase, or the scenario shows nothing about that phase.
    let status = repl_status(&pair.standby_sql().await?).await?.status;
    let in_phase = match phase {
        Phase::InitialScan => status == "initializing replication",
        Phase::Steady => status == "replicating",
        Phase::Cutover => status.contains("cut"),
    };
    if !in_phase {
        bail!(
            "the status was {status:?} when the {phase:?} kill was due: make the scenario's data larger"
        );
    }
    let cluster = match side {
        Side::Primary => &mut pair.primary,
        Side::Standby => &mut pair.standby,
    };
    log.say(format!(
        "SIGKILL {} node {} ({status})",
        cluster.name,
        victim + 1
    ));
    cluster.nodes[victim].kill9();
    let id = victim + 1;
    if phase != Phase::Cutover {
        poll("a plan without the killed node", spec.timeout, || async {
            let a = current_assignments(pair).await?;
            let on = |x: &(usize, usize)| match side {
                Side::Primary => x.0,
                Side::Standby => x.1,
            } == id;
            (!a.is_empty() && !a.iter().any(on)).then_some(())
        })
        .await?;
        log.say("the job re-planned without it");
    }
    let cluster = match side {
        Side::Primary => &mut pair.primary,
        Side::Standby => &mut pair.standby,
    };
    cluster.nodes[victim].restart().await?;
    cluster.nodes[victim].wait_ready(spec.timeout).await?;
    log.say(format!("restarted {} node {id}", cluster.name));
    Ok(())
}

/// A client writes to the promoted standby's application virtual cluster.
async fn first_write(pair: &Pair, spec: &Spec) -> Result<()> {
    let stmt = match spec.workload {
        Workload::Bank { .. } => "SELECT count(*) FROM bank.bank",
        _ => "UPSERT INTO kv.kv (k, v) VALUES (-4242, '\\x01')",
    };
    let create = "CREATE DATABASE IF NOT EXISTS after_cutover";
    poll("a write on the promoted standby", spec.timeout, || async {
        let c = pair.standby.connect_any(VC).await.ok()?;
        exec(&c, create).await.ok()?;
        if spec.workload == Workload::None {
            return Some(());
        }
        exec(&c, stmt).await.ok()
    })
    .await
}

/// The validations after a cutover: equal fingerprints as of the cutover time (all
/// revisions since retained_time, and all revisions), the bank invariant.
async fn validate_data(
    pair: &Pair,
    spec: &Spec,
    ctx: &Ctx<'_>,
    cutover: &str,
    retained: &str,
) -> Result<()> {
    let p = pair.primary_sql().await?;
    let s = pair.standby_sql().await?;
    for start in [Some(retained), None] {
        let fp = fingerprint(&p, cutover, start).await?;
        let fs = fingerprint(&s, cutover, start).await?;
        if fp != fs {
            bail!(
                "fingerprint mismatch as of {cutover} (from {}): primary {fp}, standby {fs}",
                start.unwrap_or("the beginning")
            );
        }
    }
    if let Workload::Bank { .. } = spec.workload {
        let url = pair.standby.url(0, VC);
        crate::launcher::roach(ctx.bin, &["workload", "check", "bank", &url])
            .context("the bank invariant on the promoted standby")?;
    }
    Ok(())
}

/// Liveness and log validations, then the figures.
async fn finish(pair: &mut Pair, spec: &Spec, figures: Figures) -> Result<Figures> {
    check_clusters(&mut [&mut pair.primary, &mut pair.standby], spec).await?;
    Ok(figures)
}

/// Every node the scenario wants alive is, and no node logged an ERROR line the scenario
/// does not expect.
async fn check_clusters(clusters: &mut [&mut Cluster], spec: &Spec) -> Result<()> {
    for cluster in clusters.iter_mut() {
        for node in &mut cluster.nodes {
            if node.expect_alive && (!node.running() || !node.ready().await) {
                bail!(
                    "{} node {} should be alive but is not",
                    cluster.name,
                    node.id
                );
            }
        }
    }
    let mut unexpected = Vec::new();
    for cluster in clusters.iter() {
        for node in &cluster.nodes {
            let text = std::fs::read_to_string(node.log_path()).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains(" ERROR ")) {
                if !spec
                    .expected_errors
                    .iter()
                    .chain(TRANSIENT)
                    .any(|e| line.contains(e))
                {
                    unexpected.push(format!("{} node {}: {line}", cluster.name, node.id));
                }
            }
        }
    }
    if !unexpected.is_empty() {
        bail!("unexpected ERROR log lines:\n{}", unexpected.join("\n"));
    }
    Ok(())
}

/// issue 15, "Benchmarks": the peak RSS of a follower receiving a snapshot of a large store.
/// Node 3 of a 3-node cluster is stopped (SIGKILL) while the workload loads (nodes 1 and 2
/// keep a quorum; their logs are truncated by `kv.raft_log.truncation_max_bytes`, 16 MiB),
/// then restarted: the log no longer reaches back to what it has, so the leader sends a
/// snapshot. Waits until node 3 installed one and applied everything the leader had applied
/// at the restart; checks its store against the leader's; prints node 3's peak RSS (VmHWM of
/// the restarted process, so the snapshot's cost and nothing before it), the snapshot's size
/// and the catch-up time.
async fn follower_snapshot(spec: &Spec, ctx: &Ctx<'_>, log: &Log) -> Result<Figures> {
    let mut figures = Figures::default();
    log.say("starting a 3-node cluster");
    let mut cluster =
        Cluster::start(ctx.bin, ctx.dir, "kv", spec.nodes.0, spec.profiles.0, &[]).await?;
    let follower = cluster.nodes.len() - 1;
    cluster.nodes[follower].kill9();
    log.say(format!(
        "node {} stopped; workload init {} into {VC}",
        cluster.nodes[follower].id,
        spec.workload.name()
    ));
    let loading = Instant::now();
    spec.workload.init(ctx.bin, &cluster.url(0, VC))?;
    let load_s = loading.elapsed().as_secs_f64();
    let mut truncations = 0.0;
    let mut leader = None;
    for (i, node) in cluster.nodes.iter().enumerate().take(follower) {
        let page = vars(&node.http_addr).await?;
        truncations += plain_metric(&page, "raft_log_truncations_total").unwrap_or(0.0);
        if plain_metric(&page, "raft_is_leader") == Some(1.0) {
            leader = Some(i);
        }
    }
    let leader = leader.ok_or_else(|| anyhow!("neither running node leads"))?;
    let leader_store = crate::footprint::store_bytes(&cluster.nodes[leader].store)?;
    log.say(format!(
        "loaded in {load_s:.1}s; leader's store {:.1} MB; {truncations} log truncations",
        leader_store as f64 / 1e6
    ));
    figures.add("load_s", load_s, "s");
    figures.add("leader_store_mb", leader_store as f64 / 1e6, "MB");
    if truncations < 1.0 {
        bail!(
            "the log was never truncated: the follower would catch up from the log, not a snapshot"
        );
    }
    let target = plain_metric(
        &vars(&cluster.nodes[leader].http_addr).await?,
        "raft_applied_index",
    )
    .ok_or_else(|| anyhow!("no raft_applied_index on the leader"))?;
    let restarted = Instant::now();
    cluster.nodes[follower].restart().await?;
    let node = &cluster.nodes[follower];
    let page = poll(
        "the restarted node to install a snapshot and catch up",
        spec.timeout,
        || async {
            let page = vars(&node.http_addr).await.ok()?;
            let installed = plain_metric(&page, "raft_snapshots_installed_total")?;
            let applied = plain_metric(&page, "raft_applied_index")?;
            (installed >= 1.0 && applied >= target).then_some(page)
        },
    )
    .await?;
    let catch_up_s = restarted.elapsed().as_secs_f64();
    let received = plain_metric(&page, "raft_snapshot_received_bytes_total").unwrap_or(0.0);
    let f = Footprint::of(node).context("the restarted node's footprint")?;
    let ratio = f.store_bytes as f64 / leader_store.max(1) as f64;
    log.say(format!(
        "node {} caught up in {catch_up_s:.1}s: snapshot {:.1} MB received, store {:.1} MB ({ratio:.2}x the leader's), peak RSS {} MiB",
        node.id,
        received / 1e6,
        f.store_bytes as f64 / 1e6,
        f.peak_rss_bytes >> 20
    ));
    figures.add("catch_up_s", catch_up_s, "s");
    figures.add("snapshot_received_mb", received / 1e6, "MB");
    figures.add("follower_store_to_leader", ratio, "x");
    figures.add(
        "follower_peak_rss_mib",
        f.peak_rss_bytes as f64 / f64::from(1 << 20),
        "MiB",
    );
    // The snapshot carries every live version; the leader's store also holds what
    // compactions have not yet dropped. Half of it is far more than a log replay of the
    // last 16 MiB could give, and catches a snapshot that lost data.
    if ratio < 0.5 {
        bail!("the follower's store is {ratio:.2}x the leader's after its snapshot");
    }
    check_clusters(&mut [&mut cluster], spec).await?;
    Ok(figures)
}

/// Every mistake in the CREATE statement gets its own error and leaves nothing behind; a
/// cutover before retained_time is refused naming the earliest time.
async fn bad_input(pair: &Pair, log: &Log) -> Result<()> {
    let s = pair.standby_sql().await?;
    let good = pair.uri(&format!("repl:{REPL_PASSWORD}"), "ca_primary.crt")?;
    // A port nothing listens on: bound by the OS, then released.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let cases = [
        (
            "wrong password",
            VC,
            pair.uri("repl:not-the-password", "ca_primary.crt")?,
            "28P01",
        ),
        (
            "missing privilege",
            VC,
            pair.uri("norepl:norepl-secret", "ca_primary.crt")?,
            "42501",
        ),
        (
            "wrong CA",
            VC,
            pair.uri(&format!("repl:{REPL_PASSWORD}"), "ca.crt")?,
            "08001",
        ),
        ("unknown source", "nosuch", good.clone(), "42704"),
        (
            "unreachable host",
            VC,
            good.replace(&pair.primary.nodes[0].rpc_addr, &unreachable),
            "08001",
        ),
        (
            "verify-full without sslrootcert",
            VC,
            good.split("&sslrootcert")
                .next()
                .unwrap_or_default()
                .to_string(),
            "22023",
        ),
        (
            "not a postgresql URI",
            VC,
            good.replace("postgresql://", "mysql://"),
            "22023",
        ),
        // issue 14 item 3: a secure standby never replicates in plaintext, whether asked
        // for explicitly, by leaving TLS unsaid, or through a mode that may fall back.
        (
            "plaintext source (sslmode=disable) on a secure standby",
            VC,
            good.split("&sslmode")
                .next()
                .map(|u| format!("{u}&sslmode=disable"))
                .unwrap_or_default(),
            "22023",
        ),
        (
            "source URI without sslmode or sslrootcert on a secure standby",
            VC,
            good.split("&sslmode")
                .next()
                .unwrap_or_default()
                .to_string(),
            "22023",
        ),
        (
            "sslmode=prefer on a secure standby",
            VC,
            good.replace("sslmode=verify-full", "sslmode=prefer"),
            "22023",
        ),
    ];
    for (what, source, uri, code) in cases {
        // The server's error only (our own statement text holds the password).
        let e = match s.simple_query(&Pair::create_statement(source, &uri)).await {
            Ok(_) => bail!("{what}: CREATE succeeded"),
            Err(e) => sql::error_text(&e),
        };
        if !e.contains(&format!("SQLSTATE {code}")) {
            bail!("{what}: expected SQLSTATE {code}, got: {e}");
        }
        if what.contains("secure standby") && !e.contains("sslmode=verify-full&sslrootcert=") {
            bail!(
                "{what}: the error does not say to pass sslmode=verify-full&sslrootcert=...: {e}"
            );
        }
        if e.contains(REPL_PASSWORD)
            || e.contains("not-the-password")
            || e.contains("norepl-secret")
        {
            bail!("{what}: the error shows a password: {e}");
        }
        log.say(format!("{what}: {e}"));
    }
    let names: Vec<String> = query(&s, "SHOW VIRTUAL CLUSTERS")
        .await?
        .iter()
        .filter_map(|r| col(r, "name").ok().flatten().map(str::to_string))
        .collect();
    if names.iter().any(|n| n == VC) {
        bail!("a refused CREATE left a virtual cluster behind: {names:?}");
    }
    if !jobs(&s, "REPLICATION STREAM INGESTION").await?.is_empty() {
        bail!("a refused CREATE left an ingestion job behind");
    }
    if !jobs(&pair.primary_sql().await?, "REPLICATION STREAM PRODUCER")
        .await?
        .is_empty()
    {
        bail!("a refused CREATE left a producer job on the primary");
    }
    // A cutover before retained_time.
    pair.create().await?;
    let st = wait_replicating_past(pair, None, SECS(120)).await?;
    let e = match exec(
        &s,
        &format!("ALTER VIRTUAL CLUSTER {VC} COMPLETE REPLICATION TO SYSTEM TIME '-1h'"),
    )
    .await
    {
        Ok(()) => bail!("a cutover an hour back was accepted"),
        Err(e) => e.to_string(),
    };
    if !e.contains("retained time") || !e.contains("SQLSTATE 22023") {
        bail!("cutover before retained_time: unexpected error: {e}");
    }
    log.say(format!("cutover before retained_time: {e}"));
    wait_replicating_past(pair, st.replicated.as_deref(), SECS(60)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15 "Benchmarks": c2c/bench, and only it, reports the nodes' store sizes and peak
    // RSS after its initial scan (the other scenarios stay quiet). Method: the registry's flags.
    #[test]
    fn only_the_benchmark_reports_the_footprint() {
        let with: Vec<_> = registry()
            .into_iter()
            .filter(|s| s.footprint)
            .map(|s| s.name)
            .collect();
        assert_eq!(with, ["c2c/bench"]);
    }

    // issue 15 "Benchmarks": a ratio such as store/logical is printed with two decimals, so that
    // it can be compared with a goal such as 1.3x; other figures keep one. Method: render both.
    #[test]
    fn ratios_print_two_decimals() {
        let mut f = Figures::default();
        f.add("store_to_logical_standby1", 1.3449, "x");
        f.add("store_mb_standby1", 1234.56, "MB");
        assert_eq!(
            f.render(),
            "store_to_logical_standby1: 1.34 x\nstore_mb_standby1: 1234.6 MB\n"
        );
    }
}
