//! GraphQL over WebSocket on GET `/graphql`: `graphql-transport-ws`, and the legacy
//! `graphql-ws` that Apollo clients still send. Browsers cannot set headers on a WebSocket, so
//! the bearer token comes in the `connection_init` payload (`{"authorization": "Bearer …"}`)
//! and is verified like a request's; the connection is closed with the protocol's codes when
//! it is refused ([`UNAUTHORIZED`], [`FORBIDDEN`]), when its token expires, or when the server
//! closes it ([`Closer`]: a subscriber too slow to keep up, live updates interrupted).
//!
//! The upgrade answers at once; the connection then lives in a task of its own, outside the
//! HTTP stack's request timeout, which bounds only the upgrade request itself.

use crate::caller::Incoming;
use crate::schema::Api;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};
use http::HeaderMap;
use platform::auth::{Identity, Jwt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workflow_domain::Role;

/// A bad, expired or missing token (graphql-transport-ws: Unauthorized).
pub(crate) const UNAUTHORIZED: u16 = 4401;
/// A genuine token that may not be used here, such as an internal `system` one (Forbidden).
pub(crate) const FORBIDDEN: u16 = 4403;

/// A client's messages are subscribe requests: small. Bounded so a client cannot make the
/// gateway buffer much per connection. The read buffer starts at what such a message takes
/// and grows for a larger one: held by every connection for its whole life, it is a good part
/// of a connection's memory (W6).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
const READ_BUFFER_BYTES: usize = 1024;

/// Frames waiting to be written to one connection. Pushes are produced as fast as the socket
/// takes them; this only decouples the protocol from the socket.
const OUTBOX: usize = 16;

/// Subscriptions one connection may hold at once: each costs the gateway memory for as long as
/// it lives (W6), and a page needs a handful.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 32;

/// How long a client may take to send `connection_init` after the upgrade.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Close {
    pub(crate) code: u16,
    /// At most 123 bytes, as a close frame allows.
    pub(crate) reason: &'static str,
}

/// Closes one connection from anywhere (the hub, a subscription) with a code and reason; the
/// first reason wins.
#[derive(Clone, Default)]
pub(crate) struct Closer(Arc<Closing>);

#[derive(Default)]
struct Closing {
    closed: CancellationToken,
    reason: OnceLock<Close>,
}

impl Closer {
    pub(crate) fn close(&self, close: Close) {
        let _ = self.0.reason.set(close);
        self.0.closed.cancel();
    }

    pub(crate) fn reason(&self) -> Option<Close> {
        self.0.reason.get().copied()
    }

    async fn closed(&self) -> Close {
        self.0.closed.cancelled().await;
        self.reason().expect("set before cancelling")
    }
}

/// The subscriptions a connection holds, up to [`MAX_SUBSCRIPTIONS`].
#[derive(Clone, Default)]
pub(crate) struct Slots(Arc<AtomicUsize>);

/// One of a connection's [`Slots`], given back when dropped.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slots {
    pub(crate) fn take(&self) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < MAX_SUBSCRIPTIONS).then_some(held + 1)
            })
            .ok()
            .map(|_| Slot(self.0.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The verified user of a connection, for the subscriptions to filter by.
pub(crate) struct Viewer(pub(crate) Identity);

/// What `connection_init` decided, for the connection's loop: when the token expires, or why
/// the connection was refused.
#[derive(Default)]
struct Session {
    expires_at: OnceLock<i64>,
    refusal: OnceLock<(u16, String)>,
}

/// Accepts the upgrade; the connection is served by its own task from here on.
pub(crate) fn accept(
    upgrade: WebSocketUpgrade,
    protocol: GraphQLProtocol,
    api: Api,
    jwt: Jwt,
) -> Response {
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, protocol, api, jwt))
}

