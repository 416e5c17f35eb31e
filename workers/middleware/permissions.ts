/**
 * Who may do what on the admin API. Every admin route names one action and where it acts (`permit(action, scope)`);
 * this file is the whole matrix:
 *
 * - the operator token: everything, on any organization (picked with X-Organization-Id);
 * - an organization key: its organization, within its role — `admin` everything, `deployer` every read but the
 *   list of organization keys, plus the configuration (drafts, versions) and deploys/rollbacks of any environment,
 *   `read-only` every read but the list of organization keys;
 * - an environment's secret key: its own environment only (its keys, deployments, variables, customers, meters,
 *   events), plus reads of what all environments share (the organization and its configuration). It never writes
 *   the configuration nor manages environments: a key handed to a preview environment's code must not be able to
 *   change what the live environment serves. Customers and meters live in the user data store, which environments
 *   of one type share (services/tenancy.ts storeOf): an environment key reaches them only while its environment is
 *   the store's only one, since through its own path it would otherwise read and write the other environments' users.
 *
 * Another organization's resources stay indistinguishable from missing ones (404); another environment of the
 * caller's own organization, reached with an environment key, is a 403 that says which credential is needed.
 */
import { createMiddleware } from "hono/factory";
import type { Context } from "hono";
import type { AppEnv, AuthContext } from "../context";
import { ApiError } from "../errors";
import { getApiKey, type ApiKeyInfo } from "../services/apiKeys";
import type { OrganizationRole } from "../services/organizationKeys";
import { getEnvironment, listEnvironments, storeOf, type Environment } from "../services/tenancy";
import { authenticate, bearerToken, organizationOf } from "./auth";

interface Rule {
  /** Said in refusals: "… may not <what>". */
  what: string;
  /** The organization key roles that may take the action. */
  roles: readonly OrganizationRole[];
  /**
   * An environment's secret key: `own` — on its own environment only; `organization` — a read of what every
   * environment shares; `never`.
   */
  environmentKey: "own" | "organization" | "never";
  /**
   * The action reads or writes the environment's user data store (customers, counters, credits) rather than the
   * environment's own rows: an environment key may take it only where no other environment shares that store.
   */
  store?: true;
}

const READERS = ["admin", "deployer", "read-only"] as const;
const CONFIGURERS = ["admin", "deployer"] as const;
const ADMINS = ["admin"] as const;

/** The matrix. README "Permissions" shows it as a table; test/integration/admin/permissions.test.ts tests every cell. */
export const RULES = {
  "organizations.manage": { what: "create or list organizations", roles: [], environmentKey: "never" },
  "organization.read": { what: "read the organization", roles: READERS, environmentKey: "organization" },
  "organizationKeys.read": { what: "list organization keys", roles: ADMINS, environmentKey: "never" },
  "organizationKeys.write": { what: "create, revoke or rotate organization keys", roles: ADMINS, environmentKey: "never" },
  "environments.list": { what: "list environments", roles: READERS, environmentKey: "organization" },
  "environments.create": { what: "create environments", roles: ADMINS, environmentKey: "never" },
  "environment.read": { what: "read an environment", roles: READERS, environmentKey: "own" },
  "environment.rename": { what: "rename environments", roles: ADMINS, environmentKey: "never" },
  "environment.delete": { what: "delete environments", roles: ADMINS, environmentKey: "never" },
  "keys.read": { what: "list an environment's keys", roles: READERS, environmentKey: "own" },
  "keys.write": { what: "create, revoke or rotate an environment's keys", roles: ADMINS, environmentKey: "own" },
  "configuration.read": { what: "read the configuration", roles: READERS, environmentKey: "organization" },
  "configuration.write": { what: "write the configuration", roles: CONFIGURERS, environmentKey: "never" },
  "versions.create": { what: "create versions", roles: CONFIGURERS, environmentKey: "never" },
  "deployments.read": { what: "read deployments", roles: READERS, environmentKey: "own" },
  "deployments.write": { what: "deploy or roll back", roles: CONFIGURERS, environmentKey: "own" },
  "settings.read": { what: "read workflow variables and egress", roles: READERS, environmentKey: "own" },
  "settings.write": { what: "change workflow variables, secrets and egress", roles: ADMINS, environmentKey: "own" },
  "payments.read": { what: "read the payment connection", roles: READERS, environmentKey: "own" },
  "payments.write": { what: "connect or disconnect the payment provider", roles: ADMINS, environmentKey: "own" },
  "customers.read": { what: "read customers", roles: READERS, environmentKey: "own", store: true },
  "customers.write": { what: "change customers", roles: ADMINS, environmentKey: "own", store: true },
  "meters.read": { what: "read counters and credit balances", roles: READERS, environmentKey: "own", store: true },
  "meters.write": { what: "reset counters or grant credits", roles: ADMINS, environmentKey: "own", store: true },
  "events.read": { what: "read events", roles: READERS, environmentKey: "own" },
  // A playground decision is real (it consumes meters and is recorded), as a call with the environment's secret key.
  "decisions.test": { what: "run playground decisions", roles: CONFIGURERS, environmentKey: "own" },
  "deadLetters.read": { what: "read dead letters", roles: READERS, environmentKey: "own" },
  "deadLetters.write": { what: "retry or delete dead letters", roles: ADMINS, environmentKey: "own" },
} as const satisfies Record<string, Rule>;

