// A scripted stand-in for the API's events endpoint (unit tests only: the real one is
// exercised by tests/e2e/test_js_client_e2e.py). Each connection takes the next script.
import http from "node:http";

export function envelope(sequence, type, data = {}) {
  return {
    specversion: "1.0",
    id: `e${sequence}`,
    source: "/taskplane",
    type,
    subject: "t1",
    time: "2026-01-01T00:00:00Z",
    datacontenttype: "application/json",
    sequence,
    data,
  };
}

export function frame(sequence, type, data) {
  return `id: ${sequence}\nevent: ${type}\ndata: ${JSON.stringify(envelope(sequence, type, data))}\n\n`;
}

/** `scripts`: per connection, (req, res, url) => void; `requests` records each request. */
export async function fakeApi(scripts, { mint } = {}) {
  const requests = [];
  let minted = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    requests.push({ method: req.method, url, headers: req.headers });
    if (url.pathname.endsWith("/stream-token")) {
      minted += 1;
      if (mint) return mint(req, res, minted);
      res.writeHead(201, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ token: `tok${minted}`, expires_at: "", events_url: "" }));
    }
    const script = scripts.shift();
    if (!script) {
      res.writeHead(500);
      return res.end();
    }
    script(req, res, url);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    streamRequests: () => requests.filter((r) => r.url.pathname.endsWith("/events")),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

export function sse(res, body, { end = true } = {}) {
  res.writeHead(200, { "Content-Type": "text/event-stream" });
  res.write(body);
  if (end) res.end();
}

export function problem(res, status, detail, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/problem+json", ...headers });
  res.end(JSON.stringify({ type: "about:blank", title: "x", status, detail }));
}
