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
    /// The topic this service publishes its context's events to, or follows.
    // No default here: the kernel names no context, so each service sets its own with
    // `mut_arg("topic", …)`.
    #[arg(long = "kafka-topic", env = "RINGIFLOW_KAFKA_TOPIC")]
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
    /// How clients reach the brokers: TLS and SASL for secured clusters.
    #[command(flatten)]
    pub security: KafkaSecurity,
}

/// Transport security towards the brokers, passed to librdkafka as its `security.protocol`,
/// `sasl.*` and `ssl.*` properties. The defaults (plaintext, no SASL) match the local broker.
impl KafkaSettings {
    /// The same connection settings for another topic.
    pub fn with_topic(&self, topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaSecurity {
    /// librdkafka `security.protocol`.
    #[arg(
        long = "kafka-security-protocol",
        env = "RINGIFLOW_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value = "plaintext"
    )]
    pub protocol: SecurityProtocol,
    /// SASL mechanism, with `sasl_plaintext` or `sasl_ssl`.
    #[arg(
        long = "kafka-sasl-mechanism",
        env = "RINGIFLOW_KAFKA_SASL_MECHANISM",
        value_enum
    )]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    #[arg(long = "kafka-sasl-username", env = "RINGIFLOW_KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,
    /// SASL password.
    #[arg(
        long = "kafka-sasl-password",
        env = "RINGIFLOW_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<Password>,
    /// PEM file of the CA certificates that sign the brokers' certificates; without it the
    /// system trust store is used.
    #[arg(
        long = "kafka-ssl-ca-location",
        env = "RINGIFLOW_KAFKA_SSL_CA_LOCATION"
    )]
    pub ssl_ca_location: Option<std::path::PathBuf>,
    /// Check that the broker's certificate names the host connected to (librdkafka
    /// `ssl.endpoint.identification.algorithm=https`); turn off only for test clusters.
    #[arg(
        long = "kafka-ssl-verify-hostname",
        env = "RINGIFLOW_KAFKA_SSL_VERIFY_HOSTNAME",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub ssl_verify_hostname: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

/// A SASL password: `Debug` never prints it, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl std::str::FromStr for Password {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl KafkaSecurity {
    /// Sets the librdkafka properties of these settings on `config`.
    fn apply(&self, config: &mut ClientConfig) {
        let protocol = match self.protocol {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(mechanism) = self.sasl_mechanism {
            let mechanism = match mechanism {
                SaslMechanism::Plain => "PLAIN",
                SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            };
            config.set("sasl.mechanism", mechanism);
        }
        if let Some(username) = &self.sasl_username {
            config.set("sasl.username", username);
        }
        if let Some(Password(password)) = &self.sasl_password {
            config.set("sasl.password", password);
        }
        if let Some(ca) = &self.ssl_ca_location {
            config.set("ssl.ca.location", ca.to_string_lossy());
        }
        if !self.ssl_verify_hostname {
            config.set("ssl.endpoint.identification.algorithm", "none");
        }
    }
}

/// The connection part every client shares: brokers and transport security.
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    settings.security.apply(&mut config);
    config
}

/// Durable, ordered, duplicate-free produce: `acks=all` and the idempotent producer keep
/// per-partition order across internal retries.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        // No lingering: the relay hands over each outbox read at once, so batches come from
        // the read (and from what queues while requests are in flight), not from waiting. With
        // a 2 ms linger librdkafka's broker thread polled its clock and queues for most of the
        // wait: in W1's profile that was ~40 % of the process's CPU, and W1 went from 1,298
        // to 2,056 commands/s without it (BENCHMARKS.md).
        .set("linger.ms", "0")
        // One produce request at a time per broker connection; what queues meanwhile goes in
        // the next one. With several in flight librdkafka's broker thread spins while it waits
        // for them (a bare producer at 2,000 events/s: ten times the CPU, and p50 169 ms
        // instead of 20 ms against the local broker; BENCHMARKS.md). Order needs no more than
        // this either.
        .set("max.in.flight.requests.per.connection", "1")
        // A message not acknowledged within this time fails back to the relay, which keeps the
        // outbox row and retries it later: the broker being down never loses an event.
        .set("message.timeout.ms", "15000");
    config
}

/// Manual commits after the read-model transaction, start at the beginning for a new group,
/// and never see aborted transactional writes.
pub fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = client_config(settings);
    config
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
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaSettings,
    }

    #[test]
    fn plaintext_without_sasl_by_default() {
        let cli = Cli::try_parse_from(["test", "--kafka-topic", "t"]).unwrap();
        let config = producer_config(&cli.kafka);
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.mechanism"), None);
        assert_eq!(config.get("ssl.endpoint.identification.algorithm"), None);
    }

    #[test]
    fn sasl_and_tls_settings_reach_every_client() {
        let cli = Cli::try_parse_from([
            "test",
            "--kafka-topic",
            "t",
            "--kafka-security-protocol",
            "sasl-ssl",
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-512",
            "--kafka-sasl-username",
            "ringiflow",
            "--kafka-sasl-password",
            "hunter2",
            "--kafka-ssl-ca-location",
            "/etc/kafka/ca.crt",
        ])
        .unwrap();
        assert!(!format!("{:?}", cli.kafka).contains("hunter2"));
        for config in [
            producer_config(&cli.kafka),
            consumer_config(&cli.kafka, "group"),
            client_config(&cli.kafka),
        ] {
            assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
            assert_eq!(config.get("sasl.username"), Some("ringiflow"));
            assert_eq!(config.get("sasl.password"), Some("hunter2"));
            assert_eq!(config.get("ssl.ca.location"), Some("/etc/kafka/ca.crt"));
        }
        // librdkafka accepts them, which it would not if it were built without TLS. (Without
        // the CA file, which it reads at once and which does not exist here.)
        let mut without_ca = cli.kafka.clone();
        without_ca.security.ssl_ca_location = None;
        let _producer: rdkafka::producer::BaseProducer =
            producer_config(&without_ca).create().unwrap();
    }
}
