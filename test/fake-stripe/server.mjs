/**
 * A fake of the part of Stripe's REST API the platform uses, for tests: nothing in the test suite may reach the real
 * Stripe. It speaks Stripe's wire format (form-encoded bodies in bracket notation, `Authorization: Bearer sk_test_…`,
 * JSON objects in Stripe's shapes, errors as `{ error: { type, message, code? } }`), so the official SDK can be
 * pointed at it.
 *
 * State is in memory and scoped by secret key, as Stripe scopes it by account: test files run in parallel against one
 * server, so each test uses its own `sk_test_…` key and sees only its own customers, prices and requests.
 *
 * `/__control/…` is not Stripe's: tests use it to seed data, complete checkout sessions, move subscriptions through
 * their lifecycle (update, cancel, invoice paid or failed, start a schedule's next phase), refund and dispute payments
 * (each returning the events Stripe would send as webhooks, in order), save a (possibly declining) default payment
 * method on a customer, read the recorded requests and make a request fail once (`/__control/fail_next`).
 *
 * Run on its own with `node test/fake-stripe/server.mjs [port]`.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { isDeepStrictEqual } from "node:util";

const API_VERSION = "2026-10-28.endive";
const DAY_SECONDS = 86_400;

/** Thrown by handlers; answered in Stripe's error shape. */
class StripeError extends Error {
  constructor(status, type, message, extra = {}) {
    super(message);
    this.status = status;
    this.body = { error: { type, message, ...extra } };
  }
}

const missing = (kind, id, param = "id") =>
  new StripeError(404, "invalid_request_error", `No such ${kind}: '${id}'`, { code: "resource_missing", param });
const invalid = (param, message) =>
  new StripeError(400, "invalid_request_error", message, { code: "parameter_invalid", param });
const required = (param) =>
  new StripeError(400, "invalid_request_error", `Missing required param: ${param}.`, { code: "parameter_missing", param });

/**
 * Decodes Stripe's form encoding: `a[b][0][c]=1&expand[]=x` → `{ a: { b: [{ c: "1" }] }, expand: ["x"] }`.
 * Objects whose keys are all indices become arrays.
 */
export function parseStripeForm(text) {
  const root = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const head = key.match(/^[^[]+/)?.[0] ?? key;
    const path = [head, ...[...key.slice(head.length).matchAll(/\[([^\]]*)\]/g)].map((match) => match[1])];
    let node = root;
    path.forEach((segment, index) => {
      const name = segment === "" ? String(Object.keys(node).length) : segment;
      if (index === path.length - 1) node[name] = value;
      else node = node[name] ??= {};
    });
  }
  const arrays = (value) => {
    if (value === null || typeof value !== "object") return value;
    const keys = Object.keys(value);
    const entries = keys.map((key) => [key, arrays(value[key])]);
    if (keys.length > 0 && keys.every((key) => /^\d+$/.test(key))) {
      return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, item]) => item);
    }
    return Object.fromEntries(entries);
  };
  return arrays(root);
}

const now = () => Math.floor(Date.now() / 1000);
const newId = (prefix) => `${prefix}_${randomBytes(12).toString("base64url").replace(/[-_]/g, "x")}`;
const asList = (value) => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
const asInteger = (value, param) => {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number)) throw invalid(param, `Invalid integer: ${value}`);
  return number;
};
const asBoolean = (value) => value === true || value === "true";

