/** Shared setup of the HTTP-level metering tests: an organization with an example published to its live environment. */
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { helloWorld, newsSite } from "../../support/examples";

export { eventsFor } from "../../support/events";

export interface PublishedOrg {
  org: TestOrganization;
  key: string;
  /** `{store}:{featureId}.enabled` of the example's one metered feature, in the live environment's store. */
  counterId: string;
}

async function published(name: string, document: Record<string, unknown>, featureSlug: string): Promise<PublishedOrg> {
  const org = await createOrganization(name);
  await publish(org.adminKey, document, [org.live.id]);
  const feature = await call("GET", `/api/v1/admin/features/${featureSlug}`, { key: org.live.secretKey });
  if (feature.status !== 200) throw new Error(`feature ${featureSlug}: ${feature.status}`);
  return { org, key: org.live.secretKey, counterId: `default:${feature.body.id}.enabled` };
}

export const helloWorldOrg = () => published("Hello metering", helloWorld(), "widget");
export const newsSiteOrg = () => published("News metering", newsSite(), "articles");

let sequence = 0;
/** An identifier no other test uses. */
export const uniqueId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${sequence++}`;
