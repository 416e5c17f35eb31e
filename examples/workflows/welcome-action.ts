/// <reference path="./workflow-types.d.ts" />
// Action: on "user.added", remember when we first saw the user (custom data survives across requests).
const workflow: ActionWorkflow = async ({ trigger, payload, utils }) => {
  if (trigger !== "user.added") return;
  await utils.customData.set("firstSeen", { at: new Date().toISOString(), payload });
};
export default workflow;
