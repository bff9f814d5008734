//! Parsing `Sec-WebSocket-Extensions` and matching the server's answer to
//! the client's offers (RFC 7692 §5, §7.1).

use super::{DeflateConfig, Offer, PerMessageDeflate, EXTENSION_NAME};

/// The server's permessage-deflate answer is not one the client can
/// accept (RFC 7692 §7.1): the handshake fails with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The header does not follow the extension grammar of RFC 6455 §9.1.
    #[error("malformed extension list: {0}")]
    Malformed(String),
    /// The server accepted an extension the client did not offer.
    #[error("the server accepted extension {0:?}, which the client did not offer")]
    Unoffered(String),
    /// permessage-deflate appears more than once in the answer.
    #[error("permessage-deflate is accepted more than once")]
    Repeated,
    /// A parameter RFC 7692 does not define.
    #[error("unknown permessage-deflate parameter {0:?}")]
    UnknownParameter(String),
    /// A parameter given twice.
    #[error("permessage-deflate parameter {0} is given more than once")]
    DuplicateParameter(String),
    /// A parameter with a value it must not have, or without one it needs,
    /// or a window size outside 8..=15.
    #[error("permessage-deflate parameter {param} has an invalid value {value:?} ({expected})")]
    InvalidValue {
        /// The parameter.
        param: String,
        /// The value received (empty when there was none).
        value: String,
        /// What the parameter takes.
        expected: &'static str,
    },
    /// `client_max_window_bits` in the answer, but no offer had it.
    #[error("the server set client_max_window_bits, which the client did not offer")]
    ClientWindowBitsNotOffered,
    /// The client asked for `server_max_window_bits=offered` and the
    /// server answered without it or with a larger window.
    #[error("the client asked for server_max_window_bits={offered} and the server answered {}", .got.map_or("without it".to_string(), |g| format!("with {g}")))]
    ServerWindowBitsNotAccepted {
        /// The value the client offered.
        offered: u8,
        /// The value the server answered with, if any.
        got: Option<u8>,
    },
    /// The client asked for `server_no_context_takeover` and the server's
    /// answer leaves it out.
    #[error(
        "the client asked for server_no_context_takeover and the server's answer leaves it out"
    )]
    ServerNoContextTakeoverNotAccepted,
}

/// One extension of a `Sec-WebSocket-Extensions` list: its name and
/// parameters (values unquoted).
type Element = (String, Vec<(String, Option<String>)>);

/// Parses `Sec-WebSocket-Extensions` values into elements.
fn parse_elements<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Element>, ExtensionError> {
    let mut elements = Vec::new();
    for value in values {
        for element in value.split(',') {
            let mut parts = element.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            if name.is_empty() {
                if element.trim().is_empty() {
                    continue; // empty list elements are allowed in HTTP lists
                }
                return Err(ExtensionError::Malformed(format!(
                    "{element:?} has no extension name"
                )));
            }
            if !is_token(name) {
                return Err(ExtensionError::Malformed(format!(
                    "{name:?} is not an extension token"
                )));
            }
            let mut params = Vec::new();
            for param in parts {
                let (key, value) = match param.split_once('=') {
                    Some((key, value)) => (key.trim(), Some(unquote(value.trim())?)),
                    None => (param, None),
                };
                if !is_token(key) {
                    return Err(ExtensionError::Malformed(format!(
                        "{param:?} is not a valid extension parameter"
                    )));
                }
                params.push((key.to_ascii_lowercase(), value));
            }
            elements.push((name.to_ascii_lowercase(), params));
        }
    }
    Ok(elements)
}

fn unquote(value: &str) -> Result<String, ExtensionError> {
    match value.strip_prefix('"') {
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains(['"', '\\']) => Ok(inner.to_owned()),
            _ => Err(ExtensionError::Malformed(format!(
                "bad quoted string {value:?}"
            ))),
        },
        None => Ok(value.to_owned()),
    }
}

/// RFC 7230 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A window size value: decimal 8 to 15, no leading zero (RFC 7692
/// §7.1.2.1).
fn window_bits(param: &str, value: Option<&str>) -> Result<u8, ExtensionError> {
    let invalid = || ExtensionError::InvalidValue {
        param: param.to_owned(),
        value: value.unwrap_or("").to_owned(),
        expected: "a window size from 8 to 15",
    };
    let value = value.ok_or_else(invalid)?;
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 2 {
        return Err(invalid());
    }
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(invalid()),
    }
}

