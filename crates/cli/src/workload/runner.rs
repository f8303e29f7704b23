//! Running a workload: one tokio task per worker, each with its own connection and prepared
//! statements; an optional shared rate limit; a reporter printing once per second; and the
//! end of the run (its duration, Ctrl-C, or the first error without `--tolerate-errors`),
//! after which the summary is always printed.
//!
//! An operation that fails with SQLSTATE 40001 (serialization failure) or 40P01 (deadlock) is
//! retried as a whole, up to [`RETRIES_MAX`] times; retries are counted apart from errors and
//! the operation's latency covers every attempt. A worker whose connection breaks reconnects
//! (at most once per [`RECONNECT_BACKOFF`]) when errors are tolerated.

use super::RunFlags;
use super::stats::Stats;
use crate::sql::connect::Session;
use crate::sql::params::ConnParams;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// Retries of one operation after 40001/40P01 before it counts as an error.
pub(crate) const RETRIES_MAX: u32 = 100;

/// The least time between two reconnection attempts of one worker.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// How long workers get to finish their current operation once the run ends.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The longest pause [`Pacer`] puts between two operations, whatever the rate.
const PACER_INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);

/// A workload as the runner sees it: the operations it reports and how to prepare a worker.
pub(crate) trait Workload: Send + Sync + 'static {
    type Worker: Worker;

    /// The workload's name (`kv`), also its database.
    fn name(&self) -> &'static str;

    /// The operation types, in the order they are reported.
    fn op_names(&self) -> &'static [&'static str];

    /// Prepares a worker's statements on its connection.
    fn worker(
        &self,
        client: &Client,
    ) -> impl Future<Output = Result<Self::Worker, tokio_postgres::Error>> + Send;
}

/// One operation chosen by a worker; retried as is.
pub(crate) trait Op: Send + Sync {
    fn name(&self) -> &'static str;
}

/// A worker: chooses operations and executes them on its connection.
pub(crate) trait Worker: Send + Sync + 'static {
    type Op: Op;

    /// Chooses the next operation (keys, values, accounts).
    fn choose(&mut self, rng: &mut SmallRng) -> Self::Op;

    /// Executes `op`; a failed transaction must be rolled back before returning.
    fn execute(
        &self,
        client: &Client,
        op: &Self::Op,
    ) -> impl Future<Output = Result<(), tokio_postgres::Error>> + Send;
}

/// Whether an error asks for the transaction to be retried.
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Paces operations to at most `rate` per second over all workers: each caller reserves the
/// next free slot, one interval after the previous one, and waits for it. Time lost while
/// nobody asked is not made up with a burst.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer for `rate` operations per second; `None` when `rate` is 0 (unlimited). Rates
    /// below one per [`PACER_INTERVAL_MAX`] get that interval.
    pub(crate) fn new(rate: f64) -> Option<Pacer> {
        (rate > 0.0).then(|| Pacer {
            interval: Duration::try_from_secs_f64(1.0 / rate)
                .unwrap_or(PACER_INTERVAL_MAX)
                .min(PACER_INTERVAL_MAX),
            next: None,
        })
    }

    /// Reserves the next slot at or after `now`; the operation may start at the returned time.
    pub(crate) fn reserve(&mut self, now: Instant) -> Instant {
        let slot = match self.next {
            Some(next) if next > now => next,
            _ => now,
        };
        self.next = Some(slot + self.interval);
        slot
    }
}

/// What the workers share.
struct Shared<W: Workload> {
    workload: W,
    params: ConnParams,
    stats: Stats,
    pacer: Option<Mutex<Pacer>>,
    tolerate_errors: bool,
    stop: watch::Sender<bool>,
    /// The error that ended the run, if one did.
    failure: Mutex<Option<String>>,
}

impl<W: Workload> Shared<W> {
    fn fail(&self, message: String) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert(message);
        self.stop.send_replace(true);
    }

    async fn pace(&self) {
        if let Some(pacer) = &self.pacer {
            let slot = pacer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reserve(Instant::now());
            tokio::time::sleep_until(slot.into()).await;
        }
    }
}

/// Opens a worker's connection in the workload's database and prepares its statements.
async fn open_worker<W: Workload>(shared: &Shared<W>) -> anyhow::Result<(Session, W::Worker)> {
    let session = super::connect_to(&shared.params, shared.workload.name()).await?;
    let worker = shared.workload.worker(&session.client).await.map_err(|e| {
        let name = shared.workload.name();
        let hint = if e.code() == Some(&SqlState::UNDEFINED_TABLE) {
            format!("\nHINT: run `roach workload init {name}` first")
        } else {
            String::new()
        };
        anyhow::anyhow!(
            "cannot prepare the {name} statements: {}{hint}",
            super::describe(&e)
        )
    })?;
    Ok((session, worker))
}

/// Executes `op`, retrying it after 40001/40P01.
async fn execute_with_retries<W: Worker>(
    worker: &W,
    client: &Client,
    op: &W::Op,
    stats: &Stats,
) -> Result<(), tokio_postgres::Error> {
    let mut retries = 0;
    loop {
        match worker.execute(client, op).await {
            Err(e) if is_retryable(&e) && retries < RETRIES_MAX => {
                retries += 1;
                stats.record_retry();
            }
            other => return other,
        }
    }
}

