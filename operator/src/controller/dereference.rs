//! Phase 2: read what the spec refers to, the Secrets. Values needed by the operator itself (the
//! source DSN, ClickHouse credentials) come back as [`Sensitive`]; Secrets only the pods use (the
//! Redpanda Connect licence, Kafka auth) are only checked for presence, because the pods read them
//! through `secretKeyRef`/volumes and the operator never copies them anywhere. Two exceptions for the
//! Redpanda Connect engine, whose configuration is a file: the auth Secret's `security.protocol`
//! (not a secret) decides whether that file turns TLS on, and the values Redpanda Connect substitutes
//! into it (DSN, SASL settings, CA) are checked to be substitutable
//! ([`redpanda_connect::unsubstitutable_char`]).
//!
//! A missing Secret or key is an error naming the Secret, the key and the field that refers to it;
//! the reconcile turns it into a condition and retries when the Secret appears (Secrets are watched).

use std::collections::BTreeMap;

use cdcstar_crds::pipeline::{CaptureEngine, SecretKeyRef};
use cdcstar_crds::redpanda_connect::{self, BrokerTransport, SecretSource};
use cdcstar_crds::{CdcPipeline, redpanda_connect::KAFKA_AUTH_ENV};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::external::{Sensitive, WarehouseCredentials};
use crate::kube_error::Described;

/// Values read from the referenced Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dereferenced {
    /// The source database's connection string.
    pub source_dsn: Sensitive,
    /// ClickHouse credentials, when the spec names a Secret for them.
    pub warehouse_credentials: Option<WarehouseCredentials>,
    /// How Redpanda Connect reaches the brokers (TLS from the auth Secret's `security.protocol`).
    pub broker_transport: BrokerTransport,
}

/// Why the referenced Secrets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    /// The Secret does not exist.
    #[error("secret {namespace}/{name} referenced by {field} not found")]
    SecretMissing {
        namespace: String,
        /// Secret name.
        name: String,
        /// Field of the spec holding the reference.
        field: &'static str,
    },
    /// The Secret exists without the key.
    #[error("secret {namespace}/{name} referenced by {field} has no key {key:?}")]
    KeyMissing {
        namespace: String,
        /// Secret name.
        name: String,
        /// The missing key.
        key: String,
        /// Field of the spec holding the reference.
        field: &'static str,
    },
    /// The value is not UTF-8 text.
    #[error("key {key:?} of secret {namespace}/{name} referenced by {field} is not UTF-8 text")]
    NotText {
        namespace: String,
        /// Secret name.
        name: String,
        key: String,
        /// Field of the spec holding the reference.
        field: &'static str,
    },
    /// A value Redpanda Connect would substitute into its configuration file would break it.
    #[error(
        "key {key:?} of secret {namespace}/{name} referenced by {field} contains {character:?}, which \
         the redpandaConnect engine cannot substitute into its configuration; percent-encode it in a \
         DSN or choose another value"
    )]
    NotSubstitutable {
        namespace: String,
        /// Secret name.
        name: String,
        key: String,
        /// Field of the spec holding the reference.
        field: &'static str,
        /// The offending character.
        character: char,
    },
    /// The API server could not be asked.
    #[error("failed to read secret {namespace}/{name}: {}", Described(.source))]
    Read {
        namespace: String,
        /// Secret name.
        name: String,
        source: kube::Error,
    },
}

impl DereferenceError {
    /// Whether the user has to act (create the Secret or key), as opposed to a transient API error.
    pub fn is_missing_reference(&self) -> bool {
        !matches!(self, DereferenceError::Read { .. })
    }
}

/// Reads each referenced Secret once.
struct SecretReader {
    api: Api<Secret>,
    namespace: String,
    cache: BTreeMap<String, Option<Secret>>,
}

impl SecretReader {
    async fn secret(
        &mut self,
        name: &str,
        field: &'static str,
    ) -> Result<&Secret, DereferenceError> {
        if !self.cache.contains_key(name) {
            let fetched =
                self.api
                    .get_opt(name)
                    .await
                    .map_err(|source| DereferenceError::Read {
                        namespace: self.namespace.clone(),
                        name: name.to_owned(),
                        source,
                    })?;
            self.cache.insert(name.to_owned(), fetched);
        }
        self.cache
            .get(name)
            .and_then(Option::as_ref)
            .ok_or_else(|| DereferenceError::SecretMissing {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                field,
            })
    }

    async fn value(
        &mut self,
        name: &str,
        key: &str,
        field: &'static str,
    ) -> Result<Sensitive, DereferenceError> {
        let namespace = self.namespace.clone();
        let secret = self.secret(name, field).await?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .ok_or_else(|| DereferenceError::KeyMissing {
                namespace: namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
                field,
            })?;
        String::from_utf8(bytes.0.clone())
            .map(Sensitive::new)
            .map_err(|_| DereferenceError::NotText {
                namespace,
                name: name.to_owned(),
                key: key.to_owned(),
                field,
            })
    }

