/**
 * The decision's workflow stages, wired to the request: builds the arguments customer code sees, the utils RPC
 * target scoped to this tenant and identity, and applies each stage's result. Nothing here runs unless the
 * deployed version has a workflow of that type.
 */
import type { Context } from "hono";
import type { AppEnv } from "../context";
import type { PreparedSnapshot } from "../engine/prepare";
import type { SnapshotWorkflow } from "../engine/snapshot";
import type { BotTag, FeatureStates, MeterRequest, PropertyState, ResolvedIdentity } from "../engine/types";
import { workflowEnvironment } from "../services/environmentSettings";
import type { Environment } from "../services/tenancy";
import type { WorkflowRunner } from "../workflows/runner";
import { counterSettingsOf, scopedUtils, type CounterSettings } from "../workflows/scopedUtils";
import { selectWorkflowRunner } from "../workflows/select";
import {
  validateComponentBehavior,
  validateMiddleware,
  validatePlanSlugs,
  validatePropertyOverrides,
  validateSurfaceBehavior,
  WorkflowStages,
  type ComponentBehavior,
  type MiddlewareResult,
  type SurfaceBehavior,
} from "../workflows/stages";
import type { WorkflowUtils } from "../workflows/utils";

export interface RequestFacts {
  userAgent?: string;
  url?: string;
  referer?: string;
  clientIp?: string;
  cf?: Record<string, unknown>;
  resource?: Record<string, unknown>;
}

export interface PendingTrigger {
  name: string;
  payload: unknown;
}

/** Everything the workflows of one decision share. Created lazily: decisions without workflows never pay for it. */
export class DecisionWorkflows {
  readonly triggers: PendingTrigger[] = [];
  private stagesByMode = new Map<boolean, WorkflowStages>();
  private env: Record<string, string> = {};
  private runner: WorkflowRunner | undefined;
  /** Limits of the metered counters this decision resolved, so utils.counters enforce the user's own plan. */
  private readonly counterSettings = new Map<string, CounterSettings>();

  constructor(
    private readonly c: Context<AppEnv>,
    private readonly prepared: PreparedSnapshot,
    private readonly environment: Environment,
    private readonly store: string,
    private identity: ResolvedIdentity,
    private bot: BotTag | undefined,
    private readonly facts: RequestFacts,
  ) {}

  private replaying = false;

  /** The meter answered this request as a replay: from now on, workflows' counters read instead of consuming. */
  markReplayed(): void {
    this.replaying = true;
  }

  knowCounters(requests: readonly MeterRequest[]): void {
    for (const [counterId, settings] of counterSettingsOf(requests)) this.counterSettings.set(counterId, settings);
  }

  has(type: SnapshotWorkflow["type"]): boolean {
    return (this.prepared.snapshot.workflows ?? []).some((workflow) => workflow.type === type);
  }

  private of(type: SnapshotWorkflow["type"]): SnapshotWorkflow[] {
    return this.prepared.snapshot.workflows.filter((workflow) => workflow.type === type);
  }

  get records() {
    return [...this.stagesByMode.values()].flatMap((stages) => stages.records);
  }

  private async stages(readOnly: boolean): Promise<WorkflowStages> {
    let stages = this.stagesByMode.get(readOnly);
    if (stages) return stages;
    if (!this.runner) {
      const settings = await workflowEnvironment(this.c.env.DB, this.c.env.SECRETS_KEY, this.environment.id);
      this.env = settings.values;
      this.runner = selectWorkflowRunner(this.c.env, this.c.executionCtx, {
        organizationId: this.environment.organizationId,
        environmentId: this.environment.id,
        egressHosts: settings.egressAllowList,
      });
    }
    stages = new WorkflowStages(this.runner, this.utils(readOnly));
    this.stagesByMode.set(readOnly, stages);
    return stages;
  }

  private utils(readOnly: boolean): WorkflowUtils {
    return scopedUtils({
      meter: this.c.env.METER,
      organizationId: this.environment.organizationId,
      store: this.store,
      prepared: this.prepared,
      identifier: () => this.identity.identifier,
      authenticated: () => this.identity.isAuthenticated,
      readOnly,
      counterSettings: this.counterSettings,
      replaying: () => this.replaying,
      fireTrigger: (name, payload) => this.triggers.push({ name, payload }),
    });
  }

  /** The arguments every synchronous workflow receives. */
  args(plans: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
    const cf = this.facts.cf ?? {};
    const text = (value: unknown) => (typeof value === "string" ? value : null);
    return {
      identity: {
        authType: this.identity.authType,
        identifier: this.identity.identifier,
        isAuthenticated: this.identity.isAuthenticated,
        jwtClaims: this.identity.jwtClaims,
        userType: this.bot?.isVerified ? "bot" : this.identity.isAuthenticated ? "authenticated" : "anonymous",
        testGroup100: this.identity.testGroup100,
      },
      context: {
        userAgent: this.facts.userAgent ?? null,
        url: this.facts.url ?? null,
        referer: this.facts.referer ?? null,
        clientIp: this.facts.clientIp ?? null,
        geo: { country: text(cf.country), region: text(cf.region), city: text(cf.city), continent: text(cf.continent), timezone: text(cf.timezone) },
        bot: this.bot ?? null,
        isVerifiedBotRequest: this.bot?.isVerified === true,
      },
      resource: this.facts.resource ?? null,
      env: this.env,
      plans,
      ...extra,
    };
  }

