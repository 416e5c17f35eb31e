/**
 * `utils` as workflows see them, served over RPC from the platform's isolate and scoped to the request's
 * organization, environment, user data store and identity: a workflow names keys and counters, never tenants,
 * so it cannot reach another tenant's data. The harness (runner.ts) wraps these flat methods into the documented
 * nested shape (`utils.customData.get`, `utils.counters.consume`, …).
 */
import { RpcTarget } from "cloudflare:workers";
import { testGroup100 } from "../engine/testGroup";

export const MAX_CUSTOM_DATA_KEY_LENGTH = 999;

/** What utils need from the user's Durable Object; implemented by the meter client. */
export interface UserDataPort {
  customDataGet(key: string): Promise<unknown>;
  customDataSet(key: string, value: unknown): Promise<void>;
  customDataDelete(key: string): Promise<boolean>;
  consume(counterId: string, resourceId: string | undefined): Promise<unknown>;
  increment(counterId: string, update: number, resourceId: string | undefined): Promise<unknown>;
  linkFrom(fromIdentifier: string): Promise<unknown>;
}

/**
 * What utils need from the payment provider, already scoped to the tenant, environment and identity: the secret key
 * never reaches a workflow. Absent where the platform builds utils without payments.
 */
export interface PaymentsPort {
  customer(): Promise<unknown>;
  invoices(limit: number): Promise<unknown>;
  checkout(input: { plan: string; price?: string; successUrl: string; cancelUrl: string }): Promise<unknown>;
  portal(input: { returnUrl: string }): Promise<unknown>;
}

/** The offers a decision's identity is eligible for, as plain JSON views with their tokens (decision/stages/offers.ts). */
export type OffersPort = (options: { groups?: string[]; offers?: string[] }) => Promise<unknown[]>;

/** Most slugs a `utils.offers.list` filter may name (the dispatch harness checks the same bound). */
export const MAX_OFFER_FILTER = 100;

export interface UtilsScope {
  /** The store prefix of counter ids this request may touch (e.g. "default"). */
  store: string;
  /** Counter ids of the deployed version (`{store}:{featureId}.{property}`) → metering settings. */
  counterIds: ReadonlySet<string>;
  readOnly: boolean;
  user: UserDataPort;
  resolveJwt(token: string): Promise<{ ok: boolean; claims?: Record<string, unknown>; identifier?: string; reason?: string }>;
  fireTrigger(name: string, payload: unknown): void;
  payments?: PaymentsPort;
  offers?: OffersPort;
}

export class WorkflowUtils extends RpcTarget {
  constructor(private readonly scope: UtilsScope) {
    super();
  }

  private writable(operation: string): void {
    if (this.scope.readOnly) throw new Error(`${operation} is not available to provisioning workflows (their utils are read-only)`);
  }

  private checkKey(key: unknown): string {
    if (typeof key !== "string" || key.length === 0 || key.length > MAX_CUSTOM_DATA_KEY_LENGTH) {
      throw new Error(`custom data keys must be strings of 1-${MAX_CUSTOM_DATA_KEY_LENGTH} characters`);
    }
    return key;
  }

  private checkCounter(counterId: unknown): string {
    if (typeof counterId !== "string" || !this.scope.counterIds.has(counterId)) {
      throw new Error(`unknown counter ${String(counterId)}: counters look like ${this.scope.store}:feat_….enabled`);
    }
    return counterId;
  }

  customDataGet(key: string): Promise<unknown> {
    return this.scope.user.customDataGet(this.checkKey(key));
  }

  async customDataSet(key: string, value: unknown): Promise<void> {
    this.writable("customData.set");
    const serialized = JSON.stringify(value);
    if (serialized === undefined || serialized.length > 64 * 1024) throw new Error("custom data values must be JSON of at most 64 KiB");
    await this.scope.user.customDataSet(this.checkKey(key), JSON.parse(serialized));
  }

  async customDataDelete(key: string): Promise<boolean> {
    this.writable("customData.delete");
    return this.scope.user.customDataDelete(this.checkKey(key));
  }

  countersConsume(counterId: string, options: { resourceId?: string }): Promise<unknown> {
    this.writable("counters.consume");
    return this.scope.user.consume(this.checkCounter(counterId), options?.resourceId);
  }

