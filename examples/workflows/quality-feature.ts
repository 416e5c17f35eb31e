/// <reference path="./workflow-types.d.ts" />
// Feature: half of the authenticated users (A/B bucket < 50) get high quality for free.
const workflow: FeatureWorkflow = ({ identity, feature }): Record<string, string> => {
  const quality = feature.properties.quality;
  if (identity.isAuthenticated && identity.testGroup100 < 50 && quality?.type === "string" && quality.value === "standard") {
    return { quality: "high" };
  }
  return {};
};
export default workflow;