  /** Middleware: all run concurrently; the results merge in slug order. A `fail` wins. */
  async middleware(): Promise<MiddlewareResult> {
    const workflows = this.of("middleware");
    if (workflows.length === 0) return {};
    const stages = await this.stages(false);
    const results = await Promise.all(workflows.map((workflow) => stages.run(workflow, this.args([]), validateMiddleware)));
    const merged: MiddlewareResult = {};
    for (const result of results) {
      if (!result) continue;
      if (result.fail && !merged.fail) merged.fail = result.fail;
      if (result.identifier) merged.identifier = result.identifier;
      if (result.bot) merged.bot = result.bot;
      if (result.properties) merged.properties = { ...merged.properties, ...result.properties };
    }
    return merged;
  }

  applyMiddleware(result: MiddlewareResult): { identity: ResolvedIdentity; bot: BotTag | undefined } {
    if (result.identifier) this.identity = { ...this.identity, identifier: result.identifier };
    if (result.bot) this.bot = result.bot;
    return { identity: this.identity, bot: this.bot };
  }

  /** Provisioning: read-only utils; the union of every workflow's plan slugs. A failed one adds nothing. */
  async provisioning(autoPlans: string[]): Promise<string[]> {
    const workflows = this.of("provisioning");
    if (workflows.length === 0) return [];
    const stages = await this.stages(true);
    const results = await Promise.all(workflows.map((workflow) => stages.run(workflow, this.args(autoPlans), validatePlanSlugs)));
    return [...new Set(results.flatMap((slugs) => slugs ?? []))];
  }

  /** Feature workflows adjust their feature's rendered properties; wrong types are ignored and recorded. */
  async features(features: FeatureStates, plans: string[]): Promise<void> {
    const workflows = this.of("feature");
    if (workflows.length === 0) return;
    const stages = await this.stages(false);
    const results = await Promise.all(
      workflows.map(async (workflow) => {
        const feature = workflow.feature ? features[workflow.feature] : undefined;
        if (!feature) return undefined;
        const overrides = await stages.run(workflow, this.args(plans, { feature, features }), validatePropertyOverrides);
        return { feature, overrides, workflow };
      }),
    );
    // Rendered states may be shared, frozen objects (the engine memoises them): build new ones instead of mutating.
    for (const result of results) {
      if (!result?.overrides) continue;
      const properties = { ...result.feature.properties };
      for (const [slug, value] of Object.entries(result.overrides)) {
        const current = properties[slug];
        const next = current ? overridden(current, value) : undefined;
        if (next) properties[slug] = next;
        else stages.records.push({ slug: result.workflow.slug, type: "feature", ok: false, durationMs: 0, kind: "bad_result", error: `cannot set ${slug} to ${JSON.stringify(value)}` });
      }
      features[result.feature.featureSlug] = { ...result.feature, properties };
    }
  }

  async surface(surfaceSlug: string, features: FeatureStates, plans: string[]): Promise<SurfaceBehavior> {
    const workflow = this.of("surface").find((candidate) => candidate.surface === surfaceSlug);
    if (!workflow) return {};
    const stages = await this.stages(false);
    return (await stages.run(workflow, this.args(plans, { features, surfaceSlug }), validateSurfaceBehavior)) ?? {};
  }

  /** Component workflows of the surface, in parallel, each given the surface's properties. */
  async components(surfaceSlug: string, features: FeatureStates, plans: string[], surfaceProperties: Record<string, unknown>): Promise<Map<string, ComponentBehavior>> {
    const workflows = this.of("component").filter((candidate) => candidate.surface === surfaceSlug && candidate.component);
    const out = new Map<string, ComponentBehavior>();
    if (workflows.length === 0) return out;
    const stages = await this.stages(false);
    await Promise.all(
      workflows.map(async (workflow) => {
        const behavior = await stages.run(
          workflow,
          this.args(plans, { features, surfaceSlug, componentSlug: workflow.component, surfaceProperties }),
          validateComponentBehavior,
        );
        if (behavior) out.set(workflow.component!, behavior);
      }),
    );
    return out;
  }
}

/** A property with a workflow's value applied, or undefined when the value does not fit the property's type. */
function overridden(current: PropertyState, value: unknown): PropertyState | undefined {
  switch (current.type) {
    case "meterable":
    case "credits":
      // Access only: a workflow can grant or deny, but counters and balances change only through the meter.
      if (typeof value === "boolean") return { ...current, hasAccess: value, isFallback: false };
      if (value === "on" || value === "off") return { ...current, hasAccess: value === "on", isFallback: false };
      return undefined;
    case "boolean":
      return typeof value === "boolean" ? { type: "boolean", value, isFallback: false } : undefined;
    case "number":
      return typeof value === "number" && Number.isFinite(value) ? { type: "number", value, isFallback: false } : undefined;
    case "string":
      return typeof value === "string" ? { type: "string", value, isFallback: false } : undefined;
  }
}
