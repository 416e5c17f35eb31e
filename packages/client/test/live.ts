/** The live tests' tenant: a new organization with clientSite() deployed to its preview environment of `wrangler dev`. */
import { createOrganization, must } from "../../../test/browser/support";
import { clientSite } from "./document";

export async function liveTenant(name: string) {
  const org = await createOrganization(name);
  await must("PUT", "/api/v1/admin/config", 200, { key: org.adminKey, body: clientSite() });
  const version = await must("POST", "/api/v1/admin/versions", 201, { key: org.adminKey, body: { description: name } });
  await must("POST", `/api/v1/admin/environments/${org.preview.id}/deployments`, 201, { key: org.adminKey, body: { versionId: version.id } });
  return org;
}
