//! The `cdcstar-api` binary: `init-db [--drop]`, `openapi`, and `serve` with AUTO_INIT_DB and a
//! graceful stop on SIGTERM. Each test uses its own database, created by the binary and dropped
//! at the end.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdcstar_testkit::free_port;
use pretty_assertions::assert_eq;
use sqlx::{Connection, PgConnection};

use crate::common::require_services;

const BIN: &str = env!("CARGO_BIN_EXE_cdcstar-api");

/// A database name no other test uses, and its URL on the services' server.
fn fresh_database() -> (String, String) {
    let admin = require_services();
    let name = format!("cdcstar_api_cli_{}", uuid::Uuid::new_v4().simple());
    let base = admin.split('?').next().unwrap();
    let server = &base[..base.rfind('/').unwrap()];
    (name.clone(), format!("{server}/{name}"))
}

async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&require_services()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

fn run(args: &[&str], database_url: &str) -> String {
    let output = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn init_db_creates_migrates_and_drops() {
    let (name, url) = fresh_database();
    let first = run(&["init-db"], &url);
    assert!(first.contains("created database"), "{first}");
    assert!(
        first.contains("applied migration 20250101000001 create shop tables"),
        "{first}"
    );
    assert!(
        first.contains("applied migration 20250101000002 replica identity full"),
        "{first}"
    );
    assert!(
        !first.contains("postgres:postgres@"),
        "no credentials printed: {first}"
    );

    let again = run(&["init-db"], &url);
    assert!(again.contains("schema up to date"), "{again}");
    assert!(!again.contains("created database"), "{again}");

    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO customer (email, name, country, city) VALUES ('a@b.c', 'n', 'x', 'y')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let dropped = run(&["init-db", "--drop"], &url);
    assert!(
        dropped.contains("dropped tables: orderitem, order, product, customer"),
        "{dropped}"
    );
    assert!(
        dropped.contains("applied migration 20250101000001"),
        "{dropped}"
    );
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customer")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(customers, 0);
    conn.close().await.unwrap();
    drop_database(&name).await;
}

#[test]
fn openapi_command_prints_the_document() {
    let printed = run(&["openapi"], "postgresql://unused@127.0.0.1:1/unused");
    assert_eq!(printed, cdcstar_api::docs::openapi_json().unwrap());
}

#[tokio::test]
async fn serve_auto_inits_and_stops_gracefully_on_sigterm() {
    let (name, url) = fresh_database();
    let (port, metrics_port) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .args(["serve", "--host", "127.0.0.1", "--log-format", "json"])
        .args([
            "--port",
            &port.to_string(),
            "--metrics-port",
            &metrics_port.to_string(),
        ])
        .env("DATABASE_URL", &url)
        .env("AUTO_INIT_DB", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(answer) = client.get(format!("{base}/ready")).send().await
            && answer.status().is_success()
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the API exited before it was ready"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the API did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = client
        .post(format!("{base}/api/customers"))
        .json(&serde_json::json!({"email": "s@example.com", "name": "S", "country": "C", "city": "D"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let metrics = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"route="/api/customers",method="POST",status="201""#),
        "{metrics}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the API did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(status.success(), "exit {status}: {logs}");
    assert!(logs.contains(r#""signal":"SIGTERM""#), "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    drop_database(&name).await;
}