    /// The value of `key`, or `None` when the Secret has no such key.
    async fn optional_value(
        &mut self,
        name: &str,
        key: &str,
        field: &'static str,
    ) -> Result<Option<Sensitive>, DereferenceError> {
        match self.value(name, key, field).await {
            Ok(value) => Ok(Some(value)),
            Err(DereferenceError::KeyMissing { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    async fn key_ref(
        &mut self,
        reference: &SecretKeyRef,
        field: &'static str,
    ) -> Result<Sensitive, DereferenceError> {
        self.value(&reference.name, &reference.key, field).await
    }
}

/// What a pass needs from the Secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A normal reconcile: every reference must resolve.
    Reconcile,
    /// Cleanup on delete: only the DSN and, when tables are to be dropped, the ClickHouse
    /// credentials (the licence or Kafka Secrets may already be gone).
    Cleanup,
}

/// Reads the Secrets `pipeline` refers to, in its namespace.
pub async fn dereference(
    client: &Client,
    pipeline: &CdcPipeline,
    purpose: Purpose,
) -> Result<Dereferenced, DereferenceError> {
    let namespace = pipeline.pipeline_namespace();
    let mut reader = SecretReader {
        api: Api::namespaced(client.clone(), &namespace),
        namespace,
        cache: BTreeMap::new(),
    };
    let spec = &pipeline.spec;
    let source_dsn = reader
        .key_ref(
            &spec.source.connection_secret_ref,
            "spec.source.connectionSecretRef",
        )
        .await?;
    let needs_warehouse = purpose == Purpose::Reconcile || spec.clickhouse.drop_tables_on_delete;
    let warehouse_credentials = match &spec.clickhouse.credentials_secret_ref {
        Some(reference) if needs_warehouse => {
            let field = "spec.clickhouse.credentialsSecretRef";
            Some(WarehouseCredentials {
                username: reader
                    .value(&reference.name, &reference.username_key, field)
                    .await?,
                password: reader
                    .value(&reference.name, &reference.password_key, field)
                    .await?,
            })
        }
        _ => None,
    };
    if purpose == Purpose::Cleanup {
        return Ok(Dereferenced {
            source_dsn,
            warehouse_credentials,
            broker_transport: BrokerTransport::default(),
        });
    }
    if spec.capture.engine == CaptureEngine::Native
        && let Some(salt) = &spec.source.mask_salt_secret_ref
    {
        // Only its presence matters: the capture reads it through secretKeyRef.
        reader
            .key_ref(salt, "spec.source.maskSaltSecretRef")
            .await?;
    }
    if spec.capture.engine == CaptureEngine::RedpandaConnect
        && let Some(rpcn) = &spec.capture.redpanda_connect
    {
        // Only its presence matters: the pod reads it through secretKeyRef.
        reader
            .key_ref(
                &rpcn.license_secret_ref,
                "spec.capture.redpandaConnect.licenseSecretRef",
            )
            .await?;
    }
    let mut broker_transport = BrokerTransport::default();
    if let Some(auth) = &spec.kafka.auth_secret_ref {
        let field = "spec.kafka.authSecretRef";
        reader.secret(&auth.name, field).await?;
        if spec.capture.engine == CaptureEngine::RedpandaConnect {
            let protocol = reader
                .optional_value(&auth.name, "security.protocol", field)
                .await?;
            broker_transport.tls =
                redpanda_connect::uses_tls(protocol.as_ref().map(Sensitive::expose));
            for var in KAFKA_AUTH_ENV {
                let SecretSource::KafkaAuth(key) = var.source else {
                    continue;
                };
                if let Some(value) = reader.optional_value(&auth.name, key, field).await? {
                    check_substitutable(&value, &reader.namespace, &auth.name, key, field)?;
                }
            }
        }
    }
    if spec.capture.engine == CaptureEngine::RedpandaConnect {
        let reference = &spec.source.connection_secret_ref;
        check_substitutable(
            &source_dsn,
            &reader.namespace,
            &reference.name,
            &reference.key,
            "spec.source.connectionSecretRef",
        )?;
    }
    Ok(Dereferenced {
        source_dsn,
        warehouse_credentials,
        broker_transport,
    })
}

/// Refuses a value Redpanda Connect could not substitute into its configuration file.
fn check_substitutable(
    value: &Sensitive,
    namespace: &str,
    name: &str,
    key: &str,
    field: &'static str,
) -> Result<(), DereferenceError> {
    match redpanda_connect::unsubstitutable_char(value.expose()) {
        None => Ok(()),
        Some(character) => Err(DereferenceError::NotSubstitutable {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            field,
            character,
        }),
    }
}
