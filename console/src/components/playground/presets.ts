/**
 * Ready-made request facts for the playground: user agents the bot classification knows (workers/engine/bots.ts)
 * and the `cf.verifiedBotCategory` values Cloudflare sets for verified bots.
 */
export const USER_AGENTS: { label: string; value: string }[] = [
  { label: "Browser (Chrome, desktop)", value: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" },
  { label: "Browser (Safari, iPhone)", value: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1" },
  { label: "Googlebot (search crawler)", value: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" },
  { label: "Bingbot (search crawler)", value: "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)" },
  { label: "GPTBot (AI crawler)", value: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)" },
  { label: "ClaudeBot (AI crawler)", value: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)" },
  { label: "PerplexityBot (AI crawler)", value: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)" },
  { label: "ChatGPT-User (AI assistant)", value: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot" },
  { label: "OAI-SearchBot (AI search)", value: "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot" },
  { label: "facebookexternalhit (link preview)", value: "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)" },
  { label: "UptimeRobot (monitor)", value: "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)" },
  { label: "curl (generic bot)", value: "curl/8.4.0" },
];

/** Cloudflare's verified-bot categories, as `request.cf.verifiedBotCategory` spells them. */
export const VERIFIED_BOT_CATEGORIES = [
  "Search Engine Crawler",
  "Search Engine Optimization",
  "AI Crawler",
  "AI Search",
  "AI Assistant",
  "AI Agent",
  "Page Preview",
  "Monitoring & Analytics",
  "Advertising & Marketing",
  "Feed Fetcher",
  "Academic Research",
  "Security",
  "Accessibility",
  "Webhooks",
  "Aggregator",
  "Other",
];
