-- CDC readiness: with the default replica identity an UPDATE carries no before-image and a DELETE
-- carries only the primary key, so the sink could not tombstone a fact row with its dimensions or
-- see which foreign key an update moved away from. REPLICA IDENTITY FULL makes Postgres write the
-- whole old row to the WAL for UPDATE and DELETE (more WAL per change; inserts are unaffected).
-- The operator checks this setting when a CdcPipeline has `replicaIdentityFull: true`.
ALTER TABLE customer REPLICA IDENTITY FULL;
ALTER TABLE product REPLICA IDENTITY FULL;
ALTER TABLE "order" REPLICA IDENTITY FULL;
ALTER TABLE orderitem REPLICA IDENTITY FULL;
