//! The connections requests run their statements on: connections of the sqlx pool, kept checked
//! out between requests, so that a request costs Postgres one round trip.
//!
//! NB: sqlx tests every connection given back to its pool with a ping (`Sync`, then wait for
//! `ReadyForQuery`): a second round trip per request, about as costly to both processes as the
//! statement itself on a small query. Here a connection goes back to the shelf instead, without a
//! ping, when its statement ran to completion (or failed inside Postgres, which leaves the
//! protocol in a known state). sqlx's own checks still apply where they matter: a connection
//! whose statement was interrupted (the request was cancelled or timed out) or failed otherwise
//! (I/O, protocol) goes back to the sqlx pool, which pings it and closes it when broken; one idle
//! on the shelf for a second or more is pinged before it is used again (a Postgres restart); and
//! every connection goes back to the sqlx pool after [`MAX_LEASE`], so that its lifetime limits
//! keep working. When the pool closes (whoever closes it), the shelf empties itself into it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow};
use sqlx::query::{Query, QueryAs};
use sqlx::{Connection, FromRow, PgConnection, PgPool, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection may sit on the shelf before it is pinged on its next use.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long a connection stays checked out of the sqlx pool before it is given back to it.
pub const MAX_LEASE: Duration = Duration::from_secs(300);

/// A row type that sqlx decodes from a Postgres row, as the statements of [`Connections`] answer.
pub trait FromPgRow: Send + Unpin + for<'r> FromRow<'r, PgRow> {}

impl<T: Send + Unpin + for<'r> FromRow<'r, PgRow>> FromPgRow for T {}

/// A statement answering rows of `T`.
pub type RowQuery<'q, T> = QueryAs<'q, Postgres, T, PgArguments>;

/// The connections of a pool, checked out between requests. Clones share them.
#[derive(Debug, Clone)]
pub struct Connections {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    /// One permit per connection the pool may open: a request waits here for its turn, bounded by
    /// the pool's acquire timeout.
    permits: Arc<Semaphore>,
    shelf: Mutex<Vec<Shelved>>,
    /// Set when the pool closes: from then on connections go back to the pool.
    closing: AtomicBool,
}

#[derive(Debug)]
struct Shelved {
    connection: PoolConnection<Postgres>,
    leased_at: Instant,
    idle_since: Instant,
}

impl Connections {
    /// Connections of `pool` (at most its `max_connections` at once). Must be called within a
    /// Tokio runtime: a task watches for the pool's closing.
    pub fn new(pool: PgPool) -> Self {
        let permits = Arc::new(Semaphore::new(pool.options().get_max_connections() as usize));
        let shared = Arc::new(Shared {
            pool,
            permits,
            shelf: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
        });
        // NB: the pool's close waits for every connection to come back, shelved ones included.
        let closed = shared.pool.close_event();
        let watched = Arc::downgrade(&shared);
        tokio::spawn(async move {
            closed.await;
            if let Some(shared) = watched.upgrade() {
                shared.empty_shelf();
            }
        });
        Self { shared }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// Every row of a query.
    pub async fn fetch_all<T: FromPgRow>(
        &self,
        query: RowQuery<'_, T>,
    ) -> Result<Vec<T>, sqlx::Error> {
        self.on_lease(async |connection| query.fetch_all(connection).await)
            .await
    }

    /// The first row of a query, if any.
    pub async fn fetch_optional<T: FromPgRow>(
        &self,
        query: RowQuery<'_, T>,
    ) -> Result<Option<T>, sqlx::Error> {
        self.on_lease(async |connection| query.fetch_optional(connection).await)
            .await
    }

    /// The first row of a query; `RowNotFound` when there is none.
    pub async fn fetch_one<T: FromPgRow>(&self, query: RowQuery<'_, T>) -> Result<T, sqlx::Error> {
        self.fetch_optional(query)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Runs a statement; answers how many rows it affected.
    pub async fn execute(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<PgQueryResult, sqlx::Error> {
        self.on_lease(async |connection| query.execute(connection).await)
            .await
    }

    /// Closes the pool, waiting for the connections in use to come back (the shelved ones come
    /// back at once).
    pub async fn close(&self) {
        self.shared.pool.close().await;
    }

    /// How many connections sit on the shelf.
    pub fn shelved(&self) -> usize {
        self.shared
            .shelf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Runs `statement` on a leased connection, which goes back on the shelf when the statement
    /// settled cleanly (see [`Lease::settle`]).
    async fn on_lease<R>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<R, sqlx::Error>,
    ) -> Result<R, sqlx::Error> {
        let mut lease = self.lease().await?;
        let result = statement(lease.connection()).await;
        lease.settle(&result);
        result
    }

    /// A connection for one statement: from the shelf (pinged first when it sat there for
    /// [`PING_IF_IDLE_FOR`]), else from the pool.
    async fn lease(&self) -> Result<Lease, sqlx::Error> {
        let shared = &self.shared;
        let permit = tokio::time::timeout(
            shared.pool.options().get_acquire_timeout(),
            shared.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            if shared.pool.is_closed() {
                return Err(sqlx::Error::PoolClosed);
            }
            let shelved = shared
                .shelf
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(mut shelved) = shelved else {
                let connection = shared.pool.acquire().await?;
                return Ok(Lease::new(shared, permit, connection, Instant::now()));
            };
            // NB: a failed ping drops the connection into the pool, which closes it.
            if shelved.idle_since.elapsed() < PING_IF_IDLE_FOR
                || shelved.connection.ping().await.is_ok()
            {
                return Ok(Lease::new(
                    shared,
                    permit,
                    shelved.connection,
                    shelved.leased_at,
                ));
            }
        }
    }
}

impl Shared {
    /// Gives the shelved connections back to the closing pool; later ones go straight back.
    fn empty_shelf(&self) {
        // NB: flagged before the shelf is emptied under its lock, which `shelve` checks under the
        // same lock: no connection can be shelved after this.
        self.closing.store(true, Ordering::SeqCst);
        let shelved =
            std::mem::take(&mut *self.shelf.lock().unwrap_or_else(PoisonError::into_inner));
        drop(shelved);
    }

    fn shelve(&self, connection: PoolConnection<Postgres>, leased_at: Instant) {
        if leased_at.elapsed() >= MAX_LEASE {
            return; // dropped: back to the pool
        }
        let mut shelf = self.shelf.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.closing.load(Ordering::SeqCst) && !self.pool.is_closed() {
            shelf.push(Shelved {
                connection,
                leased_at,
                idle_since: Instant::now(),
            });
        }
    }
}

/// A connection in use by one statement. Dropped, it goes back on the shelf when the statement
/// settled cleanly, else back to the sqlx pool.
struct Lease {
    shared: Arc<Shared>,
    connection: Option<PoolConnection<Postgres>>,
    leased_at: Instant,
    clean: bool,
    // NB: declared last, so it is released after the connection is shelved.
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn new(
        shared: &Arc<Shared>,
        permit: OwnedSemaphorePermit,
        connection: PoolConnection<Postgres>,
        leased_at: Instant,
    ) -> Self {
        Self {
            shared: shared.clone(),
            connection: Some(connection),
            leased_at,
            clean: false,
            _permit: permit,
        }
    }

    /// The connection, for one statement.
    fn connection(&mut self) -> &mut PgConnection {
        self.clean = false;
        match self.connection.as_mut() {
            Some(connection) => connection,
            None => unreachable!("a lease holds its connection until dropped"),
        }
    }

    /// Records how the statement ended: cleanly when it completed or Postgres refused it.
    fn settle<T>(&mut self, result: &Result<T, sqlx::Error>) {
        self.clean = match result {
            Ok(_) => true,
            Err(err) => err.as_database_error().is_some(),
        };
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take()
            && self.clean
        {
            self.shared.shelve(connection, self.leased_at);
        }
    }
}
