//! Kafka client settings and topic provisioning, shared by the processes that talk to the brokers
//! (the native capture and the sink).
//!
//! A pipeline names its brokers in `spec.kafka`; security settings come from the Secret named by
//! `spec.kafka.authSecretRef`, which the operator mounts as a directory (one file per key). Only the
//! keys listed in [`AUTH_KEYS`] are read, so a Secret cannot smuggle arbitrary librdkafka settings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

/// Secret keys that carry client security settings, and the librdkafka property each one sets.
pub const AUTH_KEYS: [(&str, &str); 5] = [
    ("security.protocol", "security.protocol"),
    ("sasl.mechanism", "sasl.mechanisms"),
    ("sasl.username", "sasl.username"),
    ("sasl.password", "sasl.password"),
    ("ca.crt", "ssl.ca.pem"),
];

/// Errors while preparing Kafka clients or topics.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// The auth directory could not be read.
    #[error("failed to read kafka auth setting {key} from {dir}: {source}")]
    ReadAuth {
        /// Directory of the mounted Secret.
        dir: String,
        /// The key that failed.
        key: String,
        source: std::io::Error,
    },
    /// A client could not be created from the settings.
    #[error("failed to create kafka {what} for brokers {brokers}: {source}")]
    Client {
        /// What was being created (admin client, producer, consumer).
        what: &'static str,
        /// Bootstrap brokers.
        brokers: String,
        source: KafkaError,
    },
    /// A topic could not be created.
    #[error("failed to create topic {topic}: {reason}")]
    CreateTopic {
        topic: String,
        /// What the broker said.
        reason: String,
    },
}

