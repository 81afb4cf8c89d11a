//! Running long-lived services: accept loops over the listeners, connection limits, readiness
//! notification and a bounded graceful shutdown on SIGTERM/SIGINT.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Config;
use crate::net::limits::{ConnectionLimiter, ConnectionSlot, Refusal};
use crate::net::listeners::{self, ListenSpec};
use crate::net::notify;
use crate::settings::watch::{FileWatch, WATCH_EVERY};
use crate::stats::{self, Event};

/// How long sessions may take to finish after SIGTERM before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub type SessionFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Starts a session on an accepted connection; the receiver turns true at shutdown.
pub type Handler =
    Arc<dyn Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> SessionFuture + Send + Sync>;

/// One protocol's listeners and its session handler.
pub struct Service {
    pub name: &'static str,
    pub listeners: Vec<std::net::TcpListener>,
    pub handler: Handler,
    pub limiter: ConnectionLimiter,
    /// Sent to a refused connection before closing it (e.g. SMTP `421 4.7.0 …`). None on an
    /// implicit-TLS listener: there a refused connection is closed without a byte, since any
    /// cleartext would only reach the client as a TLS error.
    pub refusal: Option<fn(Refusal) -> Vec<u8>>,
}

/// A listener named in the config: its socket name, port and the key that sets the port.
pub type NamedPort = (&'static str, u16, &'static str);

/// The listeners of a mailbox-access daemon (IMAP, POP3) on `access.interfaces`: the plain port,
/// and its implicit-TLS twin when `access.implicitTls.enable`; tagged with "TLS is implicit".
pub fn access_specs(
    config: &Config,
    plain: NamedPort,
    implicit: NamedPort,
) -> Vec<(ListenSpec, bool)> {
    let spec = |(name, port, key): NamedPort, implicit_tls| ListenSpec {
        name,
        port,
        interfaces: config.access.interfaces.clone(),
        key,
        implicit_tls,
    };
    let mut specs = vec![(spec(plain, false), false)];
    if config.access.implicit_tls.enable {
        specs.push((spec(implicit, true), true));
    }
    specs
}

/// Opens the listeners of `specs` and makes one service per spec, all sharing one connection
/// limiter. `start` begins a session on an accepted connection, given the tag that goes with its
/// spec (e.g. "TLS is implicit").
pub fn services_for<T, F>(
    specs: Vec<(ListenSpec, T)>,
    limiter: ConnectionLimiter,
    refusal: fn(Refusal) -> Vec<u8>,
    start: F,
) -> anyhow::Result<Vec<Service>>
where
    T: Copy + Send + Sync + 'static,
    F: Fn(TcpStream, SocketAddr, T, watch::Receiver<bool>) -> SessionFuture
        + Clone
        + Send
        + Sync
        + 'static,
{
    let specs = specs
        .into_iter()
        .map(|(spec, tag)| (spec, tag, limiter.clone()))
        .collect();
    services_with_limiters(specs, refusal, start)
}

/// [`services_for`] with a connection limiter per spec (specs may share one by cloning it).
pub fn services_with_limiters<T, F>(
    specs: Vec<(ListenSpec, T, ConnectionLimiter)>,
    refusal: fn(Refusal) -> Vec<u8>,
    start: F,
) -> anyhow::Result<Vec<Service>>
where
    T: Copy + Send + Sync + 'static,
    F: Fn(TcpStream, SocketAddr, T, watch::Receiver<bool>) -> SessionFuture
        + Clone
        + Send
        + Sync
        + 'static,
{
    let only: Vec<ListenSpec> = specs.iter().map(|(spec, ..)| spec.clone()).collect();
    let mut opened = listeners::open(&only)?;
    let mut services = Vec::new();
    for (spec, tag, limiter) in specs {
        let start = start.clone();
        let handler: Handler =
            Arc::new(move |stream, peer, shutdown| start(stream, peer, tag, shutdown));
        services.push(Service {
            name: spec.name,
            listeners: listeners::take(&mut opened, spec.name),
            handler,
            limiter,
            refusal: (!spec.implicit_tls).then_some(refusal),
        });
    }
    Ok(services)
}

struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    handler: Handler,
}

/// What SIGHUP does (re-read the settings and certificates; sessions in progress keep theirs).
pub type OnReload = Box<dyn Fn() + Send + Sync>;

/// Serves until SIGTERM or SIGINT, then lets sessions finish (at most [`SHUTDOWN_GRACE`]).
/// SIGHUP runs `on_reload`, with `RELOADING=1` and `READY=1` around it for systemd; so does a
/// change of the override file in `state_dir` (what the D-Bus admin writes). The process's
/// statistics are added to `state_dir`'s every few seconds and at the end.
pub async fn run(
    services: Vec<Service>,
    on_reload: OnReload,
    state_dir: PathBuf,
) -> anyhow::Result<()> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (accepted_tx, mut accepted_rx) = mpsc::channel::<Accepted>(64);
    let mut acceptors = JoinSet::new();
    let mut names = Vec::new();
    for service in services {
        names.push(service.name);
        for listener in service.listeners {
            let listener = tokio::net::TcpListener::from_std(listener)
                .with_context(|| format!("{}: listener", service.name))?;
            if let Ok(address) = listener.local_addr() {
                info!(service = service.name, %address, "listening");
            }
            acceptors.spawn(accept_loop(
                service.name,
                listener,
                service.handler.clone(),
                service.limiter.clone(),
                service.refusal,
                accepted_tx.clone(),
            ));
        }
    }
    drop(accepted_tx);
    notify::ready(&format!("serving {}", names.join(", ")));
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut overrides = FileWatch::new(state_dir.join(crate::config::layers::OVERRIDES_FILE));
    let mut persist = tokio::time::interval(stats::PERSIST_EVERY);
    persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut look = tokio::time::interval(WATCH_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => reload(&on_reload),
            _ = persist.tick() => persist_statistics(&state_dir),
            _ = look.tick() => {
                if overrides.changed() {
                    info!("the override file changed: reloading");
                    reload(&on_reload);
                }
            }
            Some(conn) = accepted_rx.recv() => {
                let Accepted { stream, peer, slot, handler } = conn;
                let session = handler(stream, peer, shutdown_rx.clone());
                sessions.spawn(async move {
                    session.await;
                    drop(slot);
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    info!(sessions = sessions.len(), "shutting down");
    notify::stopping();
    acceptors.abort_all();
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = sessions.len(),
            "sessions cut after the shutdown grace period"
        );
        sessions.abort_all();
    }
    persist_statistics(&state_dir);
    Ok(())
}

/// Runs `on_reload` between systemd's `RELOADING=1` and `READY=1`.
fn reload(on_reload: &OnReload) {
    notify::reloading();
    on_reload();
    notify::ready("reloaded");
}

/// Adds this process's counts to the statistics file; a failure is logged and the counts
/// wait for the next try.
fn persist_statistics(state_dir: &std::path::Path) {
    if let Err(err) = stats::persist(state_dir) {
        warn!(dir = %state_dir.display(), "cannot write the statistics: {err}");
    }
}

async fn accept_loop(
    service: &'static str,
    listener: tokio::net::TcpListener,
    handler: Handler,
    limiter: ConnectionLimiter,
    refusal: Option<fn(Refusal) -> Vec<u8>>,
    accepted: mpsc::Sender<Accepted>,
) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match limiter.acquire(peer.ip().to_canonical()) {
            Ok(slot) => {
                stats::count(Event::Connection(service));
                let conn = Accepted {
                    stream,
                    peer,
                    slot,
                    handler: handler.clone(),
                };
                if accepted.send(conn).await.is_err() {
                    return;
                }
            }
            Err(why) => {
                info!(peer = %peer.ip(), ?why, "connection refused by limit");
                let Some(refusal) = refusal else {
                    // Implicit TLS: closed as it is, not a byte written.
                    drop(stream);
                    continue;
                };
                let message = refusal(why);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        let _ = stream.write_all(&message).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
        }
    }
}
