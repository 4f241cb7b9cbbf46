//! Negotiating permessage-deflate (RFC 7692 §5, §7.1) in `Sec-WebSocket-Extensions`.

use http::HeaderMap;
use http::header::SEC_WEBSOCKET_EXTENSIONS;

use super::DeflateConfig;

/// The extension's registered name.
const NAME: &str = "permessage-deflate";

/// The parameters both ends agreed on. Window sizes not stated in the handshake
/// are 15 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The largest window of the server's compressor, in bits (8–15).
    pub server_max_window_bits: u8,
    /// The largest window of the client's compressor, in bits (8–15).
    pub client_max_window_bits: u8,
}

/// One extension element: its name and parameters, values unquoted.
type Element<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);

/// Splits `Sec-WebSocket-Extensions` headers into elements (RFC 6455 §9.1).
fn elements(headers: &HeaderMap) -> Vec<Element<'_>> {
    headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter(|element| !element.trim().is_empty())
        .map(|element| {
            let mut parts = element.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let params = parts
                .filter(|param| !param.is_empty())
                .map(|param| match param.split_once('=') {
                    Some((key, value)) => (key.trim(), Some(value.trim().trim_matches('"'))),
                    None => (param, None),
                })
                .collect();
            (name, params)
        })
        .collect()
}

/// Parses a window size parameter value: 8 to 15, digits only (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The server's side: picks the first permessage-deflate offer it can honour
/// (RFC 7692 §5.1) and returns the agreed parameters with the response element.
/// `None` declines them all, and the connection goes on uncompressed.
///
/// ```
/// use fastws::DeflateConfig;
/// use fastws::deflate::negotiation::negotiate_offer;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert(
///     "sec-websocket-extensions",
///     "permessage-deflate; server_max_window_bits=10; client_max_window_bits".parse().unwrap(),
/// );
/// let (params, answer) = negotiate_offer(&headers, &DeflateConfig::default()).unwrap();
/// assert_eq!(params.server_max_window_bits, 10);
/// // Browsers offer a bare `client_max_window_bits`: the default limits it.
/// assert_eq!(params.client_max_window_bits, 12);
/// assert_eq!(answer, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12");
/// ```
pub fn negotiate_offer(headers: &HeaderMap, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    if !config.enabled {
        return None;
    }
    elements(headers)
        .into_iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(NAME))
        .find_map(|(_, params)| accept_offer(&params, config))
}

/// Accepts one offer if every parameter is known, valid and not repeated.
fn accept_offer(params: &[(&str, Option<&str>)], config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let mut agreed = DeflateParams {
        server_no_context_takeover: config.server_no_context_takeover,
        client_no_context_takeover: config.client_no_context_takeover,
        server_max_window_bits: config.server_max_window_bits,
        client_max_window_bits: 15,
    };
    let mut seen = Vec::with_capacity(params.len());
    let mut server_bits_offered = false;
    let mut client_bits_offered: Option<Option<u8>> = None;
    for &(name, value) in params {
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        match (name, value) {
            ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
            ("server_max_window_bits", Some(value)) => {
                agreed.server_max_window_bits = agreed.server_max_window_bits.min(window_bits(value)?);
                server_bits_offered = true;
            }
            ("client_max_window_bits", None) => client_bits_offered = Some(None),
            ("client_max_window_bits", Some(value)) => client_bits_offered = Some(Some(window_bits(value)?)),
            _ => return None,
        }
    }

    let mut answer = String::from(NAME);
    if agreed.server_no_context_takeover {
        answer.push_str("; server_no_context_takeover");
    }
    if agreed.client_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if server_bits_offered {
        answer.push_str(&format!(
            "; server_max_window_bits={}",
            agreed.server_max_window_bits
        ));
    }
    // The client's window may only be limited if it offered to be (RFC 7692 §7.1.2.2).
    if let Some(offered) = client_bits_offered {
        let limit = config.client_window_limit().min(offered.unwrap_or(15));
        if limit < 15 || offered.is_some() {
            agreed.client_max_window_bits = limit;
            answer.push_str(&format!("; client_max_window_bits={limit}"));
        }
    }
    Some((agreed, answer))
}

