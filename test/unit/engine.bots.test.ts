import { describe, expect, it } from "vitest";
import { autoAssignCategoryFor, classifyBot, type BotTag } from "../../workers/engine";

const UA = {
  googlebot: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  googlebotSmartphone:
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
  inspection: "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
  bingbot: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
  gptbot: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
  chatgptUser: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
  oaiSearch: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot",
  claudebot: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
  claudeUser: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)",
  perplexitybot: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
  perplexityUser: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Perplexity-User/1.0; +https://perplexity.ai/perplexity-user)",
  facebook: "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
  slack: "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
  uptime: "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
  applebot: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
  chrome: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
  safari: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  curl: "curl/8.4.0",
};

const verified = (verifiedBotCategory?: string) => ({ botManagement: { verifiedBot: true, score: 1 }, ...(verifiedBotCategory ? { verifiedBotCategory } : {}) });
const human = { isAuthenticated: false };
const member = { isAuthenticated: true };

describe("classifyBot: the curated table", () => {
  it.each<[keyof typeof UA, Pick<BotTag, "category" | "code" | "operator">]>([
    ["googlebot", { category: "search-crawler", code: "googlebot", operator: "Google" }],
    ["googlebotSmartphone", { category: "search-crawler", code: "googlebot", operator: "Google" }],
    ["inspection", { category: "search-crawler", code: "google-inspectiontool", operator: "Google" }],
    ["bingbot", { category: "search-crawler", code: "bingbot", operator: "Microsoft" }],
    ["applebot", { category: "search-crawler", code: "applebot", operator: "Apple" }],
    ["gptbot", { category: "ai-crawler", code: "gptbot", operator: "OpenAI" }],
    ["chatgptUser", { category: "ai-assistant", code: "chatgpt-user", operator: "OpenAI" }],
    ["oaiSearch", { category: "search-crawler", code: "oai-searchbot", operator: "OpenAI" }],
    ["claudebot", { category: "ai-crawler", code: "claudebot", operator: "Anthropic" }],
    ["claudeUser", { category: "ai-assistant", code: "claude-user", operator: "Anthropic" }],
    ["perplexitybot", { category: "ai-crawler", code: "perplexitybot", operator: "Perplexity" }],
    ["perplexityUser", { category: "ai-assistant", code: "perplexity-user", operator: "Perplexity" }],
    ["facebook", { category: "page-previewer", code: "facebookexternalhit", operator: "Meta" }],
    ["slack", { category: "page-previewer", code: "slackbot", operator: "Slack" }],
    ["uptime", { category: "analytics-monitor", code: "uptimerobot", operator: "UptimeRobot" }],
  ])("%s", (name, expected) => {
    const unverified = classifyBot({ userAgent: UA[name] });
    expect(unverified).toMatchObject({ ...expected, isVerified: false });
    expect(unverified!.product).toBeTruthy();
    expect(classifyBot({ userAgent: UA[name], cf: verified() })).toMatchObject({ ...expected, isVerified: true });
  });

  it("people's browsers are not bots", () => {
    expect(classifyBot({ userAgent: UA.chrome })).toBeUndefined();
    expect(classifyBot({ userAgent: UA.safari, cf: { botManagement: { verifiedBot: false, score: 90 } } })).toBeUndefined();
    expect(classifyBot({ userAgent: undefined })).toBeUndefined();
    expect(classifyBot({ userAgent: "" , cf: null })).toBeUndefined();
  });

  it("anything else isbot flags is category other, unverified", () => {
    expect(classifyBot({ userAgent: UA.curl })).toEqual({ category: "other", code: "curl", isVerified: false, operator: "unknown", product: "curl" });
    expect(classifyBot({ userAgent: "python-requests/2.31.0" })).toMatchObject({ category: "other", code: "python-requests", isVerified: false });
  });
});

