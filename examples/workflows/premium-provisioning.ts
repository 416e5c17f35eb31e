/// <reference path="./workflow-types.d.ts" />
// Provisioning (seed tutorial, part 4): grant the Premium plan when the user's JWT says so.
const workflow: ProvisioningWorkflow = async ({ identity }) => {
  return identity.jwtClaims.premium ? ["premium"] : [];
};
export default workflow;
