//! The HTTPS listener: TLS (rustls, TLS 1.2+, HTTP/2 and HTTP/1.1 by ALPN), the verified
//! client certificate attached to every request of its connection, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bulwark_pki::CertIdentity;
use bulwark_store::Engine;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::ConnInfo;
use crate::pipeline;
use crate::state::ApiState;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open requests get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 streams per connection (watchers multiplex over few connections).
const MAX_STREAMS: u32 = 2000;
/// How long an HTTP/1.1 client has to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle HTTP/2 connections are pinged this often and dropped if a ping goes unanswered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `state` on `listener` with `tls` until `shutdown` resolves.
pub async fn serve<E: Engine>(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    state: Arc<ApiState<E>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
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
            let conn = ConnInfo { peer, client_cert };
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(conn.clone());
                    let state = Arc::clone(&state);
                    async move {
                        let request = request.map(Body::new);
                        Ok::<_, std::convert::Infallible>(pipeline::handle(state, request).await)
                    }
                });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // Slow or dead clients cannot hold connections forever: the request head must
            // arrive in time (HTTP/1.1) and idle HTTP/2 connections are pinged.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_STREAMS)
                .keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("shutdown: open connections did not finish in time");
    }
}

/// The address a listener is bound to.
pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
