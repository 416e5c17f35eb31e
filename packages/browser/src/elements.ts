import type { OfferView } from "@edge-monetization/client";
import { redeem } from "./redemption.js";

/** `<mos-offer-group props>`: an offer group of a surface decision (`decision.offers[slug]`). */
export interface OfferGroupProps {
  name?: string;
  slots: { slot: number; name: string | null; offer: OfferView | null }[];
}
/** `<mos-paywall props>`. */
export interface PaywallProps {
  title?: string;
  message?: string;
  offers?: OfferView[];
}

/** The parts an offer card exposes (`mos-offer::part(button)`); groups and paywalls forward them. */
const OFFER_PARTS = "card,image,badge,title,price,description,features,button,error";

// Theming through CSS custom properties (they cross the shadow boundary); every one has a default.
const STYLE = `:host{display:block;font:var(--mos-font,inherit);color:var(--mos-color,inherit)}[hidden]{display:none!important}
.card{box-sizing:border-box;height:100%;display:flex;flex-direction:column;gap:var(--mos-gap,.5rem);padding:var(--mos-padding,1.25rem);background:var(--mos-background,#fff);border:var(--mos-border,1px solid #d9dce1);border-radius:var(--mos-radius,.75rem)}
img{max-width:100%;border-radius:calc(var(--mos-radius,.75rem)/2)}
.badge{align-self:flex-start;padding:.1rem .6rem;border-radius:999px;background:var(--mos-accent,#4f46e5);color:var(--mos-accent-text,#fff);font-size:.75rem;font-weight:600}
h2,h3,p,ul{margin:0}.title{font-size:1.15rem}.price{font-size:1.5rem;font-weight:700}.description,.message{color:var(--mos-muted,#5b6270)}
ul{padding-left:1.2rem;color:var(--mos-muted,#5b6270)}
button{margin-top:auto;padding:.65rem 1rem;border:0;border-radius:var(--mos-button-radius,.5rem);background:var(--mos-accent,#4f46e5);color:var(--mos-accent-text,#fff);font:inherit;font-weight:600;cursor:pointer}
button:disabled{opacity:.6;cursor:progress}button:focus-visible{outline:2px solid var(--mos-accent,#4f46e5);outline-offset:2px}
.error{color:var(--mos-error,#b42318);font-size:.9rem}
.offers{display:grid;gap:var(--mos-gap,1rem);grid-template-columns:repeat(auto-fit,minmax(var(--mos-column-width,14rem),1fr))}
.paywall{display:flex;flex-direction:column;gap:var(--mos-gap,1rem)}`;

// Where there is no DOM (server rendering imports this module too), the classes still need a base to extend.
const Base = (globalThis.HTMLElement ?? class {}) as typeof HTMLElement;

/** The common part: a `props` attribute (JSON) or property, rendered into an open shadow root. */
abstract class PropsElement<Props> extends Base {
  static observedAttributes = ["props"];
  #props: Props | null = null;
  protected readonly root: ShadowRoot;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    // `props` set before the element was defined is an own property hiding the accessor: take it over.
    if (Object.hasOwn(this, "props")) {
      const early = (this as { props?: Props | null }).props ?? null;
      delete (this as { props?: Props | null }).props;
      this.props = early;
    }
  }

  /** The element's data; setting it re-renders. The `props` attribute (JSON) sets it too. */
  get props(): Props | null {
    return this.#props;
  }
  set props(value: Props | null) {
    this.#props = value;
    this.update();
  }

  attributeChangedCallback(_name: string, _old: string | null, value: string | null): void {
    try {
      this.props = value ? (JSON.parse(value) as Props) : null;
    } catch {
      // An attribute that is not JSON shows nothing rather than breaking the page around it.
      this.props = null;
    }
  }

  connectedCallback(): void {
    if (!this.root.hasChildNodes()) this.update();
  }

  protected update(): void {
    const style = document.createElement("style");
    style.textContent = STYLE;
    this.root.replaceChildren(style, ...(this.#props ? this.render(this.#props) : []));
  }

  protected abstract render(props: Props): Node[];
}

/** `document.createElement` with a class, a part and text (always as text: props never become markup). */
function create<K extends keyof HTMLElementTagNameMap>(tag: K, part?: string, text?: string | null): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (part) {
    element.className = part;
    element.setAttribute("part", part);
  }
  if (text != null) element.textContent = text;
  return element;
}

function offerElements(offers: readonly unknown[]): HTMLElement {
  const list = create("div", "offers");
  for (const offer of offers) {
    if (!offer || typeof offer !== "object") continue;
    const element = document.createElement("mos-offer") as MosOfferElement;
    element.setAttribute("exportparts", OFFER_PARTS);
    element.props = offer as OfferView;
    list.append(element);
  }
  return list;
}

