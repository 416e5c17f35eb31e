/**
 * Validators of the JSON Schemas a configuration declares (trigger payloads, redemption inputs), built once per key
 * and kept in one bounded cache: the key must name an immutable schema (a version and a trigger, an offer's
 * fingerprint), so a cached validator is never stale.
 */
import { type Schema, Validator } from "@cfworker/json-schema";
import { LRUCache } from "lru-cache";

const validators = new LRUCache<string, Validator>({ max: 2_000 });

/** The validator of `schema` (draft 2020-12, every error collected) cached under `key`. */
export function schemaValidator(key: string, schema: Record<string, unknown>): Validator {
  let validator = validators.get(key);
  if (!validator) {
    validator = new Validator(schema as Schema, "2020-12", false);
    validators.set(key, validator);
  }
  return validator;
}
