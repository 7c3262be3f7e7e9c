//! The opening handshake (RFC 6455 §4): accept keys, the statuses a server answers bad
//! upgrade requests with, subprotocols, and the client's checks of the answer.

use eddy_core::ws::handshake::parse_protocols;
use eddy_core::ws::{
    accept_key, rejection_headers, validate_request, ClientHandshake, DeflateConfig,
    HandshakeError, Negotiated,
};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in fields {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn upgrade_request() -> HeaderMap {
    headers(&[
        ("host", "server.example.com"),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", KEY),
        ("sec-websocket-version", "13"),
    ])
}

fn with(mut h: HeaderMap, name: &str, value: Option<&str>) -> HeaderMap {
    let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
    h.remove(&name);
    if let Some(v) = value {
        h.insert(name, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn rfc6455_accept_key_example() {
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn a_valid_request_is_accepted_with_token_lists_in_any_case() {
    let h = with(upgrade_request(), "connection", Some("keep-alive, UPGRADE"));
    let h = with(h, "upgrade", Some("WebSocket"));
    let req = validate_request(&Method::GET, &h).unwrap();
    assert_eq!(req.key, KEY);
    let answer = req.response_headers(&Negotiated::default()).unwrap();
    assert_eq!(
        answer["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(answer["upgrade"], "websocket");
    assert_eq!(answer["connection"], "Upgrade");
    assert!(answer.get("sec-websocket-protocol").is_none());
    assert!(answer.get("sec-websocket-extensions").is_none());
}

#[test]
fn a_method_other_than_get_is_405_with_allow() {
    let e = validate_request(&Method::POST, &upgrade_request()).unwrap_err();
    assert_eq!(e, HandshakeError::MethodNotGet);
    assert_eq!(e.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(rejection_headers(&e)["allow"], "GET");
}

#[test]
fn missing_or_wrong_upgrade_and_connection_are_400() {
    let cases = [
        (
            with(upgrade_request(), "upgrade", None),
            HandshakeError::BadUpgrade,
        ),
        (
            with(upgrade_request(), "upgrade", Some("h2c")),
            HandshakeError::BadUpgrade,
        ),
        (
            with(upgrade_request(), "connection", None),
            HandshakeError::BadConnection,
        ),
        (
            with(upgrade_request(), "connection", Some("keep-alive")),
            HandshakeError::BadConnection,
        ),
    ];
    for (h, want) in cases {
        let e = validate_request(&Method::GET, &h).unwrap_err();
        assert_eq!(e, want);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn unsupported_or_missing_versions_are_426_naming_13() {
    for version in [Some("8"), Some("14"), Some("13, 8"), None] {
        let h = with(upgrade_request(), "sec-websocket-version", version);
        let e = validate_request(&Method::GET, &h).unwrap_err();
        assert_eq!(e, HandshakeError::UnsupportedVersion, "{version:?}");
        assert_eq!(e.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(rejection_headers(&e)["sec-websocket-version"], "13");
    }
}

#[test]
fn bad_keys_are_400() {
    for key in [
        None,
        Some("short"),
        Some("dGhlIHNhbXBsZSBub25jZQ"),
        Some("!!!!!!!!!!!!!!!!!!!!!!=="),
        Some("dGhlIHNhbXBsZSBub25jZSE="),
    ] {
        let h = with(upgrade_request(), "sec-websocket-key", key);
        let e = validate_request(&Method::GET, &h).unwrap_err();
        assert_eq!(e, HandshakeError::BadKey, "{key:?}");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
    let mut two = upgrade_request();
    two.append("sec-websocket-key", HeaderValue::from_static(KEY));
    assert_eq!(
        validate_request(&Method::GET, &two),
        Err(HandshakeError::BadKey)
    );
}

#[test]
fn subprotocols_are_parsed_across_fields_and_the_choice_must_be_offered() {
    let mut h = with(
        upgrade_request(),
        "sec-websocket-protocol",
        Some("chat, , superchat"),
    );
    h.append(
        "sec-websocket-protocol",
        HeaderValue::from_static("v2.json"),
    );
    let req = validate_request(&Method::GET, &h).unwrap();
    assert_eq!(req.protocols, ["chat", "superchat", "v2.json"]);
    let chosen = Negotiated {
        protocol: Some("superchat".into()),
        deflate: None,
    };
    assert_eq!(
        req.response_headers(&chosen).unwrap()["sec-websocket-protocol"],
        "superchat"
    );
    let unknown = Negotiated {
        protocol: Some("other".into()),
        deflate: None,
    };
    assert_eq!(
        req.response_headers(&unknown),
        Err(HandshakeError::ProtocolNotOffered)
    );
    let bad = with(
        upgrade_request(),
        "sec-websocket-protocol",
        Some("chat, super chat"),
    );
    assert_eq!(parse_protocols(&bad), Err(HandshakeError::BadProtocolList));
    assert_eq!(
        validate_request(&Method::GET, &bad),
        Err(HandshakeError::BadProtocolList)
    );
}

#[test]
fn malformed_extension_offers_are_declined_not_refused() {
    let h = with(
        upgrade_request(),
        "sec-websocket-extensions",
        Some("permessage-deflate; ="),
    );
    let req = validate_request(&Method::GET, &h).unwrap();
    assert!(req.extensions.is_empty());
}

/// Runs a full handshake: the client's request through the server's checks and back.
fn handshake(
    client: &ClientHandshake,
    server_deflate: &DeflateConfig,
    pick: Option<&str>,
) -> (HeaderMap, Negotiated) {
    let mut request = client.request_headers();
    request.insert("host", HeaderValue::from_static("example.com"));
    let req = validate_request(&Method::GET, &request).unwrap();
    let negotiated = Negotiated {
        protocol: pick.map(Into::into),
        deflate: server_deflate.negotiate(&req.extensions),
    };
    (req.response_headers(&negotiated).unwrap(), negotiated)
}

#[test]
fn client_request_passes_the_server_and_the_answer_passes_the_client() {
    let client = ClientHandshake::new(
        [7; 16],
        vec!["chat".into(), "bad token".into()],
        Some(DeflateConfig::default()),
    );
    let request = client.request_headers();
    assert_eq!(
        request["sec-websocket-protocol"], "chat",
        "non-tokens are left out"
    );
    assert_eq!(
        request["sec-websocket-extensions"],
        "permessage-deflate; client_max_window_bits"
    );
    assert_eq!(request["sec-websocket-version"], "13");
    let (answer, server_side) = handshake(&client, &DeflateConfig::default(), Some("chat"));
    let client_side = client
        .validate_response(StatusCode::SWITCHING_PROTOCOLS, &answer)
        .unwrap();
    assert_eq!(client_side, server_side);
    assert_eq!(client_side.protocol.as_deref(), Some("chat"));
    assert!(client_side.deflate.is_some());
}

#[test]
fn client_rejects_wrong_status_accept_protocol_and_unoffered_extensions() {
    let client = ClientHandshake::new([1; 16], vec![], None);
    let (answer, _) = handshake(&client, &DeflateConfig::default(), None);
    assert_eq!(
        client.validate_response(StatusCode::OK, &answer),
        Err(HandshakeError::NotSwitching(StatusCode::OK))
    );
    let wrong = with(
        answer.clone(),
        "sec-websocket-accept",
        Some(&accept_key(b"other")),
    );
    assert_eq!(
        client.validate_response(StatusCode::SWITCHING_PROTOCOLS, &wrong),
        Err(HandshakeError::BadAccept)
    );
    let proto = with(answer.clone(), "sec-websocket-protocol", Some("chat"));
    assert_eq!(
        client.validate_response(StatusCode::SWITCHING_PROTOCOLS, &proto),
        Err(HandshakeError::UnexpectedProtocol)
    );
    let ext = with(
        answer.clone(),
        "sec-websocket-extensions",
        Some("permessage-deflate"),
    );
    assert!(matches!(
        client.validate_response(StatusCode::SWITCHING_PROTOCOLS, &ext),
        Err(HandshakeError::BadExtensions(_))
    ));
    let no_upgrade = with(answer.clone(), "upgrade", None);
    assert_eq!(
        client.validate_response(StatusCode::SWITCHING_PROTOCOLS, &no_upgrade),
        Err(HandshakeError::BadUpgrade)
    );
    assert_eq!(
        client.validate_response(StatusCode::SWITCHING_PROTOCOLS, &answer),
        Ok(Negotiated::default())
    );
}
