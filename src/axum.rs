//! WebSocket routes in axum (feature `axum`): the [`WebSocketUpgrade`] extractor,
//! shaped like axum's own `extract::ws::WebSocketUpgrade`, accepting both HTTP/1.1
//! upgrades (RFC 6455 §4) and WebSockets over HTTP/2 extended `CONNECT` (RFC 8441).
//!
//! ```no_run
//! use axum::Router;
//! use axum::response::Response;
//! use axum::routing::any;
//! use fastws::axum::WebSocketUpgrade;
//! use futures_util::StreamExt;
//!
//! async fn echo(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat"]).on_upgrade(|ws| async move {
//!         let (sink, stream) = ws.split();
//!         let _ = stream.forward(sink).await;
//!     })
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! // `any`, not `get`: HTTP/2 opens a WebSocket with CONNECT.
//! let app: Router = Router::new().route("/ws", any(echo));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Over HTTP/2 the server must announce `SETTINGS_ENABLE_CONNECT_PROTOCOL`:
//! `axum::serve` does (axum 0.8, feature `http2`); with hyper's own builder call
//! `http2().enable_connect_protocol()`.
//!
//! Differences from axum's extractor: messages are fastws's [`Message`]
//! (control messages are yielded only with
//! [`Config::control_messages`](crate::Config::control_messages); pings are answered
//! either way), the settings are one [`Config`] given with
//! [`WebSocketUpgrade::config`], permessage-deflate is negotiated (browsers offer it),
//! and the rejection is [`Rejection`], a response with the status RFC 6455 asks for.

use std::borrow::Cow;
use std::future::Future;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use bytes::BytesMut;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::codec::Role;
use crate::config::Config;
use crate::error::Error;
use crate::handshake::server::{
    Refusal, Rejection, negotiate_extensions, switch_to_websocket, validate_upgrade, validate_version,
};
use crate::hyper::HyperWebSocket;
use crate::websocket::Agreed;

pub use crate::message::Message;

/// The WebSocket a route gets: a [`crate::WebSocket`] over the connection hyper
/// handed over (an HTTP/1.1 connection, or one stream of an HTTP/2 one). With
/// [`Message`], the names of `axum::extract::ws`, so a port can change one `use`.
pub type WebSocket = HyperWebSocket;

/// An extractor that accepts a WebSocket upgrade: over HTTP/1.1 a `GET` with
/// `Upgrade: websocket`, over HTTP/2 an extended `CONNECT` with
/// `:protocol = websocket`. Finish it with [`on_upgrade`](WebSocketUpgrade::on_upgrade),
/// which returns the response to send and runs a callback on the WebSocket.
///
/// A request that is not a valid upgrade is refused with [`Rejection`] before the
/// handler runs: `400 Bad Request`, `426 Upgrade Required` (another
/// `Sec-WebSocket-Version`, or a connection hyper cannot hand over), or
/// `405 Method Not Allowed`.
#[derive(Debug)]
#[must_use = "nothing is upgraded until `on_upgrade` is called and its response sent"]
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    config: Config,
    /// The request's `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` lines.
    offer: HeaderMap,
    /// `Some` over HTTP/1.1: the `Sec-WebSocket-Key` the `101` answers.
    key: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
    protocol: Option<HeaderValue>,
    on_failed_upgrade: F,
}

/// What to do when hyper cannot hand over a connection that was answered as
/// upgraded (the client went away in between, for example): see
/// [`WebSocketUpgrade::on_failed_upgrade`].
pub trait OnFailedUpgrade: Send + 'static {
    /// Called with the error, in the task that would have run the WebSocket.
    fn call(self, error: Error);
}

impl<F: FnOnce(Error) + Send + 'static> OnFailedUpgrade for F {
    fn call(self, error: Error) {
        self(error)
    }
}

/// The default [`OnFailedUpgrade`]: the error is dropped, as axum's default does.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DefaultOnFailedUpgrade;

impl OnFailedUpgrade for DefaultOnFailedUpgrade {
    fn call(self, _error: Error) {}
}

