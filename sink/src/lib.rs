//! The sink: consumes the CDC topics of a `CdcPipeline` and maintains the ClickHouse star schema it
//! declares (dimensions, facts with denormalised lookups kept current), at least once, with replays
//! made harmless by row versions. See docs/sink.md.
//!
//! The folders follow one event: [`consume`](mod@consume) (the [`consume::consumer`] loop reads messages into a
//! [`consume::batch::Batch`]) → [`route`] (decodes and converts each event with the star schema
//! compiled from the spec, [`cdcstar_crds::star_model`], into [`route::value`]s) → [`flush`] (sends
//! poison events to the dead-letter topic, hands row changes on) → [`apply`] (folds them by the
//! [`apply::versioning`] rules, fills lookups with [`apply::enrich`]) → [`store`] (writes RowBinary,
//! [`store::rowbinary`]). Beside the flow, [`dead_letters`]: when ClickHouse refuses rows,
//! [`dead_letters::isolate`] finds the events they come from and their bytes, read back with
//! [`dead_letters::refetch`], go to the dead-letter topic too. Then [`status_tables`] reports the
//! batch into the tables beside the star tables. Only then are the offsets stored.
//!
//! Beside the sink, [`verify`] (`cdcstar-sink verify`) compares the star schema with Postgres by the
//! same model and conversions, and can re-emit the rows that differ.

pub mod apply;
pub mod consume;
pub mod dead_letters;
pub mod flush;
pub mod http;
pub mod metrics;
pub mod retry;
pub mod route;
pub mod settings;
pub mod status_tables;
pub mod store;
pub mod verify;

#[cfg(test)]
mod test_fixtures;

use std::path::Path;
use std::sync::Arc;

use cdcstar_crds::star_model::StarModel;
use cdcstar_crds::{CdcPipeline, PipelineDocumentError, parse_compiled};
use tokio::sync::watch;

use crate::apply::Applier;
use crate::consume::consumer::{ConsumerError, ConsumerSettings, consume};
use crate::dead_letters::producer::DeadLetterProducer;
use crate::flush::Flusher;
use crate::metrics::Metrics;
use crate::retry::{Abandoned, retry_until_shutdown};
use crate::route::CommitPosition;
use crate::settings::Args;
use crate::status_tables::StatusWriter;
use crate::store::{Store, StoreError};
use cdcstar_runtime::kafka::{KafkaSetupError, ensure_topics};
use cdcstar_runtime::pipeline_file::{self, UnreadablePipelineFile};

