//! A process manager against the real broker: every reaction runs, a transient failure is
//! retried, a refused command dead-letters its event, a message of another context is set
//! aside, and a restart redelivers nothing that was committed. The contexts are the test's own.

use es_kernel::{EventCodec, EventMetadata, RecordedEvent, WireError};
use messaging::dead_letter::{topic_for, DeadLetter};
use messaging::KafkaSettings;
use process_manager::{Cause, Dispatch, DispatchError, ProcessManager, Reactor};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The followed context: an order is `Placed` with a quantity.
struct Orders;

impl EventCodec for Orders {
    type Event = u32;
    const DATA_SCHEMA: &'static str = "test.Order";
    const CONTENT_TYPE: &'static str = "text/plain";
    const TYPES: &'static [&'static str] = &["Placed"];

    fn event_type(_: &u32) -> &'static str {
        "Placed"
    }

    fn encode(quantity: &u32) -> Vec<u8> {
        quantity.to_string().into_bytes()
    }

    fn decode(payload: &[u8]) -> Result<u32, WireError> {
        std::str::from_utf8(payload)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| WireError::Malformed {
                schema: Self::DATA_SCHEMA,
                problem: "not a quantity".into(),
            })
    }
}

/// Reserves stock for each order: one reservation per unit, ids derived from the order event.
struct ReserveStock;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reservation {
    command_id: Uuid,
    quantity: u32,
}

impl Reactor for ReserveStock {
    type Codec = Orders;
    type Reaction = Reservation;

    fn react(&self, event: &RecordedEvent<u32>) -> Vec<Reservation> {
        vec![Reservation {
            command_id: es_kernel::derived_id(event.event_id, "reserve"),
            quantity: event.event,
        }]
    }
}

/// The stock context: quantity 13 is refused for good; quantity 7 fails once, then works.
#[derive(Clone, Default)]
struct Stock {
    done: Arc<Mutex<Vec<(Reservation, Cause)>>>,
    attempts: Arc<Mutex<Vec<u32>>>,
}

impl Dispatch<Reservation> for Stock {
    async fn dispatch(&self, reservation: Reservation, cause: &Cause) -> Result<(), DispatchError> {
        let attempts = {
            let mut attempts = self.attempts.lock().unwrap();
            attempts.push(reservation.quantity);
            attempts
                .iter()
                .filter(|q| **q == reservation.quantity)
                .count()
        };
        match reservation.quantity {
            13 => Err(DispatchError::Permanent("out of stock".into())),
            7 if attempts == 1 => Err(DispatchError::Transient("stock service away".into())),
            _ => {
                self.done.lock().unwrap().push((reservation, cause.clone()));
                Ok(())
            }
        }
    }
}

fn settings() -> KafkaSettings {
    KafkaSettings {
        brokers: std::env::var("RINGIFLOW_TEST_KAFKA_BROKERS")
            .unwrap_or_else(|_| "127.0.0.1:19092".to_owned()),
        topic: format!("test.orders.{}", Uuid::new_v4().simple()),
        topic_partitions: 1,
        topic_replication: 1,
        security: Default::default(),
    }
}

fn placed(quantity: u32) -> RecordedEvent<u32> {
    RecordedEvent {
        event_id: Uuid::now_v7(),
        position: 1,
        aggregate_type: "order".into(),
        aggregate_id: Uuid::now_v7(),
        version: 1,
        occurred_at: chrono::Utc::now(),
        metadata: EventMetadata {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            correlation_id: Uuid::now_v7(),
            causation_id: Uuid::now_v7(),
            traceparent: None,
        },
        event: quantity,
    }
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: rdkafka::message::OwnedHeaders,
) {
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
}

