/**
 * Which runtime runs workflows: a Workers for Platforms dispatch namespace when the `DISPATCHER` binding is
 * configured (production), otherwise the Worker Loader binding (local default, tests). Both enforce the
 * environment's egress allow-list: the loader through the `EgressGateway` entrypoint as the isolate's
 * `globalOutbound`, the dispatch runtime through its namespace's outbound Worker (outbound/worker.ts), which the
 * operator declares by setting `WORKFLOW_OUTBOUND_WORKER`; until then dispatched workflows get no network at all.
 */
import { DispatchWorkflowRunner } from "./dispatchRunner";
import { LoaderWorkflowRunner, type WorkflowRunner } from "./runner";

type GatewayFactory = (options: { props: unknown }) => Fetcher;

export interface RunnerTarget {
  organizationId: string;
  environmentId: string;
  egressHosts: readonly string[];
}

export function selectWorkflowRunner(env: Env, ctx: unknown, { organizationId, environmentId, egressHosts }: RunnerTarget): WorkflowRunner {
  const hosts = [...egressHosts];
  if (env.DISPATCHER) {
    return new DispatchWorkflowRunner(env.DISPATCHER, {
      organizationId,
      environmentId,
      ...(env.WORKFLOW_OUTBOUND_WORKER ? { outbound: { secretsKey: env.SECRETS_KEY, hosts } } : {}),
    });
  }
  const gateway = (ctx as { exports?: { EgressGateway?: GatewayFactory } } | undefined)?.exports?.EgressGateway;
  return new LoaderWorkflowRunner(
    env.LOADER,
    (workflow) => (hosts.length > 0 && gateway ? gateway({ props: { environmentId, workflow: workflow.slug, hosts } }) : null),
    { organizationId, environmentId, egressScope: [...hosts].sort().join(",") },
  );
}
