CREATE DATABASE IF NOT EXISTS `local`;

CREATE TABLE IF NOT EXISTS `local`.`customer_dim` (
    `customer_id` UInt64,
    `email` String,
    `name` String,
    `country` LowCardinality(String),
    `city` String,
    `created_at` DateTime64(6),
    `lsn` UInt64,
    `is_deleted` UInt8
) ENGINE = ReplacingMergeTree(`lsn`, `is_deleted`) ORDER BY (`customer_id`);

CREATE TABLE IF NOT EXISTS `local`.`product_dim` (
    `product_id` UInt64,
    `name` String,
    `category` LowCardinality(String),
    `price` Float64,
    `created_at` DateTime64(6),
    `lsn` UInt64,
    `is_deleted` UInt8
) ENGINE = ReplacingMergeTree(`lsn`, `is_deleted`) ORDER BY (`product_id`);

CREATE TABLE IF NOT EXISTS `local`.`order_fact` (
    `order_id` UInt64,
    `customer_id` UInt64,
    `status` LowCardinality(String),
    `total` Decimal(12, 2),
    `order_date` DateTime64(6),
    `customer_name` String,
    `customer_email` String,
    `source_lsn` UInt64,
    `lsn` UInt64,
    `is_deleted` UInt8
) ENGINE = ReplacingMergeTree(`lsn`, `is_deleted`) ORDER BY (`order_id`);

CREATE TABLE IF NOT EXISTS `local`.`orderitem_fact` (
    `orderitem_id` UInt64,
    `order_id` UInt64,
    `product_id` UInt64,
    `quantity` UInt32,
    `price` Float64,
    `product_name` String,
    `product_category` LowCardinality(String),
    `order_status` LowCardinality(String),
    `order_date` DateTime64(6),
    `customer_country` LowCardinality(String),
    `customer_city` String,
    `source_lsn` UInt64,
    `lsn` UInt64,
    `is_deleted` UInt8
) ENGINE = ReplacingMergeTree(`lsn`, `is_deleted`) ORDER BY (`orderitem_id`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_value_adjustments` (
    `pipeline` LowCardinality(String),
    `table` LowCardinality(String),
    `column` LowCardinality(String),
    `policy` LowCardinality(String),
    `values` UInt64,
    `last_seen` SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = SummingMergeTree(`values`) ORDER BY (`pipeline`, `table`, `column`, `policy`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_partition_positions` (
    `pipeline` LowCardinality(String),
    `topic` LowCardinality(String),
    `partition` Int32,
    `commit_lsn` UInt64,
    `commit_time` DateTime64(6, 'UTC'),
    `applied_at` DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(`commit_lsn`) ORDER BY (`pipeline`, `topic`, `partition`);

CREATE VIEW IF NOT EXISTS `local`.`cdcstar_watermark` AS SELECT `pipeline`, min(`applied_lsn`) AS `commit_lsn`, min(`applied_time`) AS `commit_time`, count() AS `partitions` FROM (SELECT `pipeline`, `topic`, `partition`, max(`commit_lsn`) AS `applied_lsn`, argMax(`commit_time`, `commit_lsn`) AS `applied_time` FROM `local`.`cdcstar_partition_positions` GROUP BY `pipeline`, `topic`, `partition`) GROUP BY `pipeline`;

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_verifications` (
    `pipeline` LowCardinality(String),
    `table` LowCardinality(String),
    `verified_at` DateTime64(3, 'UTC'),
    `rows_checked` UInt64,
    `mismatches` UInt64,
    `mismatch_keys` Array(String),
    `repaired` UInt64,
    `skipped` UInt64,
    `not_verified` String
) ENGINE = ReplacingMergeTree(`verified_at`) ORDER BY (`pipeline`, `table`);
