use crate::Timestamp;
use std::time::Duration;

/// Errors from reading a timestamp's text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseTimestampError {
    /// The decimal form was not `WALL[.LOGICAL]` with digits only.
    #[error("invalid decimal timestamp {input:?}: {reason}")]
    Decimal { input: String, reason: &'static str },
    /// The `TIMESTAMPTZ` form could not be read.
    #[error("invalid timestamptz {input:?}: expected YYYY-MM-DD HH:MM:SS[.fraction][+HH[:MM]]")]
    TimestampTz { input: String },
    /// The time lies before the Unix epoch or too far in the future for nanoseconds in a u64.
    #[error("timestamp {input:?} is outside the supported range (1970-01-01 to 2554-07-21)")]
    OutOfRange { input: String },
}

/// Errors from [`crate::Clock::update`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A remote timestamp is further ahead of the local physical clock than the maximum offset
    /// allows: one of the two clocks is wrong and taking the timestamp would break the
    /// consistency of reads.
    #[error(
        "remote timestamp {remote} is {ahead_ns} ns ahead of the local clock, more than the maximum offset of {max_offset:?}"
    )]
    RemoteTooFarAhead {
        remote: Timestamp,
        ahead_ns: u64,
        max_offset: Duration,
    },
}
