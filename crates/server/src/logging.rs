//! Logging: `tracing` events to stderr and to `<store>/logs/roach.log`, each line prefixed
//! with the node id (`n?` until the node knows it).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

static NODE_ID: AtomicU64 = AtomicU64::new(0);

/// Records the node id shown on every later log line.
pub fn set_node_id(id: u64) {
    NODE_ID.store(id, Ordering::Relaxed);
}

/// Prefixes the default format with the node id.
struct NodePrefix(Format);

impl<S, N> FormatEvent<S, N> for NodePrefix
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        match NODE_ID.load(Ordering::Relaxed) {
            0 => write!(writer, "n? ")?,
            id => write!(writer, "n{id} ")?,
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// The default filter: our crates at info, chatty dependencies at warn. `RUST_LOG` overrides.
const DEFAULT_FILTER: &str =
    "info,openraft=warn,h2=warn,hyper=warn,tower=warn,fjall=warn,lsm_tree=warn";

/// Installs the global subscriber: stderr plus `<store>/logs/roach.log` (appended).
pub fn init(store: &Path) -> std::io::Result<()> {
    let dir = store.join("logs");
    std::fs::create_dir_all(&dir)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("roach.log"))?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(NodePrefix(Format::default()))
        .fmt_fields(DefaultFields::new());
    let to_file = fmt::layer()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .event_format(NodePrefix(Format::default()))
        .fmt_fields(DefaultFields::new());
    // A second init in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(to_file)
        .try_init();
    Ok(())
}
