// Vite inlines these files as strings at test build time (workerd has no file system).
import helloWorldYaml from "../../examples/hello-world.yaml?raw";
import newsSiteYaml from "../../examples/news-site.yaml?raw";
import aiToolsYaml from "../../examples/ai-tools.yaml?raw";
import paywallYaml from "../../examples/paywall.yaml?raw";
import { parse } from "yaml";

export { helloWorldYaml, newsSiteYaml, aiToolsYaml, paywallYaml };
export const helloWorld = (): Record<string, any> => parse(helloWorldYaml);
export const newsSite = (): Record<string, any> => parse(newsSiteYaml);
export const aiTools = (): Record<string, any> => parse(aiToolsYaml);
export const paywall = (): Record<string, any> => parse(paywallYaml);
