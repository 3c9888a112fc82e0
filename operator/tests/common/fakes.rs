//! In-memory fakes of the source database and ClickHouse: they return a configured observation,
//! record every statement, and can be made unreachable.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cdcstar_crds::clickhouse_placement::Placement;
use cdcstar_crds::postgres::QualifiedTable;
use cdcstar_operator::external::{
    DatabaseError, Sensitive, SourceConnector, SourceDatabase, Warehouse, WarehouseConnector,
    WarehouseCredentials,
};
use cdcstar_operator::sql::{SourceObservation, WarehouseObservation, WarehouseReport};

/// A fake database: its state `S`, shared by every clone and every connection made through it.
#[derive(Debug, Default)]
pub struct Fake<S>(pub Arc<Mutex<S>>);

impl<S> Clone for Fake<S> {
    fn clone(&self) -> Self {
        Fake(self.0.clone())
    }
}

impl<S> Fake<S> {
    /// Changes the state.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

/// What the fake source holds and saw.
#[derive(Debug, Default)]
pub struct SourceState {
    /// Connections fail with "connection refused".
    pub unreachable: bool,
    /// Returned by `observe`.
    pub observation: SourceObservation,
    /// Every statement executed, in order.
    pub executed: Vec<String>,
    /// DSNs connected with.
    pub dsns: Vec<String>,
}

/// A fake source database.
pub type FakeSource = Fake<SourceState>;

impl FakeSource {
    /// Statements executed so far.
    pub fn executed(&self) -> Vec<String> {
        self.with(|state| state.executed.clone())
    }
}

#[async_trait]
impl SourceConnector for FakeSource {
    async fn connect(&self, dsn: &Sensitive) -> Result<Box<dyn SourceDatabase>, DatabaseError> {
        let mut state = self.0.lock().unwrap();
        state.dsns.push(dsn.expose().to_owned());
        if state.unreachable {
            return Err(DatabaseError::Unreachable(
                "error connecting to server: Connection refused (os error 111)".into(),
            ));
        }
        Ok(Box::new(self.clone()))
    }
}

#[async_trait]
impl SourceDatabase for FakeSource {
    async fn observe(
        &self,
        _publication: &str,
        _slot: &str,
        _tables: &[QualifiedTable],
        _row_filter_probe: Option<&str>,
    ) -> Result<SourceObservation, DatabaseError> {
        Ok(self.0.lock().unwrap().observation.clone())
    }

    async fn execute(&self, statements: &[String]) -> Result<(), DatabaseError> {
        self.0
            .lock()
            .unwrap()
            .executed
            .extend(statements.iter().cloned());
        Ok(())
    }
}

/// What the fake ClickHouse holds and saw.
#[derive(Debug, Default)]
pub struct WarehouseState {
    /// Calls fail with a network error.
    pub unreachable: bool,
    /// Returned by `observe`.
    pub observation: WarehouseObservation,
    /// Every statement executed, in order.
    pub executed: Vec<String>,
    /// Returned by `report`: what the sink reported in the status tables.
    pub report: WarehouseReport,
    /// `(database, pipeline)` of every `report` read.
    pub reports_read: Vec<(String, String)>,
}

/// A fake ClickHouse.
pub type FakeWarehouse = Fake<WarehouseState>;

impl FakeWarehouse {
    /// Statements executed so far.
    pub fn executed(&self) -> Vec<String> {
        self.with(|state| state.executed.clone())
    }

    /// The state, unless the fake is unreachable: then the network error every call gets.
    fn reachable(&self) -> Result<MutexGuard<'_, WarehouseState>, DatabaseError> {
        let state = self.0.lock().unwrap();
        if state.unreachable {
            return Err(DatabaseError::Unreachable(
                "network error: connection refused".into(),
            ));
        }
        Ok(state)
    }
}

impl WarehouseConnector for FakeWarehouse {
    fn connect(
        &self,
        _url: &str,
        _credentials: Option<&WarehouseCredentials>,
    ) -> Box<dyn Warehouse> {
        Box::new(self.clone())
    }
}

#[async_trait]
impl Warehouse for FakeWarehouse {
    async fn observe(
        &self,
        _database: &str,
        _placement: &Placement,
    ) -> Result<WarehouseObservation, DatabaseError> {
        Ok(self.reachable()?.observation.clone())
    }

    async fn execute(&self, statement: &str) -> Result<(), DatabaseError> {
        let mut state = self.reachable()?;
        state.executed.push(statement.to_owned());
        Ok(())
    }

    async fn report(
        &self,
        database: &str,
        pipeline: &str,
    ) -> Result<WarehouseReport, DatabaseError> {
        let mut state = self.reachable()?;
        state
            .reports_read
            .push((database.to_owned(), pipeline.to_owned()));
        Ok(state.report.clone())
    }
}
