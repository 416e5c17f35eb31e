/// <reference path="./workflow-types.d.ts" />
// Component: the article's story. While the reader has articles left it is shown in full; once they are used up only
// its first paragraph stays, faded out: everything after it is replaced (the edge proxy and the browser package's
// applyContent apply the range), and the paywall component shows the offers below.
const workflow: ComponentWorkflow = ({ features }) => {
  const articles = features.articles?.properties.enabled;
  if (articles?.type !== "meterable" || articles.hasAccess) return {};
  return {
    properties: { teaser: true },
    content: {
      replaceRange: {
        fromMarker: "p:first-of-type",
        replaceWith: [{ type: "html", content: '<div class="fade" aria-hidden="true"></div>' }],
      },
    },
  };
};
export default workflow;