/// Where and how to connect to the brokers.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConnection {
    /// Comma-separated bootstrap brokers.
    pub brokers: String,
    /// librdkafka security properties (never logged: they may hold a password).
    security: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("brokers", &self.brokers)
            .field("security_keys", &self.security.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KafkaConnection {
    /// Plain connection to `brokers` (a list joined with commas).
    pub fn new<S: AsRef<str>>(brokers: &[S]) -> Self {
        let brokers = brokers
            .iter()
            .map(|b| b.as_ref().trim())
            .collect::<Vec<_>>()
            .join(",");
        Self {
            brokers,
            security: BTreeMap::new(),
        }
    }

    /// The connection a binary opens: the brokers given on its command line (comma-separated) or
    /// else the pipeline's, with the security settings of the Secret mounted at `auth_dir`, if any.
    pub fn configured<S: AsRef<str>>(
        given_brokers: Option<&str>,
        pipeline_brokers: &[S],
        auth_dir: Option<&Path>,
    ) -> Result<Self, KafkaSetupError> {
        let connection = match given_brokers {
            Some(list) => Self::new(&list.split(',').collect::<Vec<_>>()),
            None => Self::new(pipeline_brokers),
        };
        match auth_dir {
            Some(dir) => connection.with_auth_dir(dir),
            None => Ok(connection),
        }
    }

    /// Adds the security settings found in `dir` (a mounted Secret: one file per key of
    /// [`AUTH_KEYS`]; missing files are skipped).
    pub fn with_auth_dir(mut self, dir: &Path) -> Result<Self, KafkaSetupError> {
        for (key, property) in AUTH_KEYS {
            let path = dir.join(key);
            match std::fs::read_to_string(&path) {
                Ok(value) => {
                    self.security.insert(property, value.trim().to_owned());
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(KafkaSetupError::ReadAuth {
                        dir: dir.display().to_string(),
                        key: key.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok(self)
    }

    /// A client configuration with the brokers and security settings; callers add their own
    /// producer or consumer properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (property, value) in &self.security {
            config.set(*property, value);
        }
        config
    }

    /// An admin client for topic management.
    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>, KafkaSetupError> {
        self.client_config()
            .create()
            .map_err(|source| KafkaSetupError::Client {
                what: "admin client",
                brokers: self.brokers.clone(),
                source,
            })
    }
}

/// Creates every topic of `topics` that does not exist yet, with `partitions` partitions.
///
/// Existing topics are left as they are (their partition count is not changed). The replication
/// factor is the broker's default (`-1`), so a single-broker development setup and a production
/// cluster both get a sensible value.
pub async fn ensure_topics(
    connection: &KafkaConnection,
    topics: &[String],
    partitions: i32,
) -> Result<(), KafkaSetupError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin = connection.admin()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = match admin.create_topics(&new_topics, &options).await {
        Ok(results) => results,
        // NB: every Kafka broker since 0.10.2 implements CreateTopics; librdkafka's mock cluster
        // (cdcstar-mock-broker, the benchmarks' broker) does not, and auto-creates topics instead.
        Err(KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature)) => {
            return auto_create_topics(connection, topics, partitions).await;
        }
        Err(source) => {
            return Err(KafkaSetupError::Client {
                what: "topics",
                brokers: connection.brokers.clone(),
                source,
            });
        }
    };
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaSetupError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// For a broker without the CreateTopics API: asks for each topic's metadata with automatic creation
/// allowed, and fails unless every topic then exists. The broker picks the partition count (said in
/// a warning when it differs from `partitions`).
async fn auto_create_topics(
    connection: &KafkaConnection,
    topics: &[String],
    partitions: i32,
) -> Result<(), KafkaSetupError> {
    let mut config = connection.client_config();
    config.set("allow.auto.create.topics", "true");
    let brokers = connection.brokers.clone();
    let topics = topics.to_vec();
    let created = tokio::task::spawn_blocking(move || {
        let client: BaseProducer = config.create().map_err(|source| KafkaSetupError::Client {
            what: "metadata client",
            brokers: brokers.clone(),
            source,
        })?;
        let mut created = Vec::new();
        for topic in &topics {
            let metadata = client
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .map_err(|error| KafkaSetupError::CreateTopic {
                    topic: topic.clone(),
                    reason: format!(
                        "the broker has no CreateTopics and its metadata failed: {error}"
                    ),
                })?;
            match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(found) if found.error().is_none() && !found.partitions().is_empty() => {
                    created.push((topic.clone(), found.partitions().len()));
                }
                found => {
                    return Err(KafkaSetupError::CreateTopic {
                        topic: topic.clone(),
                        reason: format!(
                            "the broker has no CreateTopics and did not auto-create it ({:?})",
                            found.and_then(|t| t.error())
                        ),
                    });
                }
            }
        }
        Ok(created)
    })
    .await
    .map_err(|error| KafkaSetupError::CreateTopic {
        topic: "(all)".to_owned(),
        reason: error.to_string(),
    })??;
    for (topic, count) in created {
        if count != partitions as usize {
            tracing::warn!(
                %topic,
                partitions = count,
                requested = partitions,
                "the broker has no CreateTopics (librdkafka's mock cluster?): it auto-created the topic with its own partition count"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_joined_and_trimmed() {
        let connection = KafkaConnection::new(&[" a:9092", "b:9092 "]);
        assert_eq!(connection.brokers, "a:9092,b:9092");
        assert_eq!(
            connection.client_config().get("bootstrap.servers"),
            Some("a:9092,b:9092")
        );
    }

    #[test]
    fn brokers_given_on_the_command_line_replace_the_pipelines() {
        let pipeline = ["spec:9092"];
        let given = KafkaConnection::configured(Some("a:9092, b:9092"), &pipeline, None).unwrap();
        assert_eq!(given.brokers, "a:9092,b:9092");
        let spec = KafkaConnection::configured(None, &pipeline, None).unwrap();
        assert_eq!(spec.brokers, "spec:9092");
        let missing = std::path::Path::new("/nonexistent/cdcstar-kafka-auth");
        let without_secret_files =
            KafkaConnection::configured(None, &pipeline, Some(missing)).unwrap();
        assert!(
            without_secret_files
                .client_config()
                .get("sasl.username")
                .is_none()
        );
    }

    #[test]
    fn auth_dir_sets_only_known_keys_and_debug_hides_values() {
        let dir = std::env::temp_dir().join(format!("cdcstar-kafka-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sasl.username"), "alice\n").unwrap();
        std::fs::write(dir.join("sasl.password"), "s3cret").unwrap();
        std::fs::write(dir.join("group.id"), "smuggled").unwrap();
        let connection = KafkaConnection::new(&["a:9092"])
            .with_auth_dir(&dir)
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let config = connection.client_config();
        assert_eq!(config.get("sasl.username"), Some("alice"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("group.id"), None);
        assert!(!format!("{connection:?}").contains("s3cret"));
    }
}
