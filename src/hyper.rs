//! Upgrading a hyper 1.x request to a WebSocket (feature `hyper`), so a WebSocket
//! route lives inside the HTTP server you already run (hyper, axum, …).
//!
//! [`upgrade`] validates the request, negotiates extensions (permessage-deflate) as
//! [`accept`](crate::accept) does, and returns the `101` response for the server to
//! send with an [`Upgrade`] future that resolves to the [`WebSocket`] once hyper
//! hands the connection over.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use http_body_util::Empty;
//! use hyper::body::{Bytes, Incoming};
//!
//! async fn handle(
//!     mut request: hyper::Request<Incoming>,
//! ) -> Result<hyper::Response<Empty<Bytes>>, std::convert::Infallible> {
//!     match fastws::hyper::upgrade(&mut request, fastws::Config::default()) {
//!         Ok((response, upgrade)) => {
//!             tokio::spawn(async move {
//!                 if let Ok(ws) = upgrade.await {
//!                     let (sink, stream) = ws.split();
//!                     let _ = stream.forward(sink).await;
//!                 }
//!             });
//!             Ok(response)
//!         }
//!         Err(rejection) => {
//!             let mut refusal = hyper::Response::new(Empty::new());
//!             *refusal.status_mut() = rejection.response().status();
//!             Ok(refusal)
//!         }
//!     }
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use http::{Request, Response, Version};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use crate::codec::Role;
use crate::config::Config;
use crate::error::Error;
use crate::handshake::server::{Refusal, Rejection, switching_protocols, validate_upgrade};
use crate::websocket::{Agreed, Negotiated, WebSocket};

/// A WebSocket over a connection hyper handed over.
pub type HyperWebSocket = WebSocket<TokioIo<Upgraded>>;

/// Validates `request` as a WebSocket upgrade (RFC 6455 §4.2.1) and prepares the
/// switch: returns the `101` response to send (add headers to it, such as a chosen
/// `Sec-WebSocket-Protocol`) and the future of the WebSocket.
///
/// # Errors
///
/// A [`Rejection`] holding the response to send instead: `400 Bad Request` for a
/// request that is not a valid upgrade, `426 Upgrade Required` (with
/// `Sec-WebSocket-Version: 13`) for another protocol version.
pub fn upgrade<B, RB: Default>(
    request: &mut Request<B>,
    config: Config,
) -> Result<(Response<RB>, Upgrade), Rejection> {
    let refused = Rejection::from;
    if request.method() != http::Method::GET {
        return Err(refused(Refusal::bad_request("upgrade request method is not GET")));
    }
    if request.version() != Version::HTTP_11 {
        return Err(refused(Refusal::bad_request("upgrade request is not HTTP/1.1")));
    }
    validate_upgrade(request.headers()).map_err(refused)?;
    let (response, mut negotiated) = switching_protocols(request.headers(), &config);
    negotiated.agreed = Agreed::from_response(response.headers());
    let upgrade = Upgrade {
        on_upgrade: hyper::upgrade::on(request),
        config: Some(config),
        negotiated,
    };
    Ok((response.map(|()| RB::default()), upgrade))
}

/// The future of the WebSocket hyper hands over after sending the `101` response.
///
/// # Errors
///
/// [`Error::Io`] if hyper fails to hand the connection over (for example, the
/// client disconnected, or the response sent was not the `101`).
#[derive(Debug)]
#[must_use = "the WebSocket exists only once this future is awaited"]
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    config: Option<Config>,
    negotiated: Negotiated,
}

impl Future for Upgrade {
    type Output = Result<HyperWebSocket, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let upgraded = ready!(Pin::new(&mut self.on_upgrade).poll(cx))
            .map_err(|err| Error::Io(std::io::Error::other(err)))?;
        let config = self.config.take().expect("Upgrade polled after completion");
        let io = TokioIo::new(upgraded);
        Poll::Ready(Ok(WebSocket::after_handshake(
            io,
            BytesMut::new(),
            Role::Server,
            config,
            std::mem::take(&mut self.negotiated),
        )))
    }
}
