//! MCP messages as they travel over stdio: one JSON-RPC message per line. The gateway's hot path
//! ([`super::relay`], [`super::stdio`]) moves them as bytes and reads only the envelope (`id`,
//! `method`, and `params` or `result` as unparsed JSON), so a `tools/call` and its answer cross
//! the gateway without being decoded into rmcp's types and encoded again.
//!
//! - [`read_line`] reads one message, bounded as rmcp's own stdio transport bounds it;
//! - [`writer`] writes messages in order from one task, several to a write when they queue up
//!   (a server reading its stdin then gets them several to a read, as a client sends them), and
//!   at most [`QUEUE`] waiting: a reader that stops reading stops its writers in turn, as a pipe
//!   would, rather than the gateway's memory growing;
//! - [`Envelope`] is what the hot path looks at, and [`response`] the answer it writes.

use std::io;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::bytes::Bytes;

/// How many messages wait for a [`writer`] at most.
pub const QUEUE: usize = 256;

/// The longest message read: rmcp's limit for its own stdio transport, 16 MiB.
pub const MAX_MESSAGE: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// Read the next message into `line` (without its line ending); `false` at the end of the
/// stream. A message longer than [`MAX_MESSAGE`] is skipped with a warning, as rmcp skips one.
pub async fn read_line<R: AsyncBufRead + Unpin>(read: &mut R, line: &mut Vec<u8>) -> io::Result<bool> {
    let limit = MAX_MESSAGE as u64 + 1;
    loop {
        line.clear();
        if (&mut *read).take(limit).read_until(b'\n', line).await? == 0 {
            return Ok(false);
        }
        if line.len() <= MAX_MESSAGE || line.ends_with(b"\n") && line.len() <= MAX_MESSAGE + 1 {
            while line.last().is_some_and(|byte| matches!(byte, b'\n' | b'\r')) {
                line.pop();
            }
            if line.is_empty() {
                continue;
            }
            return Ok(true);
        }
        tracing::warn!("skipped a message longer than {MAX_MESSAGE} bytes");
        while !line.ends_with(b"\n") {
            line.clear();
            if (&mut *read).take(limit).read_until(b'\n', line).await? == 0 {
                return Ok(false);
            }
        }
    }
}

/// A task that writes every message sent to it, each on a line of its own, to `write`; messages
/// queued while a write is under way go out together in the next one. It ends when a write fails
/// (later sends then fail), or when every sender is dropped, shutting `write` down.
pub fn writer<W: AsyncWrite + Unpin + Send + 'static>(mut write: W) -> mpsc::Sender<Bytes> {
    let (sender, mut receiver) = mpsc::channel::<Bytes>(QUEUE);
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Some(message) = receiver.recv().await {
            buffer.clear();
            buffer.extend_from_slice(&message);
            buffer.push(b'\n');
            while let Ok(message) = receiver.try_recv() {
                buffer.extend_from_slice(&message);
                buffer.push(b'\n');
            }
            if let Err(error) = async { write.write_all(&buffer).await.and(write.flush().await) }.await {
                tracing::debug!("cannot write a message: {error}");
                return;
            }
        }
        // Every sender is gone: the reader at the other end sees the end of the stream.
        let _ = write.shutdown().await;
    });
    sender
}

/// Copy messages from `read` to `write` until `read` ends or `write` is gone (the other half of an
/// in-memory pipe, say).
pub async fn pump<R: AsyncRead + Unpin>(read: R, write: &mpsc::Sender<Bytes>) {
    let mut read = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    while let Ok(true) = read_line(&mut read, &mut line).await {
        if write.send(Bytes::copy_from_slice(&line)).await.is_err() {
            break;
        }
    }
}

/// The parts of a JSON-RPC message the hot path reads; the rest stays unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope<'a> {
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<&'a str>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// The envelope of a single message; `None` for anything else (a batch, or not JSON).
    pub fn of(message: &'a [u8]) -> Option<Envelope<'a>> {
        serde_json::from_slice(message).ok()
    }
}

/// A request, written as JSON-RPC wants it.
#[derive(Serialize)]
pub struct Request<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub id: &'a str,
    pub method: &'a str,
    pub params: P,
}

/// A notification, written as JSON-RPC wants it.
#[derive(Serialize)]
pub struct Notification<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub method: &'a str,
    pub params: P,
}

/// The answer to request `id`: its `result`, or its `error`.
pub fn response(id: &RawValue, outcome: Result<&RawValue, &RawValue>) -> Bytes {
    #[derive(Serialize)]
    struct Response<'a> {
        jsonrpc: &'static str,
        id: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a RawValue>,
    }
    let (result, error) = match outcome {
        Ok(result) => (Some(result), None),
        Err(error) => (None, Some(error)),
    };
    let message = Response { jsonrpc: "2.0", id, result, error };
    Bytes::from(serde_json::to_vec(&message).expect("a response of JSON values serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<String> {
        let mut read = input;
        let (mut line, mut lines) = (Vec::new(), Vec::new());
        while read_line(&mut read, &mut line).await.unwrap() {
            lines.push(String::from_utf8(line.clone()).unwrap());
        }
        lines
    }

    #[tokio::test]
    async fn messages_are_lines_whatever_their_endings() {
        assert_eq!(lines(b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":3}").await, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[tokio::test]
    async fn an_oversized_message_is_skipped_and_the_next_one_read() {
        let mut input = vec![b'x'; MAX_MESSAGE + 10];
        input.extend_from_slice(b"\n{\"after\":true}\n");
        assert_eq!(lines(&input).await, ["{\"after\":true}"]);
    }

    #[tokio::test]
    async fn a_writer_whose_reader_stops_reading_stops_taking_messages() {
        let (_unread, write) = tokio::io::duplex(64);
        let writer = writer(write);
        let mut taken = 0;
        while writer.try_send(Bytes::from_static(b"{\"jsonrpc\":\"2.0\"}")).is_ok() {
            taken += 1;
            assert!(taken <= 2 * QUEUE, "the queue never filled");
            // Let the writer task take what it can.
            tokio::task::yield_now().await;
        }
        assert!(taken >= QUEUE, "took {taken}");
    }

    #[test]
    fn the_envelope_leaves_the_rest_unparsed() {
        let message = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a__echo","arguments":{"x":[1,2]}}}"#;
        let envelope = Envelope::of(message).unwrap();
        assert_eq!(envelope.id.unwrap().get(), "7");
        assert_eq!(envelope.method, Some("tools/call"));
        assert_eq!(envelope.params.unwrap().get(), r#"{"name":"a__echo","arguments":{"x":[1,2]}}"#);
        assert!(Envelope::of(b"[1,2]").is_none());
    }

    #[test]
    fn a_response_keeps_the_id_and_result_as_they_were() {
        let id = RawValue::from_string("\"a-string-id\"".into()).unwrap();
        let result = RawValue::from_string(r#"{"content":[]}"#.into()).unwrap();
        let message = response(&id, Ok(&result));
        assert_eq!(&message[..], br#"{"jsonrpc":"2.0","id":"a-string-id","result":{"content":[]}}"#);
    }
}
