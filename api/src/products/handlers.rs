//! Product handlers: one SQL statement each; the list, read and delete handlers are
//! [`crate::resource`]'s.

use axum::extract::State;

use super::models::{NewProduct, Product, ProductUpdate};
use crate::app::AppState;
use crate::envelope::{ApiResponse, Created};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, ValidJson};
use crate::rows;

crate::resource::handlers!(
    Product,
    tag: "products",
    path: "/api/products",
    id_path: "/api/products/{id}",
    one: "product",
    One: "Product",
    Many: "Products",
    listing: "products",
    reading: "product",
    /// List products, ordered by id.
    list: list_products,
    /// Read one product.
    get: get_product,
    /// Delete a product that no order item references.
    delete: delete_product => "Deleted",
        refused: "Order items still reference the product",
);

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