export type Action = keyof typeof RULES;

const rolesNeeded = (rule: Rule) => (rule.roles.length === 1 ? `the ${rule.roles[0]} role` : `the ${rule.roles.slice(0, -1).join(", ")} or ${rule.roles.at(-1)} role`);

/** Whether this credential may take the action at all (where it acts is checked by `authorizeEnvironment`). */
export function authorize(auth: AuthContext, action: Action): void {
  const rule: Rule = RULES[action];
  if (auth.kind === "operator") return;
  if (rule.roles.length === 0) throw new ApiError("forbidden", "This operation needs the operator token");
  if (auth.kind === "organizationKey") {
    if (!rule.roles.includes(auth.key.role)) {
      throw new ApiError("forbidden", `An organization key with the ${auth.key.role} role may not ${rule.what}: this needs ${rolesNeeded(rule)}`);
    }
    return;
  }
  if (rule.environmentKey === "never") {
    throw new ApiError(
      "forbidden",
      `An environment's key acts on its own environment only and may not ${rule.what}: use an organization key with ${rolesNeeded(rule)}`,
    );
  }
}

/**
 * An environment key acts on its own environment only; organization keys and the operator on any of theirs. Fails
 * closed: an action on one environment whose rule does not say `own` is refused to every environment key.
 */
export function authorizeEnvironment(auth: AuthContext, action: Action, environmentId: string): void {
  const rule: Rule = RULES[action];
  if (auth.kind !== "key") return;
  requireOwnRule(rule);
  if (auth.environment.id === environmentId) return;
  throw new ApiError(
    "forbidden",
    `This key acts on its own environment (${auth.environment.id}) only; to ${rule.what} in ${environmentId}, use that environment's key or an organization key with ${rolesNeeded(rule)}`,
  );
}

function requireOwnRule(rule: Rule): void {
  if (rule.environmentKey !== "own") {
    // A rule that does not hold environment keys to their own environment has no business on a route of one.
    throw new ApiError("forbidden", `An environment's key may not ${rule.what} here: use an organization key with ${rolesNeeded(rule)}`);
  }
}

/**
 * An environment key may reach its user data store only while no other environment of the organization shares it:
 * the store's customers, counters and credits are the other environments' users too.
 */
export function authorizeStore(auth: AuthContext, action: Action, environment: Environment, environments: readonly Environment[]): void {
  const rule: Rule = RULES[action];
  if (auth.kind !== "key" || !rule.store) return;
  const sharing = environments.filter((other) => other.id !== environment.id && storeOf(other) === storeOf(environment)).map((other) => other.slug);
  if (sharing.length === 0) return;
  throw new ApiError(
    "forbidden",
    `The ${storeOf(environment)} user data store of ${environment.id} is shared with other environments (${sharing.join(", ")}): to ${rule.what}, which reaches their users too, use an organization key with ${rolesNeeded(rule)}`,
  );
}

