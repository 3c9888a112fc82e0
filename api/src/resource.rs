//! The endpoints every resource has the same way: list a page ordered by id, read one by id,
//! delete one by id. [`Resource`] says how a row type is read and deleted (a [`Table`] row as
//! [`crate::rows`] does it; orders, which carry their items, with their own statements), and
//! [`handlers!`](crate::resource::handlers) declares a resource's three handlers with their
//! OpenAPI operations from its paths, nouns and docs, and its create and update handlers around
//! the statements, bodies and conflicts that are the resource's own.

use std::future::Future;

use crate::connections::Connections;
use crate::envelope::Deleted;
use crate::error::ApiError;
use crate::pagination::Pagination;
use crate::rows::{self, Table};

/// How the shared handlers read and delete the rows of one resource.
pub trait Resource: Sized {
    /// A page of rows, ordered by id.
    fn page(
        db: &Connections,
        page: Pagination,
    ) -> impl Future<Output = Result<Vec<Self>, ApiError>> + Send;
    /// The row `id`; a 404 when there is none.
    fn by_id(db: &Connections, id: i32) -> impl Future<Output = Result<Self, ApiError>> + Send;
    /// Deletes the row `id`; a 404 when there is none.
    fn delete(db: &Connections, id: i32) -> impl Future<Output = Result<Deleted, ApiError>> + Send;
}

impl<T: Table> Resource for T {
    fn page(
        db: &Connections,
        page: Pagination,
    ) -> impl Future<Output = Result<Vec<Self>, ApiError>> + Send {
        rows::page(db, page)
    }

    fn by_id(db: &Connections, id: i32) -> impl Future<Output = Result<Self, ApiError>> + Send {
        rows::by_id(db, id)
    }

    fn delete(db: &Connections, id: i32) -> impl Future<Output = Result<Deleted, ApiError>> + Send {
        rows::delete_by_id::<T>(db, id)
    }
}