impl<F> WebSocketUpgrade<F> {
    /// The settings of the WebSocket (limits, keepalive, timeouts, deflate), per
    /// route. The default is [`Config::default`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The subprotocols this route speaks, in order of preference: the first one
    /// the client also offered is selected and sent back in
    /// `Sec-WebSocket-Protocol` (RFC 6455 §4.2.2). None selected if the client
    /// offered none of them.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        let offered: Vec<&str> = crate::handshake::offered_protocols(&self.offer).collect();
        self.protocol = protocols
            .into_iter()
            .map(Into::into)
            .find(|protocol| offered.contains(&protocol.as_ref()))
            .and_then(|protocol| HeaderValue::from_str(&protocol).ok());
        self
    }

    /// The subprotocol [`protocols`](WebSocketUpgrade::protocols) selected, if any;
    /// the WebSocket reports it too, as [`WebSocket::protocol`].
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }

    /// Replaces what happens when the connection cannot be handed over after the
    /// response was sent (by default nothing).
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> WebSocketUpgrade<C> {
        WebSocketUpgrade {
            config: self.config,
            offer: self.offer,
            key: self.key,
            on_upgrade: self.on_upgrade,
            protocol: self.protocol,
            on_failed_upgrade: callback,
        }
    }

    /// Returns the response that accepts the upgrade (`101 Switching Protocols` over
    /// HTTP/1.1, `200 OK` over HTTP/2) and spawns a task that runs `callback` on
    /// the WebSocket once hyper hands the connection over.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        let mut response = Response::new(axum_core::body::Body::empty());
        // Over HTTP/2 a 2xx answer opens the stream, with no key to answer (RFC 8441 §5).
        if let Some(key) = &self.key {
            switch_to_websocket(&mut response, key.as_bytes());
        }
        if let Some(protocol) = &self.protocol {
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, protocol.clone());
        }
        let mut negotiated = negotiate_extensions(&self.offer, response.headers_mut(), &self.config);
        negotiated.agreed = Agreed::from_response(response.headers());
        let (config, on_upgrade, on_failed_upgrade) = (self.config, self.on_upgrade, self.on_failed_upgrade);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    callback(WebSocket::after_handshake(
                        io,
                        BytesMut::new(),
                        Role::Server,
                        config,
                        negotiated,
                    ))
                    .await;
                }
                Err(err) => on_failed_upgrade.call(Error::Io(std::io::Error::other(err))),
            }
        });
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let key = if parts.method == Method::CONNECT {
            // RFC 8441 §4: `:protocol` names the protocol the stream will carry.
            let protocol = parts.extensions.get::<hyper::ext::Protocol>();
            if protocol.map(hyper::ext::Protocol::as_str) != Some("websocket") {
                return Err(Refusal::bad_request("CONNECT without :protocol websocket").into());
            }
            validate_version(&parts.headers).map_err(|refusal| {
                let mut rejection = Rejection::from(refusal);
                // Connection-specific headers are malformed in HTTP/2 (RFC 9113 §8.2.2).
                rejection.response_mut().headers_mut().remove(header::UPGRADE);
                rejection
            })?;
            None
        } else if parts.method == Method::GET {
            // hyper hands over only HTTP/1.1 connections; 1.0 has no upgrade.
            if parts.version < Version::HTTP_11 {
                return Err(Refusal::bad_request("upgrade request is not HTTP/1.1").into());
            }
            validate_upgrade(&parts.headers)?;
            parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned()
        } else {
            let mut rejection = Rejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket opens with GET (HTTP/1.1) or CONNECT (HTTP/2)\n",
            );
            rejection
                .response_mut()
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, CONNECT"));
            return Err(rejection);
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            let mut rejection = Rejection::new(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded\n",
            );
            if key.is_some() {
                // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
                rejection
                    .response_mut()
                    .headers_mut()
                    .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            }
            return Err(rejection);
        };
        let mut offer = HeaderMap::new();
        for name in [header::SEC_WEBSOCKET_PROTOCOL, header::SEC_WEBSOCKET_EXTENSIONS] {
            for value in parts.headers.get_all(&name) {
                offer.append(name.clone(), value.clone());
            }
        }
        Ok(WebSocketUpgrade {
            config: Config::default(),
            offer,
            key,
            on_upgrade,
            protocol: None,
            on_failed_upgrade: DefaultOnFailedUpgrade,
        })
    }
}

/// The refusal as axum sends it: its status, headers and plain-text body.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (parts, body) = self.into_inner().into_parts();
        Response::from_parts(parts, axum_core::body::Body::from(body))
    }
}
