//! Following a redirect answer to the client's upgrade request
//! ([`ClientRequest::follow_redirects`](crate::ClientRequest::follow_redirects)).

use bytes::Bytes;
use http::{Response, StatusCode, header};
use url::Url;

use crate::error::HandshakeError;

/// Whether an answer to the upgrade request is a redirect that may be followed:
/// 301, 302, 307 or 308 (the request is a `GET` either way).
pub(super) fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Where a redirect from `current` leads: its `Location`, resolved against
/// `current`, `http`/`https` taken as `ws`/`wss`, without a fragment.
///
/// # Errors
///
/// [`HandshakeError::Redirect`] when there is no usable `Location`, it is not a
/// WebSocket URL, or it would leave `wss://` for `ws://`.
pub(super) fn next_url(current: &Url, response: &Response<Bytes>) -> Result<Url, HandshakeError> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .ok_or_else(|| refusal_at("", "redirect without a location"))?;
    let location = location.to_str().map_err(|_| {
        refusal_at(
            &String::from_utf8_lossy(location.as_bytes()),
            "location is not text",
        )
    })?;
    let mut next = current
        .join(location)
        .map_err(|_| refusal_at(location, "location is not a url"))?;
    let scheme = match next.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => {
            return Err(refusal_at(
                location,
                "location is not a ws, wss, http or https url",
            ));
        }
    };
    if current.scheme() == "wss" && scheme == "ws" {
        return Err(refusal_at(
            location,
            "redirect from wss:// to ws:// would drop tls",
        ));
    }
    if next.scheme() != scheme {
        // `http` → `ws` keeps a special scheme special, which `Url` allows.
        next.set_scheme(scheme)
            .map_err(|()| refusal_at(location, "location is not a websocket url"))?;
    }
    next.set_fragment(None);
    if next.host().is_none() {
        return Err(refusal_at(location, "location has no host"));
    }
    Ok(next)
}

/// Whether two URLs share an origin (scheme, host and port, RFC 6454): where
/// credentials may be carried to.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// The error for a redirect to `url` that is not followed.
pub(super) fn refusal(url: &Url, reason: &'static str) -> HandshakeError {
    refusal_at(url.as_str(), reason)
}

fn refusal_at(location: &str, reason: &'static str) -> HandshakeError {
    HandshakeError::Redirect {
        location: location.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, location: Option<&str>) -> Response<Bytes> {
        let mut response = Response::builder().status(status);
        if let Some(location) = location {
            response = response.header("location", location);
        }
        response.body(Bytes::new()).unwrap()
    }

    fn next(current: &str, location: &str) -> Result<String, HandshakeError> {
        next_url(&Url::parse(current).unwrap(), &answer(302, Some(location))).map(String::from)
    }

    #[test]
    fn only_the_four_redirect_statuses_are_followed() {
        for status in [301, 302, 307, 308] {
            assert!(is_redirect(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [200, 300, 303, 304, 305, 400] {
            assert!(!is_redirect(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }

    #[test]
    fn locations_resolve_and_map_http_schemes_to_websocket_ones() {
        assert_eq!(
            next("ws://a.example/x/y", "z?q=1").unwrap(),
            "ws://a.example/x/z?q=1"
        );
        assert_eq!(
            next("ws://a.example/x", "//b.example:81/p#frag").unwrap(),
            "ws://b.example:81/p"
        );
        assert_eq!(
            next("ws://a.example/", "https://b.example/p").unwrap(),
            "wss://b.example/p"
        );
        assert_eq!(
            next("wss://a.example/", "wss://b.example:444/").unwrap(),
            "wss://b.example:444/"
        );
        assert_eq!(
            next("ws://a.example/", "http://b.example:8080/").unwrap(),
            "ws://b.example:8080/"
        );
    }

    #[test]
    fn downgrades_and_foreign_schemes_are_refused() {
        for (current, location) in [
            ("wss://a.example/", "ws://a.example/"),
            ("wss://a.example/", "http://a.example/"),
            ("ws://a.example/", "ftp://a.example/"),
            ("ws://a.example/", "mailto:x@a.example"),
        ] {
            let err = next(current, location).unwrap_err();
            assert!(
                matches!(err, HandshakeError::Redirect { .. }),
                "{location}: {err}"
            );
        }
        let missing = next_url(&Url::parse("ws://a/").unwrap(), &answer(301, None));
        assert!(matches!(missing, Err(HandshakeError::Redirect { .. })));
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(same_origin(
            &url("wss://a.example/x"),
            &url("wss://a.example:443/y")
        ));
        assert!(!same_origin(&url("wss://a.example/"), &url("wss://b.example/")));
        assert!(!same_origin(&url("ws://a.example/"), &url("wss://a.example/")));
        assert!(!same_origin(&url("ws://a.example/"), &url("ws://a.example:81/")));
    }
}
