-- The reference app's four OLTP tables, named and shaped exactly as its SQLModel models
-- (singular table names, camelCase quoted columns): the CDC configuration depends on these names.
--
-- Timestamps are `timestamp without time zone` holding UTC, defaulted at INSERT time (the reference
-- evaluated its defaults once at process start; ours are evaluated by Postgres per row).

CREATE TABLE customer (
    id          SERIAL PRIMARY KEY,
    email       VARCHAR(255) NOT NULL,
    name        VARCHAR(255) NOT NULL CHECK (char_length(name) >= 1),
    country     VARCHAR(100) NOT NULL CHECK (char_length(country) >= 1),
    city        VARCHAR(100) NOT NULL CHECK (char_length(city) >= 1),
    "createdAt" TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT customer_email_key UNIQUE (email)
);
-- The unique constraint's index serves lookups by email (the reference's `index=True`).

CREATE TABLE product (
    id          SERIAL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL CHECK (char_length(name) >= 1),
    category    VARCHAR(100) NOT NULL CHECK (char_length(category) >= 1),
    price       DOUBLE PRECISION NOT NULL CONSTRAINT product_price_check CHECK (price > 0),
    "createdAt" TIMESTAMP NOT NULL DEFAULT timezone('utc', now())
);
CREATE INDEX ix_product_category ON product (category);

CREATE TABLE "order" (
    id           SERIAL PRIMARY KEY,
    "customerId" INTEGER NOT NULL
                 CONSTRAINT "order_customerId_fkey" REFERENCES customer (id) ON DELETE CASCADE,
    "orderDate"  TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    total        NUMERIC(12, 2) NOT NULL CONSTRAINT order_total_check CHECK (total > 0),
    status       VARCHAR(50) NOT NULL DEFAULT 'pending' CHECK (char_length(status) >= 1)
);
CREATE INDEX "ix_order_customerId" ON "order" ("customerId");

CREATE TABLE orderitem (
    id          SERIAL PRIMARY KEY,
    "orderId"   INTEGER NOT NULL
                CONSTRAINT "orderitem_orderId_fkey" REFERENCES "order" (id) ON DELETE CASCADE,
    -- No cascade: a product still referenced by order items cannot be deleted (the API answers 409).
    "productId" INTEGER NOT NULL
                CONSTRAINT "orderitem_productId_fkey" REFERENCES product (id) ON DELETE RESTRICT,
    quantity    INTEGER NOT NULL CONSTRAINT orderitem_quantity_check CHECK (quantity > 0),
    price       DOUBLE PRECISION NOT NULL CONSTRAINT orderitem_price_check CHECK (price > 0)
);
CREATE INDEX "ix_orderitem_orderId" ON orderitem ("orderId");
CREATE INDEX "ix_orderitem_productId" ON orderitem ("productId");
