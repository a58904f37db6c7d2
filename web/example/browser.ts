// A browser client: @connectrpc/connect-web speaks the Connect protocol over
// fetch(), so it needs nothing but CORS on the agent (--cors-origins). Serve
// the agent over TLS (--tls-cert, --tls-key) or behind a TLS proxy: over
// plaintext the browser uses HTTP/1.1, six connections per origin, and six
// open Subscribe streams would block every other call.

import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { describe, fetchOnce, follow, produce } from "./strata.js";

// Sends a bearer token with every call. The agent's CORS allows the
// authorization header by default; list others in --cors-allowed-headers.
function bearer(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("Authorization", `Bearer ${token}`);
    return next(req);
  };
}

export async function run(baseUrl: string, token: string, topic: string, log: HTMLElement): Promise<AbortController> {
  const transport = createConnectTransport({ baseUrl, interceptors: [bearer(token)] });
  const offsets = await produce(transport, topic, ["hello from the browser"]);
  for (const record of await fetchOnce(transport, topic, offsets[0] ?? 0n)) {
    log.append(describe(record), document.createElement("br"));
  }
  const stop = new AbortController();
  follow(transport, topic, 0n, (record) => log.append(describe(record), document.createElement("br")), stop.signal)
    .catch((err: unknown) => log.append(`subscribe failed: ${String(err)}`));
  return stop; // stop.abort() ends the stream
}
