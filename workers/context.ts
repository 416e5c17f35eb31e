/** The typed Hono environment shared by middleware and routes: the only code that sees Hono's Context. */
import type { RequestIdVariables } from "hono/request-id";
import type { TimingVariables } from "hono/timing";
import type { Services } from "./decision/services";
import type { ApiKeyInfo } from "./services/apiKeys";
import type { Environment } from "./services/tenancy";

export type AuthContext =
  | { kind: "operator"; organizationId: string | null }
  | { kind: "key"; key: ApiKeyInfo; organizationId: string; environment: Environment };

export interface AppEnv {
  Bindings: Env;
  Variables: RequestIdVariables &
    TimingVariables & {
      auth: AuthContext;
      services: Services;
    };
}
