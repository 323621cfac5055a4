//! The listening socket: plain HTTP/1.1 or HTTPS (rustls), at most `limits.max_connections`
//! connections at once (further ones wait in the kernel's backlog, unaccepted, until one closes),
//! headers read within `limits.header_timeout_seconds`, and a graceful stop on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::ServeError;
use crate::daemon::config::TlsSettings;

/// How connections are taken.
pub struct Listening {
    pub listen: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// How long running requests get to finish once the daemon is told to stop.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until SIGTERM or SIGINT, then lets open requests finish (for up
/// to 30 s).
pub async fn serve(listener: TcpListener, app: Router, how: Listening) -> Result<(), ServeError> {
    let tls = acceptor(&how).await?;
    let connections = Arc::new(tokio::sync::Semaphore::new(how.max_connections));
    let graceful = GracefulShutdown::new();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        // A slot first: past the cap, connections wait in the backlog instead of being read.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => p,
            _ = &mut stop => break,
        };
        let Ok(permit) = permit else { break };
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, usually: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let watcher = graceful.watcher();
        let header_timeout = how.header_timeout;
        match &tls {
            None => {
                tokio::spawn(async move {
                    connection(tcp, app, watcher, header_timeout).await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(tcp, ());
                tokio::spawn(async move {
                    match handshake.await {
                        Ok((stream, _)) => connection(stream, app, watcher, header_timeout).await,
                        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!("requests still open after 30 s are cut off");
        }
    }
    Ok(())
}

/// Logs how the daemon listens; with `tls`, the acceptor of its certificate and key.
async fn acceptor(how: &Listening) -> Result<Option<RustlsAcceptor>, ServeError> {
    let Some(tls) = &how.tls else {
        if !how.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %how.listen,
                "plain HTTP on a non-loopback address: bearer tokens and alerts cross the network unencrypted; configure tls"
            );
        }
        tracing::info!(listen = %how.listen, "custody serve listening (HTTP)");
        return Ok(None);
    };
    let config = RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
        .await
        .map_err(|e| {
            ServeError::Tls(format!(
                "{} / {}: {e}",
                tls.cert_file.display(),
                tls.key_file.display()
            ))
        })?;
    tracing::info!(listen = %how.listen, "custody serve listening (HTTPS)");
    Ok(Some(RustlsAcceptor::new(config)))
}

/// One HTTP/1.1 connection, to its end.
async fn connection<I>(
    io: I,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let served = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(served).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
