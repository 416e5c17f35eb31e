/** The checks forms run before sending, mirroring the configuration schema (schema/config.ts). */
import type { FieldErrors } from "./FieldError";

export const SLUG_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const SLUG_MESSAGE = "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit";

/** Collects field errors: `check(path, problem)` records a message when `problem` is a string. */
export function collector() {
  const errors: FieldErrors = {};
  return {
    errors,
    check(path: string, problem: string | undefined | false | null) {
      if (problem) (errors[path] ??= []).push(problem);
    },
    get ok() {
      return Object.keys(errors).length === 0;
    },
  };
}

export function slugProblem(value: string): string | undefined {
  if (!value) return "required";
  return SLUG_PATTERN.test(value) ? undefined : SLUG_MESSAGE;
}

export function requiredProblem(value: string): string | undefined {
  return value.trim() ? undefined : "required";
}

/** A number typed as text: undefined when it is empty and optional. */
export function numberProblem(value: string, { required = false, integer = false, min, max }: { required?: boolean; integer?: boolean; min?: number; max?: number } = {}): string | undefined {
  if (value.trim() === "") return required ? "required" : undefined;
  const number = Number(value);
  if (!Number.isFinite(number)) return "must be a number";
  if (integer && !Number.isInteger(number)) return "must be a whole number";
  if (min !== undefined && number < min) return `must be at least ${min}`;
  if (max !== undefined && number > max) return `must be at most ${max}`;
  return undefined;
}

export function parseNumber(value: string): number | undefined {
  return value.trim() === "" ? undefined : Number(value);
}

/** A comma- or newline-separated list, trimmed, without empties. */
export function parseList(value: string): string[] {
  return value
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter(Boolean);
}
