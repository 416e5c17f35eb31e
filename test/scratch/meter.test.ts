import { beforeAll, describe, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../support/api";
import { helloWorld } from "../support/examples";
import { captureTriggers } from "../support/triggers";

let org: TestOrganization;
let counterId: string;
beforeAll(async () => {
  org = await createOrganization("scratch meter");
  const document = helloWorld();
  document.workflows = {
    prov: { type: "provisioning", source: `export default ({ identity }: any) => identity.identifier.startsWith("p-") ? ["premium"] : [];` },
    "on-update": { type: "action", triggers: ["counters.updated"], source: `export default async ({ payload, utils }: any) => {
      let result: any;
      try { result = await utils.counters.consume(payload.counters[0].counterId); } catch (e: any) { result = String(e.message ?? e); }
      await utils.customData.set("on-update", { payload: payload.counters[0], result });
    };` },
  };
  await publish(org.adminKey, document, [org.live.id]);
  counterId = `default:${(await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id}.enabled`;
});
describe("unlimited counters", () => {
  it("premium: trigger payload, actions' utils.counters, counter-updates", async () => {
    const triggers = captureTriggers();
    const decision = await call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { userIdentifier: "p-ada" } } });
    console.log("decision", decision.status, JSON.stringify(decision.body.features.widget.properties.enabled));
    await triggers.deliver({ allowRetries: true });
    const updated = triggers.sent.filter((m: any) => JSON.stringify(m).includes("counters.updated"));
    console.log("trigger", JSON.stringify(updated).slice(0, 1500));
    await triggers.restore();
    const upd = await call("POST", "/api/v1/counter-updates", { key: org.live.secretKey, body: { counterId, update: -1, identity: { userIdentifier: "p-ada" } } });
    console.log("counter-update", upd.status, JSON.stringify(upd.body));
    const cust = await call("GET", `/api/v1/admin/environments/${org.live.id}/customers/p-ada`, { key: org.live.secretKey });
    console.log("customer", cust.status, JSON.stringify(cust.body).slice(0, 1500));
  });
});
