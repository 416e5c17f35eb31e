/**
 * Agents' key directories for tests: nothing in the test suite may reach the internet, and a Web Bot Auth directory
 * is always an origin's well-known path, so each test agent needs an origin of its own. `POST /directories` with
 * `{ "keys": [<public JWK>, …] }` starts a new loopback server that serves exactly those keys at
 * `/.well-known/http-message-signatures-directory` (`application/http-message-signatures-directory+json`) and answers
 * `{ "origin": "http://127.0.0.1:<port>" }`; `GET /directories/<port>/fetches` says how often it was fetched. Tests
 * running in parallel never share a directory. (The platform accepts plain-http loopback directories only with
 * WEB_BOT_AUTH_ALLOW_LOOPBACK=true, set for the test Worker.)
 *
 * Run on its own with `node test/fake-key-directories/server.mjs [port]`.
 */
import { createServer } from "node:http";

const DIRECTORY_PATH = "/.well-known/http-message-signatures-directory";
const MAX_BODY_BYTES = 64 * 1024;

async function readJson(request) {
  let size = 0;
  const chunks = [];
  for await (const chunk of request) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error("body too large");
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function listen(server, port = 0, host = "127.0.0.1") {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(`http://${host}:${server.address().port}`));
  });
}

export function createKeyDirectories() {
  /** port → { server, fetches } */
  const directories = new Map();

  async function startDirectory(keys) {
    const state = { fetches: 0, server: undefined };
    state.server = createServer((request, response) => {
      if (request.method === "GET" && request.url === DIRECTORY_PATH) {
        state.fetches += 1;
        response.writeHead(200, { "content-type": "application/http-message-signatures-directory+json" });
        response.end(JSON.stringify({ keys }));
        return;
      }
      response.writeHead(404).end();
    });
    const origin = await listen(state.server);
    directories.set(state.server.address().port, state);
    return origin;
  }

  const control = createServer(async (request, response) => {
    try {
      if (request.method === "POST" && request.url === "/directories") {
        const body = await readJson(request);
        if (!Array.isArray(body?.keys)) throw new Error("keys must be an array");
        const origin = await startDirectory(body.keys);
        response.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ origin }));
        return;
      }
      const fetches = /^\/directories\/(\d+)\/fetches$/.exec(request.url ?? "");
      if (request.method === "GET" && fetches) {
        const state = directories.get(Number(fetches[1]));
        if (!state) return void response.writeHead(404).end();
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ fetches: state.fetches }));
        return;
      }
      response.writeHead(404).end();
    } catch (error) {
      response.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: String(error) }));
    }
  });

  return {
    server: control,
    listen: (port, host) => listen(control, port, host),
    async close() {
      await Promise.all([control, ...[...directories.values()].map((state) => state.server)].map((server) => new Promise((resolve) => server.close(() => resolve()))));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const base = await createKeyDirectories().listen(Number(process.argv[2] ?? 0));
  console.log(`key directories: ${base}`);
}
