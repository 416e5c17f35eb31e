import { DurableObject } from "cloudflare:workers";
export class MeterObject extends DurableObject<Env> {
  async ping() { return 1; }
}
export default { async fetch() { return new Response("ok"); } } satisfies ExportedHandler<Env>;
