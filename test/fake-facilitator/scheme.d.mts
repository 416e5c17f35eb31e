export declare const FAKE_NETWORK: string;
export declare const FAKE_ASSET: string;

/** The fields of the signed authorization (`payload.authorization`), as decimal strings and hex. */
export interface FakeAuthorization {
  from: string;
  to: string;
  value: string;
  validAfter: string;
  validBefore: string;
  nonce: string;
}

export function authorizationMessage(scheme: string, network: string, asset: string, authorization: FakeAuthorization): string;
