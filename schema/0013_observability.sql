-- Observability: the live tail's lease and the per-minute metric rollups.
--
-- environments.tail_lease_until: while a live tail of the environment has clients, its Durable Object
-- (durable-objects/live-tail) keeps this a little in the future (ms since the epoch); NULL or past means no tail. The
-- decision path reads it with the environment it already looks up and caches, so an environment nobody tails costs
-- nothing more: only the flush of a tailed environment's records sends them to its tail.
ALTER TABLE environments ADD COLUMN tail_lease_until INTEGER;

-- One row per environment, metric, minute and dimension: counts added by the flushes of decision records
-- (workers/services/metrics.ts), in the same D1 batch as the records, as UPSERTs. The key leads with the metric after
-- the environment: each query of the metrics API reads one metric (or the series' few) over a range of minutes, and
-- reads only those rows, not every metric's of the range.
-- minute: the start of the minute, ISO-8601 (2026-11-25T23:56:00.000Z).
-- metric: decisions, access_checks, surface_decisions, denied, meter_fallbacks, workflow_failures,
--   offer_impressions (no dimension); denial (dimension: JSON [featureSlug, property, reason]); workflow_failure
--   (dimension: the failure's kind); stage (dimension: the stage, bucket: the latency bucket's index).
-- Rows older than 31 days are deleted (at most once an hour per isolate, from a flush).
CREATE TABLE metric_rollups (
  environment_id TEXT NOT NULL,
  minute         TEXT NOT NULL,
  metric         TEXT NOT NULL,
  dimension      TEXT NOT NULL DEFAULT '',
  bucket         INTEGER NOT NULL DEFAULT 0,
  count          INTEGER NOT NULL,
  PRIMARY KEY (environment_id, metric, minute, dimension, bucket)
) WITHOUT ROWID;
CREATE INDEX metric_rollups_by_minute ON metric_rollups (minute);
