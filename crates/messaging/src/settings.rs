//! Client configuration. The choices here are the delivery guarantees, so they live in one place.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

#[derive(Debug, Clone, clap::Args)]
pub struct KafkaSettings {
    /// Bootstrap brokers, comma separated.
    #[arg(
        long = "kafka-brokers",
        env = "RINGIFLOW_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Topic of workflow events.
    #[arg(
        long = "kafka-topic",
        env = "RINGIFLOW_KAFKA_TOPIC",
        default_value = "ringiflow.workflow.events"
    )]
    pub topic: String,
    /// Partitions used when this service has to create the topic.
    #[arg(
        long = "kafka-topic-partitions",
        env = "RINGIFLOW_KAFKA_TOPIC_PARTITIONS",
        default_value_t = 12
    )]
    pub topic_partitions: i32,
    /// Replication factor used when this service has to create the topic.
    #[arg(
        long = "kafka-topic-replication",
        env = "RINGIFLOW_KAFKA_TOPIC_REPLICATION",
        default_value_t = 1
    )]
    pub topic_replication: i32,
}

/// Durable, ordered, duplicate-free produce: `acks=all` and the idempotent producer keep
/// per-partition order across internal retries.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        // A message not acknowledged within this time fails back to the relay, which keeps the
        // outbox row and retries it later: the broker being down never loses an event.
        .set("message.timeout.ms", "15000");
    config
}

/// Manual commits after the read-model transaction, start at the beginning for a new group,
/// and never see aborted transactional writes.
pub fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false");
    config
}

/// Creates the topic if it does not exist yet; an existing topic is left as it is.
pub async fn ensure_topic(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()?;
    let topic = NewTopic::new(
        &settings.topic,
        settings.topic_partitions,
        TopicReplication::Fixed(settings.topic_replication),
    );
    let results = admin.create_topics([&topic], &AdminOptions::new()).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(%topic, ?code, "cannot create topic");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}
