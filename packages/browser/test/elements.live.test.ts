/**
 * The custom elements and applyContent in chromium, against the platform that global-setup started: a page on its
 * own 127.0.0.1 origin asks for a surface decision with the environment's publishable key (cross-origin, as a
 * customer's site does), renders its offers with the script-tag build, and redeems through the site's own route
 * (stubbed here: the redemption needs the secret key, which only the site's server or the edge proxy holds).
 */
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { baseUrl, openConsole } from "../../../test/browser/support";
import { bundle, createPaywallTenant, html, javascript, readArticles, serveSite, type PaywallTenant } from "./support";

const OFFER_CHANGED = "This offer has changed — reload the page";

let tenant: PaywallTenant;
let elementsScript: string;
let contentPageScript: string;
let applyContentScript: string;

beforeAll(async () => {
  [tenant, elementsScript, contentPageScript, applyContentScript] = await Promise.all([
    createPaywallTenant("Browser package elements"),
    // The script-tag build, as scripts/packages/build.mjs makes dist/elements.global.js.
    bundle("src/global.ts", { format: "iife", minify: true }),
    bundle("test/fixtures/content-page.tsx"),
    bundle("test/fixtures/apply-content.tsx", { format: "iife" }),
  ]);
});

/** A test offer (what a decision's OfferView looks like), for the redemption's error paths. */
function offer(slug: string, overrides: Record<string, unknown> = {}) {
  return {
    offer: slug,
    variant: null,
    title: `Offer ${slug}`,
    description: "Read everything for a day.",
    priceDisplay: "$1.99",
    callToAction: "Buy it",
    fields: { badge: "Popular", features: ["Every article", "No ads"] },
    price: { amount: 199, currency: "usd", interval: "day" },
    redemption: { method: "checkout" },
    token: `token-${slug}`,
    expiresAt: "2099-01-01T00:00:00.000Z",
    ...overrides,
  };
}

const attribute = (value: unknown) => JSON.stringify(value).replaceAll("&", "&amp;").replaceAll("'", "&#39;");

async function titlesIn(page: Page, selector: string): Promise<string[]> {
  return page.locator(`${selector} mos-offer .title`).allTextContents();
}

