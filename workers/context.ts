/** The typed Hono environment shared by middleware and routes: the only code that sees Hono's Context. */
import type { RequestIdVariables } from "hono/request-id";
import type { TimingVariables } from "hono/timing";
import type { Services } from "./decision/services";
import type { ApiKeyInfo } from "./services/apiKeys";
import type { OrganizationKeyInfo } from "./services/organizationKeys";
import type { Environment } from "./services/tenancy";

/**
 * Who is calling: the operator (every organization, one at a time through X-Organization-Id), an environment's API
 * key (its own environment), or an organization key (its organization, within its role). What each may do is
 * middleware/permissions.ts.
 */
export type AuthContext =
  | { kind: "operator"; organizationId: string | null }
  | { kind: "key"; key: ApiKeyInfo; organizationId: string; environment: Environment }
  | { kind: "organizationKey"; key: OrganizationKeyInfo; organizationId: string };

export interface AppEnv {
  Bindings: Env;
  Variables: RequestIdVariables &
    TimingVariables & {
      auth: AuthContext;
      services: Services;
    };
}
