//! Every size a peer or a client controls on the KV layer's wire, named once.
//!
//! A length that arrives from the network is checked against one of these before anything is
//! allocated for it: tonic refuses a gRPC message over its decoding limit from the 5-byte
//! frame header (status `OUT_OF_RANGE`), postcard payloads are decoded from a buffer already
//! bounded that way (serde preallocates at most 1 MiB from a claimed sequence length), and a
//! snapshot being received grows only with bytes actually received, up to
//! [`SNAPSHOT_BYTES_MAX`] (see [`SnapshotBuffer`]).
//!
//! How they nest: a proposed command is at most `kv.raft.command.max_size`
//! ([`COMMAND_BYTES_DEFAULT`], settable up to [`COMMAND_BYTES_CEILING`]); a Raft append carries
//! entries up to `log_store::APPEND_BYTES_TARGET` or one entry, so it is at most about
//! [`COMMAND_BYTES_CEILING`] plus framing, below [`RAFT_MESSAGE_BYTES_MAX`]; a forwarded commit
//! or proposal carries one command, below [`KV_MESSAGE_BYTES_MAX`]; snapshots travel in chunks
//! of [`SNAPSHOT_CHUNK_BYTES`].

use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

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
/// The largest snapshot a replica sends or receives (snapshots are held in memory whole).
pub const SNAPSHOT_BYTES_MAX: usize = 4 << 30;

// A command at the ceiling, its Raft entry framing, and the protobuf framing of a forwarded
// transaction (at most a few bytes per write more than postcard) fit the message limits.
const _: () = assert!(2 * COMMAND_BYTES_CEILING <= KV_MESSAGE_BYTES_MAX);
const _: () = assert!(2 * COMMAND_BYTES_CEILING <= RAFT_MESSAGE_BYTES_MAX);
const _: () = assert!(COMMAND_BYTES_FLOOR <= COMMAND_BYTES_DEFAULT);
const _: () = assert!(COMMAND_BYTES_DEFAULT <= COMMAND_BYTES_CEILING);
const _: () = assert!(2 * SNAPSHOT_CHUNK_BYTES <= RAFT_MESSAGE_BYTES_MAX);

/// A snapshot's bytes in memory: what Raft builds, sends from, and receives into.
///
/// Unlike a `Cursor<Vec<u8>>`, it never grows from a position a peer chose: a seek past the
/// bytes written so far fails (openraft writes chunks in order and restarts from zero), and a
/// write that would take it past its limit fails with an error instead of allocating. Growth
/// uses a fallible reservation, so even an allocation failure is an error, not an abort.
#[derive(Default, Clone)]
pub struct SnapshotBuffer {
    data: Vec<u8>,
    pos: usize,
    bytes_max: usize,
}

impl std::fmt::Debug for SnapshotBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuffer")
            .field("len", &self.data.len())
            .field("pos", &self.pos)
            .field("bytes_max", &self.bytes_max)
            .finish()
    }
}

impl SnapshotBuffer {
    /// An empty buffer that accepts up to [`SNAPSHOT_BYTES_MAX`] bytes.
    pub fn new() -> Self {
        Self::with_limit(SNAPSHOT_BYTES_MAX)
    }

    /// An empty buffer that accepts up to `bytes_max` bytes.
    pub fn with_limit(bytes_max: usize) -> Self {
        SnapshotBuffer {
            data: Vec::new(),
            pos: 0,
            bytes_max,
        }
    }

    /// A buffer holding `data` (a snapshot built here), positioned at its start.
    pub fn from_bytes(data: Vec<u8>) -> Self {
        SnapshotBuffer {
            bytes_max: data.len().max(SNAPSHOT_BYTES_MAX),
            data,
            pos: 0,
        }
    }

    /// The bytes written.
    pub fn into_inner(self) -> Vec<u8> {
        self.data
    }

    fn write_at_pos(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self
            .pos
            .checked_add(buf.len())
            .filter(|end| *end <= self.bytes_max)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot exceeds the limit of {} bytes (writing {} bytes at offset {})",
                        self.bytes_max,
                        buf.len(),
                        self.pos
                    ),
                )
            })?;
        if end > self.data.len() {
            self.data
                .try_reserve(end - self.data.len())
                .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
            self.data.resize(end, 0);
        }
        self.data[self.pos..end].copy_from_slice(buf);
        self.pos = end;
        Ok(buf.len())
    }
}

impl AsyncRead for SnapshotBuffer {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = this.data.get(this.pos..).unwrap_or_default();
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SnapshotBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write_at_pos(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapshotBuffer {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let len = this.data.len() as i128;
        let target: i128 = match position {
            SeekFrom::Start(o) => i128::from(o),
            SeekFrom::End(d) => len + i128::from(d),
            SeekFrom::Current(d) => this.pos as i128 + i128::from(d),
        };
        if !(0..=len).contains(&target) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("snapshot seek to {target} outside the {len} bytes received"),
            ));
        }
        // In range of an existing Vec, so it fits usize.
        this.pos = usize::try_from(target).unwrap_or(this.data.len());
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    // issue 14 item 5: a snapshot chunk's offset and size come from the peer. Goal: the
    // receiving buffer never allocates from a claimed offset (a `Cursor<Vec<u8>>` resizes to
    // any offset it is sought to and aborts the node when that fails) and refuses to grow past
    // its limit with an error. Method: seek far past the end, and write past a small limit;
    // both fail and the buffer keeps only what was written.
    #[tokio::test]
    async fn snapshot_buffer_refuses_peer_controlled_growth() {
        let mut buf = SnapshotBuffer::with_limit(10);
        buf.write_all(b"0123")
            .await
            .expect("write within the limit");
        let far = buf.seek(SeekFrom::Start(1 << 40)).await;
        assert_eq!(
            far.expect_err("seek past the end").kind(),
            io::ErrorKind::InvalidInput
        );
        let over = buf.write_all(b"456789abc").await;
        assert_eq!(
            over.expect_err("write past the limit").kind(),
            io::ErrorKind::InvalidData
        );
        // A resend from an offset already received overwrites in place.
        buf.seek(SeekFrom::Start(2)).await.expect("seek back");
        buf.write_all(b"xy").await.expect("rewrite");
        buf.seek(SeekFrom::Start(0)).await.expect("rewind");
        let mut out = Vec::new();
        buf.read_to_end(&mut out).await.expect("read");
        assert_eq!(out, b"01xy");
    }
}
