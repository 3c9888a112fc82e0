//! What the integration tests of every crate share, and nothing else (a dev-dependency only,
//! never linked into a binary): the local services' addresses from the environment (failing,
//! never skipping, with how to start them), names unique to a test run, a Postgres session, a
//! scratch database per test, a free local port, and access to a pipeline's parts by name.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::SourceTable;
use tokio_postgres::{Client, NoTls};

/// Reads a variable of `scripts/services.sh env` (`DATABASE_URL`, `KAFKA_BROKERS`,
/// `CLICKHOUSE_URL`); fails the test, naming the commands that start the services, when unset.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the local services with `scripts/services.sh up` and load \
             their addresses with `eval \"$(scripts/services.sh env)\"`"
        )
    })
}

/// A name unique to this test run, lowercase and SQL-safe: `<prefix>_<pid>_<nanos>_<counter>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A session on `url`, its connection driven by a background task.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"));
    tokio::spawn(connection);
    client
}

/// `url` naming `database` instead of its own (a query string is kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a Postgres URL ends with /<database>");
    let query = url
        .split_once('?')
        .map(|(_, query)| format!("?{query}"))
        .unwrap_or_default();
    format!("{base}/{database}{query}")
}

/// A database created for one test on the server of `DATABASE_URL`; [`ScratchDb::drop_all`]
/// drops it with its replication slots.
#[derive(Debug)]
pub struct ScratchDb {
    pub url: String,
    /// Its name (unquoted: [`unique`] makes it SQL-safe).
    pub name: String,
    admin_url: String,
}

impl ScratchDb {
    /// Creates a fresh, empty database named after `prefix`.
    pub async fn create(prefix: &str) -> ScratchDb {
        let admin_url = required_env("DATABASE_URL");
        let name = unique(prefix);
        connect(&admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create scratch database");
        ScratchDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// Creates a fresh database named after `prefix` and runs `schema` (statements) in it.
    pub async fn with_schema(prefix: &str, schema: &[&str]) -> ScratchDb {
        let db = ScratchDb::create(prefix).await;
        let client = db.client().await;
        for statements in schema {
            client.batch_execute(statements).await.unwrap();
        }
        db
    }

    /// A session on the scratch database.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// A session on the server's own database, as the one that created the scratch one.
    pub async fn admin(&self) -> Client {
        connect(&self.admin_url).await
    }

    /// Drops the database's replication slots, then the database.
    pub async fn drop_all(self) {
        let admin = self.admin().await;
        for _ in 0..50 {
            let dropped = admin
                .batch_execute(&format!(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                     WHERE database = '{}'",
                    self.name
                ))
                .await;
            if dropped.is_ok() {
                break;
            }
            // The walsender of a stopped capture may still hold the slot for a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop scratch database");
    }
}

/// A local TCP port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a local port")
        .local_addr()
        .expect("the bound address")
        .port()
}

/// The captured table `name` of `pipeline`, to change; panics when it is not captured.
pub fn source_table_mut<'a>(pipeline: &'a mut CdcPipeline, name: &str) -> &'a mut SourceTable {
    pipeline
        .spec
        .source
        .tables
        .iter_mut()
        .find(|table| table.name == name)
        .unwrap_or_else(|| panic!("the pipeline captures no table {name}"))
}
