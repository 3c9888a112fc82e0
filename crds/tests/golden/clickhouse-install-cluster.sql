CREATE DATABASE IF NOT EXISTS `local` ON CLUSTER `analytics`;

CREATE TABLE IF NOT EXISTS `local`.`customer_dim_local` ON CLUSTER `analytics` (
    `customer_id` UInt64,
    `email` String,
    `name` String,
    `country` LowCardinality(String),
    `city` String,
    `created_at` DateTime64(6),
    `lsn` UInt64,
    `is_deleted` UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`customer_id`);

CREATE TABLE IF NOT EXISTS `local`.`customer_dim` ON CLUSTER `analytics` AS `local`.`customer_dim_local` ENGINE = Distributed(`analytics`, `local`, `customer_dim_local`, cityHash64(`customer_id`));

CREATE TABLE IF NOT EXISTS `local`.`product_dim_local` ON CLUSTER `analytics` (
    `product_id` UInt64,
    `name` String,
    `category` LowCardinality(String),
    `price` Float64,
    `created_at` DateTime64(6),
    `lsn` UInt64,
    `is_deleted` UInt8
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`product_id`);

CREATE TABLE IF NOT EXISTS `local`.`product_dim` ON CLUSTER `analytics` AS `local`.`product_dim_local` ENGINE = Distributed(`analytics`, `local`, `product_dim_local`, cityHash64(`product_id`));

CREATE TABLE IF NOT EXISTS `local`.`order_fact_local` ON CLUSTER `analytics` (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`order_id`);

CREATE TABLE IF NOT EXISTS `local`.`order_fact` ON CLUSTER `analytics` AS `local`.`order_fact_local` ENGINE = Distributed(`analytics`, `local`, `order_fact_local`, cityHash64(`order_id`));

CREATE TABLE IF NOT EXISTS `local`.`orderitem_fact_local` ON CLUSTER `analytics` (
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
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`orderitem_id`);

CREATE TABLE IF NOT EXISTS `local`.`orderitem_fact` ON CLUSTER `analytics` AS `local`.`orderitem_fact_local` ENGINE = Distributed(`analytics`, `local`, `orderitem_fact_local`, cityHash64(`orderitem_id`));

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_value_adjustments_local` ON CLUSTER `analytics` (
    `pipeline` LowCardinality(String),
    `table` LowCardinality(String),
    `column` LowCardinality(String),
    `policy` LowCardinality(String),
    `values` UInt64,
    `last_seen` SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `values`) ORDER BY (`pipeline`, `table`, `column`, `policy`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_value_adjustments` ON CLUSTER `analytics` AS `local`.`cdcstar_value_adjustments_local` ENGINE = Distributed(`analytics`, `local`, `cdcstar_value_adjustments_local`, cityHash64(`pipeline`, `table`, `column`, `policy`));

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_partition_positions_local` ON CLUSTER `analytics` (
    `pipeline` LowCardinality(String),
    `topic` LowCardinality(String),
    `partition` Int32,
    `commit_lsn` UInt64,
    `commit_time` DateTime64(6, 'UTC'),
    `applied_at` DateTime64(3, 'UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `commit_lsn`) ORDER BY (`pipeline`, `topic`, `partition`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_partition_positions` ON CLUSTER `analytics` AS `local`.`cdcstar_partition_positions_local` ENGINE = Distributed(`analytics`, `local`, `cdcstar_partition_positions_local`, cityHash64(`pipeline`, `topic`, `partition`));

CREATE VIEW IF NOT EXISTS `local`.`cdcstar_watermark` ON CLUSTER `analytics` AS SELECT `pipeline`, min(`applied_lsn`) AS `commit_lsn`, min(`applied_time`) AS `commit_time`, count() AS `partitions` FROM (SELECT `pipeline`, `topic`, `partition`, max(`commit_lsn`) AS `applied_lsn`, argMax(`commit_time`, `commit_lsn`) AS `applied_time` FROM `local`.`cdcstar_partition_positions` GROUP BY `pipeline`, `topic`, `partition`) GROUP BY `pipeline`;

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_verifications_local` ON CLUSTER `analytics` (
    `pipeline` LowCardinality(String),
    `table` LowCardinality(String),
    `verified_at` DateTime64(3, 'UTC'),
    `rows_checked` UInt64,
    `mismatches` UInt64,
    `mismatch_keys` Array(String),
    `repaired` UInt64,
    `skipped` UInt64,
    `not_verified` String
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `verified_at`) ORDER BY (`pipeline`, `table`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_verifications` ON CLUSTER `analytics` AS `local`.`cdcstar_verifications_local` ENGINE = Distributed(`analytics`, `local`, `cdcstar_verifications_local`, cityHash64(`pipeline`, `table`));