describe("the custom elements", () => {
  it("render the offers of a real surface decision and redeem one once, then go to its checkout", async () => {
    const reader = "reader-elements";
    await readArticles(tenant, reader, 3);
    const { page } = await openConsole("/health");
    const redemptions: { body: unknown; contentType: string | undefined }[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const site: string = await serveSite(page, {
      "/elements.js": javascript(elementsScript),
      "/articles/fourth": html(
        `<style>mos-paywall::part(button) { background-color: rgb(1, 2, 3) } mos-offer-group { --mos-accent: rgb(4, 5, 6) }</style>
        <mos-paywall></mos-paywall><mos-offer-group></mos-offer-group>
        <script src="/elements.js"></script>
        <script type="module">
          const response = await fetch(${JSON.stringify(`${baseUrl}/api/v1/surface-decisions`)}, {
            method: "POST",
            headers: { authorization: "Bearer ${tenant.publishableKey}", "content-type": "application/json" },
            body: JSON.stringify({ surfaceSlug: "article-page", identity: { anonymousIdentifier: "${reader}" }, resource: { id: location.pathname } }),
          });
          const decision = await response.json();
          window.decision = decision;
          const offers = decision.offers.paywall.slots.flatMap((slot) => (slot.offer ? [slot.offer] : []));
          document.querySelector("mos-paywall").props = { title: "Keep reading", message: "You have read all your free articles", offers };
          document.querySelector("mos-offer-group").setAttribute("props", JSON.stringify(decision.offers.paywall));
        </script>`,
      ),
      "/mos-api/offer-redemptions": async (request) => {
        redemptions.push({ body: request.postDataJSON(), contentType: request.headers()["content-type"] });
        // Held until the test has seen the button wait for it.
        await released;
        return {
          contentType: "application/json",
          body: JSON.stringify({ status: "success", redemption: { state: "started" }, checkout: { id: "cs_test", url: `${site}/checkout/cs_test`, mode: "subscription" } }),
        };
      },
      "/checkout/cs_test": html("<h1>Checkout</h1>"),
    });
    await page.goto(`${site}/articles/fourth`);

    await expect.poll(() => titlesIn(page, "mos-paywall")).toEqual(["Premium", "Premium for a year"]);
    const decision = await page.evaluate(() => (globalThis as any).decision);
    const shown = decision.offers.paywall.slots.map((slot: { offer: { title: string; priceDisplay: string; token: string } }) => slot.offer);
    expect(await titlesIn(page, "mos-offer-group")).toEqual(["Premium", "Premium for a year"]);
    expect(await page.locator("mos-paywall mos-offer .price").allTextContents()).toEqual(shown.map((offer: { priceDisplay: string }) => offer.priceDisplay));
    expect(await page.locator("mos-paywall .heading").textContent()).toBe("Keep reading");
    expect(await page.locator("mos-paywall .message").textContent()).toBe("You have read all your free articles");
    expect(await page.locator("mos-paywall mos-offer button").allTextContents()).toEqual(["Start your free week", "Subscribe"]);
    // Themed from outside: a part the paywall forwards from its offers, and a custom property.
    const background = (selector: string) => page.locator(selector).first().evaluate((button) => (globalThis as any).getComputedStyle(button).backgroundColor);
    expect(await background("mos-paywall mos-offer button")).toBe("rgb(1, 2, 3)");
    expect(await background("mos-offer-group mos-offer button")).toBe("rgb(4, 5, 6)");

    const first = page.locator("mos-paywall mos-offer").first();
    await first.locator("button").dblclick();
    await expect.poll(() => redemptions.length).toBe(1);
    expect(await first.locator("button").isDisabled()).toBe(true);
    expect(await first.getAttribute("aria-busy")).toBe("true");
    release();
    await page.waitForURL(`${site}/checkout/cs_test`);
    expect(redemptions).toEqual([
      { body: { offerToken: shown[0].token, successUrl: `${site}/articles/fourth`, cancelUrl: `${site}/articles/fourth` }, contentType: "application/json" },
    ]);
  });

  it("show an expired or changed offer's message, the platform's message otherwise, retry a redemption in progress, and leave a cancelled one to the page", async () => {
    const { page, expectConsoleError } = await openConsole("/health");
    expectConsoleError(/status of 410/);
    expectConsoleError(/status of 409/);
    expectConsoleError(/status of 403/);
    const requests: string[] = [];
    const error = (status: number, code: string, message: string) => async () => ({
      status,
      contentType: "application/json",
      body: JSON.stringify({ status: "error", statusCode: status, code, message, requestId: "req_test" }),
    });
    const site = await serveSite(page, {
      "/elements.js": javascript(elementsScript),
      "/offers": html(
        `<mos-offer id="expired" props='${attribute(offer("expired", { title: "<b>Day</b> pass" }))}'></mos-offer>
        <div redemption-url="/shop/changed"><mos-offer id="changed" props='${attribute(offer("changed"))}'></mos-offer></div>
        <mos-offer id="refused" redemption-url="/shop/refused" props='${attribute(offer("refused"))}'></mos-offer>
        <mos-offer id="handled" props='${attribute(offer("handled"))}'></mos-offer>
        <mos-offer id="busy" redemption-url="/shop/busy" props='${attribute(offer("busy"))}'></mos-offer>
        <script>
          window.seen = [];
          document.addEventListener("mos-redeemed", (event) => seen.push({ id: event.target.id, state: event.detail.response.redemption.state }));
          document.addEventListener("mos-redemption-error", (event) => seen.push({ id: event.target.id, status: event.detail.status, code: event.detail.code, message: event.detail.message }));
          document.addEventListener("mos-redeem", (event) => { if (event.target.id === "handled") { event.preventDefault(); seen.push({ id: "handled", offer: event.detail.offer.offer }); } });
        </script>
        <script src="/elements.js"></script>`,
        '<meta name="mos-redemption-url" content="/shop/redeem">',
      ),
      "/shop/redeem": async (request) => (requests.push(`redeem ${request.postDataJSON().offerToken}`), error(410, "offer_token_expired", "the offer token expired")()),
      "/shop/changed": async (request) => (requests.push(`changed ${request.postDataJSON().offerToken}`), error(409, "offer_changed", "the offer changed")()),
      // The same token still being redeemed (a tab left open): asked again after Retry-After, then completed.
      "/shop/busy": async (request) => {
        requests.push(`busy ${request.postDataJSON().offerToken}`);
        if (requests.filter((line) => line.startsWith("busy")).length === 1) {
          return { ...(await error(409, "conflict", "this redemption is in progress; retry shortly")()), headers: { "retry-after": "0" } };
        }
        return { contentType: "application/json", body: JSON.stringify({ status: "success", redemption: { state: "completed" } }) };
      },
      "/shop/refused": async (request) => (requests.push(`refused ${request.postDataJSON().offerToken}`), error(403, "offer_token_not_yours", "this offer was shown to someone else")()),
    });
    await page.goto(`${site}/offers`);

    // What the card shows, every prop as text (the title's markup is not markup).
    const expired = page.locator("#expired");
    expect(await expired.locator(".title").textContent()).toBe("<b>Day</b> pass");
    expect(await expired.locator(".title b").count()).toBe(0);
    expect(await expired.locator(".badge").textContent()).toBe("Popular");
    expect(await expired.locator(".price").textContent()).toBe("$1.99");
    expect(await expired.locator(".description").textContent()).toBe("Read everything for a day.");
    expect(await expired.locator(".features li").allTextContents()).toEqual(["Every article", "No ads"]);
    expect(await expired.locator("[role=alert]").isHidden()).toBe(true);

    await expired.getByRole("button", { name: "Buy it" }).click();
    await expect.poll(() => expired.getByRole("alert").textContent()).toBe(OFFER_CHANGED);
    expect(await expired.locator("button").isEnabled()).toBe(true);
    expect(await expired.getAttribute("aria-busy")).toBeNull();

    const changed = page.locator("#changed");
    await changed.getByRole("button").click();
    await expect.poll(() => changed.getByRole("alert").textContent()).toBe(OFFER_CHANGED);

    const refused = page.locator("#refused");
    await refused.getByRole("button").click();
    await expect.poll(() => refused.getByRole("alert").textContent()).toBe("this offer was shown to someone else");

    await page.locator("#handled").getByRole("button").click();
    await expect.poll(() => page.evaluate(() => (globalThis as any).seen.length)).toBe(4);
    expect(await page.locator("#handled [role=alert]").isHidden()).toBe(true);

    const busy = page.locator("#busy");
    await busy.getByRole("button").click();
    await expect.poll(() => page.evaluate(() => (globalThis as any).seen.length)).toBe(5);
    expect(await busy.locator("[role=alert]").isHidden()).toBe(true);
    expect(await busy.locator("button").isEnabled()).toBe(true);
    expect(page.url()).toBe(`${site}/offers`);

    expect(requests).toEqual(["redeem token-expired", "changed token-changed", "refused token-refused", "busy token-busy", "busy token-busy"]);
    expect(await page.evaluate(() => (globalThis as any).seen)).toEqual([
      { id: "expired", status: 410, code: "offer_token_expired", message: OFFER_CHANGED },
      { id: "changed", status: 409, code: "offer_changed", message: OFFER_CHANGED },
      { id: "refused", status: 403, code: "offer_token_not_yours", message: "this offer was shown to someone else" },
      { id: "handled", offer: "handled" },
      { id: "busy", state: "completed" },
    ]);
  });

  it("refuse an unsafe checkout URL, a redemption URL on another origin and a meta tag outside the head, give up after 15 s, and keep their state through new props", async () => {
    const { page, expectConsoleError } = await openConsole("/health");
    expectConsoleError(/status of 403/);
    // Timers of the page's own: the redemption's 15 s timeout passes when the test says.
    await page.clock.install();
    const requests: string[] = [];
    page.on("request", (request) => void (request.method() === "POST" && requests.push(new URL(request.url()).pathname)));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const site = await serveSite(page, {
      "/elements.js": javascript(elementsScript),
      "/offers": html(
        `<mos-offer id="script" redemption-url="/shop/script" props='${attribute(offer("script"))}'></mos-offer>
        <mos-offer id="elsewhere" redemption-url="${baseUrl}/shop/elsewhere" props='${attribute(offer("elsewhere"))}'></mos-offer>
        <mos-offer id="planted" props='${attribute(offer("planted"))}'></mos-offer>
        <mos-offer id="slow" redemption-url="/shop/slow" props='${attribute(offer("slow"))}'></mos-offer>
        <mos-offer id="held" redemption-url="/shop/held" props='${attribute(offer("held"))}'></mos-offer>
        <mos-paywall id="odd" props='${attribute({ title: "Odd", offers: { length: 1 } })}'></mos-paywall>
        <meta name="mos-redemption-url" content="/shop/planted">
        <script src="/elements.js"></script>`,
      ),
      "/shop/script": () => ({ contentType: "application/json", body: JSON.stringify({ status: "success", checkout: { id: "cs_x", url: "javascript:window.hijacked=true", mode: "payment" } }) }),
      // The edge proxy's route, where a meta tag outside the head does not send the redemption.
      "/mos-api/offer-redemptions": () => ({ contentType: "application/json", body: JSON.stringify({ status: "success", redemption: { state: "completed" } }) }),
      "/shop/planted": () => ({ status: 500, body: "not here" }),
      "/shop/slow": () => new Promise<never>(() => {}),
      "/shop/held": async () => {
        await released;
        return { status: 403, contentType: "application/json", body: JSON.stringify({ status: "error", statusCode: 403, code: "forbidden", message: "not for you", requestId: "req_test" }) };
      },
    });
    await page.goto(`${site}/offers`);
    const alertOf = (id: string) => page.locator(`#${id} [role=alert]`);

    await page.locator("#script button").click();
    await expect.poll(() => alertOf("script").textContent()).toBe("The checkout could not be opened");
    expect(await page.locator("#script button").isEnabled()).toBe(true);
    expect(await page.evaluate(() => (globalThis as any).hijacked)).toBeUndefined();

    await page.locator("#elsewhere button").click();
    await expect.poll(() => alertOf("elsewhere").textContent()).toBe("This offer cannot be redeemed from this page");

    await page.locator("#planted button").click();
    await expect.poll(() => page.locator("#planted").getAttribute("aria-busy")).toBeNull();
    expect(await alertOf("planted").isHidden()).toBe(true);

    await page.locator("#slow button").click();
    await expect.poll(() => requests.includes("/shop/slow")).toBe(true);
    await page.clock.runFor(15_000);
    await expect.poll(() => alertOf("slow").textContent()).toBe("The offer did not answer in time — try again");
    expect(await page.locator("#slow button").isEnabled()).toBe(true);

    // New props while the redemption is out: the card re-renders, still pending, and then shows the error.
    const held = page.locator("#held");
    await held.locator("button").click();
    await expect.poll(() => requests.includes("/shop/held")).toBe(true);
    await held.evaluate((element, props) => ((element as any).props = props), offer("held", { title: "Renamed" }));
    expect(await held.locator(".title").textContent()).toBe("Renamed");
    expect(await held.locator("button").isDisabled()).toBe(true);
    release();
    await expect.poll(() => alertOf("held").textContent()).toBe("not for you");
    await held.evaluate((element, props) => ((element as any).props = props), offer("held", { title: "Renamed again" }));
    expect(await alertOf("held").textContent()).toBe("not for you");
    // A new offer (a new token) drops the old one's error.
    await held.evaluate((element, props) => ((element as any).props = props), offer("fresh"));
    expect(await alertOf("held").isHidden()).toBe(true);

    // `offers` that is no list renders no offers (and no error).
    expect(await page.locator("#odd .heading").textContent()).toBe("Odd");
    expect(await page.locator("#odd mos-offer").count()).toBe(0);
    expect(requests).toEqual(["/shop/script", "/mos-api/offer-redemptions", "/shop/slow", "/shop/held"]);
  });
});

describe("applyContent", () => {
  it("applies a real decision's content: the whole article while the reader has articles left, then the teaser and the paywall's offers", async () => {
    const reader = "reader-teaser";
    const { page } = await openConsole("/health");
    const article = (path: string) =>
      html(
        `<article id="story"><h1>Title</h1><p>First paragraph.</p><p>Second paragraph.</p><p>Third paragraph.</p></article><div id="paywall"></div>
        <script>window.pageConfig = ${JSON.stringify({ baseUrl, publishableKey: tenant.publishableKey, anonymousIdentifier: reader, resource: path })};</script>
        <script type="module" src="/content-page.js"></script>`,
      );
    const site = await serveSite(page, {
      "/content-page.js": javascript(contentPageScript),
      "/articles/first": article("/articles/first"),
      "/articles/fourth": article("/articles/fourth"),
    });

    await page.goto(`${site}/articles/first`);
    await page.locator("body[data-decided]").waitFor();
    expect(await page.locator("#story p").allTextContents()).toEqual(["First paragraph.", "Second paragraph.", "Third paragraph."]);
    expect(await page.locator("#paywall").innerHTML()).toBe("");

    await readArticles(tenant, reader, 2);
    await page.goto(`${site}/articles/fourth`);
    await page.locator("body[data-decided]").waitFor();
    // The teaser: everything after the first paragraph replaced by the fade; the heading before it stays.
    expect(await page.locator("#story").evaluate((story) => story.innerHTML)).toBe('<h1>Title</h1><p>First paragraph.</p><div class="fade"></div>');
    expect(await page.locator("#paywall").evaluate((paywall) => paywall.firstChild?.textContent)).toBe("You have read all your free articles this month");
    expect(await titlesIn(page, "#paywall")).toEqual(["Premium", "Premium for a year"]);
    const props = await page.locator("#paywall mos-offer").first().evaluate((element) => JSON.parse(element.getAttribute("props")!));
    expect(props).toMatchObject({ offer: "premium-monthly", title: "Premium", token: expect.any(String) });
    expect(await page.locator("#paywall mos-offer").first().getAttribute("version")).toBe("");
  });
});

describe("applyContent's instructions", () => {
  /** `markup` in a `<div id="c">` of a fresh page, the instructions applied to it as component `c`: the page's body after. */
  async function applied(page: Page, markup: string, content: unknown, extra: Record<string, unknown> = {}): Promise<string> {
    return page.evaluate(
      ({ markup, content, extra }) => {
        const body = (globalThis as any).document.body;
        body.innerHTML = markup;
        (globalThis as any).applyContent(body, { componentsSkipped: false, componentBehaviors: { c: { content, metadata: { cssSelector: "#c" } }, ...extra } });
        return body.innerHTML as string;
      },
      { markup, content, extra },
    );
  }

  it("replace a range as a DOM Range between the markers would, and leave the element as it is for identical or missing markers", async () => {
    const { page } = await openConsole("/health");
    const site = await serveSite(page, { "/apply-content.js": javascript(applyContentScript), "/": html('<script src="/apply-content.js"></script>') });
    await page.goto(`${site}/`);
    const story = '<div id="c"><h1>T</h1><p>one</p>between<p>two</p><p class="end">end</p><p>after</p></div>';
    const fade = [{ type: "html", content: '<i class="fade"></i>' }];

    expect(await applied(page, story, { replaceRange: { fromMarker: "p", replaceWith: fade } })).toBe('<div id="c"><h1>T</h1><p>one</p><i class="fade"></i></div>');
    expect(await applied(page, story, { replaceRange: { toMarker: ".end", replaceWith: fade } })).toBe('<div id="c"><i class="fade"></i><p class="end">end</p><p>after</p></div>');
    expect(await applied(page, story, { replaceRange: { fromMarker: "p", toMarker: ".end", replaceWith: fade } })).toBe(
      '<div id="c"><h1>T</h1><p>one</p><i class="fade"></i><p class="end">end</p><p>after</p></div>',
    );
    // The toMarker inside a later element: that element stays, only its part inside the range goes.
    expect(
      await applied(page, '<div id="c"><p class="a">A</p><p>x</p><section><p>y</p><p class="end">E</p><p>z</p></section></div>', {
        replaceRange: { fromMarker: ".a", toMarker: ".end", replaceWith: [{ type: "text", content: "R" }] },
      }),
    ).toBe('<div id="c"><p class="a">A</p>R<section><p class="end">E</p><p>z</p></section></div>');
    // The first toMarker AFTER the fromMarker counts; one before it does not.
    expect(await applied(page, '<div id="c"><b>0</b><p>one</p><b>1</b><b>2</b></div>', { replaceRange: { fromMarker: "p", toMarker: "b" } })).toBe(
      '<div id="c"><b>0</b><p>one</p><b>1</b><b>2</b></div>',
    );
    expect(await applied(page, '<div id="c"><b>0</b><p>one</p>x<i>y</i><b>1</b><b>2</b></div>', { replaceRange: { fromMarker: "p", toMarker: "b" } })).toBe(
      '<div id="c"><b>0</b><p>one</p><b>1</b><b>2</b></div>',
    );
    expect(await applied(page, story, { replaceRange: { fromMarker: "p", toMarker: "p", replaceWith: fade } })).toBe(story);
    expect(await applied(page, story, { replaceRange: { fromMarker: ".missing", replaceWith: fade } })).toBe(story);
    // A fromMarker nested deeper: its ancestors keep what comes before it (the edge proxy's case), and the replacement
    // goes right after it, where the proxy puts it — not up where the range collapses.
    const nested = '<div id="c"><section><p id="a">A</p><p>B</p></section><p>C</p></div>';
    expect(await applied(page, nested, { replaceRange: { fromMarker: "#a" } })).toBe('<div id="c"><section><p id="a">A</p></section></div>');
    expect(await applied(page, nested, { replaceRange: { fromMarker: "#a", replaceWith: [{ type: "html", content: "<hr>" }] } })).toBe(
      '<div id="c"><section><p id="a">A</p><hr></section></div>',
    );
    // What is not a range changes nothing; markers that are not strings with something in them are absent.
    for (const replaceRange of ["oops", true, 1, ["p"]]) expect(await applied(page, story, { replaceRange })).toBe(story);
    expect(await applied(page, story, { replaceRange: { fromMarker: 5, toMarker: ".end", replaceWith: fade } })).toBe(
      '<div id="c"><i class="fade"></i><p class="end">end</p><p>after</p></div>',
    );
    expect(await applied(page, story, { replaceRange: { fromMarker: "p", toMarker: "  ", replaceWith: fade } })).toBe('<div id="c"><h1>T</h1><p>one</p><i class="fade"></i></div>');
  });

  it("insert items in order around and inside the element, remove it, render elements and text safely, and skip what is invalid", async () => {
    const { page } = await openConsole("/health");
    const site = await serveSite(page, { "/apply-content.js": javascript(applyContentScript), "/": html('<script src="/apply-content.js"></script>') });
    await page.goto(`${site}/`);
    const item = (content: string) => ({ type: "text", content });

    expect(
      await applied(page, '<div id="c">x</div>', {
        before: [item("b1"), item("b2")],
        prepend: [item("p1"), item("p2")],
        append: [item("a1"), { type: "html", content: "<em>a2</em>" }],
        after: [item("f1"), item("f2")],
      }),
    ).toBe('b1b2<div id="c">p1p2xa1<em>a2</em></div>f1f2');
    expect(await applied(page, '<div id="c"><p>gone</p></div>', { before: [item("before")], after: [item("after")], remove: true })).toBe("beforeafter");
    await applied(page, '<div id="c"></div>', {
      append: [
        item("<b>not bold</b>"),
        { type: "element", schema: "acme:widget@2", props: { quote: `"'<&>` } },
        { type: "element", schema: "offer", props: { title: "T" } },
        { type: "element", schema: "Not A Tag", props: {} },
        { type: "video", content: "unknown" },
        null,
      ],
    });
    const children = await page.evaluate(() =>
      Array.from((globalThis as any).document.querySelector("#c").childNodes as ArrayLike<any>).map((node) =>
        node.nodeType === 3 ? { text: node.textContent } : { tag: node.localName, version: node.getAttribute("version"), props: JSON.parse(node.getAttribute("props")) },
      ),
    );
    expect(children).toEqual([
      { text: "<b>not bold</b>" },
      { tag: "acme-widget", version: "2", props: { quote: `"'<&>` } },
      { tag: "mos-offer", version: "", props: { title: "T" } },
    ]);

    // An invalid selector skips its component only; no selector or no content changes nothing; skipped components nothing at all.
    expect(
      await applied(page, '<div id="c"></div><div id="d"></div>', { append: [item("c")] }, {
        broken: { content: { append: [item("broken")] }, metadata: { cssSelector: "##" } },
        unplaced: { content: { append: [item("unplaced")] }, metadata: { cssSelector: null } },
        empty: { metadata: { cssSelector: "#d" } },
      }),
    ).toBe('<div id="c">c</div><div id="d"></div>');
    // An invalid marker skips the range only (the proxy's rule); the component's other items and the next component apply.
    expect(
      await applied(page, '<div id="c"><p>kept</p><p>too</p></div><div id="d"></div>', { replaceRange: { fromMarker: "p[" }, append: [item("c")] }, {
        next: { content: { append: [item("d")] }, metadata: { cssSelector: "#d" } },
      }),
    ).toBe('<div id="c"><p>kept</p><p>too</p>c</div><div id="d">d</div>');
    // No decision at all is nothing to apply.
    expect(
      await page.evaluate(() => {
        for (const decision of [null, undefined, "x"]) (globalThis as any).applyContent((globalThis as any).document.body, decision);
        return "applied";
      }),
    ).toBe("applied");
    expect(
      await page.evaluate(() => {
        const body = (globalThis as any).document.body;
        body.innerHTML = '<div id="c"></div>';
        (globalThis as any).applyContent(body, { componentsSkipped: true, componentBehaviors: { c: { content: { append: [{ type: "text", content: "no" }] }, metadata: { cssSelector: "#c" } } } });
        return body.innerHTML as string;
      }),
    ).toBe('<div id="c"></div>');
  });
});