export function createFakeStripe() {
  /** Every object by id; `account` (the secret key that created it) is kept outside the object. */
  const objects = new Map();
  /** id → the account (secret key) that owns it and a creation sequence, for lists (Stripe lists newest first). */
  const owners = new Map();
  const idempotent = new Map();
  /** Requests tests asked to fail once (`/__control/fail_next`), per account. */
  const failures = [];
  /** What a checkout session was created with but Stripe's object does not show: line items, subscription_data, payment_intent_data. */
  const sessionInputs = new Map();
  /** Billing meter events by account, then by `identifier` (Stripe counts an identifier once). */
  const meterEvents = new Map();
  let requests = [];
  let sequence = 0;
  let baseUrl = "";

  function store(account, object) {
    objects.set(object.id, object);
    owners.set(object.id, { account, sequence: sequence++ });
    return object;
  }

  function find(account, kind, id, param = "id") {
    const object = objects.get(id);
    if (!object || object.object !== kind || (account !== null && owners.get(id).account !== account)) {
      throw missing(kind.replace(/^checkout\.session$/, "checkout session"), id, param);
    }
    return object;
  }

  function all(account, kind, filter = () => true) {
    return [...objects.values()]
      .filter((object) => object.object === kind && owners.get(object.id).account === account && filter(object))
      .sort((a, b) => owners.get(b.id).sequence - owners.get(a.id).sequence);
  }

  function page(items, query, url) {
    const limit = asInteger(query.limit, "limit") ?? 10;
    if (limit < 1 || limit > 100) throw invalid("limit", "This value must be between 1 and 100.");
    let start = 0;
    if (query.starting_after) {
      start = items.findIndex((item) => item.id === query.starting_after) + 1;
      if (start === 0) throw missing(items[0]?.object ?? "object", query.starting_after, "starting_after");
    } else if (query.ending_before) {
      const end = items.findIndex((item) => item.id === query.ending_before);
      if (end === -1) throw missing(items[0]?.object ?? "object", query.ending_before, "ending_before");
      start = Math.max(0, end - limit);
      return { object: "list", data: items.slice(start, end), has_more: start > 0, url };
    }
    const data = items.slice(start, start + limit);
    return { object: "list", data, has_more: start + limit < items.length, url };
  }

  /**
   * `expand[]=subscription` or `expand[]=data.payment_intent.latest_charge`: ids of stored objects become the objects,
   * along the whole path, as Stripe expands every id a nested expansion passes through.
   */
  function expand(account, object, paths) {
    const copy = structuredClone(object);
    for (const path of asList(paths)) {
      const segments = path.split(".");
      const visit = (node, index) => {
        if (node === null || typeof node !== "object") return;
        if (Array.isArray(node)) return node.forEach((item) => visit(item, index));
        const segment = segments[index];
        if (segment === "line_items" && node.object === "checkout.session") node.line_items = lineItemList(node.id);
        else if (typeof node[segment] === "string" && objects.has(node[segment])) {
          const target = node[segment];
          if (owners.get(target).account === account) node[segment] = structuredClone(objects.get(target));
        }
        if (index < segments.length - 1) visit(node[segment], index + 1);
      };
      visit(copy, 0);
    }
    return copy;
  }

  // --- Object builders, in Stripe's shapes ------------------------------------------------------------------------

  function newCustomer(account, params = {}) {
    return store(account, {
      id: newId("cus"),
      object: "customer",
      address: null,
      balance: 0,
      created: now(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: params.description ?? null,
      email: params.email ?? null,
      invoice_prefix: randomBytes(4).toString("hex").toUpperCase(),
      invoice_settings: { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null },
      livemode: false,
      metadata: params.metadata ?? {},
      name: params.name ?? null,
      phone: params.phone ?? null,
      preferred_locales: asList(params.preferred_locales),
      shipping: null,
      tax_exempt: "none",
      test_clock: null,
    });
  }

  function newProduct(account, params) {
    if (!params.name) throw required("name");
    const created = now();
    return store(account, {
      id: params.id ?? newId("prod"),
      object: "product",
      active: params.active === undefined ? true : asBoolean(params.active),
      created,
      default_price: null,
      description: params.description ?? null,
      images: [],
      livemode: false,
      marketing_features: [],
      metadata: params.metadata ?? {},
      name: params.name,
      package_dimensions: null,
      shippable: null,
      statement_descriptor: null,
      tax_code: null,
      unit_label: null,
      updated: created,
      url: null,
    });
  }

  function newPrice(account, params) {
    if (!params.currency) throw required("currency");
    if (params.unit_amount === undefined) throw required("unit_amount");
    let product = params.product;
    if (params.product_data) product = newProduct(account, params.product_data).id;
    if (!product) throw required("product");
    find(account, "product", product, "product");
    const recurring = params.recurring
      ? {
          interval: params.recurring.interval ?? "month",
          interval_count: asInteger(params.recurring.interval_count, "recurring[interval_count]") ?? 1,
          meter: null,
          trial_period_days: asInteger(params.recurring.trial_period_days, "recurring[trial_period_days]") ?? null,
          usage_type: params.recurring.usage_type ?? "licensed",
        }
      : null;
    const unitAmount = asInteger(params.unit_amount, "unit_amount");
    return store(account, {
      id: params.id ?? newId("price"),
      object: "price",
      active: params.active === undefined ? true : asBoolean(params.active),
      billing_scheme: "per_unit",
      created: now(),
      currency: String(params.currency).toLowerCase(),
      custom_unit_amount: null,
      livemode: false,
      lookup_key: params.lookup_key ?? null,
      metadata: params.metadata ?? {},
      nickname: params.nickname ?? null,
      product,
      recurring,
      tax_behavior: params.tax_behavior ?? "unspecified",
      tiers_mode: null,
      transform_quantity: null,
      type: recurring ? "recurring" : "one_time",
      unit_amount: unitAmount,
      unit_amount_decimal: String(unitAmount),
    });
  }

  function lineItemList(sessionId) {
    const data = sessionInputs.get(sessionId).lineItems.map(({ price, quantity }, index) => {
      const amount = (price.unit_amount ?? 0) * quantity;
      return {
        id: `li_${sessionId.slice(8, 20)}${index}`,
        object: "item",
        amount_discount: 0,
        amount_subtotal: amount,
        amount_tax: 0,
        amount_total: amount,
        currency: price.currency,
        description: objects.get(price.product)?.name ?? null,
        price: structuredClone(price),
        quantity,
      };
    });
    return { object: "list", data, has_more: false, url: `/v1/checkout/sessions/${sessionId}/line_items` };
  }

  function newCheckoutSession(account, params) {
    const mode = params.mode;
    if (!mode) throw required("mode");
    if (mode !== "subscription" && mode !== "payment") throw invalid("mode", `Invalid mode: must be one of payment, subscription`);
    if (!params.success_url && params.ui_mode !== "embedded") throw required("success_url");
    const items = asList(params.line_items);
    if (items.length === 0) throw required("line_items");
    const lineItems = items.map((item, index) => {
      if (!item.price && !item.price_data) throw required(`line_items[${index}][price]`);
      // `price_data`: Stripe makes an inline price (of an existing product) that only this session uses.
      const price = item.price_data
        ? newPrice(account, { ...item.price_data, active: "false", product: item.price_data.product ?? "" })
        : find(account, "price", item.price, `line_items[${index}][price]`);
      if (mode === "subscription" && !price.recurring) {
        throw invalid(`line_items[${index}][price]`, "You must provide at least one recurring price in `subscription` mode when using prices.");
      }
      if (mode === "payment" && price.recurring) {
        throw invalid(`line_items[${index}][price]`, "You specified `payment` mode but passed a recurring price.");
      }
      return { price, quantity: asInteger(item.quantity, `line_items[${index}][quantity]`) ?? 1 };
    });
    if (params.customer) find(account, "customer", params.customer, "customer");
    const amount = lineItems.reduce((sum, { price, quantity }) => sum + (price.unit_amount ?? 0) * quantity, 0);
    const id = newId("cs_test");
    const created = now();
    const session = store(account, {
      id,
      object: "checkout.session",
      after_expiration: null,
      allow_promotion_codes: params.allow_promotion_codes === undefined ? null : asBoolean(params.allow_promotion_codes),
      amount_subtotal: amount,
      amount_total: amount,
      automatic_tax: { enabled: asBoolean(params.automatic_tax?.enabled), liability: null, status: null },
      billing_address_collection: params.billing_address_collection ?? null,
      cancel_url: params.cancel_url ?? null,
      client_reference_id: params.client_reference_id ?? null,
      created,
      currency: lineItems[0].price.currency,
      customer: params.customer ?? null,
      customer_creation: params.customer ? null : "always",
      customer_details: null,
      customer_email: params.customer_email ?? null,
      expires_at: created + DAY_SECONDS,
      invoice: null,
      livemode: false,
      locale: params.locale ?? null,
      metadata: params.metadata ?? {},
      mode,
      discounts: asList(params.discounts).map((discount) => ({ coupon: discount.coupon ?? null, promotion_code: discount.promotion_code ?? null })),
      payment_intent: null,
      payment_status: "unpaid",
      status: "open",
      subscription: null,
      success_url: params.success_url ?? null,
      url: `${baseUrl}/c/pay/${id}`,
    });
    sessionInputs.set(id, { lineItems, subscriptionData: params.subscription_data ?? {}, paymentIntentData: params.payment_intent_data ?? {} });
    return session;
  }

  function newSubscription(account, session, customer, status) {
    const created = now();
    const { lineItems, subscriptionData } = sessionInputs.get(session.id);
    const trialDays =
      Number(subscriptionData.trial_period_days) ||
      lineItems.find(({ price }) => price.recurring?.trial_period_days)?.price.recurring.trial_period_days ||
      14;
    const trialing = status === "trialing";
    const periodEnd = trialing ? created + trialDays * DAY_SECONDS : created + 30 * DAY_SECONDS;
    const id = newId("sub");
    const subscription = {
      id,
      object: "subscription",
      application: null,
      automatic_tax: { enabled: session.automatic_tax.enabled, liability: null },
      billing_cycle_anchor: periodEnd,
      cancel_at: null,
      cancel_at_period_end: false,
      canceled_at: null,
      collection_method: "charge_automatically",
      created,
      currency: session.currency,
      customer: customer.id,
      default_payment_method: null,
      description: null,
      ended_at: null,
      items: {
        object: "list",
        data: lineItems.map(({ price, quantity }) => ({
          id: newId("si"),
          object: "subscription_item",
          created,
          current_period_end: periodEnd,
          current_period_start: created,
          metadata: {},
          price: structuredClone(price),
          quantity,
          subscription: id,
        })),
        has_more: false,
        url: `/v1/subscription_items?subscription=${id}`,
      },
      latest_invoice: null,
      livemode: false,
      metadata: structuredClone(subscriptionData.metadata ?? {}),
      start_date: created,
      status,
      trial_end: trialing ? periodEnd : null,
      trial_start: trialing ? created : null,
    };
    return store(account, subscription);
  }

  /** The payment a one-time checkout collects: a succeeded payment intent and its captured charge. */
  function newPayment(account, session, customer) {
    const created = now();
    const paymentIntentId = newId("pi");
    // Stripe copies payment_intent_data's metadata onto the payment intent, and the payment intent's onto its charge.
    const metadata = sessionInputs.get(session.id).paymentIntentData.metadata ?? {};
    const charge = store(account, {
      id: newId("ch"),
      object: "charge",
      amount: session.amount_total,
      amount_captured: session.amount_total,
      amount_refunded: 0,
      captured: true,
      created,
      currency: session.currency,
      customer: customer.id,
      description: null,
      disputed: false,
      livemode: false,
      metadata: structuredClone(metadata),
      paid: true,
      payment_intent: paymentIntentId,
      receipt_email: session.customer_details?.email ?? null,
      refunded: false,
      status: "succeeded",
    });
    return store(account, {
      id: paymentIntentId,
      object: "payment_intent",
      amount: session.amount_total,
      amount_capturable: 0,
      amount_received: session.amount_total,
      capture_method: "automatic_async",
      created,
      currency: session.currency,
      customer: customer.id,
      description: null,
      latest_charge: charge.id,
      livemode: false,
      metadata: structuredClone(metadata),
      payment_method_types: ["card"],
      status: "succeeded",
    });
  }

  /** Payment methods (`pm_…`) whose charges are declined, as Stripe's test card 4000 0000 0000 0002 is. */
  const decliningMethods = new Set();

  /** A card saved on the customer as its default payment method (invoice_settings.default_payment_method). */
  function savePaymentMethod(customerId, options = {}) {
    const customer = find(null, "customer", customerId);
    const account = owners.get(customer.id).account;
    const paymentMethod = store(account, {
      id: newId("pm"),
      object: "payment_method",
      card: { brand: "visa", exp_month: 12, exp_year: 2034, last4: options.decline ? "0002" : "4242" },
      created: now(),
      customer: customer.id,
      livemode: false,
      metadata: {},
      type: "card",
    });
    if (options.decline) decliningMethods.add(paymentMethod.id);
    customer.invoice_settings.default_payment_method = paymentMethod.id;
    return { customer, paymentMethod };
  }

  /**
   * `POST /v1/payment_intents`. Confirmed at once (`confirm: true`) with a saved payment method: succeeded with a
   * captured charge, or — for a declining method — left `requires_payment_method` and answered with Stripe's 402
   * card_error (code card_declined) carrying the payment intent.
   */
  function newPaymentIntent(account, params) {
    const amount = asInteger(params.amount, "amount");
    if (amount === undefined) throw required("amount");
    if (!params.currency) throw required("currency");
    const customer = params.customer ? find(account, "customer", params.customer, "customer") : null;
    const paymentMethod = params.payment_method ? find(account, "payment_method", params.payment_method, "payment_method") : null;
    const confirm = asBoolean(params.confirm);
    if (confirm && !paymentMethod) throw required("payment_method");
    const created = now();
    const paymentIntent = store(account, {
      id: newId("pi"),
      object: "payment_intent",
      amount,
      amount_capturable: 0,
      amount_received: 0,
      capture_method: "automatic_async",
      confirmation_method: "automatic",
      created,
      currency: params.currency,
      customer: customer?.id ?? null,
      description: params.description ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata: params.metadata ?? {},
      payment_method: paymentMethod?.id ?? null,
      payment_method_types: ["card"],
      setup_future_usage: null,
      status: confirm ? "processing" : "requires_confirmation",
    });
    if (!confirm) return paymentIntent;
    if (decliningMethods.has(paymentMethod.id)) {
      const error = { type: "card_error", code: "card_declined", decline_code: "generic_decline", message: "Your card was declined.", payment_method: structuredClone(paymentMethod) };
      Object.assign(paymentIntent, { status: "requires_payment_method", last_payment_error: error, payment_method: null });
      throw new StripeError(402, "card_error", error.message, {
        code: "card_declined",
        decline_code: "generic_decline",
        payment_intent: structuredClone(paymentIntent),
        request_log_url: `${baseUrl}/logs`,
      });
    }
    const charge = store(account, {
      id: newId("ch"),
      object: "charge",
      amount,
      amount_captured: amount,
      amount_refunded: 0,
      captured: true,
      created,
      currency: params.currency,
      customer: customer?.id ?? null,
      description: null,
      disputed: false,
      livemode: false,
      metadata: structuredClone(paymentIntent.metadata),
      paid: true,
      payment_intent: paymentIntent.id,
      payment_method: paymentMethod.id,
      receipt_email: customer?.email ?? null,
      refunded: false,
      status: "succeeded",
    });
    return Object.assign(paymentIntent, { status: "succeeded", amount_received: amount, latest_charge: charge.id });
  }

  /** Refunds `amount` (all that is left by default) of a payment intent's charge, as the Dashboard would. */
  function refundPayment(paymentIntentId, options = {}) {
    const paymentIntent = find(null, "payment_intent", paymentIntentId);
    const account = owners.get(paymentIntent.id).account;
    const charge = objects.get(paymentIntent.latest_charge);
    const refundable = charge.amount - charge.amount_refunded;
    const amount = asInteger(options.amount, "amount") ?? refundable;
    if (amount < 1 || amount > refundable) throw invalid("amount", `Refund amount must be between 1 and ${refundable}.`);
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded === charge.amount;
    return { charge, events: [newEvent(account, "charge.refunded", charge)] };
  }

  // --- Lifecycle: what Stripe's billing does to a subscription over time, and the events it sends -----------------

  const SETTABLE_SUBSCRIPTION_STATUSES = ["active", "trialing", "past_due", "unpaid", "paused", "incomplete"];

  function findSubscription(subscriptionId) {
    const subscription = find(null, "subscription", subscriptionId);
    if (subscription.status === "canceled") {
      throw new StripeError(400, "invalid_request_error", "A canceled subscription can only update its cancellation_details and metadata.");
    }
    return { subscription, account: owners.get(subscription.id).account };
  }

  const periodEnd = (subscription) => Math.max(...subscription.items.data.map((item) => item.current_period_end));

  /**
   * customer.subscription.updated with `previous_attributes` holding the old value of every top-level field that
   * changed since `before` (whole, as Stripe sends changed arrays and lists whole); none when nothing changed.
   */
  function subscriptionUpdated(account, subscription, before) {
    const previous = Object.fromEntries(
      Object.keys(subscription).filter((key) => !isDeepStrictEqual(before[key], subscription[key])).map((key) => [key, before[key]]),
    );
    return Object.keys(previous).length === 0 ? [] : [newEvent(account, "customer.subscription.updated", subscription, previous)];
  }

  /**
   * Changes a subscription as the Dashboard, the customer portal or a billing cycle would. `items` replaces the items
   * (an upgrade or downgrade): the item at the same position keeps its id, as `items[0][id]=si_…&items[0][price]=…`.
   */
  function updateSubscription(subscriptionId, changes = {}) {
    const { subscription, account } = findSubscription(subscriptionId);
    const before = structuredClone(subscription);
    if (changes.status !== undefined) {
      if (!SETTABLE_SUBSCRIPTION_STATUSES.includes(changes.status)) {
        throw invalid("status", `status must be one of ${SETTABLE_SUBSCRIPTION_STATUSES.join(", ")}`);
      }
      subscription.status = changes.status;
    }
    if (changes.items !== undefined) {
      const items = asList(changes.items);
      if (items.length === 0) throw required("items");
      const { current_period_start: start, current_period_end: end } = subscription.items.data[0];
      subscription.items.data = items.map((item, index) => {
        if (!item.price) throw required(`items[${index}][price]`);
        const price = find(account, "price", item.price, `items[${index}][price]`);
        if (!price.recurring) throw invalid(`items[${index}][price]`, "The price specified is not recurring. Subscriptions require a recurring price.");
        const kept = before.items.data[index];
        return {
          id: kept?.id ?? newId("si"),
          object: "subscription_item",
          created: kept?.created ?? now(),
          current_period_end: end,
          current_period_start: start,
          metadata: kept?.metadata ?? {},
          price: structuredClone(price),
          quantity: asInteger(item.quantity, `items[${index}][quantity]`) ?? 1,
          subscription: subscription.id,
        };
      });
    }
    if (changes.current_period_end !== undefined) {
      const end = asInteger(changes.current_period_end, "current_period_end");
      for (const item of subscription.items.data) item.current_period_end = end;
    }
    if (changes.cancel_at_period_end !== undefined && asBoolean(changes.cancel_at_period_end) !== subscription.cancel_at_period_end) {
      subscription.cancel_at_period_end = asBoolean(changes.cancel_at_period_end);
      subscription.canceled_at = subscription.cancel_at_period_end ? now() : null;
    }
    // A cancellation at the period's end follows the period.
    subscription.cancel_at = subscription.cancel_at_period_end ? periodEnd(subscription) : null;
    return { subscription, events: subscriptionUpdated(account, subscription, before) };
  }

  /** Cancels a subscription now, as the Dashboard's "cancel immediately" or the end of a period set to cancel. */
  function cancelSubscription(subscriptionId) {
    const { subscription, account } = findSubscription(subscriptionId);
    const at = now();
    subscription.status = "canceled";
    subscription.ended_at = at;
    subscription.canceled_at ??= at;
    return { subscription, events: [newEvent(account, "customer.subscription.deleted", subscription)] };
  }

  /**
   * Bills a subscription's current period, as its renewal would: a finalized invoice, paid or with its payment failed.
   * A failed payment makes an active or trialing subscription past_due; a paid one makes a past_due, unpaid or
   * incomplete subscription active again.
   */
  function invoiceSubscription(subscriptionId, options = {}) {
    const { subscription, account } = findSubscription(subscriptionId);
    if (options.paid === undefined) throw required("paid");
    const paid = asBoolean(options.paid);
    const customer = objects.get(subscription.customer);
    const created = now();
    const id = newId("in");
    const periodStart = Math.min(...subscription.items.data.map((item) => item.current_period_start));
    const periodEndsAt = periodEnd(subscription);
    const lines = subscription.items.data.map((item) => {
      const amount = (item.price.unit_amount ?? 0) * item.quantity;
      return {
        id: newId("il"),
        object: "line_item",
        amount,
        currency: item.price.currency,
        description: `${item.quantity} × ${objects.get(item.price.product)?.name ?? item.price.product}`,
        discount_amounts: [],
        discountable: true,
        discounts: [],
        invoice: id,
        livemode: false,
        metadata: {},
        parent: {
          type: "subscription_item_details",
          invoice_item_details: null,
          subscription_item_details: {
            invoice_item: null,
            proration: false,
            proration_details: { credited_items: null },
            subscription: subscription.id,
            subscription_item: item.id,
          },
        },
        period: { end: item.current_period_end, start: item.current_period_start },
        pretax_credit_amounts: [],
        pricing: {
          type: "price_details",
          price_details: { price: item.price.id, product: item.price.product },
          unit_amount_decimal: item.price.unit_amount_decimal,
        },
        quantity: item.quantity,
        quantity_decimal: String(item.quantity),
        subscription: subscription.id,
        subtotal: amount,
        taxes: [],
      };
    });
    const total = lines.reduce((sum, line) => sum + line.amount, 0);
    const invoice = store(account, {
      id,
      object: "invoice",
      account_country: "US",
      account_name: "Fake Stripe",
      account_tax_ids: null,
      amount_due: total,
      amount_overpaid: 0,
      amount_paid: paid ? total : 0,
      amount_remaining: paid ? 0 : total,
      amount_shipping: 0,
      application: null,
      attempt_count: 1,
      attempted: true,
      auto_advance: !paid,
      automatic_tax: { disabled_reason: null, enabled: subscription.automatic_tax.enabled, liability: null, provider: null, status: null },
      automatically_finalizes_at: null,
      billing_reason: options.billing_reason ?? "subscription_cycle",
      collection_method: subscription.collection_method,
      created,
      currency: subscription.currency,
      custom_fields: null,
      customer: subscription.customer,
      customer_account: null,
      customer_address: null,
      customer_email: customer?.email ?? null,
      customer_name: customer?.name ?? null,
      customer_phone: null,
      customer_shipping: null,
      customer_tax_exempt: "none",
      customer_tax_ids: [],
      default_payment_method: null,
      default_source: null,
      default_tax_rates: [],
      description: null,
      discounts: [],
      due_date: null,
      effective_at: created,
      ending_balance: 0,
      footer: null,
      from_invoice: null,
      hosted_invoice_url: `${baseUrl}/i/${id}`,
      invoice_pdf: `${baseUrl}/i/${id}/pdf`,
      issuer: { type: "self" },
      last_finalization_error: null,
      latest_revision: null,
      lines: { object: "list", data: lines, has_more: false, url: `/v1/invoices/${id}/lines` },
      livemode: false,
      metadata: {},
      next_payment_attempt: paid ? null : created + 3 * DAY_SECONDS,
      number: `${customer?.invoice_prefix ?? "FAKE"}-${String(all(account, "invoice").length + 1).padStart(4, "0")}`,
      on_behalf_of: null,
      parent: {
        type: "subscription_details",
        quote_details: null,
        subscription_details: { metadata: structuredClone(subscription.metadata), subscription: subscription.id },
      },
      payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
      period_end: periodEndsAt,
      period_start: periodStart,
      post_payment_credit_notes_amount: 0,
      pre_payment_credit_notes_amount: 0,
      receipt_number: null,
      rendering: null,
      shipping_cost: null,
      shipping_details: null,
      starting_balance: 0,
      statement_descriptor: null,
      status: paid ? "paid" : "open",
      status_transitions: { finalized_at: created, marked_uncollectible_at: null, paid_at: paid ? created : null, voided_at: null },
      subtotal: total,
      subtotal_excluding_tax: total,
      test_clock: null,
      total,
      total_discount_amounts: [],
      total_excluding_tax: total,
      total_pretax_credit_amounts: [],
      total_taxes: [],
      webhooks_delivered_at: created,
    });
    subscription.latest_invoice = invoice.id;
    // The invoice's creation is not what the test drives: previous_attributes shows only what the payment changed.
    const before = structuredClone(subscription);
    const events = [newEvent(account, paid ? "invoice.paid" : "invoice.payment_failed", invoice)];
    if (paid && ["past_due", "unpaid", "incomplete"].includes(subscription.status)) subscription.status = "active";
    if (!paid && ["active", "trialing"].includes(subscription.status)) subscription.status = "past_due";
    events.push(...subscriptionUpdated(account, subscription, before));
    return { invoice, subscription, events };
  }

  /** The buyer's bank disputes a payment's charge: a dispute awaiting the merchant's response. */
  function disputePayment(paymentIntentId, options = {}) {
    const paymentIntent = find(null, "payment_intent", paymentIntentId);
    const account = owners.get(paymentIntent.id).account;
    const charge = objects.get(paymentIntent.latest_charge);
    if (charge.disputed) throw new StripeError(400, "invalid_request_error", `Charge ${charge.id} has already been disputed.`, { code: "charge_disputed" });
    const created = now();
    const evidence = Object.fromEntries(
      ["access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure", "cancellation_rebuttal",
        "customer_communication", "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
        "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt",
        "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
        "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation", "shipping_tracking_number",
        "uncategorized_file", "uncategorized_text"].map((field) => [field, null]),
    );
    const dispute = store(account, {
      id: newId("dp"),
      object: "dispute",
      amount: asInteger(options.amount, "amount") ?? charge.amount - charge.amount_refunded,
      balance_transactions: [],
      charge: charge.id,
      created,
      currency: charge.currency,
      enhanced_eligibility_types: [],
      evidence: { ...evidence, enhanced_evidence: {} },
      evidence_details: { due_by: created + 7 * DAY_SECONDS, enhanced_eligibility: {}, has_evidence: false, past_due: false, submission_count: 0, submission_method: "not_submitted" },
      intended_submission_method: null,
      is_charge_refundable: false,
      livemode: false,
      metadata: {},
      payment_intent: paymentIntent.id,
      payment_method_details: { card: { brand: "visa", case_type: "chargeback", network_reason_code: "10.4" }, type: "card" },
      reason: options.reason ?? "fraudulent",
      status: "needs_response",
    });
    charge.disputed = true;
    return { dispute, events: [newEvent(account, "charge.dispute.created", dispute)] };
  }

  /** `previousAttributes`: for `*.updated` events, the changed fields' values before the change, as Stripe sends them. */
  function newEvent(account, type, object, previousAttributes = null, request = null) {
    return store(account, {
      id: newId("evt"),
      object: "event",
      api_version: API_VERSION,
      created: now(),
      data: previousAttributes ? { object: structuredClone(object), previous_attributes: structuredClone(previousAttributes) } : { object: structuredClone(object) },
      livemode: false,
      pending_webhooks: 1,
      request: { id: request, idempotency_key: null },
      type,
    });
  }

  /** What Stripe does once the customer pays on the hosted page, and the events it would send, in order. */
  function completeCheckout(sessionId, options = {}) {
    const session = find(null, "checkout.session", sessionId);
    const account = owners.get(session.id).account;
    if (session.status !== "open") {
      throw new StripeError(400, "invalid_request_error", `Checkout session ${session.id} is ${session.status}, not open.`);
    }
    const status = options.status ?? "active";
    if (status !== "active" && status !== "trialing") throw invalid("status", "status must be active or trialing");
    const events = [];
    let customer = session.customer ? objects.get(session.customer) : null;
    const email = options.email ?? session.customer_email ?? customer?.email ?? `buyer-${randomBytes(4).toString("hex")}@example.com`;
    if (!customer) {
      customer = newCustomer(account, { email, name: options.name ?? null });
      events.push(newEvent(account, "customer.created", customer));
    }
    session.customer = customer.id;
    session.customer_details = {
      address: null,
      email,
      name: customer.name,
      phone: null,
      tax_exempt: "none",
      tax_ids: [],
    };
    session.status = "complete";
    if (session.mode === "subscription") {
      const subscription = newSubscription(account, session, customer, status);
      session.subscription = subscription.id;
      session.payment_status = status === "trialing" ? "no_payment_required" : "paid";
      events.push(newEvent(account, "customer.subscription.created", subscription));
    } else {
      session.payment_intent = newPayment(account, session, customer).id;
      // A delayed method (a bank debit) completes the checkout unpaid; settleCheckout pays it later.
      session.payment_status = options.delayed ? "unpaid" : "paid";
    }
    events.push(newEvent(account, "checkout.session.completed", session));
    return { session, events };
  }

  /** A delayed payment of a completed one-time checkout settles: checkout.session.async_payment_succeeded. */
  function settleCheckout(sessionId) {
    const session = find(null, "checkout.session", sessionId);
    if (session.status !== "complete" || session.payment_status !== "unpaid") {
      throw new StripeError(400, "invalid_request_error", `Checkout session ${session.id} has no payment waiting to settle.`);
    }
    session.payment_status = "paid";
    return { session, events: [newEvent(owners.get(session.id).account, "checkout.session.async_payment_succeeded", session)] };
  }

  // --- Price changes: subscription updates, proration previews and subscription schedules ---------------------------
  //
  // `POST /v1/subscriptions/{id}` moves items to other prices (`items[i][id]` + `items[i][price]`), merges metadata and
  // sends customer.subscription.updated (stored as an event: `GET /v1/events?type=…`). The proration is deterministic:
  // for each changed item, the remaining fraction of its period at `proration_date` (now by default),
  // f = (period_end − proration_date) / (period_end − period_start), gives a credit line −round(old × qty × f)
  // ("Unused time on …") and a charge line round(new × qty × f) ("Remaining time on …"). `POST
  // /v1/invoices/create_preview` answers the invoice such a change would produce: those lines (none for
  // proration_behavior=none) and, unless always_invoice, the next period at the new prices; amount_due is their sum
  // (never below 0). Schedules: `POST /v1/subscription_schedules` with `from_subscription` makes one phase of the
  // subscription's current items and period; `POST /v1/subscription_schedules/{id}` replaces phases, end_behavior and
  // metadata. The control route `POST /__control/subscription_schedules/{id}/advance` starts the next phase now, as
  // the period's end would: the subscription takes its items and metadata and a new period, and
  // customer.subscription.updated is returned (and stored); past the last phase, a `release` schedule lets go.

  const PERIOD_SECONDS = { day: DAY_SECONDS, week: 7 * DAY_SECONDS, month: 30 * DAY_SECONDS, year: 365 * DAY_SECONDS };

  /** Each item of `changes` (`{id, price}`) as [the subscription's item, the new price, its quantity]. */
  function priceChangesOf(account, subscription, changes) {
    return asList(changes).map((change, index) => {
      if (!change.id) throw required(`items[${index}][id]`);
      const item = subscription.items.data.find((candidate) => candidate.id === change.id);
      if (!item) throw invalid(`items[${index}][id]`, `Subscription item ${change.id} is not on subscription ${subscription.id}.`);
      const price = change.price ? find(account, "price", change.price, `items[${index}][price]`) : item.price;
      if (!price.recurring) throw invalid(`items[${index}][price]`, "The price specified is not recurring. Subscriptions require a recurring price.");
      if (!price.active) throw invalid(`items[${index}][price]`, `The price specified is inactive. This field only accepts active prices.`);
      return { item, price, quantity: asInteger(change.quantity, `items[${index}][quantity]`) ?? item.quantity };
    });
  }

  function prorationLines(changes, at, behavior) {
    if (behavior === "none") return [];
    return changes.flatMap(({ item, price, quantity }) => {
      const { current_period_start: start, current_period_end: end } = item;
      const fraction = end > start ? Math.min(1, Math.max(0, (end - at) / (end - start))) : 0;
      const productName = (candidate) => objects.get(candidate.product)?.name ?? candidate.product;
      return [
        { amount: -Math.round((item.price.unit_amount ?? 0) * item.quantity * fraction), description: `Unused time on ${item.quantity} × ${productName(item.price)}`, price: item.price, quantity: item.quantity, proration: true },
        { amount: Math.round((price.unit_amount ?? 0) * quantity * fraction), description: `Remaining time on ${quantity} × ${productName(price)}`, price, quantity, proration: true },
      ];
    });
  }

  function previewInvoice(account, params) {
    if (!params.subscription) throw required("subscription");
    const subscription = find(account, "subscription", params.subscription, "subscription");
    const details = params.subscription_details ?? {};
    const behavior = details.proration_behavior ?? "create_prorations";
    const at = asInteger(details.proration_date, "subscription_details[proration_date]") ?? now();
    const changes = priceChangesOf(account, subscription, details.items);
    const changed = new Map(changes.map((change) => [change.item.id, change]));
    const next = behavior === "always_invoice"
      ? []
      : subscription.items.data.map((item) => {
          const { price, quantity } = changed.get(item.id) ?? { price: item.price, quantity: item.quantity };
          return { amount: (price.unit_amount ?? 0) * quantity, description: `${quantity} × ${objects.get(price.product)?.name ?? price.product}`, price, quantity, proration: false };
        });
    const lines = [...prorationLines(changes, at, behavior), ...next].map((line) => ({
      id: newId("il_tmp"),
      object: "line_item",
      amount: line.amount,
      currency: line.price.currency,
      description: line.description,
      parent: { type: "subscription_item_details", subscription_item_details: { proration: line.proration, subscription: subscription.id } },
      pricing: { type: "price_details", price_details: { price: line.price.id, product: line.price.product }, unit_amount_decimal: line.price.unit_amount_decimal },
      quantity: line.quantity,
    }));
    const total = lines.reduce((sum, line) => sum + line.amount, 0);
    return {
      id: null,
      object: "invoice",
      amount_due: Math.max(0, total),
      amount_paid: 0,
      amount_remaining: Math.max(0, total),
      created: now(),
      currency: subscription.currency,
      customer: subscription.customer,
      lines: { object: "list", data: lines, has_more: false, url: "/v1/invoices/create_preview/lines" },
      livemode: false,
      parent: { type: "subscription_details", subscription_details: { metadata: structuredClone(subscription.metadata), subscription: subscription.id } },
      status: "draft",
      subtotal: total,
      total,
    };
  }

  /** `POST /v1/subscriptions/{id}`: items to other prices, metadata merged (an empty value deletes a key). */
  function changeSubscription(account, id, params) {
    const subscription = find(account, "subscription", id);
    if (subscription.status === "canceled") {
      throw new StripeError(400, "invalid_request_error", "A canceled subscription can only update its cancellation_details and metadata.");
    }
    const before = structuredClone(subscription);
    const changes = priceChangesOf(account, subscription, params.items);
    // `payment_behavior=pending_if_incomplete`, an invoice charged now (always_invoice) and a declining default card:
    // the change waits unpaid in `pending_update`; the subscription keeps its prices and metadata, and no event is sent.
    const paymentMethod = objects.get(subscription.customer)?.invoice_settings?.default_payment_method;
    if (params.payment_behavior === "pending_if_incomplete" && params.proration_behavior === "always_invoice" && decliningMethods.has(paymentMethod)) {
      subscription.pending_update = {
        billing_cycle_anchor: null,
        expires_at: now() + 23 * 3600,
        subscription_items: changes.map(({ item, price, quantity }) => ({ id: item.id, price: structuredClone(price), quantity })),
        trial_end: null,
        trial_from_plan: null,
      };
      return subscription;
    }
    for (const { item, price, quantity } of changes) {
      item.price = structuredClone(price);
      item.quantity = quantity;
    }
    for (const [key, value] of Object.entries(params.metadata ?? {})) {
      if (value === "") delete subscription.metadata[key];
      else subscription.metadata[key] = value;
    }
    subscriptionUpdated(account, subscription, before);
    return subscription;
  }

  function newSchedule(account, params) {
    if (!params.from_subscription) throw required("from_subscription");
    const subscription = find(account, "subscription", params.from_subscription, "from_subscription");
    if (subscription.schedule) {
      throw invalid("from_subscription", `You cannot migrate a subscription that is already attached to a schedule: \`${subscription.schedule}\`.`);
    }
    const start = Math.min(...subscription.items.data.map((item) => item.current_period_start));
    const schedule = store(account, {
      id: newId("sub_sched"),
      object: "subscription_schedule",
      canceled_at: null,
      completed_at: null,
      created: now(),
      current_phase: { start_date: start, end_date: periodEnd(subscription) },
      customer: subscription.customer,
      end_behavior: "release",
      livemode: false,
      metadata: {},
      phases: [{
        start_date: start,
        end_date: periodEnd(subscription),
        items: subscription.items.data.map((item) => ({ price: item.price.id, quantity: item.quantity, metadata: {} })),
        metadata: {},
        proration_behavior: "create_prorations",
        // As Stripe does: the phase carries the subscription's trial, discounts and tax rates.
        trial_end: subscription.trial_end ?? null,
        discounts: (subscription.discounts ?? []).map((discount) => ({ coupon: null, discount, promotion_code: null })),
        default_tax_rates: structuredClone(subscription.default_tax_rates ?? []),
      }],
      released_at: null,
      released_subscription: null,
      status: "active",
      subscription: subscription.id,
    });
    const before = structuredClone(subscription);
    subscription.schedule = schedule.id;
    subscriptionUpdated(account, subscription, before);
    return schedule;
  }

  function updateSchedule(account, id, params) {
    const schedule = find(account, "subscription_schedule", id);
    if (schedule.status !== "active" && schedule.status !== "not_started") {
      throw new StripeError(400, "invalid_request_error", `You cannot update a subscription schedule that is ${schedule.status}.`);
    }
    if (params.end_behavior !== undefined) schedule.end_behavior = params.end_behavior;
    if (params.metadata !== undefined) schedule.metadata = { ...schedule.metadata, ...params.metadata };
    if (params.phases !== undefined) {
      const phases = asList(params.phases);
      if (phases.length === 0) throw required("phases");
      let start = asInteger(phases[0].start_date, "phases[0][start_date]") ?? schedule.current_phase.start_date;
      if (start !== schedule.current_phase.start_date) {
        throw invalid("phases[0][start_date]", "You can not modify the start date of the current phase.");
      }
      schedule.phases = phases.map((phase, index) => {
        const items = asList(phase.items).map((item, itemIndex) => {
          const price = find(account, "price", item.price, `phases[${index}][items][${itemIndex}][price]`);
          return { price: price.id, quantity: asInteger(item.quantity, `phases[${index}][items][${itemIndex}][quantity]`) ?? 1, metadata: {} };
        });
        if (items.length === 0) throw required(`phases[${index}][items]`);
        const interval = find(account, "price", items[0].price).recurring.interval;
        const end = asInteger(phase.end_date, `phases[${index}][end_date]`) ?? start + PERIOD_SECONDS[interval];
        if (end <= start) throw invalid(`phases[${index}][end_date]`, "The end date of a phase must be after its start date.");
        const built = {
          start_date: start,
          end_date: end,
          items,
          metadata: phase.metadata ?? {},
          proration_behavior: phase.proration_behavior ?? "create_prorations",
          trial_end: asInteger(phase.trial_end, `phases[${index}][trial_end]`) ?? null,
          discounts: asList(phase.discounts).map((discount) => ({ coupon: discount.coupon ?? null, discount: discount.discount ?? null, promotion_code: discount.promotion_code ?? null })),
          default_tax_rates: asList(phase.default_tax_rates),
        };
        start = end;
        return built;
      });
      schedule.current_phase = { start_date: schedule.phases[0].start_date, end_date: schedule.phases[0].end_date };
    }
    return schedule;
  }

  /** The schedule's next phase starts now: the subscription takes its items, metadata and a new period. */
  function advanceSchedule(scheduleId) {
    const schedule = find(null, "subscription_schedule", scheduleId);
    const account = owners.get(schedule.id).account;
    if (schedule.status !== "active") throw new StripeError(400, "invalid_request_error", `Subscription schedule ${schedule.id} is ${schedule.status}.`);
    const subscription = objects.get(schedule.subscription);
    const before = structuredClone(subscription);
    const index = schedule.phases.findIndex((phase) => phase.start_date === schedule.current_phase.start_date);
    const next = schedule.phases[index + 1];
    if (next) {
      const start = now();
      const end = start + (next.end_date - next.start_date);
      subscription.items.data = next.items.map((phaseItem, itemIndex) => {
        const price = objects.get(phaseItem.price);
        const kept = subscription.items.data.find((item) => item.price.product === price.product) ?? subscription.items.data[itemIndex];
        return {
          id: kept?.id ?? newId("si"),
          object: "subscription_item",
          created: kept?.created ?? start,
          current_period_end: end,
          current_period_start: start,
          metadata: kept?.metadata ?? {},
          price: structuredClone(price),
          quantity: phaseItem.quantity,
          subscription: subscription.id,
        };
      });
      subscription.metadata = { ...subscription.metadata, ...next.metadata };
      next.start_date = start;
      next.end_date = end;
      schedule.current_phase = { start_date: start, end_date: end };
    }
    if (!next || index + 1 === schedule.phases.length - 1) {
      // The last phase began: a `release` schedule lets the subscription go on by itself.
      if (schedule.end_behavior === "release") {
        schedule.status = "released";
        schedule.released_at = now();
        schedule.released_subscription = subscription.id;
        schedule.current_phase = null;
        subscription.schedule = null;
      }
    }
    return { schedule, subscription, events: subscriptionUpdated(account, subscription, before) };
  }

  const priceChangeRoutes = [
    ["POST", /^\/v1\/subscriptions\/([^/]+)$/, (account, params, id) => changeSubscription(account, id, params)],
    ["POST", /^\/v1\/invoices\/create_preview$/, (account, params) => previewInvoice(account, params)],
    ["POST", /^\/v1\/subscription_schedules$/, (account, params) => newSchedule(account, params)],
    ["GET", /^\/v1\/subscription_schedules\/([^/]+)$/, (account, query, id) => find(account, "subscription_schedule", id)],
    ["POST", /^\/v1\/subscription_schedules\/([^/]+)$/, (account, params, id) => updateSchedule(account, id, params)],
  ];

  // --- Routing ------------------------------------------------------------------------------------------------------

  const stripeRoutes = [
    ["POST", /^\/v1\/customers$/, (account, params) => newCustomer(account, params)],
    ["GET", /^\/v1\/customers$/, (account, query) =>
      page(all(account, "customer", (customer) => !query.email || customer.email === query.email), query, "/v1/customers")],
    // Stripe's search query language, only as far as the platform uses it: clauses `metadata['key']:'value'` (quotes
    // and backslashes escaped with a backslash), and `email:'value'` for customers, joined by AND.
    ["GET", /^\/v1\/(customers|subscriptions|payment_intents)\/search$/, (account, query, resource) => {
      const clause = /(?:metadata\['([^']+)'\]|(email)):'((?:[^'\\]|\\.)*)'/y;
      const tests = [];
      const text = query.query ?? "";
      let at = 0;
      for (;;) {
        clause.lastIndex = at;
        const match = clause.exec(text);
        if (!match || (match[2] && resource !== "customers")) throw invalid("query", `Unsupported search query: ${text}`);
        const [whole, metadataKey, , quoted] = match;
        const value = quoted.replace(/\\(.)/g, "$1");
        tests.push((object) => (metadataKey ? object.metadata?.[metadataKey] === value : object.email === value));
        at += whole.length;
        if (at === text.length) break;
        if (!text.startsWith(" AND ", at)) throw invalid("query", `Unsupported search query: ${text}`);
        at += " AND ".length;
      }
      const kind = { customers: "customer", subscriptions: "subscription", payment_intents: "payment_intent" }[resource];
      const data = all(account, kind, (object) => tests.every((test) => test(object)));
      const limit = asInteger(query.limit, "limit") ?? 10;
      return { object: "search_result", data: data.slice(0, limit), has_more: data.length > limit, next_page: null, url: `/v1/${resource}/search` };
    }],
    ["GET", /^\/v1\/customers\/([^/]+)$/, (account, query, id) => find(account, "customer", id)],
    ["POST", /^\/v1\/products$/, (account, params) => newProduct(account, params)],
    ["GET", /^\/v1\/products\/([^/]+)$/, (account, query, id) => find(account, "product", id)],
    ["POST", /^\/v1\/prices$/, (account, params) => newPrice(account, params)],
    ["GET", /^\/v1\/prices\/([^/]+)$/, (account, query, id) => find(account, "price", id)],
    // Archiving (`active=false`) or reactivating a price, as the Dashboard does.
    ["POST", /^\/v1\/prices\/([^/]+)$/, (account, params, id) => {
      const price = find(account, "price", id);
      if (params.active !== undefined) price.active = asBoolean(params.active);
      if (params.metadata) price.metadata = { ...price.metadata, ...params.metadata };
      return price;
    }],
    ["GET", /^\/v1\/prices$/, (account, query) => {
      const matches = (price) =>
        (!query.product || price.product === query.product) &&
        (query.active === undefined || price.active === asBoolean(query.active)) &&
        (!query.type || price.type === query.type);
      return page(all(account, "price", matches), query, "/v1/prices");
    }],
    ["GET", /^\/v1\/subscriptions$/, (account, query) => {
      const status = query.status ?? "active_or_trialing_or_past_due";
      const matches = (subscription) =>
        (!query.customer || subscription.customer === query.customer) &&
        (!query.price || subscription.items.data.some((item) => item.price.id === query.price)) &&
        (status === "all" ? true : query.status ? subscription.status === status : !["canceled", "incomplete_expired"].includes(subscription.status));
      return page(all(account, "subscription", matches), query, "/v1/subscriptions");
    }],
    ["GET", /^\/v1\/subscriptions\/([^/]+)$/, (account, query, id) => find(account, "subscription", id)],
    ["POST", /^\/v1\/checkout\/sessions$/, (account, params) => newCheckoutSession(account, params)],
    ["GET", /^\/v1\/checkout\/sessions$/, (account, query) => {
      const matches = (session) =>
        ["customer", "status", "subscription", "payment_intent"].every((filter) => !query[filter] || session[filter] === query[filter]);
      return page(all(account, "checkout.session", matches), query, "/v1/checkout/sessions");
    }],
    ["GET", /^\/v1\/checkout\/sessions\/([^/]+)$/, (account, query, id) => find(account, "checkout.session", id)],
    ["GET", /^\/v1\/checkout\/sessions\/([^/]+)\/line_items$/, (account, query, id) =>
      page(lineItemList(find(account, "checkout.session", id).id).data, query, `/v1/checkout/sessions/${id}/line_items`)],
    ["POST", /^\/v1\/billing_portal\/sessions$/, (account, params) => {
      if (!params.customer) throw required("customer");
      const customer = find(account, "customer", params.customer, "customer");
      const id = newId("bps");
      return store(account, {
        id,
        object: "billing_portal.session",
        configuration: "bpc_fake_default",
        created: now(),
        customer: customer.id,
        flow: null,
        livemode: false,
        locale: params.locale ?? null,
        on_behalf_of: null,
        return_url: params.return_url ?? null,
        url: `${baseUrl}/p/session/${id}`,
      });
    }],
    ["POST", /^\/v1\/payment_intents$/, (account, params) => newPaymentIntent(account, params)],
    ["GET", /^\/v1\/payment_intents$/, (account, query) =>
      page(all(account, "payment_intent", (intent) => !query.customer || intent.customer === query.customer), query, "/v1/payment_intents")],
    ["GET", /^\/v1\/payment_intents\/([^/]+)$/, (account, query, id) => find(account, "payment_intent", id)],
    ["GET", /^\/v1\/charges\/([^/]+)$/, (account, query, id) => find(account, "charge", id)],
    ["GET", /^\/v1\/invoices$/, (account, query) =>
      page(all(account, "invoice", (invoice) => !query.customer || invoice.customer === query.customer), query, "/v1/invoices")],
    ["GET", /^\/v1\/invoices\/([^/]+)$/, (account, query, id) => find(account, "invoice", id)],
    ["GET", /^\/v1\/disputes\/([^/]+)$/, (account, query, id) => find(account, "dispute", id)],
    ["GET", /^\/v1\/events\/([^/]+)$/, (account, query, id) => find(account, "event", id)],
    ["POST", /^\/v1\/billing\/meter_events$/, (account, params) => {
      if (!params.event_name) throw required("event_name");
      if (!params.payload?.stripe_customer_id) throw required("payload[stripe_customer_id]");
      const events = meterEvents.get(account) ?? new Map();
      meterEvents.set(account, events);
      const identifier = params.identifier ?? newId("mev");
      const known = events.get(identifier);
      if (known) return known;
      const event = {
        object: "billing.meter_event",
        created: now(),
        event_name: params.event_name,
        identifier,
        livemode: false,
        payload: params.payload,
        timestamp: params.timestamp === undefined ? now() : asInteger(params.timestamp, "timestamp"),
      };
      events.set(identifier, event);
      return event;
    }],
    ["GET", /^\/v1\/events$/, (account, query) =>
      page(all(account, "event", (event) => !query.type || event.type === query.type), query, "/v1/events")],
    ...priceChangeRoutes,
  ];

  function authenticate(request) {
    const header = request.headers.authorization ?? "";
    const key = header.startsWith("Bearer ")
      ? header.slice(7)
      : header.startsWith("Basic ")
        ? Buffer.from(header.slice(6), "base64").toString().split(":")[0]
        : "";
    if (!key) {
      throw new StripeError(401, "invalid_request_error",
        "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').");
    }
    // Live keys are refused: a test that sends one is pointed at the wrong place.
    if (!/^(sk|rk)_test_\w+$/.test(key)) {
      throw new StripeError(401, "invalid_request_error", `Invalid API Key provided: ${key.slice(0, 8)}****${key.slice(-4)}`, { code: "api_key_invalid" });
    }
    return key;
  }

  async function handleStripe(request, url, body) {
    const account = authenticate(request);
    const method = request.method;
    const params = method === "GET" || method === "DELETE" ? parseStripeForm(url.search.slice(1)) : parseStripeForm(body);
    const route = stripeRoutes.find(([routeMethod, pattern]) => routeMethod === method && pattern.test(url.pathname));
    if (!route) {
      throw new StripeError(404, "invalid_request_error", `Unrecognized request URL (${method}: ${url.pathname}).`);
    }
    const [, pattern, handler] = route;
    const [, ...ids] = url.pathname.match(pattern);
    // A failure a test asked for (`/__control/fail_next`): before the idempotency record, as a request that never
    // executed — the same key sent again runs it.
    const failure = failures.findIndex((entry) => entry.account === account && entry.method === method && url.pathname.startsWith(entry.pathPrefix));
    if (failure !== -1) {
      const [entry] = failures.splice(failure, 1);
      const error = new StripeError(entry.status, "api_error", entry.message);
      error.headers = { "stripe-should-retry": "false" };
      throw error;
    }
    const key = request.headers["idempotency-key"];
    const replayKey = key && method === "POST" ? `${account}\n${key}` : null;
    if (replayKey && idempotent.has(replayKey)) {
      const earlier = idempotent.get(replayKey);
      if (earlier.path !== url.pathname || earlier.body !== body) {
        throw new StripeError(400, "idempotency_error",
          `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`);
      }
      return { status: earlier.status, json: earlier.json, replayed: true };
    }
    let status = 200;
    let json;
    try {
      json = expand(account, handler(account, params, ...ids.map(decodeURIComponent)), params.expand);
    } catch (error) {
      if (!(error instanceof StripeError)) throw error;
      status = error.status;
      json = error.body;
    }
    if (replayKey) idempotent.set(replayKey, { path: url.pathname, body, status, json });
    if (status >= 400) {
      const error = new StripeError(status, json.error.type, json.error.message);
      error.body = json;
      throw error;
    }
    return { status, json, replayed: false };
  }

  /** Control API for tests. Account-scoped calls name the account by the same `Authorization: Bearer sk_test_…`. */
  function handleControl(request, url, body) {
    const params = body ? JSON.parse(body) : {};
    const path = url.pathname.slice("/__control".length);
    const method = request.method;
    if (method === "POST" && path === "/reset") {
      const header = request.headers.authorization;
      const account = header ? authenticate(request) : null;
      for (const [id, owner] of owners) {
        if (account === null || owner.account === account) {
          objects.delete(id);
          owners.delete(id);
          sessionInputs.delete(id);
        }
      }
      for (const replayKey of idempotent.keys()) if (account === null || replayKey.startsWith(`${account}\n`)) idempotent.delete(replayKey);
      for (let index = failures.length - 1; index >= 0; index--) if (account === null || failures[index].account === account) failures.splice(index, 1);
      requests = account === null ? [] : requests.filter((entry) => entry.account !== account);
      if (account === null) meterEvents.clear();
      else meterEvents.delete(account);
      return { reset: account ?? "all" };
    }
    if (method === "POST" && path === "/products") {
      const account = authenticate(request);
      const product = newProduct(account, params.product ?? params);
      const prices = asList(params.prices).map((price) => newPrice(account, { ...price, product: product.id }));
      return { product, prices };
    }
    if (method === "POST" && path === "/prices") return newPrice(authenticate(request), params);
    if (method === "POST" && path === "/customers") {
      const account = authenticate(request);
      // `customers: [{ email, name, metadata }]`: one customer each, for tests that need them to differ.
      if (Array.isArray(params.customers)) return { data: params.customers.map((customer) => newCustomer(account, customer)) };
      const count = params.count ?? 1;
      return { data: Array.from({ length: count }, (_, index) => newCustomer(account, {
        email: params.email ?? `customer-${index}@example.com`,
        name: params.name ?? `Customer ${index}`,
        metadata: params.metadata ?? {},
      })) };
    }
    // `{ decline?: boolean }`: saves a card as the customer's default payment method (one that declines, if asked).
    const paymentMethod = path.match(/^\/customers\/([^/]+)\/payment_method$/);
    if (method === "POST" && paymentMethod) return savePaymentMethod(decodeURIComponent(paymentMethod[1]), params);
    const complete = path.match(/^\/checkout\/sessions\/([^/]+)\/complete$/);
    if (method === "POST" && complete) return completeCheckout(decodeURIComponent(complete[1]), params);
    const settle = path.match(/^\/checkout\/sessions\/([^/]+)\/settle$/);
    if (method === "POST" && settle) return settleCheckout(decodeURIComponent(settle[1]));
    const refund = path.match(/^\/payment_intents\/([^/]+)\/refund$/);
    if (method === "POST" && refund) return refundPayment(decodeURIComponent(refund[1]), params);
    const dispute = path.match(/^\/payment_intents\/([^/]+)\/dispute$/);
    if (method === "POST" && dispute) return disputePayment(decodeURIComponent(dispute[1]), params);
    const subscriptionAction = path.match(/^\/subscriptions\/([^/]+)\/(update|cancel|invoices)$/);
    if (method === "POST" && subscriptionAction) {
      const [, id, action] = subscriptionAction;
      const act = { update: updateSubscription, cancel: cancelSubscription, invoices: invoiceSubscription }[action];
      return act(decodeURIComponent(id), params);
    }
    if (method === "GET" && path === "/billing/meter_events") {
      return { data: [...(meterEvents.get(authenticate(request))?.values() ?? [])] };
    }
    if (method === "GET" && path === "/requests") {
      const account = request.headers.authorization ? authenticate(request) : null;
      return { data: requests.filter((entry) => account === null || entry.account === account).map(({ account: _, ...entry }) => entry) };
    }
    const advance = path.match(/^\/subscription_schedules\/([^/]+)\/advance$/);
    if (method === "POST" && advance) return advanceSchedule(decodeURIComponent(advance[1]));
    // `{ method?, pathPrefix, status?, message? }`: the account's next such Stripe request fails (500 unless told), once.
    if (method === "POST" && path === "/fail_next") {
      const entry = { account: authenticate(request), method: params.method ?? "POST", pathPrefix: params.pathPrefix, status: params.status ?? 500, message: params.message ?? "Injected failure" };
      failures.push(entry);
      return { failing: { method: entry.method, pathPrefix: entry.pathPrefix, status: entry.status } };
    }
    throw new StripeError(404, "invalid_request_error", `Unknown control route ${method} ${url.pathname}`);
  }

  async function handle(request, response) {
    const url = new URL(request.url, "http://fake-stripe.invalid");
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString();
    const send = (status, json, headers = {}) => {
      response.writeHead(status, { "content-type": "application/json", "request-id": newId("req"), ...headers });
      response.end(JSON.stringify(json));
    };
    try {
      if (url.pathname.startsWith("/__control/")) return send(200, handleControl(request, url, body));
      if (["/c/pay/", "/p/session/", "/i/"].some((prefix) => url.pathname.startsWith(prefix))) {
        response.writeHead(200, { "content-type": "text/html" });
        return response.end("<!doctype html><title>Fake Stripe</title><p>Fake Stripe hosted page.</p>");
      }
      let account = null;
      try {
        account = authenticate(request);
      } finally {
        requests.push({
          account,
          method: request.method,
          path: url.pathname,
          query: url.search ? parseStripeForm(url.search.slice(1)) : {},
          body: request.method === "POST" ? parseStripeForm(body) : null,
          idempotencyKey: request.headers["idempotency-key"] ?? null,
          stripeVersion: request.headers["stripe-version"] ?? null,
        });
      }
      const { status, json, replayed } = await handleStripe(request, url, body);
      return send(status, json, replayed ? { "idempotent-replayed": "true" } : {});
    } catch (error) {
      if (error instanceof StripeError) return send(error.status, error.body, error.headers ?? {});
      if (error instanceof SyntaxError) return send(400, { error: { type: "invalid_request_error", message: error.message } });
      console.error("fake Stripe failed", error);
      return send(500, { error: { type: "api_error", message: String(error?.message ?? error) } });
    }
  }

  const server = createServer((request, response) => void handle(request, response));
  return {
    server,
    /** Listens on an ephemeral port of 127.0.0.1 unless told otherwise; resolves to the base URL (no trailing slash). */
    async listen(port = 0, host = "127.0.0.1") {
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, resolve);
      });
      const address = server.address();
      baseUrl = `http://${host}:${address.port}`;
      return baseUrl;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fake = createFakeStripe();
  const url = await fake.listen(Number(process.argv[2] ?? 12111));
  console.log(`fake Stripe listening on ${url}`);
}