/// The parameters of one permessage-deflate element, checked for syntax.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Params {
    client_no_context_takeover: bool,
    server_no_context_takeover: bool,
    /// `Some(None)`: the bare parameter (allowed in offers only).
    client_max_window_bits: Option<Option<u8>>,
    server_max_window_bits: Option<u8>,
}

fn parse_params(
    params: &[(String, Option<String>)],
    in_offer: bool,
) -> Result<Params, ExtensionError> {
    let mut out = Params::default();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in params {
        if seen.contains(&key.as_str()) {
            return Err(ExtensionError::DuplicateParameter(key.clone()));
        }
        seen.push(key);
        let no_value = |flag: &mut bool| match value {
            None => {
                *flag = true;
                Ok(())
            }
            Some(v) => Err(ExtensionError::InvalidValue {
                param: key.clone(),
                value: v.clone(),
                expected: "no value",
            }),
        };
        match key.as_str() {
            "client_no_context_takeover" => no_value(&mut out.client_no_context_takeover)?,
            "server_no_context_takeover" => no_value(&mut out.server_no_context_takeover)?,
            "server_max_window_bits" => {
                out.server_max_window_bits = Some(window_bits(key, value.as_deref())?);
            }
            "client_max_window_bits" => {
                out.client_max_window_bits = Some(match value {
                    None if in_offer => None,
                    _ => Some(window_bits(key, value.as_deref())?),
                });
            }
            _ => return Err(ExtensionError::UnknownParameter(key.clone())),
        }
    }
    Ok(out)
}

/// Whether the answer `got` fits `offer` (RFC 7692 §7.1.1, §7.1.2).
fn check_against(offer: &Offer, got: &Params) -> Result<(), ExtensionError> {
    if got.client_max_window_bits.is_some() && offer.client_max_window_bits.is_none() {
        return Err(ExtensionError::ClientWindowBitsNotOffered);
    }
    if let Some(offered) = offer.server_max_window_bits {
        match got.server_max_window_bits {
            Some(bits) if bits <= offered => {}
            got => return Err(ExtensionError::ServerWindowBitsNotAccepted { offered, got }),
        }
    }
    if offer.server_no_context_takeover && !got.server_no_context_takeover {
        return Err(ExtensionError::ServerNoContextTakeoverNotAccepted);
    }
    Ok(())
}

