// The QA console's service worker: it lets the page's <audio> element
// stream a recording straight from the API.
//
// An <audio> element cannot send an Authorization header, and recordings are
// never served without one. So this worker, which controls /qa only, catches
// the element's requests for /v1/recordings/{id}/audio, asks the page that
// made the request for its bearer token (the token stays in that tab; this
// worker keeps no copy), and forwards the request with the token and the
// element's own Range header. The API answers 206 with the part asked for,
// audits the read, and seeking is the browser's ordinary Range requests.

const AUDIO = /^\/v1\/recordings\/[^/]+\/audio$/;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !AUDIO.test(url.pathname)) return;
  if (event.request.headers.has("Authorization")) return; // the page's own fetch()
  event.respondWith(forward(event));
});

function askToken(client) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(null), 3000);
    channel.port1.onmessage = (e) => {
      clearTimeout(timer);
      resolve(typeof e.data === "string" ? e.data : null);
    };
    client.postMessage({ type: "ivr-token" }, [channel.port2]);
  });
}

async function forward(event) {
  const client = event.clientId ? await self.clients.get(event.clientId) : null;
  const token = client ? await askToken(client) : null;
  const headers = new Headers();
  const range = event.request.headers.get("Range");
  if (range) headers.set("Range", range);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  return fetch(event.request.url, { headers, cache: "no-store", credentials: "omit", redirect: "error" });
}
