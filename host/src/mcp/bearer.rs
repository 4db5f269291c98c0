//! An rmcp HTTP client that puts the current OAuth access token on every request.
//!
//! rmcp's own `AuthClient` runs rmcp's OAuth stack; latchkey has its own (provider plugins, the
//! secret store, refresh under a cross-process lock), so this wrapper only asks a [`TokenSource`]
//! for a token per request. Asking per request, rather than fixing a header when connecting,
//! lets a long-lived connection (the gateway's) pick up refreshed tokens without reconnecting.
//!
//! Other headers (a catalog entry's `headers`) come through rmcp's `custom_headers`; the token
//! replaces an `Authorization` among them.
//!
//! When the server refuses the token (401), the source gets one chance to refresh it and the
//! request is retried once with the new token; if that fails too, the 401 and its
//! `WWW-Authenticate` challenge go to the caller, who decides whether to ask the user.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use secrecy::{ExposeSecret, SecretString};
use sse_stream::Sse;

/// Where the tokens come from.
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now (refreshed first when it is about to expire), or `None` to send the
    /// request without one: the server's 401 then says how to authorize.
    fn token(&self) -> impl Future<Output = anyhow::Result<Option<SecretString>>> + Send;

    /// The server refused `rejected`: a new token to retry with, or `None` when only a new
    /// authorization can help.
    fn refresh(&self, rejected: &SecretString) -> impl Future<Output = anyhow::Result<Option<SecretString>>> + Send;
}

/// The token source failed (the store, or a refresh that could not reach the server); carried
/// inside the transport's error so that callers can tell it from an HTTP failure.
#[derive(Debug, thiserror::Error)]
#[error("could not get an access token: {0:#}")]
pub struct TokenSourceError(pub anyhow::Error);

/// An rmcp [`StreamableHttpClient`] (reqwest by default) with tokens from `S`.
pub struct BearerClient<S, C = reqwest::Client> {
    http: C,
    source: Arc<S>,
}

impl<S, C: Clone> Clone for BearerClient<S, C> {
    fn clone(&self) -> Self {
        BearerClient { http: self.http.clone(), source: self.source.clone() }
    }
}

impl<S: TokenSource, C: StreamableHttpClient + Sync> BearerClient<S, C> {
    pub fn new(http: C, source: Arc<S>) -> Self {
        BearerClient { http, source }
    }

    /// Run `call` with the current token, `headers` and the request's `payload`; on a 401 to a
    /// token, refresh once and run it again. A token replaces an `Authorization` among `headers` (a
    /// catalog entry's), so that a request never carries two.
    async fn with_token<T, P, F, Fut>(
        &self,
        mut headers: HashMap<HeaderName, HeaderValue>,
        payload: P,
        call: F,
    ) -> Result<T, StreamableHttpError<C::Error>>
    where
        P: Clone,
        F: Fn(Option<String>, HashMap<HeaderName, HeaderValue>, P) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<C::Error>>>,
    {
        let Some(sent) = self.source.token().await.map_err(source_failed)? else {
            return call(None, headers, payload).await;
        };
        headers.remove(&AUTHORIZATION);
        // Headers and payload are copied only for a first attempt that a retry may follow: the
        // retry takes them.
        match call(Some(sent.expose_secret().to_string()), headers.clone(), payload.clone()).await {
            Err(StreamableHttpError::AuthRequired(challenge)) => match self.source.refresh(&sent).await.map_err(source_failed)? {
                Some(fresh) if fresh.expose_secret() != sent.expose_secret() => {
                    call(Some(fresh.expose_secret().to_string()), headers, payload).await
                }
                _ => Err(StreamableHttpError::AuthRequired(challenge)),
            },
            result => result,
        }
    }
}

fn source_failed<E: std::error::Error + Send + Sync + 'static>(error: anyhow::Error) -> StreamableHttpError<E> {
    StreamableHttpError::Io(std::io::Error::other(TokenSourceError(error)))
}

// The header rmcp passes in (`auth_header`, from its transport configuration) is ignored: the
// token source is the only place tokens come from. The plain variants go through the ones with
// limits, as reqwest's own client does, so that each kind of request has one place that adds the
// token. `post_message_with_max_sse_event_size` keeps rmcp's default: the transport sends every
// POST through `post_message_with_response_limits`, whose limits include the SSE one.
impl<S: TokenSource, C: StreamableHttpClient + Sync> StreamableHttpClient for BearerClient<S, C> {
    type Error = C::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.with_token(custom_headers, message, |token, headers, message| {
            self.http.post_message_with_response_limits(uri.clone(), message, session_id.clone(), token, headers, limits)
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.with_token(custom_headers, (), |token, headers, ()| self.http.delete_session(uri.clone(), session_id.clone(), token, headers))
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let max_sse_event_size = StreamableHttpResponseLimits::default().max_sse_event_size;
        self.get_stream_with_max_sse_event_size(uri, session_id, last_event_id, auth_header, custom_headers, max_sse_event_size).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.with_token(custom_headers, last_event_id, |token, headers, last_event_id| {
            self.http.get_stream_with_max_sse_event_size(uri.clone(), session_id.clone(), last_event_id, token, headers, max_sse_event_size)
        })
        .await
    }
}
