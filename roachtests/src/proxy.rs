//! A TCP proxy in front of a source node, through which the standby connects (the standby's
//! nodes are told to dial it instead of the node). It can partition the link, add latency or
//! cap the bandwidth, in both directions.

use anyhow::Result;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Forwards everything.
    Up,
    /// Resets every connection and refuses new ones (accepted, then closed).
    Partitioned,
    /// Delays every chunk by this much.
    Latency(Duration),
    /// At most this many bytes per second in each direction.
    Bandwidth(u64),
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// Where the standby dials.
    pub addr: String,
    /// The source node behind it.
    pub upstream: String,
    link: Arc<Mutex<Link>>,
    changed: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (an OS-assigned port) and forwards to `upstream`.
    pub async fn start(upstream: &str) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let link = Arc::new(Mutex::new(Link::Up));
        let (changed, _) = watch::channel(0u64);
        let (l, tx, up) = (link.clone(), changed.clone(), upstream.to_string());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = *l.lock().unwrap_or_else(|p| p.into_inner());
                if state == Link::Partitioned {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, up.clone(), l.clone(), tx.subscribe()));
            }
        });
        Ok(Proxy {
            addr,
            upstream: upstream.to_string(),
            link,
            changed,
            task,
        })
    }

    /// Changes what the link does; partitioning resets the open connections.
    pub fn set(&self, link: Link) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = link;
        self.changed.send_modify(|g| *g += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: TcpStream,
    upstream: String,
    link: Arc<Mutex<Link>>,
    mut changed: watch::Receiver<u64>,
) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let a = pump(cr, sw, link.clone());
    let b = pump(sr, cw, link.clone());
    let partitioned = async {
        loop {
            if changed.changed().await.is_err() {
                return std::future::pending::<()>().await;
            }
            if *link.lock().unwrap_or_else(|p| p.into_inner()) == Link::Partitioned {
                return;
            }
        }
    };
    tokio::select! {
        _ = a => {}
        _ = b => {}
        _ = partitioned => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Mutex<Link>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let state = *link.lock().unwrap_or_else(|p| p.into_inner());
        match state {
            Link::Partitioned => return,
            Link::Latency(d) => tokio::time::sleep(d).await,
            Link::Bandwidth(bps) if bps > 0 => {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / bps as f64)).await;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
