//! The star schema compiled once from a pipeline: every table with its columns' parsed types, its key
//! and its bookkeeping columns in table order, each captured table's routes to the tables mirroring it,
//! and each fact's lookups as a small tree of queries (one per referenced table and path), plus the
//! reverse index that tells which fact rows a change of a referenced table must rewrite (propagation).
//!
//! The one model of the star schema: [`crate::validate()`] compiles it (so admission, the operator and
//! `plan` refuse what the sink would), the DDL's columns ([`crate::clickhouse_ddl`]) are read from it,
//! and the sink routes, enriches and writes rows by it. How a spec is compiled, and what it is refused
//! for, is the `compile` submodule; rendering SQL from the model is the sink's and the DDL's.

mod compile;

use std::collections::HashMap;

pub use compile::{ModelError, ModelErrors};

use crate::column_type::ColumnType;
use crate::pipeline::OnUnrepresentable;
use crate::star::{Bookkeeping, TableKind};

/// Index of a table in [`StarModel::tables`].
pub type TableId = usize;

/// A captured source table and the star tables it feeds.
#[derive(Debug, Clone)]
pub struct SourceRoute {
    /// Source table name.
    pub name: String,
    /// Primary key column, as named in payloads.
    pub primary_key: String,
    /// Star tables mirroring it.
    pub targets: Vec<TableId>,
}

/// A column copied from the source row.
#[derive(Debug, Clone)]
pub struct CopiedColumn {
    /// ClickHouse column name.
    pub name: String,
    /// Source column name.
    pub source: String,
    /// ClickHouse type.
    pub ty: ColumnType,
    /// What is written for a value the type cannot hold (`deadLetter` for the key).
    pub on_unrepresentable: OnUnrepresentable,
}

/// A denormalised fact column.
#[derive(Debug, Clone)]
pub struct LookupColumn {
    /// ClickHouse column name.
    pub name: String,
    /// ClickHouse type.
    pub ty: ColumnType,
    /// Node of [`TableModel::nodes`] that fetches the value.
    pub node: usize,
    /// Index in that node's `fetched`.
    pub fetch: usize,
}

/// One query of a fact's lookup tree: rows of `table` whose key equals a foreign key reached either
/// from the fact row (root) or from the parent node's fetched row.
#[derive(Debug, Clone)]
pub struct LookupNode {
    /// Parent node; `None` for a node whose foreign key is a column of the fact.
    pub parent: Option<usize>,
    /// Root: index of the fact column holding the foreign key; child: index in the parent's
    /// `fetched`.
    pub foreign_key: usize,
    /// Star table queried.
    pub table: TableId,
    /// Columns fetched, in order.
    pub fetched: Vec<Fetched>,
}

/// A column a lookup node fetches.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Index of the column in the queried table's `columns`.
    pub column: usize,
    /// Type the value is cast to (a lookup column's type), or `None` for a foreign key read as is.
    pub cast: Option<ColumnType>,
}

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRole {
    /// Copied from this source column of the table's own source row.
    Source(String),
    /// Filled by the fact's lookup of this index in `lookups`.
    Lookup(usize),
    /// Added to every table of its kind (row version, deletion, source LSN).
    Bookkeeping(Bookkeeping),
}

/// One column of a star table as stored in ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaColumn {
    /// ClickHouse column name.
    pub name: String,
    /// ClickHouse type.
    pub column_type: ColumnType,
    /// Where its value comes from.
    pub role: ColumnRole,
}

/// One star table.
#[derive(Debug, Clone)]
pub struct TableModel {
    /// ClickHouse table name.
    pub name: String,
    pub kind: TableKind,
    /// Source table mirrored.
    pub source: String,
    /// Index of the key in `columns`: the DDL's `ORDER BY`, and the column lookups and `IN` lists
    /// match rows by.
    pub key: usize,
    /// Columns copied from the source row.
    pub columns: Vec<CopiedColumn>,
    /// Lookups (facts only).
    pub lookups: Vec<LookupColumn>,
    /// Lookup queries (facts only).
    pub nodes: Vec<LookupNode>,
}

impl TableModel {
    /// The key column.
    pub fn key_column(&self) -> &CopiedColumn {
        &self.columns[self.key]
    }

    /// Index in `columns` of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether the table is a fact (and so carries `source_lsn`).
    pub fn is_fact(&self) -> bool {
        self.kind == TableKind::Fact
    }

    /// Number of values of a row besides the bookkeeping columns: columns then lookups.
    pub fn width(&self) -> usize {
        self.columns.len() + self.lookups.len()
    }

    /// Type of value `index` of a row.
    pub fn value_type(&self, index: usize) -> &ColumnType {
        if index < self.columns.len() {
            &self.columns[index].ty
        } else {
            &self.lookups[index - self.columns.len()].ty
        }
    }

    /// The bookkeeping columns, in table order after the columns and lookups.
    pub fn bookkeeping(&self) -> &'static [Bookkeeping] {
        Bookkeeping::of(self.kind)
    }

    /// Every column of the table in table order: the copied columns, the lookups, then the
    /// bookkeeping columns. The one column order of the DDL and of every row written or read.
    pub fn schema_columns(&self) -> Vec<SchemaColumn> {
        let copied = self.columns.iter().map(|c| SchemaColumn {
            name: c.name.clone(),
            column_type: c.ty.clone(),
            role: ColumnRole::Source(c.source.clone()),
        });
        let lookups = self.lookups.iter().enumerate().map(|(i, l)| SchemaColumn {
            name: l.name.clone(),
            column_type: l.ty.clone(),
            role: ColumnRole::Lookup(i),
        });
        let bookkeeping = self.bookkeeping().iter().map(|&b| SchemaColumn {
            name: b.name().to_owned(),
            column_type: b.column_type(),
            role: ColumnRole::Bookkeeping(b),
        });
        copied.chain(lookups).chain(bookkeeping).collect()
    }
}

/// A fact whose rows a change of some table can affect, and through which lookup node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependent {
    /// Id of the fact whose rows the change may rewrite.
    pub fact: TableId,
    /// Index in the fact's `nodes` of the query that reads the changed table.
    pub node: usize,
}

/// The compiled star schema of a pipeline.
#[derive(Debug, Clone)]
pub struct StarModel {
    /// Every star table, dimensions first, in declaration order.
    pub tables: Vec<TableModel>,
    /// Captured tables by name.
    pub sources: HashMap<String, SourceRoute>,
    /// Facts in an order where a fact comes after every fact it looks up.
    pub fact_order: Vec<TableId>,
    /// For each table, the facts that look it up.
    pub dependents: Vec<Vec<Dependent>>,
}

impl StarModel {
    /// The table called `name`.
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.tables.iter().position(|t| t.name == name)
    }

    /// Dimension ids, in declaration order.
    pub fn dimension_ids(&self) -> impl Iterator<Item = TableId> + '_ {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == TableKind::Dimension)
            .map(|(id, _)| id)
    }
}
