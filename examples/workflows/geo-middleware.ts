/// <reference path="./workflow-types.d.ts" />
// Middleware: refuse requests from a blocked country and tag a known internal monitor as a bot.
const workflow: MiddlewareWorkflow = ({ context, env }) => {
  const blocked = (env.BLOCKED_COUNTRIES ?? "").split(",").filter(Boolean);
  if (context.geo.country && blocked.includes(context.geo.country)) {
    return { fail: { status: 403, message: "Not available in your country" } };
  }
  if (context.userAgent?.includes("AcmeUptime")) {
    return { bot: { category: "analytics-monitor", code: "acme-uptime", isVerified: false, operator: "Acme", product: "Uptime" } };
  }
  return {};
};
export default workflow;
