/** The typed Hono environment shared by middleware and routes. */
import type { ApiKeyInfo } from "./services/apiKeys";
import type { Environment } from "./services/tenancy";
import type { Timings } from "./lib/timings";

export type AuthContext =
  | { kind: "operator"; organizationId: string | null }
  | { kind: "key"; key: ApiKeyInfo; organizationId: string; environment: Environment };

export interface AppEnv {
  Bindings: Env;
  Variables: {
    requestId: string;
    auth: AuthContext;
    timings: Timings;
  };
}
