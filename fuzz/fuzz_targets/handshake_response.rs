//! The handshake response parser and checker fed whatever a server (or
//! something pretending to be one) could answer to the upgrade request.
//!
//! The key is fixed (the RFC 6455 example), so an input that happens to be
//! a valid answer is accepted and its accept value can be checked.

#![no_main]

use floodgate_proto::handshake::{
    parse_request_head, parse_response_head, ClientHandshake, ClientRequest, DEFAULT_MAX_HEAD_SIZE,
    MAX_ERROR_BODY,
};
use floodgate_proto::deflate::DeflateConfig;
use floodgate_proto::HandshakeError;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fuzz_target!(|data: &[u8]| {
    let request = ClientRequest {
        host: "example.com".into(),
        path: "/chat".into(),
        subprotocols: vec!["chat".into(), "superchat".into()],
        ..Default::default()
    };
    let (handshake, _) = ClientHandshake::with_key(&request, KEY.into()).expect("a valid request");

    for max in [DEFAULT_MAX_HEAD_SIZE, 256] {
        match parse_response_head(data, max) {
            Ok(None) => assert!(
                data.len() < max,
                "an incomplete head past the limit was not refused"
            ),
            Ok(Some((head, len))) => {
                assert!(len <= data.len() && len <= max);
                assert!(head.error_body_wanted() <= MAX_ERROR_BODY);
                let status = head.status;
                match handshake.accept(head, &data[len..]) {
                    Ok(response) => {
                        assert_eq!(status.as_u16(), 101);
                        let accept = response
                            .headers
                            .get("sec-websocket-accept")
                            .expect("checked");
                        assert_eq!(accept.to_str().map(str::trim).ok(), Some(ACCEPT));
                        assert!(response
                            .subprotocol
                            .as_deref()
                            .is_none_or(|p| request.subprotocols.iter().any(|o| o == p)));
                    }
                    Err(HandshakeError::UnexpectedStatus { status, body, .. }) => {
                        assert_ne!(status.as_u16(), 101);
                        assert!(body.len() <= MAX_ERROR_BODY);
                    }
                    Err(err) => {
                        assert_eq!(status.as_u16(), 101);
                        let _ = err.to_string();
                    }
                }
            }
            Err(err) => {
                let _ = err.to_string();
            }
        }
    }

    // The same answers to a request that offers permessage-deflate: what
    // is accepted is within RFC 7692's ranges and keeps the client's
    // promise of no context takeover.
    let offering = ClientRequest {
        deflate: Some(DeflateConfig::default()),
        ..request.clone()
    };
    let (handshake, _) = ClientHandshake::with_key(&offering, KEY.into()).expect("a valid request");
    if let Ok(Some((head, len))) = parse_response_head(data, DEFAULT_MAX_HEAD_SIZE) {
        if let Ok(Some(deflate)) = handshake.accept(head, &data[len..]).map(|r| r.deflate) {
            assert!((8..=15).contains(&deflate.client_max_window_bits));
            assert!((8..=15).contains(&deflate.server_max_window_bits));
            assert!(deflate.client_no_context_takeover);
        }
    }

    // The server side of the same parser, used by floodgate's test server.
    if let Ok(Some((head, len))) = parse_request_head(data, DEFAULT_MAX_HEAD_SIZE) {
        assert!(len <= data.len());
        let _ = head.websocket_key();
        let _ = head.subprotocols();
        let _ = floodgate_proto::deflate::accept_offers(&DeflateConfig::default(), head.extensions());
    }
});
