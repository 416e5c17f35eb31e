/**
 * The content-instruction renderer on its own (HTMLRewriter in workerd, no platform): what each instruction does to
 * the elements a component's selector matches, replaceRange's DOM-Range semantics, and element items.
 */
import { describe, expect, it } from "vitest";
import { componentEdits } from "../src/content/instructions";
import { customElementOf, renderItems } from "../src/content/render";
import { rewritePage } from "../src/content/rewrite";
import type { Logger } from "../src/log";

function recordingLogger() {
  const warnings: { message: string; details?: Record<string, unknown> }[] = [];
  const logger: Logger = { error: (message) => warnings.push({ message }), warn: (message, details) => warnings.push({ message, ...(details ? { details } : {}) }) };
  return { logger, warnings };
}

/** The page with one component (`selector`) carrying `content`. */
async function apply(html: string, selector: string | null, content: unknown, logger = recordingLogger().logger): Promise<string> {
  const edits = componentEdits({ componentsSkipped: false, componentBehaviors: { story: { content: content as never, metadata: { cssSelector: selector } } } });
  return rewritePage(html, edits, { logger });
}

const html = (content: string) => ({ type: "html", content });
const ARTICLE = `<article id="story"><h1>Title</h1><p>One</p><p>Two</p><p>Three</p></article>`;

describe("insertions and removal", () => {
  it("puts before/prepend/append/after items at their places, in list order", async () => {
    const page = await apply(`<div id="story">x</div>`, "#story", {
      before: [html("<b>1</b>"), html("<b>2</b>")],
      prepend: [html("<i>3</i>"), html("<i>4</i>")],
      append: [html("<u>5</u>"), html("<u>6</u>")],
      after: [html("<s>7</s>"), html("<s>8</s>")],
    });
    expect(page).toBe(`<b>1</b><b>2</b><div id="story"><i>3</i><i>4</i>x<u>5</u><u>6</u></div><s>7</s><s>8</s>`);
  });

  it("applies to every element the selector matches", async () => {
    const page = await apply(`<p class="a">1</p><p class="a">2</p>`, ".a", { append: [{ type: "text", content: "!" }] });
    expect(page).toBe(`<p class="a">1!</p><p class="a">2!</p>`);
  });

  it("remove takes the element and its content, and keeps the before/after items", async () => {
    const page = await apply(`<main><div id="story"><p>secret</p></div></main>`, "#story", { remove: true, before: [html("<hr>")], after: [html("<em>gone</em>")], append: [html("x")] });
    expect(page).toBe(`<main><hr><em>gone</em></main>`);
  });

  it("does nothing without a selector or without content", async () => {
    expect(await apply(ARTICLE, null, { remove: true })).toBe(ARTICLE);
    expect(await apply(ARTICLE, "#story", undefined)).toBe(ARTICLE);
    // Content that is not instructions (a workflow's own JSON) changes nothing either.
    expect(await apply(ARTICLE, "#story", { headline: "Subscribe", cta: ["x"] })).toBe(ARTICLE);
  });

  it("skips a component whose selector is invalid, logs it, and still applies the others", async () => {
    const { logger, warnings } = recordingLogger();
    const edits = componentEdits({
      componentsSkipped: false,
      componentBehaviors: {
        broken: { content: { append: [html("never")] } as never, metadata: { cssSelector: "div[[[" } },
        fine: { content: { append: [html("!")] } as never, metadata: { cssSelector: "#story" } },
        brokenRange: { content: { replaceRange: { fromMarker: "p:::bad" } } as never, metadata: { cssSelector: "#story" } },
      },
    });
    const page = await rewritePage(ARTICLE, edits, { logger });
    expect(page).toBe(`<article id="story"><h1>Title</h1><p>One</p><p>Two</p><p>Three</p>!</article>`);
    expect(warnings.map((warning) => warning.details?.component)).toEqual(["brokenRange", "broken"]);
  });

  it("applies nothing when the components were skipped (a replaced response)", () => {
    expect(componentEdits({ componentsSkipped: true, componentBehaviors: { story: { content: { remove: true }, metadata: { cssSelector: "#story" } } } })).toEqual([]);
  });

  it("adds the INJECT_SCRIPT_URL script to the head", async () => {
    const page = await rewritePage(`<html><head><title>t</title></head><body></body></html>`, [], { logger: recordingLogger().logger, injectScriptUrl: "/elements.js?a=1&b=\"2\"" });
    expect(page).toBe(`<html><head><title>t</title><script src="/elements.js?a=1&amp;b=&quot;2&quot;" type="module" async></script></head><body></body></html>`);
  });
});