/// How long counting the topics' partitions at startup may take.
const PARTITION_COUNT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the sink stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The pipeline file could not be read.
    #[error(transparent)]
    ReadPipeline(#[from] UnreadablePipelineFile),
    /// The pipeline file is not a valid CdcPipeline.
    #[error("invalid pipeline {path}:\n{source}")]
    InvalidPipeline {
        /// The file.
        path: String,
        /// The YAML error, or every violated rule with its field path.
        source: PipelineDocumentError,
    },
    /// Kafka setup failed.
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    /// The consumer failed.
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    /// A ClickHouse statement at startup failed for good.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The metrics port could not be opened.
    #[error("failed to listen on {address}: {source}")]
    Listen {
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Shutdown was requested during startup.
    #[error(transparent)]
    Abandoned(#[from] Abandoned),
}

/// Reads and validates the pipeline file, and compiles its star schema.
pub fn load_pipeline(path: &Path) -> Result<(CdcPipeline, StarModel), SinkError> {
    let text = pipeline_file::read(path)?;
    parse_compiled(&text).map_err(|source| SinkError::InvalidPipeline {
        path: path.display().to_string(),
        source,
    })
}

/// Runs the sink until `shutdown` turns true.
pub async fn run(args: Args, shutdown: watch::Receiver<bool>) -> Result<(), SinkError> {
    let (pipeline, plan) = load_pipeline(&args.pipeline)?;
    let plan = Arc::new(plan);
    let metrics = Arc::new(Metrics::new());

    let connection = args.services.kafka(&pipeline)?;
    let topics = pipeline.data_topics();
    let dead_letter_topic = pipeline.dead_letter_topic();
    let group_id = args
        .group_id
        .clone()
        .unwrap_or_else(|| pipeline.sink_consumer_group());

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| SinkError::Listen {
            address: args.metrics_addr.to_string(),
            source,
        })?;
    let server = tokio::spawn(cdcstar_runtime::probes::serve(
        listener,
        metrics.clone(),
        cdcstar_runtime::shutdown::raised(shutdown.clone()),
    ));

    let store_config = args.services.store_config(&pipeline);
    tracing::info!(pipeline = %pipeline.pipeline_name(), clickhouse = %store_config.url,
        database = %store_config.database, brokers = %connection.brokers, "starting");
    let store = Store::for_pipeline(&store_config, &pipeline)
        .counting_statements(metrics.clickhouse_statements.clone());
    let mut startup_shutdown = shutdown.clone();
    if args.create_tables {
        let mut statements =
            cdcstar_crds::clickhouse_ddl::install_statements(&pipeline).map_err(|errors| {
                SinkError::InvalidPipeline {
                    path: args.pipeline.display().to_string(),
                    source: errors.into(),
                }
            })?;
        // The database override applies to the DDL too.
        if store_config.database != pipeline.clickhouse_database() {
            let mut renamed = pipeline.clone();
            renamed.spec.clickhouse.database = store_config.database.clone();
            statements =
                cdcstar_crds::clickhouse_ddl::install_statements(&renamed).map_err(|errors| {
                    SinkError::InvalidPipeline {
                        path: args.pipeline.display().to_string(),
                        source: errors.into(),
                    }
                })?;
        }
        for statement in &statements {
            retry_until_shutdown("create tables", &metrics, &mut startup_shutdown, || {
                let query = store
                    .client()
                    .query(statement)
                    .with_option("database", "default");
                async move { query.execute().await }
            })
            .await?;
        }
    } else {
        retry_until_shutdown("clickhouse ping", &metrics, &mut startup_shutdown, || {
            store.ping()
        })
        .await?;
    }
    if args.create_topics {
        let mut all = topics.clone();
        all.push(dead_letter_topic.clone());
        retry_until_shutdown("create topics", &metrics, &mut startup_shutdown, || {
            ensure_topics(&connection, &all, pipeline.spec.kafka.topics.partitions)
        })
        .await?;
    }

    let status = StatusWriter::new(store.clone(), pipeline.status_key());
    let applier = Applier::new(store, plan.clone(), args.lookup_recheck);
    let dead_letters = DeadLetterProducer::new(&connection, dead_letter_topic)?;
    let flusher = Flusher::new(applier, dead_letters, status.clone(), metrics.clone());
    let partitions = {
        let (connection, counted_topics) = (connection.clone(), topics.clone());
        let counted = tokio::task::spawn_blocking(move || {
            consume::fetch::partitions_per_topic(
                &connection,
                &counted_topics,
                PARTITION_COUNT_TIMEOUT,
            )
        })
        .await;
        match counted {
            Ok(Ok(counts)) => {
                // Every partition enters the watermark at zero, so one not applied yet holds it
                // there instead of being missing from the minimum (a higher position stays).
                let zero: Vec<(&str, i32, CommitPosition)> = counts
                    .iter()
                    .flat_map(|(topic, partitions)| {
                        (0..*partitions as i32)
                            .map(move |p| (topic.as_str(), p, CommitPosition::default()))
                    })
                    .collect();
                let at = chrono::Utc::now();
                retry_until_shutdown(
                    "zero partition positions",
                    &metrics,
                    &mut startup_shutdown,
                    || status.record_positions(&zero, at),
                )
                .await?;
                consume::fetch::budget_partitions(&counts)
            }
            outcome => {
                let assumed = topics.len() * pipeline.spec.kafka.topics.partitions.max(1) as usize;
                tracing::warn!(
                    ?outcome,
                    assumed,
                    "could not count the topics' partitions; dividing the prefetch budget by the spec's count, \
                     and partitions enter the watermark when they first apply a position"
                );
                assumed
            }
        }
    };
    let settings = ConsumerSettings {
        group_id,
        topics,
        partitions,
        limits: args.limits(),
        session_timeout: args
            .session_timeout_ms
            .map(std::time::Duration::from_millis),
        group_instance_id: args.group_instance_id.clone(),
        fetch: args.fetch(),
    };
    let result = consume(&connection, &settings, plan, flusher, metrics, shutdown).await;
    if let Ok(Err(error)) = server.await {
        tracing::warn!(%error, "metrics server failed");
    }
    result.map_err(SinkError::from)
}
