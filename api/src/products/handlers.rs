//! Product handlers: one SQL statement each (reads and deletes by id are [`crate::rows`]').

use axum::extract::State;

use super::models::{NewProduct, Product, ProductUpdate};
use crate::app::AppState;
use crate::envelope::{ApiResponse, Created, Deleted};
use crate::error::{ApiError, ErrorBody, FieldError, is_foreign_key_violation};
use crate::extract::{IdPath, ValidJson};
use crate::pagination::Pagination;
use crate::rows;

/// List products, ordered by id.
#[utoipa::path(
    get, path = "/api/products", tag = "products",
    params(Pagination),
    responses(
        (status = 200, description = "A page of products, ordered by id", body = ApiResponse<Vec<Product>>),
        (status = 422, description = "Bad `limit` or `offset`", body = ErrorBody),
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    page: Pagination,
) -> Result<ApiResponse<Vec<Product>>, ApiError> {
    let products = rows::page(&state.db, page).await?;
    Ok(ApiResponse::ok(products, "Products retrieved successfully"))
}

/// Read one product.
#[utoipa::path(
    get, path = "/api/products/{id}", tag = "products",
    params(("id" = i32, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ApiResponse<Product>),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
pub async fn get_product(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<ApiResponse<Product>, ApiError> {
    let product = rows::by_id(&state.db, id).await?;
    Ok(ApiResponse::ok(product, "Product retrieved successfully"))
}

/// Create a product.
#[utoipa::path(
    post, path = "/api/products", tag = "products",
    request_body = NewProduct,
    responses(
        (status = 201, description = "The created product", body = ApiResponse<Product>),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    )
)]
pub async fn create_product(
    State(state): State<AppState>,
    ValidJson(new): ValidJson<NewProduct>,
) -> Result<Created<Product>, ApiError> {
    let query = sqlx::query_as::<_, Product>(
        r#"INSERT INTO product (name, category, price) VALUES ($1, $2, $3)
           RETURNING id, name, category, price, "createdAt""#,
    )
    .bind(&new.name)
    .bind(&new.category)
    .bind(new.price);
    let product = state.db.fetch_one(query).await?;
    Ok(Created::new(product, "Product created successfully"))
}

/// Update a product: absent fields keep their value.
#[utoipa::path(
    put, path = "/api/products/{id}", tag = "products",
    params(("id" = i32, Path, description = "Product id")),
    request_body = ProductUpdate,
    responses(
        (status = 200, description = "The updated product", body = ApiResponse<Product>),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    )
)]
pub async fn update_product(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ValidJson(update): ValidJson<ProductUpdate>,
) -> Result<ApiResponse<Product>, ApiError> {
    let query = sqlx::query_as::<_, Product>(
        r#"UPDATE product SET
               name = COALESCE($2, name),
               category = COALESCE($3, category),
               price = COALESCE($4, price)
           WHERE id = $1
           RETURNING id, name, category, price, "createdAt""#,
    )
    .bind(id)
    .bind(&update.name)
    .bind(&update.category)
    .bind(update.price);
    let product = rows::found(state.db.fetch_optional(query).await?, id)?;
    Ok(ApiResponse::ok(product, "Product updated successfully"))
}

/// Delete a product that no order item references.
#[utoipa::path(
    delete, path = "/api/products/{id}", tag = "products",
    params(("id" = i32, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 409, description = "Order items still reference the product", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
pub async fn delete_product(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Deleted, ApiError> {
    rows::delete_by_id::<Product>(&state.db, id, |err| {
        if is_foreign_key_violation(&err) {
            ApiError::Conflict {
                message: format!("product {id} is still referenced by order items"),
                details: vec![FieldError::new("id", "still referenced by order items")],
            }
        } else {
            err.into()
        }
    })
    .await
}
