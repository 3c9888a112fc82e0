//! The connections statements run on: kept between statements without sqlx's ping on release,
//! given back to the pool when a statement was interrupted, pinged after sitting idle, emptied
//! into the pool when it closes, and bounded by the pool's size and acquire timeout.

use std::time::Duration;

use cdcstar_api::connections::{Connections, PING_IF_IDLE_FOR};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};

async fn backend_pid(db: &Connections) -> i32 {
    db.fetch_one(sqlx::query_as::<_, (i32,)>("SELECT pg_backend_pid()"))
        .await
        .unwrap()
        .0
}

/// A `pg_sleep(seconds)` on `db`, and a `SELECT 1` sent `after` it started: what each answered.
async fn select_behind_a_sleep(
    db: &Connections,
    seconds: &str,
    after: Duration,
) -> (
    Result<PgQueryResult, sqlx::Error>,
    Result<PgQueryResult, sqlx::Error>,
) {
    let sleep = format!("SELECT pg_sleep({seconds})");
    let sleeping = db.execute(sqlx::query(&sleep));
    let select = async {
        tokio::time::sleep(after).await;
        db.execute(sqlx::query("SELECT 1")).await
    };
    tokio::join!(sleeping, select)
}

#[sqlx::test(migrations = "./migrations")]
async fn a_connection_serves_one_statement_after_another(pool: PgPool) {
    let db = Connections::new(pool);
    let first = backend_pid(&db).await;
    assert_eq!(db.shelved(), 1);
    assert_eq!(backend_pid(&db).await, first);

    let refused = db
        .fetch_one(sqlx::query_as::<_, (i32,)>("SELECT 1 / 0"))
        .await
        .unwrap_err();
    assert!(refused.as_database_error().is_some(), "{refused}");
    assert_eq!(
        backend_pid(&db).await,
        first,
        "an error inside Postgres leaves the connection usable"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn an_interrupted_statement_gives_its_connection_back_to_the_pool(pool: PgPool) {
    let db = Connections::new(pool);
    backend_pid(&db).await;
    let sleep = db.execute(sqlx::query("SELECT pg_sleep(2)"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sleep)
            .await
            .is_err()
    );
    assert_eq!(db.shelved(), 0, "not shelved in the middle of a statement");
    // The next statement gets a connection in a clean state (sqlx recovers or replaces it).
    let (one,): (i32,) = db.fetch_one(sqlx::query_as("SELECT 1")).await.unwrap();
    assert_eq!(one, 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn an_idle_connection_that_died_is_replaced(pool: PgPool) {
    let db = Connections::new(pool.clone());
    let first = backend_pid(&db).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(100)).await;
    let second = backend_pid(&db).await;
    assert_ne!(first, second);
}

#[sqlx::test(migrations = "./migrations")]
async fn closing_the_pool_empties_the_shelf(pool: PgPool) {
    let db = Connections::new(pool.clone());
    backend_pid(&db).await;
    assert_eq!(db.shelved(), 1);
    tokio::time::timeout(Duration::from_secs(5), pool.close())
        .await
        .expect("the pool closes although a connection was shelved");
    assert_eq!(db.shelved(), 0);
    let closed = db
        .fetch_one(sqlx::query_as::<_, (i32,)>("SELECT 1"))
        .await
        .unwrap_err();
    assert!(matches!(closed, sqlx::Error::PoolClosed), "{closed}");
}

#[sqlx::test(migrations = "./migrations")]
async fn statements_wait_for_a_connection_within_the_acquire_timeout(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_options
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect_with(connect_options)
        .await
        .unwrap();
    let db = Connections::new(pool);
    let (busy, waiting) = select_behind_a_sleep(&db, "1", Duration::from_millis(50)).await;
    busy.unwrap();
    assert!(
        matches!(waiting, Err(sqlx::Error::PoolTimedOut)),
        "{waiting:?}"
    );
    let (short, after) = select_behind_a_sleep(&db, "0.1", Duration::from_millis(20)).await;
    short.unwrap();
    after.expect("a statement waits for the busy connection");
}
