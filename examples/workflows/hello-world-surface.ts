/// <reference path="./workflow-types.d.ts" />
// Surface: the properties the tutorial's page renders.
const workflow: SurfaceWorkflow = async ({ identity, features }) => {
  const enabled = features.widget?.properties.enabled;
  const premium = features.widget?.properties.premium;
  const metered = enabled?.type === "meterable" ? enabled : undefined;
  return {
    properties: {
      userMessage: identity.isAuthenticated ? `Hello, ${identity.identifier}` : "Hello, visitor",
      isAuthenticated: identity.isAuthenticated,
      widgetAccess: metered?.hasAccess ?? false,
      premiumWidgets: premium?.type === "boolean" ? premium.value : false,
      remainingWidgets: metered?.remainingUnits ?? null,
    },
  };
};
export default workflow;
