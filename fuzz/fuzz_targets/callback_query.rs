//! The authorization redirect's query, both ways it reaches the flow: a URL the user pasted
//! (`oauth::callback::parse_pasted`) and the request the loopback listener receives (axum's
//! `Query<Params>`, as `oauth::callback` extracts it).
//!
//! What must hold besides "no panic": the error for a paste that is not a URL does not quote it
//! (a paste carries the authorization code); the listener accepts every query of a URL that
//! parses, so the browser never gets a bare 400 while the flow waits; and both ways give the
//! flow the same parameters.

#![no_main]

use axum::extract::Query;
use latchkey::oauth::callback::parse_pasted;
use latchkey::plugins::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pasted) = std::str::from_utf8(data) else { return };
    let params = match parse_pasted(pasted) {
        Ok(params) => params,
        Err(error) => {
            let message = error.to_string();
            // Checked for a paste that carries a parameter, as one with a code does.
            let trimmed = pasted.trim();
            assert!(!trimmed.contains('=') || !message.contains(trimmed), "the error quotes the paste: {message}");
            return;
        }
    };
    let url = url::Url::parse(pasted.trim()).expect("parse_pasted accepted it");
    let request_target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    // Not every URL is a valid HTTP request target (the url crate leaves some bytes unescaped that
    // the http crate refuses); a browser would have escaped those.
    let Ok(uri) = request_target.parse::<http::Uri>() else { return };
    let Query(received) = Query::<Params>::try_from_uri(&uri).unwrap_or_else(|rejection| panic!("{uri} is rejected: {rejection}"));
    assert_eq!(received, params, "the listener and the paste disagree on {uri}");
});
