//! What the handlers of every resource do the same way: read a page of a table ordered by `id`,
//! read or delete one row by `id` (a missing row is a 404 naming the resource), and turn the
//! `None` of an `UPDATE ... RETURNING` into that 404; a delete that rows of another table still
//! reference is a 409 naming them. Each row type states its table's statements once, with
//! [`table!`](crate::rows::table).

use crate::connections::{Connections, FromPgRow};
use crate::envelope::Deleted;
use crate::error::{ApiError, FieldError, is_foreign_key_violation};
use crate::pagination::Pagination;

/// A row type read whole from one table with an integer `id` primary key.
pub trait Table: FromPgRow {
    /// How messages name one row (`customer`).
    const RESOURCE: &'static str;
    /// `SELECT <columns> FROM <table> WHERE id = $1`.
    const SELECT_BY_ID: &'static str;
    /// `SELECT <columns> FROM <table> ORDER BY id LIMIT $1 OFFSET $2`.
    const SELECT_PAGE: &'static str;
    /// `DELETE FROM <table> WHERE id = $1`.
    const DELETE_BY_ID: &'static str;
    /// What may still reference a row (`order items`), so that deleting it is refused with a 409
    /// naming them; `None` when nothing does (or references cascade).
    const REFERENCED_BY: Option<&'static str> = None;
}

/// Implements [`Table`] for a row type from its resource name, its (SQL-quoted) table name and
/// its column list, so that the three statements are written once and agree.
macro_rules! table {
    (
        $row:ty,
        resource: $resource:literal,
        table: $table:literal,
        columns: $columns:literal
        $(, referenced_by: $referenced_by:literal)? $(,)?
    ) => {
        impl $crate::rows::Table for $row {
            const RESOURCE: &'static str = $resource;
            $(const REFERENCED_BY: Option<&'static str> = Some($referenced_by);)?
            const SELECT_BY_ID: &'static str =
                concat!("SELECT ", $columns, " FROM ", $table, " WHERE id = $1");
            const SELECT_PAGE: &'static str = concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $table,
                " ORDER BY id LIMIT $1 OFFSET $2"
            );
            const DELETE_BY_ID: &'static str = concat!("DELETE FROM ", $table, " WHERE id = $1");
        }
    };
}
pub(crate) use table;

/// A page of `T`'s table, ordered by `id`.
pub async fn page<T: Table>(db: &Connections, page: Pagination) -> Result<Vec<T>, ApiError> {
    let query = sqlx::query_as::<_, T>(T::SELECT_PAGE)
        .bind(page.limit)
        .bind(page.offset);
    Ok(db.fetch_all(query).await?)
}

/// The row `id` of `T`'s table; a 404 when there is none.
pub async fn by_id<T: Table>(db: &Connections, id: i32) -> Result<T, ApiError> {
    let row = db
        .fetch_optional(sqlx::query_as::<_, T>(T::SELECT_BY_ID).bind(id))
        .await?;
    found(row, id)
}

/// The row a statement on `id` answered; a 404 when there was none.
pub fn found<T: Table>(row: Option<T>, id: i32) -> Result<T, ApiError> {
    row.ok_or(ApiError::NotFound {
        resource: T::RESOURCE,
        id,
    })
}

/// Deletes the row `id` of `T`'s table; a 404 when there is none, a 409 when what
/// [`Table::REFERENCED_BY`] names still references it.
pub async fn delete_by_id<T: Table>(db: &Connections, id: i32) -> Result<Deleted, ApiError> {
    delete_row(
        db,
        T::RESOURCE,
        T::DELETE_BY_ID,
        id,
        |err| match T::REFERENCED_BY {
            Some(by) if is_foreign_key_violation(&err) => ApiError::Conflict {
                message: format!("{} {id} is still referenced by {by}", T::RESOURCE),
                details: vec![FieldError::new("id", format!("still referenced by {by}"))],
            },
            _ => err.into(),
        },
    )
    .await
}

/// Runs `delete` (`DELETE ... WHERE id = $1`) for `id`; a 404 naming `resource` when it deleted
/// nothing.
pub async fn delete_row(
    db: &Connections,
    resource: &'static str,
    delete: &'static str,
    id: i32,
    refused: impl FnOnce(sqlx::Error) -> ApiError,
) -> Result<Deleted, ApiError> {
    let deleted = db
        .execute(sqlx::query(delete).bind(id))
        .await
        .map_err(refused)?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::NotFound { resource, id });
    }
    Ok(Deleted)
}
