//! Database management: the connection pool, the embedded migrations (`api/migrations`) and
//! `init-db` (create the database if missing, optionally drop the shop tables, migrate, and report
//! what was done).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres};

use crate::connections::PING_IF_IDLE_FOR;

/// The shop schema's migrations, compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The shop tables, in an order in which they can be dropped.
pub const TABLES: [&str; 4] = ["orderitem", "order", "product", "customer"];

/// A database management failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not a PostgreSQL URL.
    #[error("invalid database url: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// The server could not be reached or refused the connection.
    #[error("failed to connect to {target}")]
    Connect {
        /// `host:port/database`, without credentials.
        target: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// The database could not be created.
    #[error("failed to create database {target}")]
    CreateDatabase {
        /// `host:port/database`, without credentials.
        target: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("failed to apply migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A management query failed.
    #[error("failed to {action}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
}

impl DbError {
    /// The failure of a management query that was to `action`, for `map_err`.
    fn query(action: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { action, source }
    }
}

/// `host:port/database` of a URL, for messages that must not leak the password.
pub fn describe_target(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(options) => format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        ),
        Err(_) => "<invalid database url>".to_owned(),
    }
}

/// Opens the pool (and one connection, so a wrong URL fails at start rather than on the first
/// request).
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(url).map_err(DbError::InvalidUrl)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // NB: sqlx pings every connection it hands out by default: one more round trip to
        // Postgres per request. A connection that was idle only briefly is alive; one idle for
        // longer (e.g. across a Postgres restart) is still pinged, and dropped when dead.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            target: describe_target(url),
            source,
        })
}

/// Creates the URL's database when it does not exist; tells whether it did.
pub async fn ensure_database(url: &str) -> Result<bool, DbError> {
    let exists = Postgres::database_exists(url)
        .await
        .map_err(|source| DbError::Connect {
            target: describe_target(url),
            source,
        })?;
    if exists {
        return Ok(false);
    }
    Postgres::create_database(url)
        .await
        .map_err(|source| DbError::CreateDatabase {
            target: describe_target(url),
            source,
        })?;
    Ok(true)
}

/// What [`init_db`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitReport {
    /// `host:port/database`.
    pub target: String,
    /// The database did not exist and was created.
    pub created_database: bool,
    /// Tables dropped by `--drop` (those that existed).
    pub dropped_tables: Vec<String>,
    /// Migrations applied now, as `version description`.
    pub applied: Vec<String>,
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "database {}", self.target)?;
        if self.created_database {
            writeln!(f, "created database")?;
        }
        if !self.dropped_tables.is_empty() {
            writeln!(f, "dropped tables: {}", self.dropped_tables.join(", "))?;
        }
        if self.applied.is_empty() {
            writeln!(f, "schema up to date, no migration applied")
        } else {
            for migration in &self.applied {
                writeln!(f, "applied migration {migration}")?;
            }
            Ok(())
        }
    }
}

/// Creates the database when missing, drops the shop tables first when `drop` is set, then
/// applies the pending migrations.
pub async fn init_db(url: &str, drop: bool) -> Result<InitReport, DbError> {
    let created_database = ensure_database(url).await?;
    let pool = connect(url, 2, Duration::from_secs(10)).await?;
    let dropped_tables = if drop {
        drop_tables(&pool).await?
    } else {
        Vec::new()
    };
    let applied = migrate(&pool).await?;
    pool.close().await;
    Ok(InitReport {
        target: describe_target(url),
        created_database,
        dropped_tables,
        applied,
    })
}

/// Applies the pending migrations; answers those applied now.
pub async fn migrate(pool: &PgPool) -> Result<Vec<String>, DbError> {
    let before = applied_versions(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(MIGRATOR
        .iter()
        .filter(|migration| !before.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect())
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    let has_history: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(DbError::query("read the migration history"))?;
    if !has_history {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
        .map_err(DbError::query("read the migration history"))
}

/// Drops the shop tables and the migration history; answers the tables that existed.
async fn drop_tables(pool: &PgPool) -> Result<Vec<String>, DbError> {
    let mut dropped = Vec::new();
    let mut tx = pool
        .begin()
        .await
        .map_err(DbError::query("begin the drop transaction"))?;
    for table in TABLES {
        let quoted = format!("\"{table}\"");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&quoted)
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::query("look up a shop table"))?;
        if exists {
            sqlx::query(&format!("DROP TABLE {quoted} CASCADE"))
                .execute(&mut *tx)
                .await
                .map_err(DbError::query("drop a shop table"))?;
            dropped.push(table.to_owned());
        }
    }
    sqlx::query("DROP TABLE IF EXISTS _sqlx_migrations")
        .execute(&mut *tx)
        .await
        .map_err(DbError::query("drop the migration history"))?;
    tx.commit()
        .await
        .map_err(DbError::query("commit the drop transaction"))?;
    Ok(dropped)
}
