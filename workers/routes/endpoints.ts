/** `ANY /api/v1/envs/{environmentId}/endpoints/{path…}`: customer endpoint workflows (see decision/endpoint.ts). */
import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import type { AppEnv } from "../context";
import { ApiError, errorResponses } from "../errors";
import { MAX_ENDPOINT_BODY_BYTES, PROXY_VERSION_HEADER, runEndpointWorkflow } from "../decision/endpoint";
import { transportOf } from "./transport";

const PATH = "/api/v1/envs/{environmentId}/endpoints/{path}";

const endpointBodyLimit = bodyLimit({
  maxSize: MAX_ENDPOINT_BODY_BYTES,
  onError: () => {
    throw new ApiError("payload_too_large", `Request body larger than ${MAX_ENDPOINT_BODY_BYTES} bytes`);
  },
});

export function registerEndpointRoutes(app: OpenAPIHono<AppEnv>): void {
  app.all("/api/v1/envs/:environmentId/endpoints/*", endpointBodyLimit, (c) =>
    runEndpointWorkflow(c.var.services, {
      environmentId: c.req.param("environmentId"),
      request: c.req.raw,
      key: c.req.header("x-mos-key"),
      userJwt: c.req.header("x-mos-user-jwt"),
      proxyVersion: c.req.header(PROXY_VERSION_HEADER),
      transport: transportOf(c),
    }),
  );

  // Documentation only: the handler above serves every method.
  for (const method of ["get", "post", "put", "patch", "delete"] as const) {
    app.openAPIRegistry.registerPath({
      method,
      path: PATH,
      tags: ["Endpoints"],
      summary: "Run the endpoint workflow bound to this path",
      description:
        "Any method. Access per endpoint: none, publishable (a publishable or secret key of this environment) or secret, sent in `X-MOS-Key`. " +
        "`X-MOS-User-Jwt` optionally identifies the user (verified with the environment's auth methods). The workflow's Response is returned whole, " +
        "its cookies confined to this environment's endpoints and rendered sandboxed (the origin is shared), unless the call comes through the customer's " +
        "own proxy, marked with `X-MOS-Proxy-Version` (a CORS preflight asking for it is refused, so no browser sends it). A failing workflow answers 531, and so does a " +
        "response over 1 MiB, over 100 headers or 32 KiB of them, or not complete within the workflow's deadline. Request bodies up to 1 MiB.",
      request: {
        params: z.object({ environmentId: z.string(), path: z.string().openapi({ description: "the endpoint's path; may contain slashes" }) }),
        headers: z.object({
          "x-mos-key": z.string().optional(),
          "x-mos-user-jwt": z.string().optional(),
          "x-mos-proxy-version": z.string().optional().openapi({ description: "set by the customer's own server-side proxy: the response is the customer's site's, unconfined" }),
        }),
      },
      responses: { 200: { description: "Whatever the workflow returns" }, ...errorResponses(401, 403, 404, 413, 531) },
    });
  }
}
