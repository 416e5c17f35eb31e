/**
 * Stage 1b: bot and agent tags from the user agent and Cloudflare's `request.cf`.
 *
 * A user agent is a claim anyone can make; only Cloudflare (its verified-bot list checks the source network of the
 * bot the user agent names) can back it. So the curated table below NAMES a bot, the cf object VERIFIES it, and
 * only verified crawlers and agents get the crawler/agent plans (autoAssignCategoryFor). An unverified "Googlebot"
 * is still tagged, so workflows and decision records can see the claim, but is treated as a human.
 *
 * Category choices that are judgement calls:
 * - ChatGPT-User, Claude-User, Perplexity-User, MistralAI-User fetch one page because a person asked in a chat:
 *   "ai-assistant" (Cloudflare's "AI Assistant"). "ai-agent" is kept for browsing agents acting on their own
 *   (Google's Project Mariner, OpenAI's Operator / ChatGPT agent).
 * - OAI-SearchBot and Claude-SearchBot build the index behind an AI product's search results, which link back to
 *   the site like a search engine's do: "search-crawler", so publishers can treat them like Bingbot. PerplexityBot
 *   is listed as an AI crawler (as Perplexity's answers rarely send readers back), per the product brief.
 * - Google-Extended and Applebot-Extended are robots.txt tokens rather than user agents; they are matched anyway
 *   (Google-Extended as a Google search-side token, Applebot-Extended as AI training) in case a client sends them.
 * - When the user agent is in the table, its category wins over cf.verifiedBotCategory: Cloudflare verifies the bot
 *   the user agent names, so the two agree in practice and the table is more specific (e.g. it separates the
 *   assistant from the training crawler of one operator).
 */
import { isbot, isbotMatch } from "isbot";
import type { AutoAssignCategory, BotCategory, BotTag, ResolvedIdentity } from "./types";

export interface KnownBot {
  readonly pattern: RegExp;
  readonly category: BotCategory;
  readonly code: string;
  readonly operator: string;
  readonly product: string;
}

