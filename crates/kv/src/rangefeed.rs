//! Rangefeeds: every committed version of a span above a start time, in timestamp order,
//! with checkpoints; served from storage first (catch-up), then from the applied log.

use crate::replica::Replica;
use crate::state_machine::Applied;
use crate::{KvError, KvResult};
use hlc::Timestamp;
use std::sync::Arc;
use storage::{Engine, ExportMode, MvccVersion, Span};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// An event of a rangefeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangefeedEvent {
    /// A committed version (a tombstone when `value` is `None`).
    Value(MvccVersion),
    /// Every version of `span` at or below `resolved_ts` has been sent.
    Checkpoint { span: Span, resolved_ts: Timestamp },
}

/// Events buffered between the rangefeed task and its consumer.
const OUTPUT_BUFFER: usize = 1024;

/// Starts a rangefeed task; its events arrive on the returned channel. The channel ends after
/// an error.
pub(crate) fn start(
    node: Arc<Replica>,
    span: Span,
    from_ts: Timestamp,
) -> mpsc::Receiver<KvResult<RangefeedEvent>> {
    let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
    tokio::spawn(async move {
        node.metrics().rangefeed_active.inc();
        if let Err(e) = run(&node, &span, from_ts, &tx).await {
            // The consumer may be gone already; then there is nobody to tell.
            let _ = tx.send(Err(e)).await;
        }
        node.metrics().rangefeed_active.dec();
    });
    rx
}

/// Sends or reports that the consumer went away (`Ok(false)`).
async fn send(tx: &mpsc::Sender<KvResult<RangefeedEvent>>, ev: RangefeedEvent) -> bool {
    tx.send(Ok(ev)).await.is_ok()
}

async fn run(
    node: &Replica,
    span: &Span,
    from_ts: Timestamp,
    tx: &mpsc::Sender<KvResult<RangefeedEvent>>,
) -> KvResult<()> {
    span.validate()?;
    let feed = node.feed();
    // Subscribe before reading the closed timestamp: an entry applied in between is then both
    // in storage (at or below `caught_up`) and in the subscription, and is skipped there.
    let mut events = feed.events.subscribe();
    let caught_up = feed.closed_ts();
    if from_ts < caught_up {
        let mut versions: Vec<MvccVersion> = node
            .engine()
            .export(span, from_ts, caught_up, ExportMode::AllRevisions)?
            .collect::<Result<_, _>>()?;
        // History below a GC threshold may be gone: a catch-up from there would be incomplete.
        node.check_gc_threshold(span, from_ts)?;
        versions.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.key.cmp(&b.key)));
        for v in versions {
            if !send(tx, RangefeedEvent::Value(v)).await {
                return Ok(());
            }
        }
    }
    let mut resolved = caught_up.max(from_ts);
    let checkpoint = |resolved_ts| RangefeedEvent::Checkpoint {
        span: span.clone(),
        resolved_ts,
    };
    if !send(tx, checkpoint(resolved)).await {
        return Ok(());
    }
    let mut ticker = tokio::time::interval(node.config().rangefeed_checkpoint_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(applied) => match applied.as_ref() {
                    Applied::Entry { ts, versions } => {
                        if *ts <= resolved {
                            continue;
                        }
                        for v in versions.iter().filter(|v| span.contains(&v.key)) {
                            if !send(tx, RangefeedEvent::Value(v.clone())).await {
                                return Ok(());
                            }
                        }
                        resolved = *ts;
                    }
                    Applied::Reset => return Err(KvError::RangefeedOverflow { missed: 0 }),
                },
                Err(RecvError::Lagged(missed)) => return Err(KvError::RangefeedOverflow { missed }),
                Err(RecvError::Closed) => return Err(KvError::ShuttingDown),
            },
            _ = ticker.tick() => {
                if !send(tx, checkpoint(resolved)).await {
                    return Ok(());
                }
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}