describe("replaceRange", () => {
  const range = (replaceRange: unknown) => ({ replaceRange });

  it("from only: everything after the fromMarker element to the component's end goes, the replacement in its place", async () => {
    const page = await apply(ARTICLE, "#story", range({ fromMarker: "p:first-of-type", replaceWith: [html(`<div class="fade"></div>`)] }));
    expect(page).toBe(`<article id="story"><h1>Title</h1><p>One</p><div class="fade"></div></article>`);
  });

  it("to only: everything from the component's start to the toMarker element goes", async () => {
    const page = await apply(ARTICLE, "#story", range({ toMarker: "p:nth-of-type(3)", replaceWith: [{ type: "text", content: "…" }] }));
    expect(page).toBe(`<article id="story">…<p>Three</p></article>`);
  });

  it("both: only what lies between the markers goes (text nodes too)", async () => {
    const page = await apply(`<div id="story"><p id="a">A</p> loose text <!-- c --><p>B</p><p id="z">Z</p><p>after</p></div>`, "#story", range({ fromMarker: "#a", toMarker: "#z" }));
    expect(page).toBe(`<div id="story"><p id="a">A</p><p id="z">Z</p><p>after</p></div>`);
  });

  it("a nested toMarker keeps its ancestors, which lose only their part inside the range", async () => {
    const page = await apply(
      `<div id="story"><p id="a">A</p><p>gone</p><section><h2>gone too</h2><div class="keep">x<span id="z">Z</span>tail</div>end</section></div>`,
      "#story",
      range({ fromMarker: "#a", toMarker: "#z", replaceWith: [html("<hr>")] }),
    );
    expect(page).toBe(`<div id="story"><p id="a">A</p><hr><section><div class="keep"><span id="z">Z</span>tail</div>end</section></div>`);
  });

  it("a fromMarker nested deeper: its ancestors keep what comes before it and lose what follows it", async () => {
    const page = await apply(`<div id="story"><section><p id="a">A</p><p>B</p></section><p>C</p></div>`, "#story", range({ fromMarker: "#a" }));
    expect(page).toBe(`<div id="story"><section><p id="a">A</p></section></div>`);
  });

  it("identical markers do nothing", async () => {
    expect(await apply(ARTICLE, "#story", range({ fromMarker: "p", toMarker: "p", replaceWith: [html("x")] }))).toBe(ARTICLE);
  });

  it("a fromMarker that matches nothing does nothing", async () => {
    expect(await apply(ARTICLE, "#story", range({ fromMarker: "blockquote", replaceWith: [html("x")] }))).toBe(ARTICLE);
  });

  it("a toMarker that matches nothing after the fromMarker: the range runs to the component's end", async () => {
    const page = await apply(ARTICLE, "#story", range({ fromMarker: "h1", toMarker: "blockquote" }));
    expect(page).toBe(`<article id="story"><h1>Title</h1></article>`);
  });

  it("markers are looked for inside the component element only", async () => {
    const page = await apply(`<p id="outside">o</p><div id="story"><p>in</p><p>more</p></div><p>x</p>`, "#story", range({ fromMarker: "p" }));
    expect(page).toBe(`<p id="outside">o</p><div id="story"><p>in</p></div><p>x</p>`);
  });

  it("works on each element the selector matches, with other instructions of the same component", async () => {
    const page = await apply(`<div class="s"><p>1</p><p>2</p></div><div class="s"><p>3</p><p>4</p></div>`, ".s", {
      replaceRange: { fromMarker: "p", replaceWith: [html("<i>more</i>")] },
      append: [html("<b>end</b>")],
    });
    expect(page).toBe(`<div class="s"><p>1</p><i>more</i><b>end</b></div><div class="s"><p>3</p><i>more</i><b>end</b></div>`);
  });

  it("an empty replacement (null) just removes", async () => {
    expect(await apply(ARTICLE, "#story", range({ fromMarker: "p", replaceWith: null }))).toBe(`<article id="story"><h1>Title</h1><p>One</p></article>`);
  });
});

describe("element items", () => {
  it("render our own schemas as mos- elements and source:name@version as source-name, props attribute-escaped", () => {
    const props = { title: `Tom's "best" <deal> & more`, token: "t.o.k" };
    const rendered = renderItems([{ type: "element", schema: "offer", props }, { type: "element", schema: "acme:price-card@1.2.0", props: {} }]);
    expect(rendered).toBe(
      `<mos-offer version="" props="{&quot;title&quot;:&quot;Tom&#39;s \\&quot;best\\&quot; &lt;deal&gt; &amp; more&quot;,&quot;token&quot;:&quot;t.o.k&quot;}"></mos-offer>` +
        `<acme-price-card version="1.2.0" props="{}"></acme-price-card>`,
    );
  });

  it("render nothing for names that are not valid custom element names", () => {
    for (const schema of ["Offer", "x:y z", "mos-", "a:b><script", ":x", "1a:b", "acme:"]) {
      expect(renderItems([{ type: "element", schema, props: {} }]), schema).toBe("");
    }
    expect(customElementOf("paywall")).toEqual({ tag: "mos-paywall", version: "" });
    expect(customElementOf("acme:card")).toEqual({ tag: "acme-card", version: "" });
  });

  it("escape text items, pass html items, and render unknown or malformed items as nothing", () => {
    expect(renderItems([{ type: "text", content: "<b>&</b>" }, { type: "html", content: "<b>ok</b>" }, { type: "video", content: "x" }, null, "str", { type: "html", content: 3 }])).toBe(
      "&lt;b&gt;&amp;&lt;/b&gt;<b>ok</b>",
    );
    expect(renderItems("not a list")).toBe("");
  });
});
