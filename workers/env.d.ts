/**
 * Bindings and settings the Worker reads that `wrangler types` cannot see, because wrangler.toml does not declare
 * them: they exist only in a production deployment that runs workflows as Workers for Platforms user scripts
 * (README, "Deploying to Cloudflare"). Declaring them in wrangler.toml would change local development (a dispatch
 * namespace cannot be bound locally), so they are added here to the generated `Env` — optional, because the local
 * default and the tests run without them. Everything wrangler.toml and .dev.vars.example declare lives in the
 * generated worker-configuration.d.ts (`npm run types`).
 */
interface ProductionOnlyEnv {
  /** The dispatch namespace that runs workflow scripts; when absent, workflows run in Worker Loader isolates. */
  DISPATCHER?: DispatchNamespace;
  /**
   * Name of the namespace's outbound Worker (outbound/). Set only once the DISPATCHER binding routes through it:
   * until then dispatched workflows get no subrequests at all.
   */
  WORKFLOW_OUTBOUND_WORKER?: string;
  /** Account, namespace and API token (secret, Workers Scripts:Edit) used to upload workflow scripts on version creation. */
  CF_ACCOUNT_ID?: string;
  DISPATCH_NAMESPACE?: string;
  CF_API_TOKEN?: string;
}

interface Env extends ProductionOnlyEnv {}

declare namespace Cloudflare {
  interface Env extends ProductionOnlyEnv {}
}
