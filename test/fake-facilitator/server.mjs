/**
 * A fake x402 facilitator for tests: nothing in the test suite may move real funds. It speaks the facilitator HTTP API
 * of x402 version 2 — POST /verify and POST /settle with `{ x402Version, paymentPayload, paymentRequirements }`,
 * answering `{ isValid, invalidReason?, payer? }` and `{ success, errorReason?, payer?, transaction, network }`, GET
 * /supported — for the `exact` and `upto` schemes on one made-up network (scheme.mjs): payers sign with Ed25519 keys
 * their address is made of, so a payment verifies only if its payer signed exactly it.
 *
 * Verification, in order: the request's shape and version, the scheme and network, that the payload accepted these
 * requirements, the signature, the recipient, the validity window, the amount (exact: equal to the requirements';
 * upto: at least it — at settle, the requirements' amount is the actual charge), the nonce (each authorization settles
 * once) and the payer's balance. Settling debits the payer and records the settlement.
 *
 * State is in memory. Tests running in parallel share the server and stay apart by using their own payers and payTo
 * addresses. `/__control/…` is not the facilitator API: tests fund payers, read settlements and recorded requests, and
 * make a request fail or stall once.
 *
 * Run on its own with `node test/fake-facilitator/server.mjs [port]`.
 */
import { createPublicKey, randomBytes, verify as verifySignature } from "node:crypto";
import { createServer } from "node:http";
import { FAKE_ASSET, FAKE_NETWORK, authorizationMessage } from "./scheme.mjs";

const SCHEMES = new Set(["exact", "upto"]);
const ADDRESS = /^0x[0-9a-f]{64}$/;
const AMOUNT = /^(0|[1-9][0-9]{0,77})$/;
const TIMESTAMP = /^[0-9]{1,12}$/;
const MAX_BODY_BYTES = 64 * 1024;

/** A refusal of the payment, with the reason the facilitator API reports. */
class Invalid extends Error {
  constructor(reason, payer, status = 200) {
    super(reason);
    this.reason = reason;
    this.payer = payer;
    this.status = status;
  }
}

const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
const now = () => Math.floor(Date.now() / 1000);

function publicKeyOf(address) {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(address.slice(2), "hex").toString("base64url") }, format: "jwk" });
}

