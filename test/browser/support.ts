/**
 * Helpers of the browser tests: the admin API of the server global-setup.ts started, and chromium (Debian's, through
 * playwright-core) opened on its console. A page's console error or uncaught error fails the test unless the test
 * declared it, and so does any request that would leave 127.0.0.1: the product works offline.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { expect, inject, onTestFinished } from "vitest";

export const baseUrl = inject("baseUrl");
export const operatorToken = inject("operatorToken");

const root = join(import.meta.dirname, "..", "..");

export interface ApiResult {
  status: number;
  body: any;
}

export async function api(method: string, path: string, options: { key?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<ApiResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(baseUrl + path, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body };
}

/** `api`, failing unless the answer has `status`. */
export async function must(method: string, path: string, status: number, options: Parameters<typeof api>[2] = {}): Promise<any> {
  const result = await api(method, path, options);
  if (result.status !== status) throw new Error(`${method} ${path}: expected ${status}, got ${result.status} ${JSON.stringify(result.body)}`);
  return result.body;
}

export interface EnvironmentKeys {
  id: string;
  slug: string;
  secretKey: string;
  publishableKey: string;
}

export interface BrowserOrganization {
  id: string;
  /** The organization's admin key (`ok_…`). */
  adminKey: string;
  preview: EnvironmentKeys;
  live: EnvironmentKeys;
}

/** A new organization (through the operator token) with its admin organization key and its environments' keys. */
export async function createOrganization(name = "Browser test org"): Promise<BrowserOrganization> {
  const created = await must("POST", "/api/v1/admin/organizations", 201, { key: operatorToken, body: { name } });
  const environment = (slug: string): EnvironmentKeys => {
    const found = created.environments.find((candidate: { slug: string }) => candidate.slug === slug);
    const keyOf = (type: string) => created.keys.find((key: { environmentId: string; type: string }) => key.environmentId === found.id && key.type === type).key;
    return { id: found.id, slug, secretKey: keyOf("secret"), publishableKey: keyOf("publishable") };
  };
  return { id: created.organization.id, adminKey: created.organizationKeys[0].key, preview: environment("preview"), live: environment("live") };
}

/** Another organization key of `organization`, with `role`. */
export async function createOrganizationKey(organization: BrowserOrganization, role: "admin" | "deployer" | "read-only"): Promise<{ id: string; key: string }> {
  const created = await must("POST", "/api/v1/admin/organization/keys", 201, { key: organization.adminKey, body: { name: `${role} (browser test)`, role } });
  return { id: created.id, key: created.key };
}

const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export interface BrowserPage {
  page: Page;
  /** Declares that the page logs a console error matching `pattern` (at least once); others still fail the test. */
  expectConsoleError(pattern: string | RegExp): void;
  /** Requests that would have left 127.0.0.1 (each was refused). */
  readonly offsiteRequests: string[];
}

/**
 * Chromium on `path` of the server (default: the console). Closed when the test ends; the test then fails for each
 * console error or uncaught page error it did not declare, each declared one that never came, and each request to
 * another host.
 */
export async function openConsole(path = "/console/"): Promise<BrowserPage> {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_FLAGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const offsiteRequests: string[] = [];
  await context.route(
    (url) => url.hostname !== "127.0.0.1",
    (route) => {
      offsiteRequests.push(route.request().url());
      return route.abort("blockedbyclient");
    },
  );
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.stack ?? error.message}`));
  const expected: (string | RegExp)[] = [];
  const matches = (line: string, pattern: string | RegExp) => (typeof pattern === "string" ? line.includes(pattern) : pattern.test(line));

  onTestFinished(async () => {
    await browser.close();
    expect(errors.filter((line) => !expected.some((pattern) => matches(line, pattern))), "unexpected errors in the page").toEqual([]);
    expect(expected.filter((pattern) => !errors.some((line) => matches(line, pattern))), "expected console errors that never came").toEqual([]);
    expect(offsiteRequests, "requests that left 127.0.0.1").toEqual([]);
  });

  await page.goto(baseUrl + path);
  return { page, expectConsoleError: (pattern) => void expected.push(pattern), offsiteRequests };
}

/** Signs in on the console's sign-in page with an organization key or secret key, and waits for the shell. */
export async function signIn(page: Page, credential: string): Promise<void> {
  await page.getByTestId("signin-credential").fill(credential);
  await page.getByTestId("signin-submit").click();
  await page.getByTestId("header-organization").waitFor();
}

/**
 * A screenshot of the page for the documentation: docs/screenshots/<name>.png with `SCREENSHOTS=update`
 * (`SCREENSHOTS=update npm run test:browser` refreshes the README's pictures), otherwise test/browser/.screenshots/,
 * so that an ordinary test run leaves the working tree as it was.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const directory = process.env.SCREENSHOTS === "update" ? join(root, "docs", "screenshots") : join(root, "test", "browser", ".screenshots");
  mkdirSync(directory, { recursive: true });
  await page.screenshot({ path: join(directory, `${name}.png`) });
}
