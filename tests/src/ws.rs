//! A GraphQL-over-WebSocket client, speaking `graphql-transport-ws` or the legacy `graphql-ws`
//! the way browsers' clients do (the token in `connection_init`): what the subscription tests
//! and benchmark W6 drive the gateway with.

use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (graphql-ws, the current protocol).
    TransportWs,
    /// `graphql-ws` (subscriptions-transport-ws, Apollo's legacy protocol).
    Legacy,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }

    fn subscribe(self) -> &'static str {
        match self {
            Protocol::TransportWs => "subscribe",
            Protocol::Legacy => "start",
        }
    }
}

/// What the server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A result of subscription `id`: `data` and/or `errors`.
    Next {
        id: String,
        payload: Value,
    },
    Complete {
        id: String,
    },
    /// A protocol-level error message (the legacy protocol's `connection_error`, or `error`).
    Error(Value),
    /// The server closed the connection.
    Closed {
        code: u16,
        reason: String,
    },
}

pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: Protocol,
}

impl Socket {
    /// Opens a WebSocket to `gateway_url`'s `/graphql` (an `http://` URL).
    pub async fn connect(gateway_url: &str, protocol: Protocol) -> anyhow::Result<Self> {
        let (stream, _) = tokio_tungstenite::connect_async(request(gateway_url, protocol)?).await?;
        Ok(Self { stream, protocol })
    }

    /// Like [`Socket::connect`], over a TCP connection whose kernel receive buffer is about
    /// `bytes` (the kernel rounds it): while this client does not read, the server can send it
    /// only that much before its own send buffer fills, as with a slow client across a network.
    pub async fn connect_with_receive_buffer(
        gateway_url: &str,
        protocol: Protocol,
        bytes: u32,
    ) -> anyhow::Result<Self> {
        let request = request(gateway_url, protocol)?;
        let authority = request.uri().authority().context("no host in the URL")?;
        let address = tokio::net::lookup_host(authority.as_str())
            .await?
            .next()
            .context("the gateway's host has no address")?;
        let tcp = if address.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Before connecting: the window scale offered in the handshake depends on it.
        tcp.set_recv_buffer_size(bytes)?;
        let tcp = tcp.connect(address).await?;
        let (stream, _) =
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await?;
        Ok(Self { stream, protocol })
    }

    /// `connection_init` with `authorization: Bearer <token>`; `Ok` once acknowledged, else
    /// what the server answered instead (a close, an error).
    pub async fn init(&mut self, token: &str) -> Result<(), Event> {
        self.send(json!({
            "type": "connection_init",
            "payload": { "authorization": format!("Bearer {token}") },
        }))
        .await;
        loop {
            match self.receive().await {
                Received::Ack => return Ok(()),
                Received::Event(event) => return Err(event),
                Received::Other => {}
            }
        }
    }

    /// Starts subscription `id` with `query` and `variables`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let message = json!({
            "type": self.protocol.subscribe(),
            "id": id,
            "payload": { "query": query, "variables": variables },
        });
        self.send(message).await;
    }

    /// The next event, skipping keep-alives.
    pub async fn next(&mut self) -> Event {
        loop {
            if let Received::Event(event) = self.receive().await {
                return event;
            }
        }
    }

    /// The next event within `wait`, or `None`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        tokio::time::timeout(wait, self.next()).await.ok()
    }

    /// The next event of subscription `id` (or the connection's close) within `wait`,
    /// skipping the other subscriptions' events.
    pub async fn next_of(&mut self, id: &str, wait: Duration) -> Option<Event> {
        tokio::time::timeout(wait, async {
            loop {
                match self.next().await {
                    Event::Next { id: of, .. } | Event::Complete { id: of } if of != id => {}
                    event => return event,
                }
            }
        })
        .await
        .ok()
    }

    /// The `data` of subscription `id`'s next result within `wait`, failing on anything else.
    pub async fn data_of(&mut self, id: &str, wait: Duration) -> Value {
        match self.next_of(id, wait).await {
            Some(Event::Next { payload, .. }) if payload.get("errors").is_none() => {
                payload["data"].clone()
            }
            other => panic!("expected a push of {id} within {wait:?}, got {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .expect("the gateway takes the message");
    }

    async fn receive(&mut self) -> Received {
        let message = match self.stream.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                return Received::Event(Event::Closed {
                    code: 1006,
                    reason: error.to_string(),
                })
            }
            None => {
                return Received::Event(Event::Closed {
                    code: 1006,
                    reason: "the stream ended without a close frame".into(),
                })
            }
        };
        match message {
            Message::Text(text) => {
                let message: Value = serde_json::from_str(&text).expect("the gateway sends JSON");
                let id = || message["id"].as_str().unwrap_or_default().to_owned();
                match message["type"].as_str().unwrap_or_default() {
                    "connection_ack" => Received::Ack,
                    "next" | "data" => Received::Event(Event::Next {
                        id: id(),
                        payload: message["payload"].clone(),
                    }),
                    "complete" => Received::Event(Event::Complete { id: id() }),
                    "error" | "connection_error" => {
                        Received::Event(Event::Error(message["payload"].clone()))
                    }
                    "ping" => {
                        self.send(json!({ "type": "pong" })).await;
                        Received::Other
                    }
                    _ => Received::Other,
                }
            }
            Message::Close(frame) => Received::Event(match frame {
                Some(frame) => Event::Closed {
                    code: u16::from(frame.code),
                    reason: frame.reason.to_string(),
                },
                None => Event::Closed {
                    code: u16::from(CloseCode::Status),
                    reason: String::new(),
                },
            }),
            _ => Received::Other,
        }
    }
}

/// The upgrade request for `gateway_url`'s `/graphql`, offering `protocol`.
fn request(gateway_url: &str, protocol: Protocol) -> anyhow::Result<Request> {
    let url = format!("{}/graphql", gateway_url.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        protocol
            .name()
            .parse()
            .expect("a protocol name is a header value"),
    );
    Ok(request)
}

enum Received {
    Ack,
    Event(Event),
    Other,
}