/// The client's offer for `config` (RFC 7692 §5.1). It always offers
/// `client_max_window_bits`, so a server may limit our window. Unless the config
/// already gives up context takeover, a second, fallback offer adds
/// `client_no_context_takeover`, for servers that accept only clients that reset
/// their compressor; the server picks the first offer it can honour.
///
/// ```
/// use fastws::DeflateConfig;
/// use fastws::deflate::negotiation::client_offer;
/// assert_eq!(
///     client_offer(&DeflateConfig::default()),
///     "permessage-deflate; client_max_window_bits, \
///      permessage-deflate; client_no_context_takeover; client_max_window_bits"
/// );
/// ```
pub fn client_offer(config: &DeflateConfig) -> String {
    let preferred = offer_element(config);
    if config.client_no_context_takeover {
        return preferred;
    }
    let fallback = offer_element(&config.clone().client_no_context_takeover(true));
    format!("{preferred}, {fallback}")
}

/// One offer element for `config`.
fn offer_element(config: &DeflateConfig) -> String {
    let mut offer = String::from(NAME);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < 15 {
        offer.push_str(&format!(
            "; server_max_window_bits={}",
            config.server_max_window_bits
        ));
    }
    offer.push_str("; client_max_window_bits");
    if config.client_window_offer() < 15 {
        offer.push_str(&format!("={}", config.client_window_offer()));
    }
    offer
}