/**
 * `<mos-offer props='OfferView'>`: one offer as a card — its badge (`fields.badge`), image, title, price, description,
 * features (`fields.features` when it is a list of strings) and a button that redeems it.
 */
export class MosOfferElement extends PropsElement<OfferView> {
  // Kept on the element, not in the rendered nodes: props set while a redemption is out re-render the card.
  #pending = false;
  /** The last redemption's error, for the offer (token) it was about. */
  #error: { token: string; message: string } | null = null;

  protected render(offer: OfferView): Node[] {
    const card = create("div", "card");
    const fields = offer.fields ?? {};
    if (typeof fields.badge === "string" && fields.badge) card.append(create("span", "badge", fields.badge));
    if (offer.imageUrl) {
      const image = create("img", "image");
      image.src = offer.imageUrl;
      image.alt = "";
      card.append(image);
    }
    card.append(create("h3", "title", offer.title));
    if (offer.priceDisplay) card.append(create("p", "price", offer.priceDisplay));
    if (offer.description) card.append(create("p", "description", offer.description));
    const features = fields.features;
    if (Array.isArray(features) && features.every((feature) => typeof feature === "string")) {
      const list = create("ul", "features");
      for (const feature of features) list.append(create("li", undefined, feature));
      card.append(list);
    }
    const button = create("button", "button", offer.callToAction || "Choose");
    button.type = "button";
    const error = create("p", "error");
    error.setAttribute("role", "alert");
    button.addEventListener("click", () => void this.#redeem(offer));
    card.append(button, error);
    // A new offer (a fresh token) makes the old one's error moot.
    if (this.#error && this.#error.token !== offer.token) this.#error = null;
    this.#showState(button, error);
    return [card];
  }

  #showState(button = this.root.querySelector("button"), error = this.root.querySelector<HTMLElement>(".error")): void {
    if (button) button.disabled = this.#pending;
    if (error) {
      error.textContent = this.#error?.message ?? "";
      error.hidden = !this.#error;
    }
  }

  async #redeem(offer: OfferView): Promise<void> {
    // A double click, or a click while the first request is still out, sends nothing more.
    if (this.#pending) return;
    this.#pending = true;
    this.#error = null;
    this.setAttribute("aria-busy", "true");
    this.#showState();
    const outcome = await redeem(this, offer);
    // While the browser leaves for the checkout, the button stays disabled: a click then would redeem again.
    if (outcome.kind === "redeemed" && outcome.navigating) return;
    this.#pending = false;
    this.removeAttribute("aria-busy");
    if (outcome.kind === "failed") this.#error = { token: offer.token, message: outcome.message };
    this.#showState();
  }
}

/** `<mos-offer-group props='{name, slots}'>`: the offers of a group's slots, in slot order (empty slots skipped). */
export class MosOfferGroupElement extends PropsElement<OfferGroupProps> {
  protected render(group: OfferGroupProps): Node[] {
    const slots: unknown[] = Array.isArray(group.slots) ? group.slots : [];
    const offers = slots.flatMap((slot) => (slot && typeof slot === "object" && "offer" in slot && slot.offer ? [slot.offer] : []));
    const list = offerElements(offers);
    list.setAttribute("part", "offers");
    if (group.name) list.setAttribute("aria-label", group.name);
    return [list];
  }
}

/** `<mos-paywall props='{title?, message?, offers?}'>`: a heading, a message and the offers. */
export class MosPaywallElement extends PropsElement<PaywallProps> {
  protected render(paywall: PaywallProps): Node[] {
    const box = create("section", "paywall");
    if (paywall.title) box.append(create("h2", "heading", paywall.title));
    if (paywall.message) box.append(create("p", "message", paywall.message));
    if (Array.isArray(paywall.offers) && paywall.offers.length) {
      const list = offerElements(paywall.offers);
      list.setAttribute("part", "offers");
      box.append(list);
    }
    return [box];
  }
}

/** The elements by tag; `defineElements()` registers them. */
export const ELEMENTS = {
  "mos-offer": MosOfferElement,
  "mos-offer-group": MosOfferGroupElement,
  "mos-paywall": MosPaywallElement,
} as const;

/** Registers `<mos-offer>`, `<mos-offer-group>` and `<mos-paywall>`; safe to call any number of times (and on a server: it does nothing there). */
export function defineElements(registry: CustomElementRegistry | undefined = globalThis.customElements): void {
  if (!registry) return;
  for (const [tag, element] of Object.entries(ELEMENTS)) {
    if (!registry.get(tag)) registry.define(tag, element);
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "mos-offer": MosOfferElement;
    "mos-offer-group": MosOfferGroupElement;
    "mos-paywall": MosPaywallElement;
  }
}