/// Runs a process manager until `until` holds (or 60 s), then stops it.
async fn run_until(settings: &KafkaSettings, stock: &Stock, until: impl Fn(&Stock) -> bool) {
    let shutdown = CancellationToken::new();
    let manager = ProcessManager {
        name: "reserve-stock-test".into(),
        reactor: ReserveStock,
        dispatch: stock.clone(),
        kafka: settings.clone(),
        producer: messaging::producer_config(settings).create().unwrap(),
    };
    let task = tokio::spawn(manager.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !until(stock) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Gives the last commit a moment to leave before the consumer closes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops promptly")
        .unwrap();
}

#[tokio::test]
async fn reactions_run_once_retry_what_may_pass_and_dead_letter_what_cannot() {
    let settings = settings();
    messaging::ensure_topic(&settings).await.unwrap();
    messaging::dead_letter::ensure_topic(&settings)
        .await
        .unwrap();
    let producer: FutureProducer = messaging::producer_config(&settings).create().unwrap();

    let events: Vec<RecordedEvent<u32>> = [2, 7, 13, 5].into_iter().map(placed).collect();
    for event in &events[..3] {
        let out = messaging::encode::<Orders>(event, "test");
        produce(
            &producer,
            &settings.topic,
            &out.key,
            &out.payload,
            out.headers,
        )
        .await;
    }
    // A message of another context on the same topic: not an order.
    let foreign = messaging::encode::<Orders>(&events[3], "test");
    produce(
        &producer,
        &settings.topic,
        &foreign.key,
        b"not a quantity",
        foreign.headers,
    )
    .await;

    // The refused reaction and the foreign message go to the dead-letter topic, after the
    // reactions that pass: the manager runs until both are there, or their offsets would not
    // be committed before it stops (and the restart below would see them again).
    let dead: StreamConsumer =
        messaging::consumer_config(&settings, &format!("dlq-{}", Uuid::new_v4()))
            .create()
            .unwrap();
    dead.subscribe(&[&topic_for(&settings.topic)]).unwrap();
    let letters: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let reader = tokio::spawn({
        let letters = Arc::clone(&letters);
        async move {
            loop {
                let message = dead.recv().await.unwrap();
                let letter = DeadLetter::read(&message);
                letters
                    .lock()
                    .unwrap()
                    .push((letter.kind.unwrap(), letter.error.unwrap()));
            }
        }
    });
    let stock = Stock::default();
    run_until(&settings, &stock, |stock| {
        stock.done.lock().unwrap().len() == 2 && letters.lock().unwrap().len() == 2
    })
    .await;
    reader.abort();
    let done = stock.done.lock().unwrap().clone();
    assert_eq!(
        done.iter().map(|(r, _)| r.quantity).collect::<Vec<_>>(),
        [2, 7],
        "every possible reaction ran, in order"
    );
    assert_eq!(
        stock
            .attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|q| **q == 7)
            .count(),
        2,
        "the transient failure was retried once"
    );
    for ((reservation, cause), event) in done.iter().zip(&events) {
        assert_eq!(
            reservation.command_id,
            es_kernel::derived_id(event.event_id, "reserve")
        );
        assert_eq!(cause.event_id, event.event_id, "the causation is the event");
        assert_eq!(cause.correlation_id, event.metadata.correlation_id);
        assert_eq!(cause.tenant_id, "acme");
    }

    // Both dead letters, in order, with why.
    let kinds = letters.lock().unwrap().clone();
    assert_eq!(kinds.len(), 2, "two dead letters: {kinds:?}");
    assert_eq!(kinds[0].0, "rejected");
    assert!(kinds[0].1.contains("out of stock"), "{kinds:?}");
    assert_eq!(kinds[1].0, "undecodable");

    // A new event after a restart: only it is reacted to; nothing committed comes again.
    let out = messaging::encode::<Orders>(&placed(3), "test");
    produce(
        &producer,
        &settings.topic,
        &out.key,
        &out.payload,
        out.headers,
    )
    .await;
    let again = Stock::default();
    run_until(&settings, &again, |stock| {
        !stock.done.lock().unwrap().is_empty()
    })
    .await;
    let quantities: Vec<u32> = again
        .done
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.quantity)
        .collect();
    assert_eq!(quantities, [3]);
    assert_eq!(
        *again.attempts.lock().unwrap(),
        [3],
        "nothing before it was redelivered"
    );
}