export function createFakeFacilitator() {
  /** `payer asset` → balance in atomic units. */
  const balances = new Map();
  /** `payer nonce` of every settled authorization. */
  const usedNonces = new Set();
  const settlements = [];
  /** Every /verify and /settle request body, with its path. */
  const requests = [];
  /** `{ payTo, path, status?, stallMs? }`: the next request of that path for that payTo fails (or stalls) once. */
  const faults = [];

  /** The payer, the charge and the authorization of a payment that would settle, or an Invalid. */
  function check(body) {
    if (!isObject(body) || !isObject(body.paymentPayload) || !isObject(body.paymentRequirements)) throw new Invalid("invalid_payload", undefined, 400);
    if (body.x402Version !== 2 || body.paymentPayload.x402Version !== 2) throw new Invalid("invalid_x402_version", undefined, 400);
    const { paymentPayload: payment, paymentRequirements: requirements } = body;
    if (!SCHEMES.has(requirements.scheme)) throw new Invalid("unsupported_scheme");
    if (requirements.network !== FAKE_NETWORK) throw new Invalid("invalid_network");
    if (typeof requirements.asset !== "string" || typeof requirements.payTo !== "string" || !AMOUNT.test(String(requirements.amount))) {
      throw new Invalid("invalid_payment_requirements", undefined, 400);
    }
    const accepted = payment.accepted;
    if (!isObject(accepted) || ["scheme", "network", "asset", "payTo"].some((field) => accepted[field] !== requirements[field])) {
      throw new Invalid("invalid_payment_requirements");
    }
    const authorization = isObject(payment.payload) ? payment.payload.authorization : undefined;
    const signature = isObject(payment.payload) ? payment.payload.signature : undefined;
    if (
      !isObject(authorization) ||
      typeof signature !== "string" ||
      !ADDRESS.test(authorization.from) ||
      typeof authorization.to !== "string" ||
      !AMOUNT.test(authorization.value) ||
      !TIMESTAMP.test(authorization.validAfter) ||
      !TIMESTAMP.test(authorization.validBefore) ||
      typeof authorization.nonce !== "string"
    ) {
      throw new Invalid("invalid_payload", undefined, 400);
    }
    const payer = authorization.from;
    const message = authorizationMessage(requirements.scheme, requirements.network, requirements.asset, authorization);
    let signed = false;
    try {
      signed = verifySignature(null, Buffer.from(message), publicKeyOf(payer), Buffer.from(signature, "base64url"));
    } catch {
      signed = false;
    }
    if (!signed) throw new Invalid("invalid_payload_signature", payer);
    if (authorization.to !== requirements.payTo) throw new Invalid("invalid_payload_recipient_mismatch", payer);
    if (now() < Number(authorization.validAfter)) throw new Invalid("invalid_payload_authorization_valid_after", payer);
    if (now() >= Number(authorization.validBefore)) throw new Invalid("invalid_payload_authorization_valid_before", payer);
    const authorized = BigInt(authorization.value);
    const charge = BigInt(requirements.amount);
    if (requirements.scheme === "exact" ? authorized !== charge : authorized < charge) throw new Invalid("invalid_payload_authorization_value", payer);
    if (usedNonces.has(`${payer} ${authorization.nonce}`)) throw new Invalid("nonce_already_used", payer);
    if ((balances.get(`${payer} ${requirements.asset}`) ?? 0n) < charge) throw new Invalid("insufficient_funds", payer);
    return { payer, charge, authorization, requirements };
  }

  function verify(body) {
    try {
      return { status: 200, json: { isValid: true, payer: check(body).payer } };
    } catch (error) {
      if (!(error instanceof Invalid)) throw error;
      return { status: error.status, json: { isValid: false, invalidReason: error.reason, ...(error.payer ? { payer: error.payer } : {}) } };
    }
  }

  function settle(body) {
    const network = isObject(body?.paymentRequirements) ? body.paymentRequirements.network : undefined;
    try {
      const { payer, charge, authorization, requirements } = check(body);
      const key = `${payer} ${requirements.asset}`;
      balances.set(key, balances.get(key) - charge);
      usedNonces.add(`${payer} ${authorization.nonce}`);
      const transaction = `0x${randomBytes(32).toString("hex")}`;
      settlements.push({ transaction, payer, payTo: requirements.payTo, asset: requirements.asset, network, scheme: requirements.scheme, amount: String(charge), nonce: authorization.nonce });
      return { status: 200, json: { success: true, payer, transaction, network } };
    } catch (error) {
      if (!(error instanceof Invalid)) throw error;
      return { status: error.status, json: { success: false, errorReason: error.reason, ...(error.payer ? { payer: error.payer } : {}), transaction: "", network: typeof network === "string" ? network : "" } };
    }
  }

  function control(method, url, body) {
    // `{ payer, amount, asset? }`: credits the payer.
    if (method === "POST" && url.pathname === "/__control/fund") {
      const key = `${body.payer} ${body.asset ?? FAKE_ASSET}`;
      balances.set(key, (balances.get(key) ?? 0n) + BigInt(body.amount));
      return { payer: body.payer, balance: String(balances.get(key)) };
    }
    if (method === "GET" && url.pathname === "/__control/balance") {
      return { balance: String(balances.get(`${url.searchParams.get("payer")} ${url.searchParams.get("asset") ?? FAKE_ASSET}`) ?? 0n) };
    }
    if (method === "GET" && url.pathname === "/__control/settlements") {
      return { data: settlements.filter((entry) => entry.payTo === url.searchParams.get("payTo")) };
    }
    if (method === "GET" && url.pathname === "/__control/requests") {
      return { data: requests.filter((entry) => entry.body?.paymentRequirements?.payTo === url.searchParams.get("payTo")) };
    }
    // `{ payTo, path: "/verify" | "/settle", status?, stallMs? }`: the next such request answers `status` (500 unless
    // told) with a non-API body, or, with stallMs, answers only after that long.
    if (method === "POST" && url.pathname === "/__control/fail_next") {
      faults.push({ payTo: body.payTo, path: body.path, status: body.status ?? 500, stallMs: body.stallMs });
      return { failing: body };
    }
    return undefined;
  }

  async function handle(request, response) {
    const url = new URL(request.url, "http://fake-facilitator.invalid");
    const send = (status, json) => {
      if (response.destroyed) return;
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(json));
    };
    try {
      const chunks = [];
      let size = 0;
      for await (const chunk of request) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) return send(413, { error: "body too large" });
        chunks.push(chunk);
      }
      const text = Buffer.concat(chunks).toString();
      let body;
      try {
        body = text === "" ? undefined : JSON.parse(text);
      } catch {
        return send(400, { isValid: false, success: false, invalidReason: "invalid_payload", errorReason: "invalid_payload", transaction: "", network: "" });
      }
      if (url.pathname.startsWith("/__control/")) {
        const answer = control(request.method, url, body ?? {});
        return answer === undefined ? send(404, { error: `unknown control route ${request.method} ${url.pathname}` }) : send(200, answer);
      }
      if (request.method === "GET" && url.pathname === "/supported") {
        return send(200, { kinds: [...SCHEMES].map((scheme) => ({ x402Version: 2, scheme, network: FAKE_NETWORK })), extensions: [], signers: {} });
      }
      if (request.method !== "POST" || (url.pathname !== "/verify" && url.pathname !== "/settle")) return send(404, { error: "not found" });
      requests.push({ path: url.pathname, body, contentType: request.headers["content-type"] ?? null });
      const payTo = body?.paymentRequirements?.payTo;
      const fault = faults.findIndex((entry) => entry.payTo === payTo && entry.path === url.pathname);
      if (fault !== -1) {
        const [{ status, stallMs }] = faults.splice(fault, 1);
        if (stallMs !== undefined) {
          await new Promise((resolve) => setTimeout(resolve, stallMs));
        } else {
          response.writeHead(status, { "content-type": "text/plain" });
          return response.end("injected failure");
        }
      }
      const { status, json } = url.pathname === "/verify" ? verify(body) : settle(body);
      return send(status, json);
    } catch (error) {
      console.error("fake facilitator failed", error);
      return send(500, { error: String(error?.message ?? error) });
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
      return `http://${host}:${server.address().port}`;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const fake = createFakeFacilitator();
  const url = await fake.listen(Number(process.argv[2] ?? 12402));
  console.log(`fake x402 facilitator listening on ${url}`);
}
