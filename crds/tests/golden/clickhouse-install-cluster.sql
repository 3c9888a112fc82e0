CREATE DATABASE IF NOT EXISTS `local` ON CLUSTER `analytics`;

CREATE TABLE IF NOT EXISTS `local`.`customer_dim_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`customer_id`);

CREATE TABLE IF NOT EXISTS `local`.`customer_dim` ON CLUSTER `analytics` AS `local`.`customer_dim_local` ENGINE = Distributed(`analytics`, `local`, `customer_dim_local`, cityHash64(`customer_id`));

CREATE TABLE IF NOT EXISTS `local`.`product_dim_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`product_id`);

CREATE TABLE IF NOT EXISTS `local`.`product_dim` ON CLUSTER `analytics` AS `local`.`product_dim_local` ENGINE = Distributed(`analytics`, `local`, `product_dim_local`, cityHash64(`product_id`));

CREATE TABLE IF NOT EXISTS `local`.`order_fact_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`order_id`);

CREATE TABLE IF NOT EXISTS `local`.`order_fact` ON CLUSTER `analytics` AS `local`.`order_fact_local` ENGINE = Distributed(`analytics`, `local`, `order_fact_local`, cityHash64(`order_id`));

CREATE TABLE IF NOT EXISTS `local`.`orderitem_fact_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `lsn`, `is_deleted`) ORDER BY (`orderitem_id`);

CREATE TABLE IF NOT EXISTS `local`.`orderitem_fact` ON CLUSTER `analytics` AS `local`.`orderitem_fact_local` ENGINE = Distributed(`analytics`, `local`, `orderitem_fact_local`, cityHash64(`orderitem_id`));

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_value_adjustments_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `values`) ORDER BY (`pipeline`, `table`, `column`, `policy`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_value_adjustments` ON CLUSTER `analytics` AS `local`.`cdcstar_value_adjustments_local` ENGINE = Distributed(`analytics`, `local`, `cdcstar_value_adjustments_local`, cityHash64(`pipeline`, `table`, `column`, `policy`));

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_partition_positions_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `commit_lsn`) ORDER BY (`pipeline`, `topic`, `partition`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_partition_positions` ON CLUSTER `analytics` AS `local`.`cdcstar_partition_positions_local` ENGINE = Distributed(`analytics`, `local`, `cdcstar_partition_positions_local`, cityHash64(`pipeline`, `topic`, `partition`));

CREATE VIEW IF NOT EXISTS `local`.`cdcstar_watermark` ON CLUSTER `analytics` AS SELECT `pipeline`, min(`applied_lsn`) AS `commit_lsn`, min(`applied_time`) AS `commit_time`, count() AS `partitions` FROM (SELECT `pipeline`, `topic`, `partition`, max(`commit_lsn`) AS `applied_lsn`, argMax(`commit_time`, `commit_lsn`) AS `applied_time` FROM `local`.`cdcstar_partition_positions` GROUP BY `pipeline`, `topic`, `partition`) GROUP BY `pipeline`;

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_verifications_local` ON CLUSTER `analytics` (…) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', `verified_at`) ORDER BY (`pipeline`, `table`);

CREATE TABLE IF NOT EXISTS `local`.`cdcstar_verifications` ON CLUSTER `analytics` AS `local`.`cdcstar_verifications_local` ENGINE = Distributed(`analytics`, `local`, `cdcstar_verifications_local`, cityHash64(`pipeline`, `table`));
