/** Pieces shared by the admin routes. */
import { z } from "@hono/zod-openapi";
import { permit } from "../../middleware/permissions";
import { ORGANIZATION_ROLES } from "../../services/organizationKeys";

/** Every admin route names its action and where it acts: `permit(action, scope)` (middleware/permissions.ts). */
export { environmentOfOrganization, permit } from "../../middleware/permissions";

/** Operator-only routes (organizations). */
export const operatorAuth = permit("organizations.manage", "platform");

export const security = [{ Bearer: [] }];

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

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

export const OrganizationKeySchema = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    role: z.enum(ORGANIZATION_ROLES),
    name: z.string(),
    prefix: z.string().openapi({ example: "ok_org_0123456789abcdef_a1b2" }),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .openapi("OrganizationKey");

export const CreatedOrganizationKeySchema = OrganizationKeySchema.extend({
  key: z.string().openapi({ description: "The plain key. Shown once; only its hash is stored." }),
}).openapi("CreatedOrganizationKey");

export const OrganizationSchema = z.object({ id: z.string(), name: z.string(), createdAt: z.string() }).openapi("Organization");

export const EnvironmentIdParam = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" }, example: "env_0123456789abcdef" }),
});
