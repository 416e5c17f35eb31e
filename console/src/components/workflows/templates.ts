/**
 * Starter code per workflow type: the smallest module the platform runs, typed by the type's alias so the editor
 * autocompletes the arguments from the first keystroke (the aliases are declared by GET /api/v1/admin/workflow-types).
 */
export const WORKFLOW_TYPES = ["middleware", "provisioning", "feature", "surface", "component", "endpoint", "action", "redemption"] as const;
export type WorkflowType = (typeof WORKFLOW_TYPES)[number];

export const WORKFLOW_TYPE_HELP: Record<WorkflowType, string> = {
  middleware: "Runs first on every decision: rename the identity, reject the request, tag a bot.",
  provisioning: "Returns plan slugs the identity holds in addition to its stored plans.",
  feature: "Adjusts the properties of one feature for this identity.",
  surface: "Decides a surface's properties, HTTP behaviour and content.",
  component: "Decides one component of a surface: its properties and content.",
  endpoint: "Answers HTTP requests under /api/v1/envs/{environmentId}/endpoints/{path}.",
  action: "Runs after the response when one of its triggers fires (at least once: make it idempotent).",
  redemption: "Redeems an offer whose redemption method is `workflow`; its writes apply only if it succeeds.",
};

const TEMPLATES: Record<WorkflowType, string> = {
  middleware: `// Middleware: runs before everything else of a decision.
const workflow: MiddlewareWorkflow = ({ context }) => {
  if (context.userAgent?.includes("InternalMonitor")) {
    return { bot: { category: "analytics-monitor", code: "internal-monitor", isVerified: false, operator: "Us", product: "Monitor" } };
  }
  return {};
};
export default workflow;
`,
  provisioning: `// Provisioning: the plans this identity holds besides the stored ones.
const workflow: ProvisioningWorkflow = async ({ identity }) => {
  return identity.jwtClaims.premium ? ["premium"] : [];
};
export default workflow;
`,
  feature: `// Feature: overrides of the feature's properties for this identity.
const workflow: FeatureWorkflow = ({ identity }) => {
  if (identity.isAuthenticated && identity.testGroup100 < 50) {
    return {};
  }
  return {};
};
export default workflow;
`,
  surface: `// Surface: the properties (and optionally HTTP behaviour and content) of the surface.
const workflow: SurfaceWorkflow = async ({ identity }) => {
  return {
    properties: {
      greeting: identity.isAuthenticated ? \`Hello, \${identity.identifier}\` : "Hello, visitor",
    },
  };
};
export default workflow;
`,
  component: `// Component: what one component of the surface shows.
const workflow: ComponentWorkflow = ({ surfaceProperties }) => {
  return { properties: { hidden: false, fromSurface: surfaceProperties.greeting ?? null } };
};
export default workflow;
`,
  endpoint: `// Endpoint: answers requests to /api/v1/envs/{environmentId}/endpoints/{path}.
const workflow: EndpointWorkflow = async (request, { identity, path }) => {
  if (request.method !== "GET") return new Response("method not allowed", { status: 405 });
  return Response.json({ path, identifier: identity.identifier });
};
export default workflow;
`,
  action: `// Action: runs when one of its triggers fires, after the response.
const workflow: ActionWorkflow = async ({ trigger, payload, utils }) => {
  await utils.customData.set("lastTrigger", { trigger, payload, at: new Date().toISOString() });
};
export default workflow;
`,
  redemption: `// Redemption: redeems an offer; throw or return { fail } to refuse (then nothing it wrote is applied).
const workflow: RedemptionWorkflow = async ({ offer, utils }) => {
  const claimed = await utils.customData.get(\`claimed:\${offer.slug}\`);
  if (claimed) return { fail: { message: "Already claimed" } };
  await utils.customData.set(\`claimed:\${offer.slug}\`, { at: new Date().toISOString() });
  return { result: { claimed: true } };
};
export default workflow;
`,
};

export function starterSource(type: WorkflowType): string {
  return TEMPLATES[type];
}