describe("classifyBot: verification comes only from the cf object", () => {
  it("botManagement.verifiedBot or a verifiedBotCategory verifies; anything else does not", () => {
    expect(classifyBot({ userAgent: UA.googlebot, cf: { verifiedBotCategory: "Search Engine Crawler" } })?.isVerified).toBe(true);
    expect(classifyBot({ userAgent: UA.googlebot, cf: { botManagement: { verifiedBot: true } } })?.isVerified).toBe(true);
    expect(classifyBot({ userAgent: UA.googlebot, cf: { botManagement: { verifiedBot: false } } })?.isVerified).toBe(false);
    expect(classifyBot({ userAgent: UA.googlebot, cf: { botManagement: { verifiedBot: "true" } } })?.isVerified).toBe(false);
    expect(classifyBot({ userAgent: UA.googlebot, cf: { verifiedBotCategory: "" } })?.isVerified).toBe(false);
    expect(classifyBot({ userAgent: UA.googlebot, cf: {} })?.isVerified).toBe(false);
  });

  it.each([
    ["Search Engine Crawler", "search-crawler"],
    ["AI Crawler", "ai-crawler"],
    ["AI Assistant", "ai-assistant"],
    ["AI Search", "search-crawler"],
    ["Page Preview", "page-previewer"],
    ["Monitoring & Analytics", "analytics-monitor"],
    ["Academic Research", "other"],
  ])("a verified bot the table does not know takes its category from cf (%s → %s)", (cfCategory, category) => {
    const tag = classifyBot({ userAgent: "Mozilla/5.0 (compatible; SomeNewBot/1.0)", cf: verified(cfCategory) });
    expect(tag).toMatchObject({ category, isVerified: true });
  });

  it("a verified bot with a browser-like user agent is still a verified bot", () => {
    expect(classifyBot({ userAgent: UA.chrome, cf: verified("AI Assistant") })).toMatchObject({ category: "ai-assistant", isVerified: true, code: "verified-bot" });
  });
});

describe("autoAssignCategoryFor", () => {
  const tag = (userAgent: string, cf?: Record<string, unknown>) => classifyBot({ userAgent, cf });

  it.each<[string, BotTag | undefined, { isAuthenticated: boolean }, string]>([
    ["verified Googlebot", tag(UA.googlebot, verified("Search Engine Crawler")), human, "search-crawler"],
    ["SPOOFED Googlebot (no cf verification)", tag(UA.googlebot), human, "anonymous"],
    ["spoofed Googlebot, logged in", tag(UA.googlebot), member, "authenticated"],
    ["verified GPTBot", tag(UA.gptbot, verified("AI Crawler")), human, "ai-agent"],
    ["verified ChatGPT-User", tag(UA.chatgptUser, verified("AI Assistant")), human, "ai-agent"],
    ["verified Claude-User", tag(UA.claudeUser, verified()), human, "ai-agent"],
    ["unverified ClaudeBot", tag(UA.claudebot), human, "anonymous"],
    ["verified OAI-SearchBot", tag(UA.oaiSearch, verified("AI Search")), human, "search-crawler"],
    ["verified facebookexternalhit (a previewer, not a crawler plan)", tag(UA.facebook, verified("Page Preview")), human, "anonymous"],
    ["verified UptimeRobot", tag(UA.uptime, verified("Monitoring & Analytics")), human, "anonymous"],
    ["curl", tag(UA.curl), human, "anonymous"],
    ["a person", undefined, human, "anonymous"],
    ["a logged-in person", undefined, member, "authenticated"],
  ])("%s → %s", (_name, bot, identity, expected) => {
    expect(autoAssignCategoryFor(identity, bot)).toBe(expected);
  });
});

describe("classifyBot is pure: the caller's memo saves work and changes no answer", () => {
  it("answers the same with and without a memo, and with a memo that already holds the verdict", () => {
    const stored = new Map<string, unknown>();
    const memo = { get: (ua: string) => stored.get(ua) as never, set: (ua: string, verdict: unknown) => stored.set(ua, verdict) };
    const browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
    const userAgents = new Set([...Object.values(UA), browser, "curl/8.4.0"]);
    for (const userAgent of userAgents) {
      for (const cf of [undefined, { verifiedBotCategory: "Search Engine Crawler" }]) {
        const plain = classifyBot({ userAgent, cf });
        expect(classifyBot({ userAgent, cf }, memo)).toEqual(plain); // fills the memo
        expect(classifyBot({ userAgent, cf }, memo)).toEqual(plain); // read from it
        expect(classifyBot({ userAgent, cf })).toEqual(plain); // and nothing was kept elsewhere
      }
    }
    expect(stored.size).toBe(userAgents.size);
    expect(stored.get(browser)).toBeNull();
  });
});
