/**
 * @edge-monetization/browser/react: decisions as React hooks, for pages that ask the platform themselves with a
 * publishable (`pk_`) key, and the offers as components that redeem through the same flow as the custom elements.
 */
import type { AccessCheckResponse, IdentityRequest, MonetizationClient, OfferView, PropertyState, SurfaceDecisionResponse } from "@edge-monetization/client";
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
  type CSSProperties,
  type ReactNode,
} from "react";
import { DecisionStore, IdentitySource, decisionKey, type DecisionOptions, type DecisionState } from "./decision-store.js";
import { defineElements, redeem, type MosOfferElement } from "./index.js";

export type { DecisionOptions, DecisionState } from "./decision-store.js";

const StoreContext = createContext<DecisionStore | null>(null);

export interface MonetizationProviderProps {
  /** `createClient({ baseUrl, apiKey: "pk_…", failureMode })` from @edge-monetization/client. */
  client: MonetizationClient;
  /** Who the decisions are for. Without it: the anonymous cookie's identifier, else one the platform mints (and the cookie keeps). */
  identity?: IdentityRequest;
  /** The anonymous identifier's cookie; the edge proxy's default. */
  anonymousCookie?: string;
  children?: ReactNode;
}

/** Makes `client` and the visitor's identity available to the hooks below it, and shares their decisions. */
export function MonetizationProvider({ client, identity, anonymousCookie = "mos_anon", children }: MonetizationProviderProps) {
  const identityKey = JSON.stringify(identity ?? null);
  // A new client or visitor starts over (the decisions were another's). The identity by value: an object literal in
  // render is the same visitor. The client by reference: make it once (module scope or useMemo), not in render.
  const store = useMemo(() => new DecisionStore(client, new IdentitySource(identity, anonymousCookie)), [client, identityKey, anonymousCookie]);
  return <StoreContext.Provider value={store}>{children}</StoreContext.Provider>;
}

function useStore(): DecisionStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error("@edge-monetization/browser/react: wrap the component in <MonetizationProvider>");
  return store;
}

/**
 * A decision for this visitor: a surface decision with `surfaceSlug` (it consumes what the surface consumes), else an
 * access check. Components asking the same thing share one request, and it is sent once (StrictMode's double effects
 * included) until `refresh()`.
 */
export function useDecision(options: DecisionOptions & { surfaceSlug: string }): DecisionState<SurfaceDecisionResponse>;
export function useDecision(options?: DecisionOptions): DecisionState<SurfaceDecisionResponse | AccessCheckResponse>;
export function useDecision(options: DecisionOptions = {}): DecisionState {
  const store = useStore();
  const key = decisionKey(options);
  const latest = useRef(options);
  latest.current = options;
  const subscribe = useCallback((listener: () => void) => store.subscribe(key, latest.current, listener), [store, key]);
  const snapshot = () => store.snapshot(key, latest.current);
  const state = useSyncExternalStore(subscribe, snapshot, snapshot);
  useEffect(() => store.load(key, latest.current), [store, key]);
  return state;
}

export interface FeatureState {
  loading: boolean;
  /** `client.hasAccess`: while loading false; when the platform cannot be reached, what the client's failureMode says. */
  hasAccess: boolean;
  property: PropertyState | undefined;
  refresh(): void;
}

/** One property of a feature (`"articles.enabled"`) from the decision `options` describe. */
export function useFeature(property: `${string}.${string}`, options: DecisionOptions = {}): FeatureState {
  const store = useStore();
  const decision = useDecision(options);
  const { result } = decision;
  if (decision.status === "loading" && !result) return { loading: true, hasAccess: false, property: undefined, refresh: decision.refresh };
  return {
    loading: decision.status === "loading",
    hasAccess: result ? store.client.hasAccess(result, property) : false,
    property: result ? store.client.property(result, property) : undefined,
    refresh: decision.refresh,
  };
}

export interface OffersState {
  loading: boolean;
  /** The group's offers in slot order (empty slots left out). */
  offers: OfferView[];
  refresh(): void;
}

const NO_OFFERS: OfferView[] = [];

/** The offers of group `groupSlug` in the surface decision on `options.surfaceSlug`. */
export function useOffers(groupSlug: string, options: DecisionOptions & { surfaceSlug: string }): OffersState {
  const decision = useDecision(options);
  const slots = decision.data?.offers?.[groupSlug]?.slots;
  const offers = useMemo(() => (slots ? slots.flatMap((slot) => (slot.offer ? [slot.offer] : [])) : NO_OFFERS), [slots]);
  return { loading: decision.status === "loading" && !decision.data, offers, refresh: decision.refresh };
}

