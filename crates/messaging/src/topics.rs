//! Which topic each context publishes to. By default a context's registration names it
//! (`ringiflow.<context>.events`); a deployment moves one with `--context-topic NAME=TOPIC`.

use crate::KafkaSettings;
use es_kernel::ContextRegistration;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContextTopics {
    /// A context's topic when it is not `ringiflow.<context>.events`, as `context=topic`;
    /// repeat the flag or separate with commas, e.g. `systems=prod.systems.events`.
    #[arg(
        long = "context-topic",
        env = "RINGIFLOW_CONTEXT_TOPICS",
        value_delimiter = ',',
        value_parser = context_topic
    )]
    pub overrides: Vec<(String, String)>,
}

impl ContextTopics {
    /// The topic `context` publishes to in this deployment.
    pub fn topic(&self, context: &ContextRegistration) -> String {
        self.overrides
            .iter()
            .find(|(name, _)| name == context.name)
            .map_or_else(|| context.default_topic(), |(_, topic)| topic.clone())
    }

    /// `kafka` for `context`'s topic in this deployment.
    pub fn settings(&self, kafka: &KafkaSettings, context: &ContextRegistration) -> KafkaSettings {
        kafka.with_topic(self.topic(context))
    }
}

fn context_topic(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((context, topic)) if !context.is_empty() && !topic.is_empty() => {
            Ok((context.to_owned(), topic.to_owned()))
        }
        _ => Err(format!("'{raw}' is not context=topic")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        topics: ContextTopics,
    }

    const ORDERS: ContextRegistration = ContextRegistration {
        name: "orders",
        upcasters: &[],
        published: &["order"],
    };
    const STOCK: ContextRegistration = ContextRegistration {
        name: "stock",
        upcasters: &[],
        published: &["item"],
    };

    #[test]
    fn a_context_publishes_to_its_own_topic_unless_the_deployment_moves_it() {
        let cli = Cli::parse_from(["x", "--context-topic", "orders=prod.orders"]);
        assert_eq!(cli.topics.topic(&ORDERS), "prod.orders");
        assert_eq!(cli.topics.topic(&STOCK), "ringiflow.stock.events");
        assert!(Cli::try_parse_from(["x", "--context-topic", "orders"]).is_err());
        assert!(Cli::try_parse_from(["x", "--context-topic", "=t"]).is_err());
    }
}
