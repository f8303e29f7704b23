//! Every size a peer or a client controls on the KV layer's wire, named once.
//!
//! A length that arrives from the network is checked against one of these before anything is
//! allocated for it: tonic refuses a gRPC message over its decoding limit from the 5-byte
//! frame header (status `OUT_OF_RANGE`), postcard payloads are decoded from a buffer already
//! bounded that way (serde preallocates at most 1 MiB from a claimed sequence length), and a
//! snapshot being received is written to a file that grows only with bytes actually received,
//! up to [`SNAPSHOT_BYTES_MAX`] (see `snapshot::SnapshotData`).
//!
//! How they nest: a proposed command is at most `kv.raft.command.max_size`
//! ([`COMMAND_BYTES_DEFAULT`], settable up to [`COMMAND_BYTES_CEILING`]); a Raft append carries
//! entries up to `log_store::APPEND_BYTES_TARGET` or one entry, so it is at most about
//! [`COMMAND_BYTES_CEILING`] plus framing, below [`RAFT_MESSAGE_BYTES_MAX`]; a forwarded commit
//! or proposal carries one command, below [`KV_MESSAGE_BYTES_MAX`]; snapshots travel in chunks
//! of [`SNAPSHOT_CHUNK_BYTES`].

/// The largest Raft RPC message (AppendEntries, Vote, InstallSnapshot), both ways, on both the
/// client and the server.
pub const RAFT_MESSAGE_BYTES_MAX: usize = 256 << 20;
/// The largest KV service message (a forwarded commit or proposal is the largest), both ways,
/// on both the client and the server.
pub const KV_MESSAGE_BYTES_MAX: usize = 256 << 20;
/// The default of `kv.raft.command.max_size`: the largest encoded command a leader proposes.
pub const COMMAND_BYTES_DEFAULT: usize = 64 << 20;
/// The smallest value `kv.raft.command.max_size` accepts.
pub const COMMAND_BYTES_FLOOR: usize = 64 << 10;
/// The largest value `kv.raft.command.max_size` accepts: a command this large, with its
/// protobuf or Raft framing, still fits [`KV_MESSAGE_BYTES_MAX`] and [`RAFT_MESSAGE_BYTES_MAX`].
pub const COMMAND_BYTES_CEILING: usize = 128 << 20;
/// The bytes of snapshot data one InstallSnapshot message carries.
pub const SNAPSHOT_CHUNK_BYTES: usize = 3 << 20;
/// The largest snapshot file a replica receives (on disk; memory holds one chunk).
pub const SNAPSHOT_BYTES_MAX: u64 = 1 << 40;

// A command at the ceiling, its Raft entry framing, and the protobuf framing of a forwarded
// transaction (at most a few bytes per write more than postcard) fit the message limits.
const _: () = assert!(2 * COMMAND_BYTES_CEILING <= KV_MESSAGE_BYTES_MAX);
const _: () = assert!(2 * COMMAND_BYTES_CEILING <= RAFT_MESSAGE_BYTES_MAX);
const _: () = assert!(COMMAND_BYTES_FLOOR <= COMMAND_BYTES_DEFAULT);
const _: () = assert!(COMMAND_BYTES_DEFAULT <= COMMAND_BYTES_CEILING);
const _: () = assert!(2 * SNAPSHOT_CHUNK_BYTES <= RAFT_MESSAGE_BYTES_MAX);
