/** Helpers of the client's workerd tests: a tenant with clientSite() deployed, and fetch doubles in front of the platform. */
import { createOrganization, publish, type TestOrganization } from "../../../test/support/api";
import { clientSite } from "./document";

export { clientSite } from "./document";

export const BASE_URL = "http://platform.test";

/** A new organization with clientSite() (or `document`) deployed to its preview environment. */
export async function tenant(document: Record<string, any> = clientSite()): Promise<TestOrganization> {
  const org = await createOrganization("Client package");
  await publish(org.adminKey, document, [org.preview.id]);
  return org;
}

/** A fetch that records each request (a clone, so its body stays readable) before `inner` answers it. */
export function recording(inner: (request: Request) => Promise<Response>) {
  const requests: Request[] = [];
  const fetch = (request: Request) => {
    requests.push(request.clone());
    return inner(request);
  };
  return { fetch, requests };
}

/**
 * A fetch that answers from `script` in order (a Response, or an Error to throw, or "platform" to pass the request
 * on to `platform`), then passes everything after the script on. Records every request.
 */
export function scripted(platform: (request: Request) => Promise<Response>, script: (Response | Error | "platform" | "hang")[]) {
  const requests: Request[] = [];
  const fetch = async (request: Request): Promise<Response> => {
    requests.push(request.clone());
    const step = script.shift() ?? "platform";
    if (step === "platform") return platform(request);
    if (step === "hang") return new Promise<Response>(() => {});
    if (step instanceof Error) throw step;
    return step;
  };
  return { fetch, requests };
}

export const errorResponse = (status: number, code: string, headers: Record<string, string> = {}) =>
  Response.json({ status: "error", statusCode: status, message: `${code} (scripted)`, code, requestId: "req_scripted" }, { status, headers: { "X-Request-Id": "req_scripted", ...headers } });
