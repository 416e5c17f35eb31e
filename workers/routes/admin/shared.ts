/** Pieces shared by the admin routes. */
import { z } from "@hono/zod-openapi";
import { ApiError } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { getEnvironment, type Environment } from "../../services/tenancy";

export const adminAuth = requireAuth("secret", "operator");
export const operatorAuth = requireAuth("operator");
export const security = [{ Bearer: [] }];

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

/** An environment of the caller's organization; another organization's id is indistinguishable from a missing one. */
export async function environmentOfOrganization(db: D1Database, organizationId: string, environmentId: string): Promise<Environment> {
  const environment = await getEnvironment(db, environmentId);
  if (!environment || environment.organizationId !== organizationId) throw new ApiError("not_found", `Environment ${environmentId} not found`);
  return environment;
}

export const EnvironmentSchema = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    slug: z.string(),
    name: z.string(),
    type: z.enum(["preview", "production"]),
    deployedVersionId: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("Environment");

export const ApiKeySchema = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    environmentId: z.string(),
    type: z.enum(["secret", "publishable"]),
    name: z.string(),
    prefix: z.string().openapi({ example: "sk_env_0123456789abcdef_a1b2" }),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .openapi("ApiKey");

export const CreatedKeySchema = ApiKeySchema.extend({
  key: z.string().openapi({ description: "The plain key. Shown once; only its hash is stored." }),
}).openapi("CreatedApiKey");

export const OrganizationSchema = z.object({ id: z.string(), name: z.string(), createdAt: z.string() }).openapi("Organization");

export const EnvironmentIdParam = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" }, example: "env_0123456789abcdef" }),
});
