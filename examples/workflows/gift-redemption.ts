/// <reference path="./workflow-types.d.ts" />
// Redemption: an offer redeemed by a workflow ("claim your free issue"). Its writes are applied only if it returns a
// result: a refusal (or a throw) leaves nothing behind, so a claim is never half-recorded. Check-then-write is safe:
// the writes apply only if `claimed:…` still holds what was read, so of two concurrent claims one wins and the other
// answers 409 `conflict` (a retry then sees the claim and is refused).
const workflow: RedemptionWorkflow = async ({ input, offer, identity, utils }) => {
  const claimed = await utils.customData.get(`claimed:${offer.slug}`);
  if (claimed) return { fail: { message: "You already claimed this gift" } };
  const address = (input as { address?: string } | null)?.address ?? null;
  await utils.customData.set(`claimed:${offer.slug}`, { at: new Date().toISOString(), address });
  await utils.triggers.fire("gift.claimed", { offer: offer.slug, identifier: identity.identifier });
  return { result: { claimed: true, title: offer.title } };
};
export default workflow;
