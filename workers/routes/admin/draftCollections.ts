/**
 * CRUD over the collections of the draft document (features, plans, surfaces, authentication methods, workflows,
 * offers and offer groups).
 * Each collection is a record keyed by slug inside the one draft document; every edit re-validates the whole draft
 * (see services/drafts.ts), so a plan can never point at a feature that was deleted.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import {
  AuthMethodDefinition,
  FeatureDefinition,
  OfferDefinition,
  OfferGroupDefinition,
  PlanDefinition,
  Slug,
  SurfaceDefinition,
  WorkflowDefinition,
  type ConfigDocument,
} from "../../../schema/config";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses, validationError } from "../../errors";
import { editDraft, getDraft } from "../../services/drafts";
import { json, jsonBody, permit, security } from "./shared";

type CollectionKey = "features" | "plans" | "surfaces" | "authMethods" | "workflows" | "offers" | "offerGroups";

interface Collection {
  key: CollectionKey;
  path: string;
  tag: string;
  singular: string;
  schema: z.ZodType;
}

const COLLECTIONS: Collection[] = [
  { key: "features", path: "features", tag: "Features", singular: "feature", schema: FeatureDefinition },
  { key: "plans", path: "plans", tag: "Plans", singular: "plan", schema: PlanDefinition },
  { key: "surfaces", path: "surfaces", tag: "Surfaces", singular: "surface", schema: SurfaceDefinition },
  { key: "authMethods", path: "auth-methods", tag: "Authentication methods", singular: "authentication method", schema: AuthMethodDefinition },
  { key: "workflows", path: "workflows", tag: "Workflows", singular: "workflow", schema: WorkflowDefinition },
  { key: "offers", path: "offers", tag: "Offers", singular: "offer", schema: OfferDefinition },
  { key: "offerGroups", path: "offer-groups", tag: "Offers", singular: "offer group", schema: OfferGroupDefinition },
];

const SlugParam = z.object({ slug: Slug.openapi({ param: { name: "slug", in: "path" }, example: "widget" }) });
const reading = { security, middleware: permit("configuration.read", "organization") };
const writing = { security, middleware: permit("configuration.write", "organization") };
const Item = z.record(z.string(), z.unknown()).openapi({ description: "The item with its slug" });

/** Own keys only: `constructor` is a valid slug, and must not find Object.prototype's member. */
const has = (record: object, slug: string) => Object.hasOwn(record, slug);

function itemOf(document: ConfigDocument, key: CollectionKey, slug: string) {
  const record = document[key] as Record<string, object>;
  return has(record, slug) ? { slug, ...record[slug] } : undefined;
}

