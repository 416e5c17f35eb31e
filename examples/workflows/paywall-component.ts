/// <reference path="./workflow-types.d.ts" />
// Component: what the paywall banner shows, from the surface's properties.
const workflow: ComponentWorkflow = ({ surfaceProperties, features }) => {
  const articles = features.articles?.properties.enabled;
  if (articles?.type === "meterable" && !articles.hasAccess) {
    return { content: { headline: "You have read all free articles this month", cta: "Subscribe" } };
  }
  return { properties: { hidden: true, remaining: surfaceProperties.remaining ?? null } };
};
export default workflow;