export interface OfferProps {
  offer: OfferView;
  /** Where the redemption posts (else the page's `<meta name="mos-redemption-url">`, else the edge proxy's route). */
  redemptionUrl?: string;
  className?: string;
  style?: CSSProperties;
}

/** One offer as `<mos-offer>` (the custom element, defined on first use). */
export function Offer({ offer, redemptionUrl, className, style }: OfferProps) {
  defineElements();
  const ref = useRef<MosOfferElement>(null);
  useLayoutEffect(() => {
    if (ref.current) ref.current.props = offer;
  }, [offer]);
  return createElement("mos-offer", { ref, className, style, "redemption-url": redemptionUrl });
}

export interface PricingTableProps {
  /** The surface whose decision holds the offers (with `group`), … */
  surfaceSlug?: string;
  group?: string;
  /** … or the offers themselves. */
  offers?: OfferView[];
  /** Called with the chosen offer instead of redeeming it. */
  onSelect?: (offer: OfferView) => void;
  redemptionUrl?: string;
  className?: string;
}

/**
 * The offers side by side, one column each: badge (`fields.badge`), title, price, description, `fields.features` as a
 * list, and a button that redeems the offer like `<mos-offer>` (or calls `onSelect`). Unstyled but for the grid:
 * style `.mos-pricing-table`, `.mos-pricing-column` and the classes inside.
 */
export function PricingTable(props: PricingTableProps) {
  if (props.offers) return <PricingColumns {...props} offers={props.offers} />;
  if (!props.surfaceSlug || !props.group) throw new Error("<PricingTable>: give `offers`, or `surfaceSlug` and `group`");
  return <SurfacePricingTable {...props} surfaceSlug={props.surfaceSlug} group={props.group} />;
}

function SurfacePricingTable(props: PricingTableProps & { surfaceSlug: string; group: string }) {
  const { loading, offers } = useOffers(props.group, { surfaceSlug: props.surfaceSlug });
  if (loading) return <div className={joinClasses("mos-pricing-table", props.className)} aria-busy="true" />;
  return <PricingColumns {...props} offers={offers} />;
}

const GRID: CSSProperties = { display: "grid", gap: "1rem", gridTemplateColumns: "repeat(auto-fit, minmax(14rem, 1fr))" };

function PricingColumns({ offers, onSelect, redemptionUrl, className }: PricingTableProps & { offers: OfferView[] }) {
  return (
    <div className={joinClasses("mos-pricing-table", className)} role="list" style={GRID} {...(redemptionUrl ? { "redemption-url": redemptionUrl } : {})}>
      {offers.map((offer) => (
        <PricingColumn key={offer.token} offer={offer} onSelect={onSelect} />
      ))}
    </div>
  );
}

function PricingColumn({ offer, onSelect }: { offer: OfferView; onSelect?: (offer: OfferView) => void }) {
  const column = useRef<HTMLDivElement>(null);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const busy = useRef(false);
  const choose = async () => {
    if (onSelect) return onSelect(offer);
    if (busy.current || !column.current) return;
    busy.current = true;
    setPending(true);
    setError(null);
    const outcome = await redeem(column.current, offer);
    if (outcome.kind === "redeemed" && outcome.navigating) return;
    busy.current = false;
    setPending(false);
    if (outcome.kind === "failed") setError(outcome.message);
  };
  const fields = offer.fields ?? {};
  const features = Array.isArray(fields.features) && fields.features.every((feature) => typeof feature === "string") ? (fields.features as string[]) : null;
  return (
    <div ref={column} className="mos-pricing-column" role="listitem" data-offer={offer.offer} aria-busy={pending || undefined}>
      {typeof fields.badge === "string" && fields.badge ? <span className="mos-badge">{fields.badge}</span> : null}
      <h3 className="mos-title">{offer.title}</h3>
      {offer.priceDisplay ? <p className="mos-price">{offer.priceDisplay}</p> : null}
      {offer.description ? <p className="mos-description">{offer.description}</p> : null}
      {features ? (
        <ul className="mos-features">
          {features.map((feature) => (
            <li key={feature}>{feature}</li>
          ))}
        </ul>
      ) : null}
      <button type="button" className="mos-button" disabled={pending} onClick={() => void choose()}>
        {offer.callToAction || "Choose"}
      </button>
      {error ? (
        <p className="mos-error" role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

function joinClasses(...names: (string | undefined)[]): string {
  return names.filter(Boolean).join(" ");
}