/// Checks the server's `Sec-WebSocket-Extensions` values against the
/// client's offer of `config` and returns what was negotiated: `None`
/// when the server declined (no extension in its answer).
///
/// The answer must name permessage-deflate once, with parameters RFC 7692
/// defines, each at most once, window sizes from 8 to 15, and fit one of
/// the offers ([`DeflateConfig::offer`]): `client_max_window_bits` only if
/// offered, `server_max_window_bits` no larger than asked for, and
/// `server_no_context_takeover` if asked for.
///
/// ```
/// use floodgate_proto::deflate::{negotiate, DeflateConfig, ExtensionError};
/// let config = DeflateConfig::default();
/// assert_eq!(negotiate(&config, []).unwrap(), None);
/// let pmd = negotiate(&config, ["permessage-deflate; client_max_window_bits=9"]).unwrap().unwrap();
/// assert_eq!(pmd.client_max_window_bits, 9);
/// assert_eq!(
///     negotiate(&config, ["permessage-deflate; max_window_bits=9"]),
///     Err(ExtensionError::UnknownParameter("max_window_bits".into()))
/// );
/// ```
///
/// # Errors
///
/// An [`ExtensionError`] that says what is wrong with the answer.
pub fn negotiate<'a>(
    config: &DeflateConfig,
    response: impl IntoIterator<Item = &'a str>,
) -> Result<Option<PerMessageDeflate>, ExtensionError> {
    let elements = parse_elements(response)?;
    let mut found = None;
    for (name, params) in &elements {
        if name != EXTENSION_NAME {
            return Err(ExtensionError::Unoffered(name.clone()));
        }
        if found.is_some() {
            return Err(ExtensionError::Repeated);
        }
        found = Some(params);
    }
    let Some(params) = found else {
        return Ok(None);
    };
    let got = parse_params(params, false)?;
    let offers = config.offers();
    // The answer must fit one offer; when none fits, the reason given is
    // the one against the first (best) offer.
    let mut first_error = None;
    for offer in &offers {
        match check_against(offer, &got) {
            Ok(()) => {
                first_error = None;
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let server_bits = got.server_max_window_bits.unwrap_or(15);
    let client_bits = got
        .client_max_window_bits
        .flatten()
        .unwrap_or(15)
        .min(config.client_max_window_bits);
    Ok(Some(PerMessageDeflate {
        // The offer promised it (RFC 7692 §7.1.1.2: a hint the client
        // keeps even when the answer leaves it out), or the server asks.
        client_no_context_takeover: got.client_no_context_takeover
            || config.client_no_context_takeover,
        server_no_context_takeover: got.server_no_context_takeover,
        client_max_window_bits: client_bits,
        server_max_window_bits: server_bits,
        threshold: config.threshold,
        level: config.level,
    }))
}

/// The server side: picks the first acceptable permessage-deflate offer
/// among the request's `Sec-WebSocket-Extensions` values and returns the
/// answer's header value and what was negotiated; `None` when nothing
/// was offered or no offer is valid (offers with unknown parameters are
/// declined, RFC 7692 §5).
///
/// The server honours what the client asks for (its window limit and
/// `server_no_context_takeover`), asks for nothing itself, and keeps the
/// client's `client_no_context_takeover` hint in the answer. `config`
/// gives the server's threshold and level.
///
/// ```
/// use floodgate_proto::deflate::{accept_offers, negotiate, DeflateConfig};
/// let client = DeflateConfig::default().server_max_window_bits(Some(11));
/// let (answer, server) = accept_offers(&DeflateConfig::default(), [client.offer().as_str()]).unwrap();
/// assert_eq!(server.server_max_window_bits, 11);
/// let negotiated = negotiate(&client, [answer.as_str()]).unwrap().unwrap();
/// assert_eq!(negotiated.server_max_window_bits, 11);
/// ```
pub fn accept_offers<'a>(
    config: &DeflateConfig,
    request: impl IntoIterator<Item = &'a str>,
) -> Option<(String, PerMessageDeflate)> {
    let elements = parse_elements(request).ok()?;
    for (name, params) in &elements {
        if name != EXTENSION_NAME {
            continue;
        }
        let Ok(offer) = parse_params(params, true) else {
            continue;
        };
        let negotiated = PerMessageDeflate {
            client_no_context_takeover: offer.client_no_context_takeover,
            server_no_context_takeover: offer.server_no_context_takeover,
            client_max_window_bits: offer.client_max_window_bits.flatten().unwrap_or(15),
            server_max_window_bits: offer.server_max_window_bits.unwrap_or(15),
            threshold: config.threshold,
            level: config.level,
        };
        let mut answer = String::from(EXTENSION_NAME);
        if negotiated.client_no_context_takeover {
            answer.push_str("; client_no_context_takeover");
        }
        if negotiated.server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if let Some(bits) = offer.server_max_window_bits {
            answer.push_str(&format!("; server_max_window_bits={bits}"));
        }
        return Some((answer, negotiated));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(config: &DeflateConfig, answer: &str) -> PerMessageDeflate {
        negotiate(config, [answer]).unwrap().unwrap()
    }

    fn err(config: &DeflateConfig, answer: &str) -> ExtensionError {
        negotiate(config, [answer]).unwrap_err()
    }

    #[test]
    fn offers_name_every_configured_parameter_best_first() {
        let all = DeflateConfig::default()
            .client_max_window_bits(10)
            .server_max_window_bits(Some(12))
            .server_no_context_takeover(true);
        assert_eq!(
            all.offer(),
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
             client_max_window_bits=10; server_max_window_bits=12, \
             permessage-deflate; client_max_window_bits"
        );
        let plain = DeflateConfig::default().client_no_context_takeover(false);
        assert_eq!(plain.offer(), "permessage-deflate; client_max_window_bits");
    }

    #[test]
    fn a_plain_answer_keeps_the_clients_promise_and_full_windows() {
        let pmd = ok(&DeflateConfig::default(), "permessage-deflate");
        assert!(pmd.client_no_context_takeover);
        assert!(!pmd.server_no_context_takeover);
        assert_eq!(
            (pmd.client_max_window_bits, pmd.server_max_window_bits),
            (15, 15)
        );
        let keep = DeflateConfig::default().client_no_context_takeover(false);
        assert!(!ok(&keep, "permessage-deflate").client_no_context_takeover);
    }

    #[test]
    fn answers_with_every_allowed_parameter_are_accepted() {
        let pmd = ok(
            &DeflateConfig::default(),
            "Permessage-Deflate; client_no_context_takeover; server_no_context_takeover; \
             client_max_window_bits=9; server_max_window_bits=\"8\"",
        );
        assert!(pmd.client_no_context_takeover && pmd.server_no_context_takeover);
        assert_eq!(
            (pmd.client_max_window_bits, pmd.server_max_window_bits),
            (9, 8)
        );
        // Several header lines and empty list elements.
        let pmd = negotiate(&DeflateConfig::default(), ["", " , permessage-deflate"]).unwrap();
        assert!(pmd.is_some());
    }

    #[test]
    fn the_client_window_is_the_smaller_of_its_own_and_the_servers() {
        let config = DeflateConfig::default().client_max_window_bits(10);
        assert_eq!(ok(&config, "permessage-deflate").client_max_window_bits, 10);
        let answer = "permessage-deflate; client_max_window_bits=12";
        assert_eq!(ok(&config, answer).client_max_window_bits, 10);
        let answer = "permessage-deflate; client_max_window_bits=9";
        assert_eq!(ok(&config, answer).client_max_window_bits, 9);
    }

    #[test]
    fn unknown_duplicate_and_out_of_range_parameters_fail() {
        let c = DeflateConfig::default();
        assert_eq!(
            err(&c, "permessage-deflate; foo"),
            ExtensionError::UnknownParameter("foo".into())
        );
        assert_eq!(
            err(
                &c,
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            ),
            ExtensionError::DuplicateParameter("server_no_context_takeover".into())
        );
        for bad in ["7", "16", "010", "x", "", "\"9", "9 9"] {
            let answer = format!("permessage-deflate; server_max_window_bits={bad}");
            assert!(
                matches!(
                    err(&c, &answer),
                    ExtensionError::InvalidValue { .. } | ExtensionError::Malformed(_)
                ),
                "{answer}"
            );
        }
        assert!(matches!(
            err(&c, "permessage-deflate; server_max_window_bits"),
            ExtensionError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(&c, "permessage-deflate; client_max_window_bits"),
            ExtensionError::InvalidValue { .. }
        ));
        assert!(matches!(
            err(&c, "permessage-deflate; client_no_context_takeover=1"),
            ExtensionError::InvalidValue { .. }
        ));
    }

    #[test]
    fn answers_that_fit_no_offer_fail() {
        assert_eq!(
            err(&DeflateConfig::default(), "x-webkit-deflate-frame"),
            ExtensionError::Unoffered("x-webkit-deflate-frame".into())
        );
        assert_eq!(
            err(
                &DeflateConfig::default(),
                "permessage-deflate, permessage-deflate"
            ),
            ExtensionError::Repeated
        );
        // No offer without client_max_window_bits is made by DeflateConfig,
        // so check the rule directly.
        let offer = Offer {
            client_no_context_takeover: false,
            server_no_context_takeover: false,
            client_max_window_bits: None,
            server_max_window_bits: None,
        };
        let got = parse_params(
            &[("client_max_window_bits".into(), Some("10".into()))],
            false,
        )
        .unwrap();
        assert_eq!(
            check_against(&offer, &got),
            Err(ExtensionError::ClientWindowBitsNotOffered)
        );
    }

    #[test]
    fn a_requested_server_window_or_reset_must_be_granted_by_one_offer() {
        let asks = DeflateConfig::default()
            .server_max_window_bits(Some(10))
            .server_no_context_takeover(true);
        // The fallback offer asks for nothing, so a server that grants
        // nothing (or only part) is answering the fallback.
        assert_eq!(ok(&asks, "permessage-deflate").server_max_window_bits, 15);
        let pmd = ok(
            &asks,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
        );
        assert_eq!(pmd.server_max_window_bits, 9);
        assert!(pmd.server_no_context_takeover);
        // Against the first offer alone, each missing grant is an error.
        let offer = &asks.offers()[0];
        let got = parse_params(
            &[("server_max_window_bits".into(), Some("12".into()))],
            false,
        )
        .unwrap();
        assert_eq!(
            check_against(offer, &got),
            Err(ExtensionError::ServerWindowBitsNotAccepted {
                offered: 10,
                got: Some(12)
            })
        );
        let got = parse_params(
            &[("server_max_window_bits".into(), Some("10".into()))],
            false,
        )
        .unwrap();
        assert_eq!(
            check_against(offer, &got),
            Err(ExtensionError::ServerNoContextTakeoverNotAccepted)
        );
    }

    #[test]
    fn the_server_side_accepts_the_first_valid_offer() {
        let (answer, pmd) = accept_offers(
            &DeflateConfig::default(),
            ["permessage-deflate; bogus, permessage-deflate; client_no_context_takeover"],
        )
        .unwrap();
        assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
        assert!(pmd.client_no_context_takeover);
        assert!(accept_offers(&DeflateConfig::default(), ["x-other"]).is_none());
        assert!(accept_offers(&DeflateConfig::default(), []).is_none());
    }
}
