//! Latency histograms per operation type and the text `roach workload run` prints: one line per
//! operation type every second, then a summary block and a one-line `summary:`.
//!
//! Latencies are recorded in microseconds in HDR histograms (two significant digits, 1 µs to
//! ten minutes; slower operations count as ten minutes). Each operation type keeps an interval
//! histogram, reset at every tick, and a cumulative one.

use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The slowest latency a histogram tells apart, in microseconds.
const LATENCY_MAX_US: u64 = 10 * 60 * 1_000_000;

/// The per-second header; repeated every [`HEADER_EVERY_TICKS`] ticks.
pub(crate) const TICK_HEADER: &str =
    "_elapsed___errors__ops/sec(inst)___ops/sec(cum)__p50(ms)__p95(ms)__p99(ms)_pMax(ms)";

/// The header of the summary block.
pub(crate) const SUMMARY_HEADER: &str = "_elapsed___errors_____ops(total)___ops/sec(cum)__avg(ms)__p50(ms)__p95(ms)__p99(ms)_pMax(ms)__total";

const HEADER_EVERY_TICKS: u64 = 20;

/// A latency histogram in microseconds.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 2)
        .expect("constant histogram bounds are valid: 1 <= low, high >= 2 * low, sigfig <= 5")
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn per_second(count: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// One per-second line: elapsed, cumulative errors, instantaneous and cumulative rates, the
/// interval's percentiles, and the operation name.
pub(crate) fn tick_line(
    name: &str,
    elapsed: Duration,
    errors: u64,
    inst_per_sec: f64,
    cum_per_sec: f64,
    interval: &Histogram<u64>,
) -> String {
    format!(
        "{:7.1}s {:8} {:14.1} {:14.1} {:8.1} {:8.1} {:8.1} {:8.1} {}",
        elapsed.as_secs_f64(),
        errors,
        inst_per_sec,
        cum_per_sec,
        ms(interval.value_at_quantile(0.50)),
        ms(interval.value_at_quantile(0.95)),
        ms(interval.value_at_quantile(0.99)),
        ms(interval.max()),
        name
    )
}

/// One line of the summary block for an operation type (or `__total` for all of them).
pub(crate) fn summary_line(
    name: &str,
    elapsed: Duration,
    errors: u64,
    cumulative: &Histogram<u64>,
) -> String {
    format!(
        "{:7.1}s {:8} {:14} {:14.1} {:8.1} {:8.1} {:8.1} {:8.1} {:8.1}  {}",
        elapsed.as_secs_f64(),
        errors,
        cumulative.len(),
        per_second(cumulative.len(), elapsed),
        cumulative.mean() / 1000.0,
        ms(cumulative.value_at_quantile(0.50)),
        ms(cumulative.value_at_quantile(0.95)),
        ms(cumulative.value_at_quantile(0.99)),
        ms(cumulative.max()),
        name
    )
}

/// The last line of a run, for scripts: `summary: ops=N ops/s=X p50=Yms p95=Yms p99=Yms errors=N`.
pub(crate) fn final_line(elapsed: Duration, errors: u64, total: &Histogram<u64>) -> String {
    format!(
        "summary: ops={} ops/s={:.1} p50={:.1}ms p95={:.1}ms p99={:.1}ms errors={}",
        total.len(),
        per_second(total.len(), elapsed),
        ms(total.value_at_quantile(0.50)),
        ms(total.value_at_quantile(0.95)),
        ms(total.value_at_quantile(0.99)),
        errors
    )
}

#[derive(Debug)]
struct OpStats {
    name: &'static str,
    interval: Histogram<u64>,
    cumulative: Histogram<u64>,
    errors: u64,
}

#[derive(Debug)]
struct Inner {
    ops: Vec<OpStats>,
    /// Transactions retried after SQLSTATE 40001 (or 40P01).
    retries: u64,
    last_tick: Duration,
    ticks: u64,
}

/// The statistics of a run, shared by its workers and its reporter.
#[derive(Debug)]
pub(crate) struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    /// Statistics for the operation types `names`, printed in that order.
    pub(crate) fn new(names: &[&'static str]) -> Stats {
        Stats {
            inner: Mutex::new(Inner {
                ops: names
                    .iter()
                    .map(|&name| OpStats {
                        name,
                        interval: new_histogram(),
                        cumulative: new_histogram(),
                        errors: 0,
                    })
                    .collect(),
                retries: 0,
                last_tick: Duration::ZERO,
                ticks: 0,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A worker that panicked mid-update leaves at worst one sample missing.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut inner)
    }

    fn op<'a>(inner: &'a mut Inner, name: &'static str) -> &'a mut OpStats {
        let index = match inner.ops.iter().position(|o| o.name == name) {
            Some(i) => i,
            None => {
                inner.ops.push(OpStats {
                    name,
                    interval: new_histogram(),
                    cumulative: new_histogram(),
                    errors: 0,
                });
                inner.ops.len() - 1
            }
        };
        &mut inner.ops[index]
    }

    /// Records a successful operation.
    pub(crate) fn record(&self, name: &'static str, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.with(|inner| {
            let op = Self::op(inner, name);
            op.interval.saturating_record(micros);
            op.cumulative.saturating_record(micros);
        });
    }

    /// Records a failed operation.
    pub(crate) fn record_error(&self, name: &'static str) {
        self.with(|inner| Self::op(inner, name).errors += 1);
    }

    /// Records one retry of a transaction.
    pub(crate) fn record_retry(&self) {
        self.with(|inner| inner.retries += 1);
    }

    /// The lines to print for a tick at `elapsed` since the start (with the header first every
    /// [`HEADER_EVERY_TICKS`] ticks); resets the interval histograms.
    pub(crate) fn tick(&self, elapsed: Duration) -> String {
        self.with(|inner| {
            let mut out = String::new();
            if inner.ticks % HEADER_EVERY_TICKS == 0 {
                out.push_str(TICK_HEADER);
                out.push('\n');
            }
            inner.ticks += 1;
            let interval = elapsed.saturating_sub(inner.last_tick);
            inner.last_tick = elapsed;
            for op in &mut inner.ops {
                out.push_str(&tick_line(
                    op.name,
                    elapsed,
                    op.errors,
                    per_second(op.interval.len(), interval),
                    per_second(op.cumulative.len(), elapsed),
                    &op.interval,
                ));
                out.push('\n');
                op.interval.reset();
            }
            out
        })
    }

    /// The summary block of a run that lasted `elapsed`, ending with [`final_line`].
    pub(crate) fn summary(&self, elapsed: Duration) -> String {
        self.with(|inner| {
            let mut out = String::new();
            let mut total = new_histogram();
            let mut errors = 0;
            let _ = writeln!(out, "\n{SUMMARY_HEADER}");
            for op in &inner.ops {
                let _ = writeln!(
                    out,
                    "{}",
                    summary_line(op.name, elapsed, op.errors, &op.cumulative)
                );
                // Same bounds on both sides: adding cannot fail.
                let _ = total.add(&op.cumulative);
                errors += op.errors;
            }
            let _ = writeln!(out, "{}", summary_line("__result", elapsed, errors, &total));
            let _ = writeln!(out, "retries (SQLSTATE 40001/40P01): {}", inner.retries);
            out.push_str(&final_line(elapsed, errors, &total));
            out.push('\n');
            out
        })
    }

    /// Benchmark figures of a run: `<workload>_ops_per_s` and `<workload>_p99_ms`.
    pub(crate) fn figures(&self, workload: &str, elapsed: Duration) -> String {
        self.with(|inner| {
            let mut total = new_histogram();
            for op in &inner.ops {
                // Same bounds on both sides: adding cannot fail.
                let _ = total.add(&op.cumulative);
            }
            format!(
                "{workload}_ops_per_s: {:.1} ops/s\n{workload}_p99_ms: {:.1} ms\n",
                per_second(total.len(), elapsed),
                ms(total.value_at_quantile(0.99))
            )
        })
    }

    /// Total errors so far, over all operation types.
    #[cfg(test)]
    pub(crate) fn errors(&self) -> u64 {
        self.with(|inner| inner.ops.iter().map(|o| o.errors).sum())
    }

    /// Total successful operations so far.
    #[cfg(test)]
    pub(crate) fn ops(&self) -> u64 {
        self.with(|inner| inner.ops.iter().map(|o| o.cumulative.len()).sum())
    }

    /// Transaction retries so far.
    #[cfg(test)]
    pub(crate) fn retries(&self) -> u64 {
        self.with(|inner| inner.retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_with_headers() {
        // Goal: every per-second and summary line puts each number right-aligned under the end
        // of its header column. Method: compare the byte offsets where header columns end with
        // where the numbers end.
        let mut h = new_histogram();
        for v in [1_000, 2_000, 3_000] {
            h.record(v).expect("in range");
        }
        let tick = tick_line("read", Duration::from_millis(1500), 3, 12.5, 10.0, &h);
        assert_eq!(
            tick,
            "    1.5s        3           12.5           10.0      2.0      3.0      3.0      3.0 read"
        );
        assert_eq!(tick.rfind(' '), Some(TICK_HEADER.len()));
        let summary = summary_line("read", Duration::from_secs(3), 0, &h);
        assert_eq!(
            summary,
            "    3.0s        0              3            1.0      2.0      2.0      3.0      3.0      3.0  read"
        );
        assert_eq!(
            summary.rfind("  ").map(|i| i + 2),
            Some(SUMMARY_HEADER.len() - "__total".len() + 2)
        );
    }

    #[test]
    fn final_line_format() {
        // Goal: the last line has exactly the documented shape, with rates over the elapsed
        // time and percentiles in milliseconds; an empty run prints zeros, not NaN.
        let mut h = new_histogram();
        for _ in 0..99 {
            h.record(500).expect("in range");
        }
        h.record(40_000).expect("in range");
        assert_eq!(
            final_line(Duration::from_secs(4), 2, &h),
            "summary: ops=100 ops/s=25.0 p50=0.5ms p95=0.5ms p99=0.5ms errors=2"
        );
        assert_eq!(
            final_line(Duration::ZERO, 0, &new_histogram()),
            "summary: ops=0 ops/s=0.0 p50=0.0ms p95=0.0ms p99=0.0ms errors=0"
        );
    }

    #[test]
    fn ticks_reset_intervals_and_summary_totals() {
        // Goal: a tick reports the interval's rate and resets it while cumulative counts keep
        // growing; the summary sums all operation types, counts errors and retries, and ends
        // with the `summary:` line. Method: record by hand, tick at fixed elapsed times.
        let stats = Stats::new(&["read", "write"]);
        for _ in 0..10 {
            stats.record("read", Duration::from_millis(2));
        }
        stats.record("write", Duration::from_millis(4));
        stats.record_error("write");
        stats.record_retry();
        let first = stats.tick(Duration::from_secs(1));
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines[0], TICK_HEADER);
        assert!(lines[1].ends_with(" read"), "{}", lines[1]);
        assert!(
            lines[1].contains("           10.0           10.0"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("    1.0s        1 "), "{}", lines[2]);

        stats.record("read", Duration::from_millis(2));
        let second = stats.tick(Duration::from_secs(2));
        let lines: Vec<&str> = second.lines().collect();
        assert_eq!(lines.len(), 2, "no header on the second tick: {second}");
        assert!(
            lines[0].contains("            1.0            5.5"),
            "{}",
            lines[0]
        );
        assert_eq!((stats.ops(), stats.errors(), stats.retries()), (12, 1, 1));

        let summary = stats.summary(Duration::from_secs(2));
        let last = summary.lines().last().expect("a final line");
        assert_eq!(
            last,
            "summary: ops=12 ops/s=6.0 p50=2.0ms p95=4.0ms p99=4.0ms errors=1"
        );
        assert!(summary.contains("retries (SQLSTATE 40001/40P01): 1\n"));
        assert!(summary.contains("  __result\n"));
    }

    #[test]
    fn extreme_latencies_saturate() {
        // Goal: a zero or an absurdly long latency is recorded (clamped), never dropped or
        // panicking.
        let stats = Stats::new(&["op"]);
        stats.record("op", Duration::ZERO);
        stats.record("op", Duration::from_secs(100_000));
        stats.record("other", Duration::from_millis(1));
        assert_eq!(stats.ops(), 3);
        let summary = stats.summary(Duration::from_secs(1));
        assert!(summary.contains("  other\n"), "{summary}");
    }
}