/// The client's side: checks the server's answer against the offer made from
/// `config` (RFC 7692 §7.1). `Ok(None)`: the server declined compression.
///
/// # Errors
///
/// An answer that does not fit the offer: another extension, several elements, an
/// unknown, repeated or invalid parameter, a window larger than offered, or a
/// missing parameter the offer required the server to accept.
pub fn check_answer(
    headers: &HeaderMap,
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, &'static str> {
    let elements = elements(headers);
    let params = match elements.as_slice() {
        [] => return Ok(None),
        [(name, params)] if config.enabled && name.eq_ignore_ascii_case(NAME) => params,
        _ => return Err("server chose an extension the client did not offer"),
    };
    let mut agreed = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: config.client_no_context_takeover,
        server_max_window_bits: 15,
        client_max_window_bits: config.client_window_offer(),
    };
    let mut seen = Vec::with_capacity(params.len());
    for &(name, value) in params {
        if seen.contains(&name) {
            return Err("permessage-deflate parameter repeated in the answer");
        }
        seen.push(name);
        let invalid = "invalid permessage-deflate parameter in the answer";
        match (name, value) {
            ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
            ("server_max_window_bits", Some(value)) => {
                let bits = window_bits(value).ok_or(invalid)?;
                if bits > config.server_max_window_bits {
                    return Err("server_max_window_bits in the answer exceeds the offer");
                }
                agreed.server_max_window_bits = bits;
            }
            ("client_max_window_bits", Some(value)) => {
                let bits = window_bits(value).ok_or(invalid)?;
                if bits > config.client_window_offer() {
                    return Err("client_max_window_bits in the answer exceeds the offer");
                }
                agreed.client_max_window_bits = bits;
            }
            _ => return Err(invalid),
        }
    }
    if config.server_no_context_takeover && !agreed.server_no_context_takeover {
        return Err("answer lacks the server_no_context_takeover the client asked for");
    }
    if config.server_max_window_bits < 15 && !seen.contains(&"server_max_window_bits") {
        return Err("answer lacks the server_max_window_bits the client asked for");
    }
    Ok(Some(agreed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SEC_WEBSOCKET_EXTENSIONS, value.parse().unwrap());
        headers
    }

    fn server(offer: &str, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
        negotiate_offer(&headers(offer), config)
    }

    #[test]
    fn plain_offer_is_accepted_with_defaults() {
        let (params, answer) = server("permessage-deflate", &DeflateConfig::default()).unwrap();
        assert_eq!(answer, "permessage-deflate");
        assert_eq!(params.server_max_window_bits, 15);
        assert_eq!(params.client_max_window_bits, 15);
        assert!(!params.server_no_context_takeover && !params.client_no_context_takeover);
    }

    #[test]
    fn each_parameter_is_honoured() {
        let config = DeflateConfig::default();
        let (params, answer) = server("permessage-deflate; server_no_context_takeover", &config).unwrap();
        assert!(params.server_no_context_takeover);
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");

        let (params, answer) = server("permessage-deflate; client_no_context_takeover", &config).unwrap();
        assert!(params.client_no_context_takeover);
        assert_eq!(answer, "permessage-deflate; client_no_context_takeover");

        for bits in 8..=15u8 {
            let offer = format!("permessage-deflate; server_max_window_bits={bits}");
            let (params, answer) = server(&offer, &config).unwrap();
            assert_eq!(params.server_max_window_bits, bits);
            assert_eq!(answer, offer);

            // The default limits the client's window to 12 bits.
            let offer = format!("permessage-deflate; client_max_window_bits={bits}");
            let (params, answer) = server(&offer, &config).unwrap();
            assert_eq!(params.client_max_window_bits, bits.min(12));
            assert_eq!(
                answer,
                format!("permessage-deflate; client_max_window_bits={}", bits.min(12))
            );
        }

        let (params, answer) = server("permessage-deflate; client_max_window_bits", &config).unwrap();
        assert_eq!(params.client_max_window_bits, 12);
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=12");
        let unlimited = DeflateConfig::default().client_max_window_bits(15);
        let (params, answer) = server("permessage-deflate; client_max_window_bits", &unlimited).unwrap();
        assert_eq!(params.client_max_window_bits, 15);
        assert_eq!(answer, "permessage-deflate");
        let limited = DeflateConfig::default().client_max_window_bits(10);
        let (params, answer) = server("permessage-deflate; client_max_window_bits", &limited).unwrap();
        assert_eq!(params.client_max_window_bits, 10);
        assert_eq!(answer, "permessage-deflate; client_max_window_bits=10");
        // Without the client's consent its window cannot be limited.
        let (params, answer) = server("permessage-deflate", &limited).unwrap();
        assert_eq!(params.client_max_window_bits, 15);
        assert_eq!(answer, "permessage-deflate");
    }

    #[test]
    fn server_settings_apply_without_an_offer_for_them() {
        let config = DeflateConfig::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .server_max_window_bits(11);
        let (params, answer) = server("permessage-deflate; server_max_window_bits=13", &config).unwrap();
        assert_eq!(params.server_max_window_bits, 11);
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11"
        );
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_one_is_tried() {
        let config = DeflateConfig::default();
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=0x0a",
            "permessage-deflate; client_max_window_bits=1a",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown_param",
            "x-webkit-deflate-frame",
        ] {
            assert!(server(bad, &config).is_none(), "{bad}");
        }
        let (params, _) = server(
            "permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=9",
            &config,
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 9);
        let quoted = server("permessage-deflate; client_max_window_bits=\"10\"", &config).unwrap();
        assert_eq!(quoted.0.client_max_window_bits, 10);
        assert!(server("permessage-deflate", &DeflateConfig::disabled()).is_none());
    }

    #[test]
    fn client_offer_reflects_its_config() {
        let config = DeflateConfig::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .server_max_window_bits(10)
            .client_max_window_bits(12);
        assert_eq!(
            client_offer(&config),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
    }

    #[test]
    fn client_accepts_answers_that_fit_its_offer() {
        let config = DeflateConfig::default();
        assert_eq!(check_answer(&HeaderMap::new(), &config), Ok(None));
        let params = check_answer(&headers("permessage-deflate"), &config)
            .unwrap()
            .unwrap();
        assert_eq!(params.server_max_window_bits, 15);
        let params = check_answer(
            &headers(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9; client_max_window_bits=8",
            ),
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 9,
                client_max_window_bits: 8,
            }
        );
    }

    #[test]
    fn client_rejects_answers_that_do_not_fit() {
        let config = DeflateConfig::default().client_max_window_bits(10);
        for bad in [
            "permessage-deflate; client_max_window_bits=12",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=4",
            "permessage-deflate; bogus",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate, permessage-deflate",
            "x-other",
        ] {
            assert!(check_answer(&headers(bad), &config).is_err(), "{bad}");
        }
        let strict = DeflateConfig::default()
            .server_no_context_takeover(true)
            .server_max_window_bits(10);
        assert!(check_answer(&headers("permessage-deflate; server_max_window_bits=10"), &strict).is_err());
        assert!(
            check_answer(
                &headers("permessage-deflate; server_no_context_takeover"),
                &strict
            )
            .is_err()
        );
        assert!(
            check_answer(
                &headers("permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
                &strict
            )
            .is_err()
        );
        assert!(check_answer(&headers("permessage-deflate"), &DeflateConfig::disabled()).is_err());
    }
}