  countersIncrement(counterId: string, update: number, options: { resourceId?: string }): Promise<unknown> {
    this.writable("counters.incrementCounter");
    if (!Number.isInteger(update) || Math.abs(update) > 1_000_000) throw new Error("update must be an integer");
    return this.scope.user.increment(this.checkCounter(counterId), update, options?.resourceId);
  }

  resolveJwt(token: string) {
    return this.scope.resolveJwt(token);
  }

  linkIdentity(fromIdentifier: string, options: { mode?: string }): Promise<unknown> {
    this.writable("identities.link");
    if ((options?.mode ?? "copy_once") !== "copy_once") throw new Error("the only link mode is copy_once");
    if (typeof fromIdentifier !== "string" || !fromIdentifier || fromIdentifier.length > 512) throw new Error("fromIdentifier must be a string");
    return this.scope.user.linkFrom(fromIdentifier);
  }

  private paymentsPort(operation: string): PaymentsPort {
    if (!this.scope.payments) throw new Error(`${operation} is not available here`);
    return this.scope.payments;
  }

  paymentsCustomer(): Promise<unknown> {
    return this.paymentsPort("payments.customer").customer();
  }

  paymentsInvoices(options: { limit?: number }): Promise<unknown> {
    const limit = options?.limit ?? 10;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new Error("limit must be an integer from 1 to 100");
    return this.paymentsPort("payments.invoices").invoices(limit);
  }

  paymentsCheckout(input: { plan?: unknown; price?: unknown; successUrl?: unknown; cancelUrl?: unknown }): Promise<unknown> {
    // Opening a Checkout page changes nothing the user holds, but it is a call with effects at the provider.
    this.writable("payments.createCheckoutSession");
    const text = (value: unknown, name: string, optional = false): string | undefined => {
      if (optional && value === undefined) return undefined;
      if (typeof value !== "string" || value.length === 0 || value.length > 2048) throw new Error(`${name} must be a string of 1-2048 characters`);
      return value;
    };
    return this.paymentsPort("payments.createCheckoutSession").checkout({
      plan: text(input?.plan, "plan")!,
      ...(input?.price === undefined ? {} : { price: text(input.price, "price")! }),
      successUrl: text(input?.successUrl, "successUrl")!,
      cancelUrl: text(input?.cancelUrl, "cancelUrl")!,
    });
  }

  paymentsPortal(input: { returnUrl?: unknown }): Promise<unknown> {
    this.writable("payments.createPortalSession");
    if (typeof input?.returnUrl !== "string" || input.returnUrl.length === 0 || input.returnUrl.length > 2048) throw new Error("returnUrl must be a string of 1-2048 characters");
    return this.paymentsPort("payments.createPortalSession").portal({ returnUrl: input.returnUrl });
  }

  async offersList(options: { groups?: unknown; offers?: unknown } | undefined): Promise<unknown[]> {
    if (!this.scope.offers) throw new Error("utils.offers.list is available to surface and component workflows only");
    const slugs = (value: unknown, name: string): string[] | undefined => {
      if (value === undefined) return undefined;
      if (!Array.isArray(value) || value.length > MAX_OFFER_FILTER || !value.every((slug) => typeof slug === "string" && slug.length > 0 && slug.length <= 100)) {
        throw new Error(`${name} must be a list of at most ${MAX_OFFER_FILTER} slugs`);
      }
      return value as string[];
    };
    const groups = slugs(options?.groups, "groups");
    const offers = slugs(options?.offers, "offers");
    return this.scope.offers({ ...(groups ? { groups } : {}), ...(offers ? { offers } : {}) });
  }

  fireTrigger(name: string, payload: unknown): void {
    this.writable("triggers.fire");
    if (typeof name !== "string" || !/^[a-z0-9][a-z0-9._-]{0,99}$/.test(name)) throw new Error("trigger names are 1-100 characters of a-z, 0-9, '.', '_' or '-'");
    this.scope.fireTrigger(name, payload);
  }

  testGroup100(identifier: string): number {
    return testGroup100(String(identifier));
  }
}
