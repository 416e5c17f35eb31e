/**
 * Bindings and settings the Worker reads that `wrangler types` cannot see, because wrangler.toml does not declare
 * them: they exist only in a production deployment that runs workflows as Workers for Platforms user scripts
 * (README, "Deploying to Cloudflare"). Declaring them in wrangler.toml would change local development (a dispatch
 * namespace cannot be bound locally), so they are added here to the generated `Env` — optional, because the local
 * default and the tests run without them. Everything wrangler.toml and .dev.vars.example declare is generated into
 * worker-configuration.d.ts (`npm run types`; `npm test` fails when that file is stale).
 */
interface ProductionOnlyEnv {
  /** The dispatch namespace that runs workflow scripts; when absent, workflows run in Worker Loader isolates. */
  DISPATCHER?: DispatchNamespace;
  /**
   * Name of the namespace's outbound Worker (outbound/). Set only once the DISPATCHER binding routes through it:
   * until then dispatched workflows get no subrequests at all.
   */
  WORKFLOW_OUTBOUND_WORKER?: string;
  /** Account and namespace the version's workflow scripts are uploaded to when a version is deployed. */
  CF_ACCOUNT_ID?: string;
  DISPATCH_NAMESPACE?: string;
  /** Secret: an API token with Workers Scripts:Edit, for those uploads. */
  CF_API_TOKEN?: string;
  /**
   * The production event sink (`EVENT_SINK = "cloudflare"`, workers/services/eventStore.ts; README "Deploying to
   * Cloudflare"): the Analytics Engine dataset of decision metrics, the queue and Pipelines stream of the decision log,
   * and what the console reads them back with. CF_ACCOUNT_ID above is their account too.
   */
  DECISION_METRICS?: AnalyticsEngineDataset;
  DECISION_LOG_QUEUE?: Queue<import("./services/decisionLog").LogMessage>;
  DECISION_LOG?: import("./services/decisionLog").LogPipeline;
  /** Secret: an API token with Account Analytics Read, R2 SQL Read and R2 Data Catalog Read. */
  EVENTS_API_TOKEN?: string;
  /** The dataset's name (its `dataset` in wrangler.toml), for the SQL API. */
  DECISION_METRICS_DATASET?: string;
  /** The R2 bucket of the log's catalog, and the `namespace.table` its Pipelines sink writes. */
  DECISION_LOG_BUCKET?: string;
  DECISION_LOG_TABLE?: string;
  /** Milliseconds the metrics' rollup rows wait before they are written as points (10,000 by default; tests use 0). */
  ANALYTICS_WRITE_INTERVAL_MS?: string;
  /** Base URLs of the SQL APIs: Cloudflare's by default (tests point them at local fakes). */
  ANALYTICS_SQL_API?: string;
  R2_SQL_API?: string;
}

/**
 * Only the names the generated interface (`__BaseEnv_Env`, wrangler's base of `Env`) does not already have: an
 * operator who declares them in wrangler.toml and regenerates the types gets the generated, non-optional ones.
 */
type UndeclaredProductionEnv = Omit<ProductionOnlyEnv, keyof __BaseEnv_Env>;

interface Env extends UndeclaredProductionEnv {}

declare namespace Cloudflare {
  interface Env extends UndeclaredProductionEnv {}
}
