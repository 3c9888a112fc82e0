//! Start-up and supervision: from the settings to a running capture. Prepares topics, publication
//! and slot, plans the snapshot, starts the replication stream, and runs the streaming loop, the
//! snapshot, the heartbeat and the metrics server until shutdown or the first fatal error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::postgres::row_filter_sql;
use cdcstar_runtime::kafka::{KafkaConnection, KafkaSetupError, ensure_topics};
use cdcstar_source::address::{DatabaseAddress, SourceError};
use cdcstar_source::mask::{ColumnRules, MaskError, MaskSalt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::acks::AckTracker;
use crate::metrics::{self, CaptureMetrics};
use crate::producer::EventProducer;
use crate::replication::{self, ReplicationError, StreamSettings};
use crate::settings::{CaptureArgs, PipelineFileError, load_pipeline};
use crate::snapshot::{self, ProgressStore, ReadSnapshot, SnapshotError, Snapshotter};
use crate::source;
use crate::stream::{Routes, StreamError, Streamer, TableRoute};

/// Every way the capture can fail.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The pipeline file.
    #[error(transparent)]
    Pipeline(#[from] PipelineFileError),
    /// Kafka setup.
    #[error(transparent)]
    Kafka(#[from] KafkaSetupError),
    /// The source database.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The replication connection.
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// The streaming loop.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The snapshot.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A table's column rules.
    #[error(transparent)]
    Mask(#[from] MaskError),
    /// The metrics server.
    #[error("metrics server failed: {0}")]
    Metrics(std::io::Error),
    /// The slot or publication are not usable.
    #[error("{0}")]
    Setup(String),
}

/// The pipeline's routes: one per captured table, its columns masked with `salt`.
pub fn routes(pipeline: &CdcPipeline, salt: Option<&MaskSalt>) -> Result<Routes, MaskError> {
    let tables = pipeline
        .spec
        .source
        .tables
        .iter()
        .map(|table| {
            Ok((
                table.name.clone(),
                TableRoute {
                    topic: pipeline.topic_for_table(&table.name),
                    primary_key: table.primary_key.clone(),
                    columns: Arc::new(ColumnRules::for_table(table, salt)?),
                    row_filter: row_filter_sql(table),
                },
            ))
        })
        .collect::<Result<HashMap<_, _>, MaskError>>()?;
    Ok(Routes {
        schema: pipeline.spec.source.schema.clone(),
        tables,
    })
}

/// Runs the capture described by `args` until `shutdown` is cancelled or a fatal error occurs.
pub async fn run(args: CaptureArgs, shutdown: CancellationToken) -> Result<(), CaptureError> {
    let pipeline = load_pipeline(&args.pipeline)?;
    let slot = pipeline.slot_name();
    let publication = pipeline.publication_name();
    let schema = pipeline.spec.source.schema.clone();
    let tables = pipeline.source_table_names();
    let address = DatabaseAddress::parse(&args.database_url)?;
    // Before anything connects: a hashed column without its salt stops the start here.
    let routes = Arc::new(routes(&pipeline, args.mask_salt.as_ref())?);
    tracing::info!(pipeline = %pipeline.pipeline_name(), %slot, %publication, database = %address.describe(), "starting capture");

    let metrics = Arc::new(CaptureMetrics::default());
    let metrics_task = tokio::spawn(metrics::serve(
        args.metrics_address(),
        Arc::clone(&metrics),
        shutdown.clone(),
    ));

    // Kafka: the pipeline's topics, then the producer.
    let connection = KafkaConnection::configured(
        args.kafka_brokers.as_deref(),
        &pipeline.spec.kafka.brokers,
        args.kafka_auth_dir.as_deref(),
    )?;
    let mut topics = pipeline.data_topics();
    topics.push(pipeline.dead_letter_topic());
    ensure_topics(&connection, &topics, pipeline.spec.kafka.topics.partitions).await?;

    // Publication and slot.
    let control = address.connect().await?;
    if args.create_slot {
        source::ensure_publication(&control, &pipeline).await?;
    }
    let missing =
        source::tables_missing_from_publication(&control, &publication, &schema, &tables).await?;
    if !missing.is_empty() {
        return Err(CaptureError::Setup(format!(
            "publication {publication} does not publish {}; the operator adds them (or run with --create-slot)",
            missing.join(", ")
        )));
    }
    let snapshot_wanted = pipeline.spec.capture.snapshot;
    let progress = ProgressStore::new(&slot);
    if snapshot_wanted {
        progress.ensure_table(&control).await?;
    }
    let stream_settings = StreamSettings {
        slot: slot.clone(),
        publication: publication.clone(),
        status_interval: args.status_interval(),
    };

    let (client, confirmed, reader) = match source::slot_state(&control, &slot).await? {
        Some(state) => {
            if state.plugin != "pgoutput" {
                return Err(CaptureError::Setup(format!(
                    "replication slot {slot} uses output plugin {}, the capture needs pgoutput",
                    state.plugin
                )));
            }
            let client =
                replication::start_stream(&address, &stream_settings, state.confirmed_flush)
                    .await?;
            tracing::info!(%slot, confirmed = %state.confirmed_flush, "resuming from the replication slot");
            let reader = if snapshot_wanted {
                Some(ReadSnapshot::Fresh(address.connect().await?))
            } else {
                None
            };
            (client, state.confirmed_flush, reader)
        }
        None if args.create_slot => {
            let created =
                replication::create_slot(&address, &stream_settings, snapshot_wanted).await?;
            let reader = match &created.snapshot_name {
                Some(name) => {
                    let reader = address.connect().await?;
                    snapshot::import_snapshot(&reader, name).await?;
                    progress.reset(&control).await?;
                    Some(ReadSnapshot::Exported(reader))
                }
                None => None,
            };
            let confirmed = created.consistent_point;
            (created.start(&address).await?, confirmed, reader)
        }
        None => {
            return Err(CaptureError::Setup(format!(
                "replication slot {slot} does not exist; the operator creates it (or run with --create-slot)"
            )));
        }
    };

    let tracker = Arc::new(Mutex::new(AckTracker::new(confirmed)));
    let producer = Arc::new(EventProducer::new(
        &connection,
        &args.producer,
        tracker,
        Arc::new(Notify::new()),
    )?);

    let mut tasks = tokio::task::JoinSet::new();
    let heartbeat_client = address.connect().await?;
    tasks.spawn({
        let metrics = Arc::clone(&metrics);
        let shutdown = shutdown.clone();
        let slot = slot.clone();
        let interval = args.heartbeat_interval();
        let emit = !args.no_heartbeat;
        async move {
            crate::heartbeat::run(heartbeat_client, slot, interval, emit, metrics, shutdown).await;
            Ok(())
        }
    });
    if let Some(reader) = reader {
        let plan = progress.plan(&control, &tables).await?;
        if plan.is_empty() {
            tracing::info!("snapshot already done for every table");
        } else {
            let snapshotter = Snapshotter {
                reader,
                progress_client: address.connect().await?,
                progress,
                routes: Arc::clone(&routes),
                producer: Arc::clone(&producer),
                metrics: Arc::clone(&metrics),
                batch_size: args.snapshot_batch_size.max(1),
                shutdown: shutdown.clone(),
            };
            tasks.spawn(async move { snapshotter.run(plan).await.map_err(CaptureError::from) });
        }
    }
    let streamer = Streamer::new(
        client,
        Arc::clone(&producer),
        Arc::clone(&metrics),
        routes,
        confirmed,
        args.status_interval(),
    );
    tasks.spawn({
        let shutdown = shutdown.clone();
        async move { streamer.run(shutdown).await.map_err(CaptureError::from) }
    });

    // The first failure stops everything; the streaming loop's own end (after shutdown) is success.
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|err| {
            Err(CaptureError::Setup(format!(
                "a capture task panicked: {err}"
            )))
        });
        if let Err(err) = result {
            tracing::error!(error = %err, "capture task failed, shutting down");
            if outcome.is_ok() {
                outcome = Err(err);
            }
            shutdown.cancel();
        }
    }
    shutdown.cancel();
    match metrics_task.await {
        Ok(Err(err)) if outcome.is_ok() => outcome = Err(CaptureError::Metrics(err)),
        _ => {}
    }
    outcome
}
