//! Hybrid logical clock and MVCC timestamps.
//!
//! Owns: the [`Timestamp`] type every versioned key, log entry and replication checkpoint
//! carries, its text forms (CockroachDB's decimal `WALL.LOGICAL` and SQL `TIMESTAMPTZ`), and the
//! [`Clock`] that issues timestamps on a node.
//!
//! Does not own: how timestamps are assigned to writes (that is `kv`) or stored (`storage`).
//!
//! Invariants:
//! - [`Timestamp`]s are totally ordered by `(wall_time_ns, logical)`.
//! - [`Clock::now`] is strictly monotonic: every call returns a timestamp greater than every
//!   timestamp it returned before and every remote timestamp accepted by [`Clock::update`].
//! - [`Clock::update`] never moves the clock backwards and refuses remote timestamps more than
//!   the configured maximum offset ahead of the local physical clock.

mod clock;
mod error;
mod timestamp;

pub use clock::{Clock, DEFAULT_MAX_OFFSET, ManualClock, PhysicalClock, SystemClock};
pub use error::{ClockError, ParseTimestampError};
pub use timestamp::Timestamp;