function registerCollection(app: OpenAPIHono<AppEnv>, collection: Collection): void {
  const base = `/api/v1/admin/${collection.path}`;
  const tags = [collection.tag];
  const routes = {
    list: createRoute({
      method: "get",
      path: base,
      tags,
      summary: `List ${collection.path} of the draft`,
      ...reading,
      responses: { 200: json(z.object({ items: z.array(Item), revision: z.number() }), "Items"), ...errorResponses(401, 403) },
    }),
    create: createRoute({
      method: "post",
      path: base,
      tags,
      summary: `Add a ${collection.singular} to the draft`,
      ...writing,
      request: { body: jsonBody(z.object({ slug: Slug }).passthrough()) },
      responses: { 201: json(Item, "The created item"), ...errorResponses(400, 401, 403, 409, 413) },
    }),
    get: createRoute({
      method: "get",
      path: `${base}/{slug}`,
      tags,
      summary: `Get a ${collection.singular} of the draft`,
      ...reading,
      request: { params: SlugParam },
      responses: { 200: json(Item, "The item"), ...errorResponses(401, 403, 404) },
    }),
    put: createRoute({
      method: "put",
      path: `${base}/{slug}`,
      tags,
      summary: `Create or replace a ${collection.singular} of the draft`,
      ...writing,
      request: { params: SlugParam, body: jsonBody(collection.schema) },
      responses: { 200: json(Item, "The stored item"), ...errorResponses(400, 401, 403, 409, 413) },
    }),
    remove: createRoute({
      method: "delete",
      path: `${base}/{slug}`,
      tags,
      summary: `Remove a ${collection.singular} from the draft (409 while others refer to it)`,
      ...writing,
      request: { params: SlugParam },
      responses: { 200: json(z.object({ deleted: z.literal(true) }), "Deleted"), ...errorResponses(401, 403, 404, 409) },
    }),
  };

  app.openapi(routes.list, async (c) => {
    const draft = await getDraft(c.env.DB, c.var.target.organizationId);
    const items = Object.keys(draft.document[collection.key]).map((slug) => itemOf(draft.document, collection.key, slug)!);
    return c.json({ items, revision: draft.revision }, 200);
  });

  app.openapi(routes.create, async (c) => {
    const { slug, ...definition } = c.req.valid("json") as { slug: string } & Record<string, unknown>;
    const parsed = collection.schema.safeParse(definition);
    if (!parsed.success) throw validationError(parsed.error);
    const draft = await editDraft(c.env.DB, c.var.target.organizationId, (document) => {
      const record = document[collection.key] as Record<string, unknown>;
      if (has(record, slug)) throw new ApiError("conflict", `A ${collection.singular} with slug ${slug} exists`);
      record[slug] = definition;
      return document;
    });
    return c.json(itemOf(draft.document, collection.key, slug)!, 201);
  });

  app.openapi(routes.get, async (c) => {
    const { slug } = c.req.valid("param");
    const draft = await getDraft(c.env.DB, c.var.target.organizationId);
    const item = itemOf(draft.document, collection.key, slug);
    if (!item) throw new ApiError("not_found", `No ${collection.singular} ${slug} in the draft`);
    return c.json(item, 200);
  });

  app.openapi(routes.put, async (c) => {
    const { slug } = c.req.valid("param");
    const body = (await c.req.json()) as Record<string, unknown>;
    const draft = await editDraft(c.env.DB, c.var.target.organizationId, (document) => {
      (document[collection.key] as Record<string, unknown>)[slug] = body;
      return document;
    });
    return c.json(itemOf(draft.document, collection.key, slug)!, 200);
  });

  app.openapi(routes.remove, async (c) => {
    const { slug } = c.req.valid("param");
    const organizationId = c.var.target.organizationId;
    try {
      await editDraft(c.env.DB, organizationId, (document) => {
        const record = document[collection.key] as Record<string, unknown>;
        if (!has(record, slug)) throw new ApiError("not_found", `No ${collection.singular} ${slug} in the draft`);
        delete record[slug];
        return document;
      });
    } catch (error) {
      if (error instanceof ApiError && error.code === "validation_failed") {
        throw new ApiError("conflict", `${collection.singular} ${slug} is still referenced: ${error.message.replace(/^Invalid request: /, "")}`, error.details);
      }
      throw error;
    }
    return c.json({ deleted: true as const }, 200);
  });
}

const renameFeatureRoute = createRoute({
  method: "post",
  path: "/api/v1/admin/features/{slug}/rename",
  tags: ["Features"],
  summary: "Rename a feature's slug; its id (and so its counters) stays, references in plans, surfaces and workflows follow",
  ...writing,
  request: { params: SlugParam, body: jsonBody(z.object({ slug: Slug })) },
  responses: { 200: json(Item, "The renamed feature"), ...errorResponses(400, 401, 403, 404, 409, 413) },
});

export function renameFeature(document: ConfigDocument, from: string, to: string): ConfigDocument {
  if (!has(document.features, from)) throw new ApiError("not_found", `No feature ${from} in the draft`);
  if (from === to) return document;
  if (has(document.features, to)) throw new ApiError("conflict", `A feature with slug ${to} exists`);
  const renameKey = <T>(record: Record<string, T>): Record<string, T> =>
    Object.fromEntries(Object.entries(record).map(([key, value]) => [key === from ? to : key, value]));
  return {
    ...document,
    features: renameKey(document.features),
    plans: Object.fromEntries(Object.entries(document.plans).map(([slug, plan]) => [slug, { ...plan, features: renameKey(plan.features) }])),
    surfaces: Object.fromEntries(
      Object.entries(document.surfaces).map(([slug, surface]) => [
        slug,
        { ...surface, consumes: surface.consumes.map((reference) => (reference.startsWith(`${from}.`) ? `${to}${reference.slice(from.length)}` : reference)) },
      ]),
    ),
    workflows: Object.fromEntries(
      Object.entries(document.workflows).map(([slug, workflow]) => [slug, workflow.feature === from ? { ...workflow, feature: to } : workflow]),
    ),
  };
}

export function registerDraftCollectionRoutes(app: OpenAPIHono<AppEnv>): void {
  for (const collection of COLLECTIONS) registerCollection(app, collection);
  app.openapi(renameFeatureRoute, async (c) => {
    const { slug } = c.req.valid("param");
    const { slug: newSlug } = c.req.valid("json");
    const draft = await editDraft(c.env.DB, c.var.target.organizationId, (document) => renameFeature(document, slug, newSlug));
    return c.json(itemOf(draft.document, "features", newSlug)!, 200);
  });
}
