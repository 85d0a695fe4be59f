//! The HTTP accept loop.
//!
//! axum's `serve` gives hyper no timer, and without one hyper's header-read timeout is off: a
//! client that sends half a request line and stops holds its connection, and a task, for
//! good. A few thousand such clients and the gateway no longer takes webhooks. This loop
//! serves the same router through hyper directly, with a timer: the request line and headers
//! must arrive within `header_read_timeout`, else the connection is closed. The clock starts
//! when the connection is ready for a request, so it also closes keep-alive connections left
//! idle that long. (A webhook body's own deadline is the gateway's, see `gateway::body`.)
//!
//! Each request carries its connection's peer address as axum's `ConnectInfo<SocketAddr>`
//! extension, as `into_make_service_with_connect_info` would: the gateway counts body memory
//! per sending address.
//!
//! On shutdown it stops accepting, lets every connection finish the request it is serving
//! (a webhook being committed is answered), and returns when they are done or [`DRAIN`] has
//! passed.

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Option<Duration>,
    shutdown: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait for some to be freed, as axum does.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Answers are small and written at once: no reason to wait for Nagle.
        let _ = stream.set_nodelay(true);
        // The peer address goes into every request's extensions: one small insert per request
        // (`Router::layer` would rebuild the router per connection).
        let inner = TowerToHyperService::new(router.clone());
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            inner.call(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("shutdown: requests still in flight after {DRAIN:?} are dropped");
        }
    }
}
