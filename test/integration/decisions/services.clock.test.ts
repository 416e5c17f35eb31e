/**
 * Services are injected, not module globals: the app built with another clock judges a JWT's time claims by that
 * clock (and the one built without judges them by the real time), in the same isolate, at the same moment.
 */
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import { workerWith } from "../../support/faults";

let org: TestOrganization;
let privateKey: CryptoKey;
const IN_2031 = Date.UTC(2031, 0, 1);

beforeAll(async () => {
  org = await createOrganization("Injected clock");
  const keys = await generateKeyPair("RS256", { extractable: true });
  privateKey = keys.privateKey as CryptoKey;
  const document = helloWorld();
  document.authMethods = { "test-jwt": { publicKey: await exportSPKI(keys.publicKey), algorithms: ["RS256"], identifierClaim: "email" } };
  await publish(org.adminKey, document, [org.live.id]);
});

describe("an injected clock", () => {
  it("decides whether a JWT is valid yet", async () => {
    // Valid from 2031 on: not yet valid today.
    const jwt = await new SignJWT({ email: "future@example.com" }).setProtectedHeader({ alg: "RS256" }).setNotBefore(IN_2031 / 1000).sign(privateKey);
    const body = { surfaceSlug: "hello-world", identity: { userJwt: jwt } };

    const today = await call("POST", "/api/v1/surface-decisions", { key: org.live.publishableKey, body });
    expect(today.status).toBe(401);
    expect(today.body.code).toBe("invalid_jwt");

    const callIn2031 = workerWith({ clock: { now: () => IN_2031 + 60_000 } });
    const later = await callIn2031("POST", "/api/v1/surface-decisions", { key: org.live.publishableKey, body });
    expect(later.status).toBe(200);
    expect(later.body.identity).toMatchObject({ authType: "jwt", identifier: "future@example.com" });
  });
});
