// The example site's origin: its static pages (this folder) served as they are. The edge proxy sits in front of it.
interface Env {
  ASSETS: Fetcher;
}

export default {
  fetch: (request: Request, env: Env) => env.ASSETS.fetch(request),
};
