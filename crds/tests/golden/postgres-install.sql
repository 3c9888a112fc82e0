-- install
ALTER TABLE "public"."customer" REPLICA IDENTITY FULL;
ALTER TABLE "public"."product" REPLICA IDENTITY FULL;
ALTER TABLE "public"."order" REPLICA IDENTITY FULL;
ALTER TABLE "public"."orderitem" REPLICA IDENTITY FULL;
CREATE PUBLICATION "cdcstar_shop" FOR TABLE "public"."customer", "public"."product", "public"."order", "public"."orderitem" WITH (publish = 'insert, update, delete, truncate');
DO $cdcstar$BEGIN IF pg_catalog.to_regclass('cdcstar.snapshot_progress') IS NOT NULL THEN DELETE FROM cdcstar.snapshot_progress WHERE slot = 'cdcstar_shop'; END IF; END$cdcstar$;
SELECT slot_name::text, lsn::text FROM pg_catalog.pg_create_logical_replication_slot('cdcstar_shop', 'pgoutput') WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = 'cdcstar_shop');
-- cleanup
SELECT pg_catalog.pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots WHERE slot_name = 'cdcstar_shop' AND active_pid IS NOT NULL;
SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots WHERE slot_name = 'cdcstar_shop';
DROP PUBLICATION IF EXISTS "cdcstar_shop";
