import { DurableObject } from "cloudflare:workers";
/** Replaced by durable-objects/meter/MeterObject.ts. */
export class MeterObject extends DurableObject<Env> {}