/// The user a `connection_init` payload's token names, or the close code and reason refusing
/// it. The same checks as a request's (`caller::Incoming::authenticate`), which every backend
/// call of a subscription then repeats.
fn authenticate(
    jwt: &Jwt,
    payload: &serde_json::Value,
) -> Result<(Incoming, Identity, i64), (u16, String)> {
    let header = ["authorization", "Authorization"]
        .iter()
        .find_map(|key| payload.get(key))
        .and_then(serde_json::Value::as_str)
        .ok_or((
            UNAUTHORIZED,
            "connection_init needs {\"authorization\": \"Bearer <token>\"}".to_owned(),
        ))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or((
            UNAUTHORIZED,
            "authorization is not a bearer token".to_owned(),
        ))?;
    let (identity, expires_at) = jwt
        .verify_expiring(token.trim())
        .map_err(|error| (UNAUTHORIZED, error.to_string()))?;
    if identity
        .roles
        .iter()
        .any(|role| role == Role::SYSTEM || role == Role::CHANGE_FEED)
    {
        return Err((
            FORBIDDEN,
            "internal tokens are not accepted at the gateway".to_owned(),
        ));
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        header.parse().map_err(|_| {
            (
                UNAUTHORIZED,
                "authorization is not visible ascii".to_owned(),
            )
        })?,
    );
    Ok((Incoming::from_headers(&headers), identity, expires_at))
}

async fn serve(socket: WebSocket, protocol: GraphQLProtocol, api: Api, jwt: Jwt) {
    let (mut sink, stream) = socket.split();
    let (outbox, mut outgoing) = futures::channel::mpsc::channel::<Message>(OUTBOX);
    let closer = Closer::default();
    let session = Arc::new(Session::default());
    let mut connection = Data::default();
    connection.insert(closer.clone());
    connection.insert(Slots::default());
    let init = {
        let session = session.clone();
        move |payload: serde_json::Value| async move {
            match authenticate(&jwt, &payload) {
                Ok((incoming, identity, expires_at)) => {
                    let _ = session.expires_at.set(expires_at);
                    let mut data = Data::default();
                    data.insert(incoming);
                    data.insert(Viewer(identity));
                    Ok(data)
                }
                Err((code, reason)) => {
                    let _ = session.refusal.set((code, reason.clone()));
                    Err(async_graphql::Error::new(reason))
                }
            }
        }
    };
    let protocol_task = GraphQLWebSocket::new_with_pair(outbox, stream, api.executor(), protocol)
        .with_data(connection)
        .on_connection_init(init)
        .serve();
    tokio::pin!(protocol_task);
    let mut protocol_done = false;
    let init_deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
    let close = loop {
        let expiry = match session.expires_at.get() {
            Some(exp) => expiry_instant(*exp),
            None => init_deadline,
        };
        // Biased, the server's own close first: a subscription the hub ended because the
        // connection is being closed must not reach the client as a normal `complete`.
        tokio::select! {
            biased;
            close = closer.closed() => break Some((close.code, close.reason.to_owned())),
            () = &mut protocol_task, if !protocol_done => protocol_done = true,
            message = outgoing.next() => match message {
                // The protocol closes: with the refusal's own code if init was refused.
                Some(Message::Close(frame)) => {
                    break session.refusal.get().map(|(code, reason)| (*code, reason.clone()))
                        .or(frame.map(|f| (f.code, f.reason.to_string())));
                }
                Some(message) => {
                    if let Some(close) = closer.reason() {
                        break Some((close.code, close.reason.to_owned()));
                    }
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
                // Ended without a close of its own (the legacy protocol's refusal, or the
                // client went away).
                None => break session.refusal.get().cloned(),
            },
            () = tokio::time::sleep_until(expiry) => break Some(match session.expires_at.get() {
                Some(_) => (UNAUTHORIZED, "the token has expired".to_owned()),
                None => (4408, "connection initialisation timeout".to_owned()),
            }),
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// When a token expiring at `exp` (seconds since the epoch) stops being valid here.
fn expiry_instant(exp: i64) -> tokio::time::Instant {
    let left = exp.saturating_sub(chrono::Utc::now().timestamp());
    tokio::time::Instant::now() + Duration::from_secs(left.max(0).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_holds_at_most_its_slots_and_gets_them_back() {
        let slots = Slots::default();
        let held: Vec<Slot> = (0..MAX_SUBSCRIPTIONS)
            .map(|_| slots.take().unwrap())
            .collect();
        assert!(slots.take().is_none());
        drop(held);
        assert!(slots.take().is_some());
    }
}