async fn worker_loop<W: Workload>(
    shared: Arc<Shared<W>>,
    mut session: Session,
    mut worker: W::Worker,
    mut rng: SmallRng,
) {
    let mut stop = shared.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        if session.client.is_closed() {
            // Only reached with --tolerate-errors: otherwise the error ended the run.
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_BACKOFF) => {}
                _ = stop.changed() => return,
            }
            match open_worker(&shared).await {
                Ok((s, w)) => (session, worker) = (s, w),
                Err(e) => {
                    eprintln!("worker cannot reconnect: {e:#}");
                    continue;
                }
            }
        }
        tokio::select! {
            _ = shared.pace() => {}
            _ = stop.changed() => return,
        }
        let op = worker.choose(&mut rng);
        let start = Instant::now();
        let result = tokio::select! {
            r = execute_with_retries(&worker, &session.client, &op, &shared.stats) => r,
            _ = stop.changed() => return,
        };
        match result {
            Ok(()) => shared.stats.record(op.name(), start.elapsed()),
            Err(e) => {
                shared.stats.record_error(op.name());
                if !shared.tolerate_errors {
                    let code = e
                        .code()
                        .map(|c| format!("SQLSTATE {}", c.code()))
                        .unwrap_or_else(|| "no SQLSTATE: client-side error".into());
                    shared.fail(format!(
                        "{} failed ({code}): {}; pass --tolerate-errors to keep going",
                        op.name(),
                        super::describe(&e)
                    ));
                    return;
                }
            }
        }
    }
}

/// A seed from the clock, for runs without `--seed`.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Runs `workload` as `flags` say; prints statistics to stdout and returns an error naming
/// the SQLSTATE when an error ended the run.
pub(crate) async fn run<W: Workload>(workload: W, flags: &RunFlags) -> anyhow::Result<()> {
    let params = super::resolve(&flags.conn)?;
    let seed = flags.seed.unwrap_or_else(clock_seed);
    eprintln!(
        "roach workload run {}: {} workers, duration {}, max rate {}, seed {seed}, {}",
        workload.name(),
        flags.concurrency,
        if flags.duration.is_zero() {
            "until Ctrl-C".to_string()
        } else {
            format!("{:?}", flags.duration)
        },
        if flags.max_rate > 0.0 {
            format!("{}/s", flags.max_rate)
        } else {
            "unlimited".to_string()
        },
        params.redacted_url()
    );
    let (stop, mut stopped) = watch::channel(false);
    let shared = Arc::new(Shared {
        stats: Stats::new(workload.op_names()),
        workload,
        params,
        pacer: Pacer::new(flags.max_rate).map(Mutex::new),
        tolerate_errors: flags.tolerate_errors,
        stop,
        failure: Mutex::new(None),
    });

    // Every connection is open before the clock starts.
    let mut workers = Vec::new();
    for _ in 0..flags.concurrency {
        workers.push(open_worker(&shared).await?);
    }
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (index, (session, worker)) in workers.into_iter().enumerate() {
        let rng = SmallRng::seed_from_u64(seed.wrapping_add(index as u64));
        tasks.spawn(worker_loop(shared.clone(), session, worker, rng));
    }
    let reporter = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let period = Duration::from_secs(1);
            let mut ticks = tokio::time::interval_at(start + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                print!("{}", shared.stats.tick(start.elapsed()));
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
            }
        })
    };

    let deadline = async {
        if flags.duration.is_zero() {
            std::future::pending::<()>().await
        } else {
            tokio::time::sleep_until(start + flags.duration).await
        }
    };
    tokio::select! {
        _ = deadline => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: stopping the workers"),
        _ = stopped.wait_for(|s| *s) => {}
    }
    let elapsed = start.elapsed();
    shared.stop.send_replace(true);
    if tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }
    reporter.abort();
    print!("{}", shared.stats.summary(elapsed));
    // Benchmark figures, one `name: value unit` per line.
    print!("{}", shared.stats.figures(shared.workload.name(), elapsed));
    let failure = shared
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match failure {
        Some(message) => Err(anyhow::anyhow!("workload stopped: {message}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_slots_evenly() {
        // Goal: at 10 ops/s, callers arriving together get slots 100 ms apart, a caller after
        // the last slot starts at once, and an idle gap is not made up with a burst.
        // Method: drive `reserve` with fabricated instants.
        let mut pacer = Pacer::new(10.0).expect("limited");
        let t0 = Instant::now();
        let slots: Vec<Duration> = (0..5).map(|_| pacer.reserve(t0) - t0).collect();
        assert_eq!(
            slots,
            [0, 100, 200, 300, 400].map(Duration::from_millis).to_vec()
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pacer.reserve(later), later, "no waiting after a gap");
        assert_eq!(
            pacer.reserve(later) - later,
            Duration::from_millis(100),
            "no burst after a gap"
        );
    }

    #[test]
    fn pacer_unlimited_and_tiny_rates() {
        // Goal: rate 0 means no pacer; an absurdly small rate gives the longest interval
        // instead of overflowing.
        assert!(Pacer::new(0.0).is_none());
        let mut pacer = Pacer::new(1e-30).expect("limited");
        let t0 = Instant::now();
        assert_eq!(pacer.reserve(t0), t0);
        assert_eq!(pacer.reserve(t0) - t0, PACER_INTERVAL_MAX);
    }
}
