/**
 * What the decision flows depend on, as plain values: built once per request from the Worker's bindings
 * (middleware/services.ts) and handed to every stage. Stages never see Hono; tests replace any member (a failing
 * meter, a fixed clock) by building their own.
 */
import type { MeterClient } from "../../durable-objects/meter/client";
import type { PreparedSnapshot, VerdictMemo } from "../engine";
import type { CustomerRecord } from "../services/customers";
import type { WorkflowEnvironment } from "../services/environmentSettings";
import type { EventInput } from "../services/events";
import type { ApiKeyInfo } from "../services/apiKeys";
import type { Environment } from "../services/tenancy";
import type { WorkflowRunner } from "../workflows/runner";
import type { RunnerTarget } from "../workflows/select";
import type { TriggerQueue } from "../workflows/triggers";
import type { PaymentsAccessScope } from "../workflows/paymentsAccess";
import type { PaymentsPort } from "../workflows/utils";
import type { UsageReportMessage } from "../payments/usage";
import type { OfferTokenClaims } from "../engine/offerTypes";
import type { OfferTokenInput } from "../offers/tokens";
import type { KeyDirectoryLookup } from "../identity/webBotAuth";
import type { X402Gateway } from "../payments/x402Charge";

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Structured log lines (one JSON object each), so operators can filter them in Workers Logs. */
export interface Logger {
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** Per-stage durations: reported in `Server-Timing` and kept on the decision record. */
export interface StageTimer {
  /** Records the time since the previous mark (or since the request began) under `stage`. */
  mark(stage: string): void;
  toRecord(): Record<string, number>;
}

export interface Services {
  db: D1Database;
  clock: Clock;
  logger: Logger;
  timing: StageTimer;
  /** Keeps work going after the response (records, triggers); it never delays the response. */
  waitUntil(work: Promise<unknown>): void;
  /** A deployed version's prepared snapshot (immutable, cached per isolate). */
  snapshot(versionId: string): Promise<PreparedSnapshot>;
  /** API keys and environments by their raw key / id (short-lived per-isolate caches). */
  lookupApiKey(rawKey: string): Promise<ApiKeyInfo | null>;
  lookupEnvironment(environmentId: string): Promise<Environment | null>;
  /** The customer record (Stripe products) of an identifier in a user data store. */
  customer(organizationId: string, store: string, identifier: string): Promise<CustomerRecord | null>;
  /**
   * A signed-in identity has no customer record: ask the payment provider about it in the background (at most once
   * per identity and hour; nothing when the environment has no provider). Never waited for.
   */
  lookUpCustomerLater(environment: Environment, identifier: string): void;
  /**
   * Deductions left these credits of a signed-in identity below their `autoTopUp` threshold: ask for their packs to be
   * bought in the background (payments/topUp.ts; at most once per identity, credit and 10 minutes here). Never waited for.
   */
  requestCreditTopUps(environment: Environment, identifier: string, due: { creditId: string; productId: string }[]): void;
  /** Queues overage units for usage-based billing (payments/usage.ts) after the response. Never waited for. */
  reportUsageLater(message: UsageReportMessage): void;
  /** Variables, decrypted secrets and the egress allow-list workflows of an environment get. */
  workflowEnvironment(environmentId: string): Promise<WorkflowEnvironment>;
  meter: MeterClient;
  /** `utils.payments` for workflows of an environment: the port for an identity (the provider's keys stay inside). */
  payments(scope: PaymentsAccessScope): (identity: { identifier: string; authenticated: boolean }) => PaymentsPort;
  /** The runtime that runs an organization's workflows (Worker Loader locally, a dispatch namespace in production). */
  workflowRunner(target: RunnerTarget): WorkflowRunner;
  triggers: TriggerQueue;
  /** Decision records: buffered and written in batches after the response. */
  recordEvent(event: EventInput & { id: string }): void;
  /** Other records (counter updates, links): written now, inside `waitUntil` by the caller. */
  insertEvent(event: EventInput): Promise<string>;
  /** Memo for the engine's bot classification. */
  botVerdicts: VerdictMemo;
  /** Agents' Web Bot Auth key directories (fetched from their origins, cached per isolate). */
  keyDirectories: KeyDirectoryLookup;
  /** The environment's x402 gateway (its settings through a short per-isolate cache), or null when it takes no x402. */
  x402(environmentId: string): Promise<X402Gateway | null>;
  /** Signs offer tokens (workers/offers/tokens.ts) at the request's clock; the platform secret stays inside. */
  offerTokens: OfferTokenMinter;
}

export interface OfferTokenMinter {
  mint(input: OfferTokenInput): Promise<{ token: string; claims: OfferTokenClaims }>;
}
