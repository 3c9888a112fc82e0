//! Product handlers: [`crate::resource`]'s, around the product's own statements.

use super::models::{NewProduct, Product, ProductUpdate};
use crate::connections::RowQuery;

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
    /// Create a product.
    create: create_product(NewProduct) => insert,
    /// Update a product: absent fields keep their value.
    update: update_product(ProductUpdate) => update,
);

/// The `INSERT` of a new product, answering the row.
fn insert(new: &NewProduct) -> RowQuery<'_, Product> {
    sqlx::query_as(
        r#"INSERT INTO product (name, category, price) VALUES ($1, $2, $3)
           RETURNING id, name, category, price, "createdAt""#,
    )
    .bind(&new.name)
    .bind(&new.category)
    .bind(new.price)
}

/// The `UPDATE` of product `id`, answering the row (none when there is no such product).
fn update(id: i32, update: &ProductUpdate) -> RowQuery<'_, Product> {
    sqlx::query_as(
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
    .bind(update.price)
}
