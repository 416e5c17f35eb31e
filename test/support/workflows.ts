/**
 * An action workflow that records every payload of the triggers it listens to under `seen:{trigger}` in the user's
 * custom data, so tests can see which triggers reached action workflows, and how often.
 */
export const recordTriggersAction = (triggers: string[]) => ({
  type: "action",
  triggers,
  source: `export default async ({ trigger, payload, utils }: any) => {
      const key = "seen:" + trigger;
      const previous = (await utils.customData.get(key)) ?? [];
      await utils.customData.set(key, [...previous, payload]);
    };`,
});
