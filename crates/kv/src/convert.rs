//! Conversions between wire messages and domain types.

use hlc::Timestamp;
use proto::kv as pb;
use storage::Span;

pub(crate) fn ts_to_pb(ts: Timestamp) -> pb::Timestamp {
    pb::Timestamp {
        wall_time_ns: ts.wall_time_ns,
        logical: ts.logical,
    }
}

pub(crate) fn ts_from_pb(ts: Option<pb::Timestamp>) -> Timestamp {
    ts.map_or(Timestamp::ZERO, |t| {
        Timestamp::new(t.wall_time_ns, t.logical)
    })
}

pub(crate) fn span_to_pb(span: &Span) -> pb::Span {
    pb::Span {
        start: span.start.clone(),
        end: span.end.clone(),
    }
}

pub(crate) fn span_from_pb(span: Option<pb::Span>) -> Span {
    span.map_or_else(Span::all, |s| Span {
        start: s.start,
        end: s.end,
    })
}