/** Ordered: the first match wins, so specific tokens come before the tokens they contain (Googlebot-… forms, Applebot-Extended). */
const KNOWN_BOTS: readonly KnownBot[] = [
  // AI assistants: one fetch on behalf of a person in a chat.
  { pattern: /ChatGPT-User/i, category: "ai-assistant", code: "chatgpt-user", operator: "OpenAI", product: "ChatGPT" },
  { pattern: /Claude-User/i, category: "ai-assistant", code: "claude-user", operator: "Anthropic", product: "Claude" },
  { pattern: /Perplexity-User/i, category: "ai-assistant", code: "perplexity-user", operator: "Perplexity", product: "Perplexity" },
  { pattern: /MistralAI-User/i, category: "ai-assistant", code: "mistralai-user", operator: "Mistral AI", product: "Le Chat" },
  { pattern: /Meta-ExternalFetcher/i, category: "ai-assistant", code: "meta-externalfetcher", operator: "Meta", product: "Meta AI" },
  // AI agents: browsing on their own to complete a task.
  { pattern: /Google-Agent|Project ?Mariner/i, category: "ai-agent", code: "google-agent", operator: "Google", product: "Project Mariner" },
  { pattern: /ChatGPT[- ]Agent|OpenAI-Operator/i, category: "ai-agent", code: "chatgpt-agent", operator: "OpenAI", product: "ChatGPT agent" },
  // Search indexes of AI products (see the header for why these are search crawlers).
  { pattern: /OAI-SearchBot/i, category: "search-crawler", code: "oai-searchbot", operator: "OpenAI", product: "ChatGPT search" },
  { pattern: /Claude-SearchBot/i, category: "search-crawler", code: "claude-searchbot", operator: "Anthropic", product: "Claude search" },
  // AI crawlers: collecting content for training or answers.
  { pattern: /GPTBot/i, category: "ai-crawler", code: "gptbot", operator: "OpenAI", product: "GPTBot" },
  { pattern: /ClaudeBot/i, category: "ai-crawler", code: "claudebot", operator: "Anthropic", product: "ClaudeBot" },
  { pattern: /anthropic-ai/i, category: "ai-crawler", code: "anthropic-ai", operator: "Anthropic", product: "anthropic-ai" },
  { pattern: /CCBot/i, category: "ai-crawler", code: "ccbot", operator: "Common Crawl", product: "CCBot" },
  { pattern: /PerplexityBot/i, category: "ai-crawler", code: "perplexitybot", operator: "Perplexity", product: "PerplexityBot" },
  { pattern: /Bytespider/i, category: "ai-crawler", code: "bytespider", operator: "ByteDance", product: "Bytespider" },
  { pattern: /Amazonbot/i, category: "ai-crawler", code: "amazonbot", operator: "Amazon", product: "Amazonbot" },
  { pattern: /Meta-ExternalAgent/i, category: "ai-crawler", code: "meta-externalagent", operator: "Meta", product: "Meta AI" },
  { pattern: /Applebot-Extended/i, category: "ai-crawler", code: "applebot-extended", operator: "Apple", product: "Apple Intelligence" },
  // Search engine crawlers.
  { pattern: /Google-InspectionTool/i, category: "search-crawler", code: "google-inspectiontool", operator: "Google", product: "Search Console" },
  { pattern: /Google-Extended/i, category: "search-crawler", code: "google-extended", operator: "Google", product: "Google-Extended" },
  { pattern: /Googlebot/i, category: "search-crawler", code: "googlebot", operator: "Google", product: "Google Search" },
  { pattern: /bingbot/i, category: "search-crawler", code: "bingbot", operator: "Microsoft", product: "Bing" },
  { pattern: /DuckDuckBot/i, category: "search-crawler", code: "duckduckbot", operator: "DuckDuckGo", product: "DuckDuckGo" },
  { pattern: /YandexBot/i, category: "search-crawler", code: "yandexbot", operator: "Yandex", product: "Yandex Search" },
  { pattern: /Baiduspider/i, category: "search-crawler", code: "baiduspider", operator: "Baidu", product: "Baidu Search" },
  { pattern: /Applebot/i, category: "search-crawler", code: "applebot", operator: "Apple", product: "Apple Search" },
  // Link previews.
  { pattern: /facebookexternalhit|facebookcatalog/i, category: "page-previewer", code: "facebookexternalhit", operator: "Meta", product: "Facebook link preview" },
  { pattern: /Twitterbot/i, category: "page-previewer", code: "twitterbot", operator: "X", product: "X link preview" },
  { pattern: /Slackbot/i, category: "page-previewer", code: "slackbot", operator: "Slack", product: "Slack link preview" },
  { pattern: /LinkedInBot/i, category: "page-previewer", code: "linkedinbot", operator: "LinkedIn", product: "LinkedIn link preview" },
  { pattern: /Discordbot/i, category: "page-previewer", code: "discordbot", operator: "Discord", product: "Discord link preview" },
  // Monitoring.
  { pattern: /UptimeRobot/i, category: "analytics-monitor", code: "uptimerobot", operator: "UptimeRobot", product: "UptimeRobot" },
  { pattern: /Pingdom/i, category: "analytics-monitor", code: "pingdom", operator: "SolarWinds", product: "Pingdom" },
];

/** Cloudflare's verified-bot categories (lower-cased) → ours, for a verified bot whose user agent the table does not know. */
const CLOUDFLARE_CATEGORIES: ReadonlyMap<string, BotCategory> = new Map<string, BotCategory>([
  ["search engine crawler", "search-crawler"],
  ["ai search", "search-crawler"],
  ["ai crawler", "ai-crawler"],
  ["ai assistant", "ai-assistant"],
  ["ai agent", "ai-agent"],
  ["agent", "ai-agent"],
  ["page preview", "page-previewer"],
  ["monitoring & analytics", "analytics-monitor"],
]);

/** The part of Cloudflare's `request.cf` this stage reads; any object is accepted and read defensively. */
export interface CfBotFields {
  verifiedBotCategory?: unknown;
  botManagement?: unknown;
}

export interface BotSignals {
  userAgent?: string | null;
  cf?: CfBotFields | Readonly<Record<string, unknown>> | null;
}

