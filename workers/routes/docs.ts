/**
 * The OpenAPI document and a self-contained reference page that renders it (no CDN: `npm start` works offline).
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";

export function registerDocs(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", {
    type: "http",
    scheme: "bearer",
    description: "An environment's API key (sk_… or pk_…), an organization key (ok_…, admin routes), or the operator token",
  });
  // /docs renders this document from a sandboxed (opaque-origin) page, so its fetch is cross-origin.
  app.use("/openapi.json", async (c, next) => {
    await next();
    c.header("Access-Control-Allow-Origin", "*");
  });
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: {
      title: "Edge monetization platform API",
      version: "1.0.0",
      description: "Decision API (wire-compatible with the public contract) and the admin API of this platform.",
    },
    servers: [{ url: new URL(c.req.url).origin }],
  }));
  // The page runs script on the platform's origin, which tenants' endpoints share: sandboxed into an opaque origin like
  // every other page here, its script could never send same-origin requests (endpoints trust a same-origin marker
  // header that browsers cannot send cross-origin). 
  app.get("/docs", (c) => {
    c.header("Content-Security-Policy", "sandbox allow-scripts");
    return c.html(REFERENCE_PAGE);
  });
}

const REFERENCE_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:24px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
details{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:8px 0;padding:8px 12px}
summary{cursor:pointer}code,pre{font:13px ui-monospace,monospace}
pre{background:#f3f4f6;padding:8px;overflow:auto;border-radius:4px}
.m{display:inline-block;width:64px;font-weight:700;text-transform:uppercase;font-size:12px}
.get{color:#0969da}.post{color:#1a7f37}.put{color:#9a6700}.patch{color:#8250df}.delete{color:#cf222e}
</style></head><body><main><h1>API reference</h1>
<p>Generated from <a href="/openapi.json">/openapi.json</a>. Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<div id="ops">Loading…</div></main>
<script>
fetch('/openapi.json').then(r=>r.json()).then(doc=>{
  const byTag={};
  for(const [path,item] of Object.entries(doc.paths||{}))for(const [method,op] of Object.entries(item)){
    const tag=(op.tags&&op.tags[0])||'Other';(byTag[tag]=byTag[tag]||[]).push({path,method,op});}
  const esc=s=>String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  const out=[];
  for(const [tag,ops] of Object.entries(byTag)){
    out.push('<h2>'+esc(tag)+'</h2>');
    for(const {path,method,op} of ops){
      const body=op.requestBody?'<h4>Request body</h4><pre>'+esc(JSON.stringify(op.requestBody.content,null,2))+'</pre>':'';
      const params=op.parameters?'<h4>Parameters</h4><pre>'+esc(JSON.stringify(op.parameters,null,2))+'</pre>':'';
      const res='<h4>Responses</h4><pre>'+esc(JSON.stringify(op.responses,null,2))+'</pre>';
      out.push('<details><summary><span class="m '+method+'">'+method+'</span><code>'+esc(path)+'</code> — '+esc(op.summary||'')+'</summary>'+(op.description?'<p>'+esc(op.description)+'</p>':'')+params+body+res+'</details>');
    }
  }
  out.push('<h2>Schemas</h2><pre>'+esc(JSON.stringify((doc.components||{}).schemas||{},null,2))+'</pre>');
  document.getElementById('ops').innerHTML=out.join('');
});
</script></body></html>`;
