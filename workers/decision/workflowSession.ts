/**
 * The workflows of one request, as the stages share them: the runner and the environment's settings (loaded on the
 * first workflow that runs), the utils RPC targets scoped to this tenant and identity, the records of every run, the
 * triggers they fired and the counter limits known so far. Created only when the deployed version has workflows.
 */
import type { BotTag, MeterRequest, PreparedSnapshot, ResolvedIdentity } from "../engine";
import type { SnapshotWorkflow } from "../engine/snapshot";
import type { Environment } from "../services/tenancy";
import type { BaseArgs, JsonValue, MiddlewareArgs, WorkflowResource } from "../workflows/authorTypes";
import type { WorkflowRunner } from "../workflows/runner";
import { counterSettingsOf, scopedUtils, type CounterSettings } from "../workflows/scopedUtils";
import type { OffersPort } from "../workflows/utils";
import { WorkflowStages, type WorkflowRecord } from "../workflows/stages";
import type { RequestFacts } from "./context";
import { workflowContext, workflowIdentity } from "./workflowArgs";
import type { Services } from "./services";

export interface PendingTrigger {
  name: string;
  payload: unknown;
}

type WorkflowType = SnapshotWorkflow["type"];

export class WorkflowSession {
  readonly triggers: PendingTrigger[] = [];
  /** What middleware workflows handed to the later ones (`middlewareProperties`). */
  middlewareProperties: Record<string, JsonValue> = {};
  private readonly stagesByMode = new Map<boolean, WorkflowStages>();
  private readonly pendingStages = new Map<boolean, Promise<WorkflowStages>>();
  private env: Record<string, string> = {};
  private runner: Promise<WorkflowRunner> | undefined;
  /** Limits of the metered counters this request resolved, so utils.counters enforce the user's own plan. */
  private readonly counterSettings = new Map<string, CounterSettings>();
  private replaying = false;
  /** `utils.offers.list`, once the decision knows plans and feature states (stages/offers.ts enableOfferUtils). */
  private offersPort: OffersPort | undefined;

  constructor(
    private readonly services: Services,
    private readonly prepared: PreparedSnapshot,
    private readonly environment: Environment,
    private readonly store: string,
    private subject: { identity: ResolvedIdentity; bot: BotTag | undefined },
    private readonly facts: RequestFacts,
  ) {}

  get identity(): ResolvedIdentity {
    return this.subject.identity;
  }

  get bot(): BotTag | undefined {
    return this.subject.bot;
  }

  /** Middleware may replace the identifier or the bot tag; utils and later workflows follow. */
  setSubject(identity: ResolvedIdentity, bot: BotTag | undefined): void {
    this.subject = { identity, bot };
  }

  /** The meter answered this request as a replay: from now on, workflows' counters read instead of consuming. */
  markReplayed(): void {
    this.replaying = true;
  }

  listOffersWith(port: OffersPort): void {
    this.offersPort = port;
  }

  knowCounters(requests: readonly MeterRequest[]): void {
    for (const [counterId, settings] of counterSettingsOf(requests)) this.counterSettings.set(counterId, settings);
  }

  of(type: WorkflowType): SnapshotWorkflow[] {
    return this.prepared.snapshot.workflows.filter((workflow) => workflow.type === type);
  }

  has(type: WorkflowType): boolean {
    return this.prepared.snapshot.workflows.some((workflow) => workflow.type === type);
  }

  get records(): WorkflowRecord[] {
    return [...this.stagesByMode.values()].flatMap((stages) => stages.records);
  }

  /**
   * Runs one workflow and validates its result; undefined means "use the fallback" (a `required` one throws 531).
   * `args` is called once the environment's settings are loaded (they are part of the arguments).
   */
  async run<T>(
    workflow: SnapshotWorkflow,
    args: () => Record<string, unknown>,
    validate: (value: unknown) => T | undefined,
    { readOnly = false } = {},
  ): Promise<T | undefined> {
    const stages = await this.stages(readOnly);
    return stages.run(workflow, args(), validate);
  }

  /** Records a result the stage itself refused after validation (e.g. a value of the wrong type for a property). */
  async recordRefusal(workflow: SnapshotWorkflow, error: string): Promise<void> {
    (await this.stages(false)).records.push({ slug: workflow.slug, type: workflow.type, ok: false, durationMs: 0, kind: "bad_result", error });
  }

  /** What middleware receives: who and where, before plans are known. */
  middlewareArgs(): MiddlewareArgs {
    return { ...this.common(), plans: [] };
  }

  /** What provisioning, feature, surface and component workflows receive; each stage adds its own fields. */
  args(plans: string[]): BaseArgs {
    return { ...this.common(), plans, middlewareProperties: this.middlewareProperties };
  }

  private common(): Omit<MiddlewareArgs, "plans"> {
    const { identity, bot } = this.subject;
    return {
      identity: workflowIdentity(identity, bot),
      context: workflowContext(this.facts, bot),
      resource: (this.facts.resource as WorkflowResource | undefined) ?? null,
      env: this.env,
    };
  }

  /** One WorkflowStages per utils mode, created once even when a stage starts several workflows at the same time. */
  private stages(readOnly: boolean): Promise<WorkflowStages> {
    let pending = this.pendingStages.get(readOnly);
    if (!pending) {
      pending = this.loadRunner().then((runner) => {
        const stages = new WorkflowStages(runner, this.utils(readOnly));
        this.stagesByMode.set(readOnly, stages);
        return stages;
      });
      this.pendingStages.set(readOnly, pending);
    }
    return pending;
  }

  private loadRunner(): Promise<WorkflowRunner> {
    this.runner ??= this.services.workflowEnvironment(this.environment.id).then(
      (settings) => {
        this.env = settings.values;
        return this.services.workflowRunner({
          organizationId: this.environment.organizationId,
          environmentId: this.environment.id,
          egressHosts: settings.egressAllowList,
        });
      },
      // Settings that cannot be read (a secret that no longer decrypts after SECRETS_KEY changed, D1 down) make every
      // workflow of the request unavailable: each stage falls back (a required one answers 531), never a 500.
      (error: unknown) => {
        // The request falls back, but this is the platform's (or the operator's) failure: logged as an error.
        this.services.logger.error("workflow_settings_unavailable", { environmentId: this.environment.id, error: String(error) });
        return unavailableRunner("the environment's workflow settings could not be read");
      },
    );
    return this.runner;
  }

  private utils(readOnly: boolean) {
    return scopedUtils({
      meter: this.services.meter,
      organizationId: this.environment.organizationId,
      store: this.store,
      prepared: this.prepared,
      identifier: () => this.subject.identity.identifier,
      authenticated: () => this.subject.identity.isAuthenticated,
      readOnly,
      counterSettings: this.counterSettings,
      replaying: () => this.replaying,
      fireTrigger: (name, payload) => this.triggers.push({ name, payload }),
      payments: this.services.payments({ environment: this.environment, prepared: this.prepared, store: this.store }),
      offers: (options) => {
        if (!this.offersPort) throw new Error(OFFERS_UNAVAILABLE);
        return this.offersPort(options);
      },
    });
  }
}

const OFFERS_UNAVAILABLE = "utils.offers.list is available to surface and component workflows only (where the decision's plans and feature states are known)";

/** A runner whose every call fails as unavailable, without starting an isolate. */
function unavailableRunner(reason: string): WorkflowRunner {
  const outcome = { ok: false as const, kind: "unavailable" as const, error: reason, durationMs: 0 };
  return { run: async () => outcome, runEndpoint: async () => outcome };
}
