/** The decision stages, in pipeline order. */
export { loadConfig } from "./config";
export { identify } from "./identity";
export { runMiddleware } from "./middleware";
export { findCustomer } from "./customer";
export { runProvisioning } from "./provisioning";
export { planDecision } from "./plans";
export { negotiateCrawlPrice } from "./crawl";
export { consumeMeter } from "./meter";
export { resolveFeatures } from "./features";
export { runSurfaceWorkflow } from "./surface";
export { resolveOffers, enableOfferUtils } from "./offers";
export { runComponentWorkflows } from "./components";
export { renderResponse, type DecisionResponse } from "./response";
export { recordDecision } from "./record";
export { enqueueDecisionTriggers } from "./triggers";
