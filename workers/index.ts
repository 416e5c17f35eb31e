/** Entry: wiring only. */
import { createApp } from "./app";
import { registerRoutes } from "./routes";

export { MeterObject } from "../durable-objects/meter/MeterObject";
export { EgressGateway } from "./workflows/egressGateway";

const app = createApp();
registerRoutes(app);

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
