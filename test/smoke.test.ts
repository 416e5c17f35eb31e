import { env, exports } from "cloudflare:workers";
import { it, expect } from "vitest";
it("works", async () => {
  const r = await exports.default.fetch("http://x/");
  expect(await r.text()).toBe("ok");
  await env.DB.prepare("insert into t values ('a')").run();
  const stub = env.METER.get(env.METER.idFromName("a"));
  expect(await stub.ping()).toBe(1);
  expect(typeof env.LOADER.get).toBe("function");
});
