//! The HTTPS listener: TLS (rustls, TLS 1.2+, HTTP/2 and HTTP/1.1 by ALPN), the verified
//! client certificate attached to every request of its connection, the connection limits
//! ([`crate::http::limits::ConnectionLimits`]: caps per source and in total, a handshake deadline, a
//! deadline for the first request, an idle timeout, a write stall timeout, bounded send
//! buffers), and graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bulwark_pki::CertIdentity;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::authn::ConnInfo;
use crate::http::connections::{
    Activity, ConnectionSlot, ConnectionTable, RefusalLog, StreamDeadline, TrackedBody,
};
use crate::http::limits::{ConnectionLimits, Limit};
use crate::http::stall_io::StallGuardedIo;
use crate::pipeline;
use crate::state::ApiState;

/// How long open requests get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle HTTP/2 connections are pinged this often and dropped if a ping goes unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The HTTP/1.1 read buffer, which bounds a request head. It is above the request limits on
/// the request target and headers, so those answer with a `Status` first; only a target over
/// hyper's own 64 KiB cap gets hyper's bare 414.
const HTTP1_MAX_BUF: usize = 256 * 1024;
/// The HTTP/2 header list a client may send, likewise above the header limit.
const HTTP2_MAX_HEADER_LIST: u32 = 256 * 1024;
/// How often connection-level refusals are summarised in the audit log.
const REFUSAL_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// What every connection task shares.
struct Listener {
    state: Arc<ApiState>,
    acceptor: TlsAcceptor,
    limits: ConnectionLimits,
    refusals: Arc<RefusalLog>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Listener {
    /// Counts a connection closed by `limit`; all but idle closes (routine hygiene for
    /// long-lived clients, not a refusal) also go into the next audit summary.
    fn refuse(&self, limit: Limit, peer: IpAddr) {
        self.state.metrics.limit_refused(limit);
        if limit != Limit::IdleTimeout {
            self.refusals.record(limit, peer);
        }
    }
}

/// Serves `state` on `listener` with `tls` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let limits = state.limits.connections.clone();
    let table = ConnectionTable::new(&limits, state.metrics.connections.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Listener {
        state: Arc::clone(&state),
        acceptor: TlsAcceptor::from(Arc::new(tls)),
        limits,
        refusals: Arc::default(),
        shutdown: stopped,
    });
    let summaries = tokio::spawn(summarise_refusals(
        Arc::clone(&shared.refusals),
        Arc::clone(&state),
        shared.shutdown.clone(),
    ));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match table.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                // Closed before TLS: a refused connection costs a moment of a socket.
                shared.refuse(limit, peer.ip());
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(Arc::clone(&shared), tcp, peer, slot));
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while table.open() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = table.open(),
            "shutdown: open connections did not finish in time"
        );
    }
    // The last summary is written before the audit log is flushed.
    if let Ok(Some(summary)) = summaries.await {
        record_summary(&state, summary).await;
    }
}

/// Writes a summary of connection refusals every interval until shutdown; returns what was
/// refused since the last one.
async fn summarise_refusals(
    refusals: Arc<RefusalLog>,
    state: Arc<ApiState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<crate::http::connections::RefusalSummary> {
    let mut tick = tokio::time::interval(REFUSAL_SUMMARY_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(summary) = refusals.take() {
                    record_summary(&state, summary).await;
                }
            }
            _ = shutdown.changed() => return refusals.take(),
        }
    }
}

async fn record_summary(state: &ApiState, summary: crate::http::connections::RefusalSummary) {
    let event = summary.event(REFUSAL_SUMMARY_INTERVAL);
    tracing::warn!(
        refused = ?event.annotations.get("limits.bulwark.dev/refused"),
        sources = ?event.annotations.get("limits.bulwark.dev/sources"),
        "connections refused by limits"
    );
    if let Some(auditing) = &state.auditing {
        bulwark_audit::AuditSink::record(auditing.sink.as_ref(), event).await;
    }
}

async fn serve_connection(
    listener: Arc<Listener>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
) {
    let _slot = slot;
    let limits = &listener.limits;
    let tls =
        match tokio::time::timeout(limits.handshake_timeout, listener.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                listener.refuse(Limit::HandshakeTimeout, peer.ip());
                return;
            }
        };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| match CertIdentity::from_der(der) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "unusable client certificate");
                None
            }
        });
    let activity = Activity::new();
    let conn = ConnInfo { peer, client_cert };
    let state = Arc::clone(&listener.state);
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = requests.begin();
        request.extensions_mut().insert(conn.clone());
        let state = Arc::clone(&state);
        async move {
            let request = request.map(axum::body::Body::new);
            let response = pipeline::handle(state, request).await;
            if let Some(deadline) = response.extensions().get::<StreamDeadline>() {
                in_flight.set_deadline(*deadline);
            }
            Ok::<_, std::convert::Infallible>(response.map(|b| TrackedBody::new(b, in_flight)))
        }
    });
    let stall = {
        let listener = Arc::clone(&listener);
        Box::new(move || {
            tracing::debug!(%peer, "client stopped reading: closing the connection");
            listener.refuse(Limit::WriteStall, peer.ip());
        })
    };
    let io = StallGuardedIo::new(tls, limits.write_stall_timeout, stall);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HTTP1_MAX_BUF);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        .max_send_buf_size(limits.send_buffer_bytes)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut shutdown = listener.shutdown.clone();
    let mut closing = false;
    // Once closing, a connection that does not finish in time is dropped.
    let hard_stop = tokio::time::sleep(Duration::MAX);
    tokio::pin!(hard_stop);
    loop {
        let check = activity.next_check(limits.first_request_timeout, limits.idle_timeout);
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(check.into()), if !closing => {
                if let Some(expiry) = activity.expired(limits.first_request_timeout, limits.idle_timeout) {
                    tracing::debug!(%peer, ?expiry, "closing the connection");
                    listener.refuse(expiry.limit(), peer.ip());
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                    hard_stop.as_mut().reset(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                }
            }
            _ = shutdown.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
                hard_stop.as_mut().reset(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            () = &mut hard_stop, if closing => return,
        }
    }
}

/// The address a listener is bound to.
pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
