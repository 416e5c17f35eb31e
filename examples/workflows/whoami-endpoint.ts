/// <reference path="./workflow-types.d.ts" />
// Endpoint: GET /api/v1/envs/{environmentId}/endpoints/whoami answers with the caller's identity and A/B group.
const workflow: EndpointWorkflow = async (request, { identity, path }) => {
  if (request.method !== "GET") return new Response("method not allowed", { status: 405 });
  return Response.json({ path, identifier: identity.identifier, testGroup100: identity.testGroup100 });
};
export default workflow;