/** What the table and isbot say about one user agent. */
export type UserAgentVerdict = { known: KnownBot } | { generic: { code: string; product: string } } | null;

/**
 * Where a caller keeps verdicts between requests (user agents repeat a lot, and isbot's pattern is the costly part).
 * The engine keeps none itself: the caller owns the memo and its bound (see services/caches.ts).
 */
export interface VerdictMemo {
  get(userAgent: string): UserAgentVerdict | undefined;
  set(userAgent: string, verdict: UserAgentVerdict): unknown;
}

const LEADING_TOKEN = /^[A-Za-z][A-Za-z0-9._-]*/;

/** The verdict on a user agent: a known bot of the table, a generic one isbot recognises, or null. Pure. */
export function userAgentVerdict(userAgent: string): UserAgentVerdict {
  for (const bot of KNOWN_BOTS) {
    if (bot.pattern.test(userAgent)) return { known: bot };
  }
  if (!isbot(userAgent)) return null;
  // "curl/8.4.0" → code "curl"; a match that starts without a name (e.g. "bot") yields "unknown".
  const product = LEADING_TOKEN.exec(isbotMatch(userAgent) ?? "")?.[0].replace(/[._-]+$/, "") ?? "";
  return { generic: { code: product ? product.toLowerCase() : "unknown", product } };
}

function verdictFor(userAgent: string, memo: VerdictMemo | undefined): UserAgentVerdict {
  if (!memo) return userAgentVerdict(userAgent);
  let verdict = memo.get(userAgent);
  if (verdict === undefined) memo.set(userAgent, (verdict = userAgentVerdict(userAgent)));
  return verdict;
}

function cloudflareVerdict(cf: BotSignals["cf"]): { verified: boolean; category: string | undefined } {
  if (!cf) return { verified: false, category: undefined };
  const raw = (cf as CfBotFields).verifiedBotCategory;
  const category = typeof raw === "string" && raw.length > 0 ? raw : undefined;
  const management = (cf as CfBotFields).botManagement;
  const verifiedBot = typeof management === "object" && management !== null && (management as { verifiedBot?: unknown }).verifiedBot === true;
  return { verified: verifiedBot || category !== undefined, category };
}

/**
 * The bot tag of a request, or undefined for what looks like a person's browser. `memo` only saves work: the answer
 * is the same with or without it.
 */
export function classifyBot({ userAgent, cf }: BotSignals, memo?: VerdictMemo): BotTag | undefined {
  const { verified, category: cfCategory } = cloudflareVerdict(cf);
  const verdict = userAgent ? verdictFor(userAgent, memo) : null;
  if (verdict && "known" in verdict) {
    const { category, code, operator, product } = verdict.known;
    return { category, code, isVerified: verified, operator, product };
  }
  if (verified) {
    // Cloudflare vouches for a bot the table does not know: its category is the best we have.
    const category = (cfCategory && CLOUDFLARE_CATEGORIES.get(cfCategory.toLowerCase())) || "other";
    const generic = verdict?.generic;
    return { category, code: generic?.code ?? "verified-bot", isVerified: true, operator: "unknown", product: generic?.product || cfCategory || "unknown" };
  }
  if (verdict) return { category: "other", code: verdict.generic.code, isVerified: false, operator: "unknown", product: verdict.generic.product || "unknown" };
  return undefined;
}

/**
 * Which automatic plans a request gets. Only VERIFIED crawlers and agents get the crawler/agent plans; everything
 * else — an unverified claim to be Googlebot, a link previewer, a monitor, curl — is a human visitor, anonymous or
 * authenticated.
 */
export function autoAssignCategoryFor(identity: Pick<ResolvedIdentity, "isAuthenticated">, bot: BotTag | undefined): AutoAssignCategory {
  if (bot !== undefined && bot.isVerified) {
    switch (bot.category) {
      case "search-crawler":
        return "search-crawler";
      case "ai-crawler":
      case "ai-assistant":
      case "ai-agent":
        return "ai-agent";
      default:
        break;
    }
  }
  return identity.isAuthenticated ? "authenticated" : "anonymous";
}