/// Declares the list, read and delete handlers of the resource `$row` (a [`Resource`]), each
/// with its OpenAPI operation: the paths and tag, the nouns its descriptions and messages use
/// (`one`: `customer`; `One`, `Many`: `Customer`, `Customers`; `listing`, `reading`: what a page
/// and a read answer, `customers` and `customer`), and each handler's doc and name. The delete
/// states its 204's description and, when it can be refused, its 409's.
///
/// Optionally, the create and update handlers too, around the resource's own statements:
/// `$insert(&new)` is the statement answering the created row, `$apply(id, &changes)` the one
/// answering the updated row (none when there is no row `id`: a 404); each states its 409's
/// description when it can be refused.
// NB: a macro, not generic functions: utoipa documents an operation from an attribute on a
// concrete function, and the router needs one function per resource.
macro_rules! handlers {
    (
        $row:ident,
        tag: $tag:literal,
        path: $path:literal,
        id_path: $id_path:literal,
        one: $one:literal,
        One: $One:literal,
        Many: $Many:literal,
        listing: $listing:literal,
        reading: $reading:literal,
        #[doc = $list_doc:literal]
        list: $list:ident,
        #[doc = $get_doc:literal]
        get: $get:ident,
        #[doc = $delete_doc:literal]
        delete: $delete:ident => $deleted:literal $(, refused: $refused:literal)?
        $(,
            #[doc = $create_doc:literal]
            create: $create:ident($new:ident) => $insert:ident $(, refused: $create_refused:literal)?,
            #[doc = $update_doc:literal]
            update: $update:ident($changes:ident) => $apply:ident $(, refused: $update_refused:literal)?
        )? $(,)?
    ) => {
        #[doc = $list_doc]
        #[utoipa::path(
            get, path = $path, tag = $tag,
            params($crate::pagination::Pagination),
            responses(
                (status = 200, description = concat!("A page of ", $listing, ", ordered by id"), body = $crate::envelope::ApiResponse<Vec<$row>>),
                (status = 422, description = "Bad `limit` or `offset`", body = $crate::error::ErrorBody),
            )
        )]
        pub async fn $list(
            axum::extract::State(state): axum::extract::State<$crate::app::AppState>,
            page: $crate::pagination::Pagination,
        ) -> Result<$crate::envelope::ApiResponse<Vec<$row>>, $crate::error::ApiError> {
            let rows = <$row as $crate::resource::Resource>::page(&state.db, page).await?;
            Ok($crate::envelope::ApiResponse::ok(
                rows,
                concat!($Many, " retrieved successfully"),
            ))
        }

        #[doc = $get_doc]
        #[utoipa::path(
            get, path = $id_path, tag = $tag,
            params(("id" = i32, Path, description = concat!($One, " id"))),
            responses(
                (status = 200, description = concat!("The ", $reading), body = $crate::envelope::ApiResponse<$row>),
                (status = 404, description = concat!("No such ", $one), body = $crate::error::ErrorBody),
                (status = 422, description = "The id is not an integer", body = $crate::error::ErrorBody),
            )
        )]
        pub async fn $get(
            axum::extract::State(state): axum::extract::State<$crate::app::AppState>,
            $crate::extract::IdPath(id): $crate::extract::IdPath,
        ) -> Result<$crate::envelope::ApiResponse<$row>, $crate::error::ApiError> {
            let row = <$row as $crate::resource::Resource>::by_id(&state.db, id).await?;
            Ok($crate::envelope::ApiResponse::ok(
                row,
                concat!($One, " retrieved successfully"),
            ))
        }

        #[doc = $delete_doc]
        #[utoipa::path(
            delete, path = $id_path, tag = $tag,
            params(("id" = i32, Path, description = concat!($One, " id"))),
            responses(
                (status = 204, description = $deleted),
                (status = 404, description = concat!("No such ", $one), body = $crate::error::ErrorBody),
                $((status = 409, description = $refused, body = $crate::error::ErrorBody),)?
                (status = 422, description = "The id is not an integer", body = $crate::error::ErrorBody),
            )
        )]
        pub async fn $delete(
            axum::extract::State(state): axum::extract::State<$crate::app::AppState>,
            $crate::extract::IdPath(id): $crate::extract::IdPath,
        ) -> Result<$crate::envelope::Deleted, $crate::error::ApiError> {
            <$row as $crate::resource::Resource>::delete(&state.db, id).await
        }

        $(
            #[doc = $create_doc]
            #[utoipa::path(
                post, path = $path, tag = $tag,
                request_body = $new,
                responses(
                    (status = 201, description = concat!("The created ", $one), body = $crate::envelope::ApiResponse<$row>),
                    $((status = 409, description = $create_refused, body = $crate::error::ErrorBody),)?
                    (status = 422, description = "A field is missing or invalid", body = $crate::error::ErrorBody),
                )
            )]
            pub async fn $create(
                axum::extract::State(state): axum::extract::State<$crate::app::AppState>,
                $crate::extract::ValidJson(new): $crate::extract::ValidJson<$new>,
            ) -> Result<$crate::envelope::Created<$row>, $crate::error::ApiError> {
                let row = state.db.fetch_one($insert(&new)).await?;
                Ok($crate::envelope::Created::new(
                    row,
                    concat!($One, " created successfully"),
                ))
            }

            #[doc = $update_doc]
            #[utoipa::path(
                put, path = $id_path, tag = $tag,
                params(("id" = i32, Path, description = concat!($One, " id"))),
                request_body = $changes,
                responses(
                    (status = 200, description = concat!("The updated ", $one), body = $crate::envelope::ApiResponse<$row>),
                    (status = 404, description = concat!("No such ", $one), body = $crate::error::ErrorBody),
                    $((status = 409, description = $update_refused, body = $crate::error::ErrorBody),)?
                    (status = 422, description = "A field is invalid", body = $crate::error::ErrorBody),
                )
            )]
            pub async fn $update(
                axum::extract::State(state): axum::extract::State<$crate::app::AppState>,
                $crate::extract::IdPath(id): $crate::extract::IdPath,
                $crate::extract::ValidJson(changes): $crate::extract::ValidJson<$changes>,
            ) -> Result<$crate::envelope::ApiResponse<$row>, $crate::error::ApiError> {
                let row = state.db.fetch_optional($apply(id, &changes)).await?;
                let row = $crate::rows::found(row, id)?;
                Ok($crate::envelope::ApiResponse::ok(
                    row,
                    concat!($One, " updated successfully"),
                ))
            }
        )?
    };
}
pub(crate) use handlers;