/** The environments a credential may see: an environment key sees its own. */
export function visibleEnvironments(auth: AuthContext, environments: Environment[]): Environment[] {
  return auth.kind === "key" ? environments.filter((environment) => environment.id === auth.environment.id) : environments;
}

/** An environment of the caller's organization; another organization's id is indistinguishable from a missing one. */
export async function environmentOfOrganization(db: D1Database, organizationId: string, environmentId: string): Promise<Environment> {
  const environment = await getEnvironment(db, environmentId);
  if (!environment || environment.organizationId !== organizationId) throw new ApiError("not_found", `Environment ${environmentId} not found`);
  return environment;
}

/**
 * Where a route acts:
 * - `platform`: no one organization (creating and listing organizations);
 * - `organization`: the organization as a whole;
 * - `environment`: the `{environmentId}` of the path;
 * - `apiKey`: the environment of the key `{keyId}` of the path;
 * - `environmentFilter`: an optional `?environmentId=` filter over the organization's records; an environment key
 *   is held to its own environment.
 */
export type Scope = "platform" | "organization" | "environment" | "apiKey" | "environmentFilter";

interface Targets {
  platform: Record<string, never>;
  organization: { organizationId: string };
  environment: { organizationId: string; environment: Environment };
  apiKey: { organizationId: string; apiKey: ApiKeyInfo };
  environmentFilter: { organizationId: string; environmentId: string | undefined };
}
export type TargetOf<S extends Scope> = Targets[S];

/** The admin routes' middleware: authenticates, checks the action, resolves and checks where it acts (`c.var.target`). */
export function permit<S extends Scope>(action: Action, scope: S) {
  return createMiddleware<{ Bindings: Env; Variables: AppEnv["Variables"] & { target: TargetOf<S> } }>(async (c, next) => {
    const organizationHeader = scope === "platform" ? undefined : c.req.header("x-organization-id");
    const auth = await authenticate(c.env, bearerToken(c.req.header("authorization")), ["operator", "organization", "secret"], organizationHeader);
    c.set("auth", auth);
    authorize(auth, action);
    c.set("target", (await resolveTarget(c, auth, action, scope)) as TargetOf<S>);
    await next();
  });
}

async function resolveTarget(c: Context, auth: AuthContext, action: Action, scope: Scope): Promise<Targets[Scope]> {
  if (scope === "platform") return {};
  const organizationId = organizationOf(auth);
  const db = (c.env as Env).DB;
  switch (scope) {
    case "organization":
      return { organizationId };
    case "environment": {
      const environment = await environmentOfOrganization(db, organizationId, c.req.param("environmentId") ?? "");
      authorizeEnvironment(auth, action, environment.id);
      if (auth.kind === "key" && (RULES[action] as Rule).store) authorizeStore(auth, action, environment, await listEnvironments(db, organizationId));
      return { organizationId, environment };
    }
    case "apiKey": {
      const keyId = c.req.param("keyId") ?? "";
      const apiKey = await getApiKey(db, keyId);
      if (!apiKey || apiKey.organizationId !== organizationId) throw new ApiError("not_found", `Key ${keyId} not found`);
      authorizeEnvironment(auth, action, apiKey.environmentId);
      return { organizationId, apiKey };
    }
    case "environmentFilter": {
      const requested = c.req.query("environmentId");
      if (requested) {
        await environmentOfOrganization(db, organizationId, requested);
        authorizeEnvironment(auth, action, requested);
        return { organizationId, environmentId: requested };
      }
      if (auth.kind !== "key") return { organizationId, environmentId: undefined };
      requireOwnRule(RULES[action]);
      return { organizationId, environmentId: auth.environment.id };
    }
  }
}
