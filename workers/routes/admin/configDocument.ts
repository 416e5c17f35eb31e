/**
 * The whole draft as one document: export (JSON or YAML) and atomic apply. Apply validates everything first and
 * replaces the draft in a single revision-checked write, so a bad document changes nothing.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { isNode, isPair, isScalar, isSeq, parseDocument, stringify, visit, type Document as YamlDocument } from "yaml";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses, formatPath } from "../../errors";
import { ensureFeatureIds, getDraft, saveDraft, serializeDraft, validateDocument } from "../../services/drafts";
import { diffDocuments } from "../../services/versions";
import { json, permit, security } from "./shared";

const MAX_DOCUMENT_BYTES = 1024 * 1024;
const tags = ["Configuration document"];
const DiffEntrySchema = z.object({ path: z.string(), change: z.enum(["added", "removed", "changed"]), from: z.unknown().optional(), to: z.unknown().optional() }).openapi("DiffEntry");
const Document = z.record(z.string(), z.unknown()).openapi("ConfigDocument", { description: "settings, features, plans, surfaces, authMethods, workflows, triggers, offers, offerGroups" });

const exportRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/config",
  tags,
  summary: "Export the draft as one document (JSON, or YAML with ?format=yaml or Accept: application/yaml)",
  security,
  middleware: permit("configuration.read", "organization"),
  request: { query: z.object({ format: z.enum(["json", "yaml"]).optional() }) },
  responses: {
    200: { description: "The draft document; its revision is in the X-Draft-Revision header", content: { "application/json": { schema: Document }, "application/yaml": { schema: z.string() } } },
    ...errorResponses(401, 403),
  },
});

const applyRoute = createRoute({
  method: "put",
  path: "/api/v1/admin/config",
  tags,
  summary: "Replace the draft with a document (JSON or YAML), atomically; ?dryRun=true only validates and diffs",
  description:
    "Everything is validated before anything is written. Errors list each JSON path and what is wrong. Send If-Match with the revision you exported to refuse the apply if the draft changed since.",
  security,
  middleware: permit("configuration.write", "organization"),
  request: {
    query: z.object({ dryRun: z.enum(["true", "false"]).optional() }),
    body: { required: true, content: { "application/json": { schema: Document }, "application/yaml": { schema: z.string() } } },
  },
  responses: {
    200: json(z.object({ applied: z.boolean(), revision: z.number(), changes: z.array(DiffEntrySchema) }), "The result"),
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

/** Reads the request body as a document, from JSON or YAML, with parse errors reported by line. */
export async function readDocumentBody(request: { header(name: string): string | undefined; text(): Promise<string> }): Promise<unknown> {
  const length = Number(request.header("content-length") ?? 0);
  if (length > MAX_DOCUMENT_BYTES) throw new ApiError("payload_too_large", `Documents are limited to ${MAX_DOCUMENT_BYTES} bytes`);
  const text = await request.text();
  if (text.length > MAX_DOCUMENT_BYTES) throw new ApiError("payload_too_large", `Documents are limited to ${MAX_DOCUMENT_BYTES} bytes`);
  const type = (request.header("content-type") ?? "application/json").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new ApiError("invalid_json", `Invalid JSON: ${(error as Error).message}`);
    }
  }
  if (["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"].includes(type)) {
    const parsed = parseDocument(text, { prettyErrors: true });
    if (parsed.errors.length) {
      const details = parsed.errors.slice(0, 20).map((error) => ({ path: yamlPathAt(parsed, error.pos[0]), message: error.message.split("\n")[0]! }));
      throw new ApiError("invalid_yaml", `Invalid YAML: ${details.map((detail) => `${detail.path}: ${detail.message}`).join("; ")}`, details);
    }
    try {
      // Resolving aliases can still fail: the yaml package refuses an alias bomb (exponential expansion) here.
      return parsed.toJS({ maxAliasCount: 100 });
    } catch (error) {
      throw new ApiError("invalid_yaml", `Invalid YAML: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new ApiError("unsupported_media_type", "Send the document as application/json or application/yaml");
}

export function registerConfigDocumentRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(exportRoute, async (c) => {
    const draft = await getDraft(c.env.DB, c.var.target.organizationId);
    c.header("X-Draft-Revision", String(draft.revision));
    const wantsYaml = c.req.valid("query").format === "yaml" || /yaml/.test(c.req.header("accept") ?? "");
    if (wantsYaml) return c.body(stringify(draft.document), 200, { "Content-Type": "application/yaml; charset=utf-8" });
    return c.json(draft.document as Record<string, unknown>, 200);
  });

  app.openapi(applyRoute, async (c) => {
    const { organizationId } = c.var.target;
    const input = await readDocumentBody(c.req);
    const document = validateDocument(input);
    const draft = await getDraft(c.env.DB, organizationId);
    const ifMatch = c.req.header("if-match");
    if (ifMatch !== undefined && ifMatch.replace(/"/g, "") !== String(draft.revision)) {
      throw new ApiError("conflict", `The draft is at revision ${draft.revision}, not ${ifMatch}`);
    }
    const next = ensureFeatureIds(document, draft.document);
    const changes = diffDocuments(draft.document, next);
    if (c.req.valid("query").dryRun === "true") {
      serializeDraft(next); // a dry run answers what the apply would: 413 past the size limit too
      return c.json({ applied: false, revision: draft.revision, changes }, 200);
    }
    const saved = await saveDraft(c.env.DB, organizationId, next, draft.revision);
    return c.json({ applied: true, revision: saved.revision, changes }, 200);
  });
}

/**
 * The JSON path (as validation errors name them: `plans.free.name`, `features[1].b`) of the key at `offset` in a YAML
 * document — where the parser found, say, a duplicate key — or "(root)" when the error is not at a key.
 */
function yamlPathAt(document: YamlDocument, offset: number): string {
  let path: (string | number)[] = [];
  visit(document, {
    Pair(_, pair, ancestors) {
      const range = isNode(pair.key) ? pair.key.range : undefined;
      if (!range || offset < range[0] || offset > range[1]) return undefined;
      const chain = [...ancestors, pair];
      path = chain.flatMap((node, index): (string | number)[] => {
        if (isPair(node)) return [String(isScalar(node.key) ? node.key.value : node.key)];
        if (isSeq(node)) return [node.items.indexOf(chain[index + 1] as never)];
        return [];
      });
      return visit.BREAK;
    },
  });
  return formatPath(path);
}
