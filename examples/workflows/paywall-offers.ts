/// <reference path="./workflow-types.d.ts" />
// Component: the paywall. While the reader has articles left it stays hidden; once they are used up it shows a
// heading and each offer its slots resolved, as elements the edge proxy and the web components render.
const workflow: ComponentWorkflow = ({ features, offers }) => {
  const articles = features.articles?.properties.enabled;
  if (articles?.type !== "meterable" || articles.hasAccess) return { properties: { hidden: true } };
  const shown = Object.values(offers).flatMap((group) => group.slots.flatMap((slot) => (slot.offer ? [slot.offer] : [])));
  return {
    properties: { hidden: false },
    content: {
      append: [
        { type: "html", content: "<h2>You have read all your free articles this month</h2>" },
        ...shown.map((offer) => ({ type: "element", schema: "offer", props: offer })),
      ],
    },
  };
};
export default workflow;
