// A Node client: @connectrpc/connect-node over HTTP/2, which also speaks to a
// plaintext agent (h2c). It needs Node 22 or later at run time.
//
//   node dist/example/node.js http://127.0.0.1:7070 demo
//
// produces three records, fetches them back, then follows the partition
// until it has seen them and one more it produces while following.

import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, ensureTopic, fetchOnce, follow, produce } from "./strata.js";

async function main(baseUrl: string, topic: string): Promise<void> {
  const transport = createConnectTransport({ baseUrl, httpVersion: "2" });
  await ensureTopic(transport, topic, 1);
  const offsets = await produce(transport, topic, ["one", "two", "three"]);
  const first = offsets[0];
  if (first === undefined) {
    throw new Error("produce answered no offsets");
  }
  for (const record of await fetchOnce(transport, topic, first)) {
    console.log(`fetched ${describe(record)}`);
  }
  const stop = new AbortController();
  let seen = 0;
  const following = follow(transport, topic, first, (record) => {
    console.log(`followed ${describe(record)}`);
    if (++seen === offsets.length) {
      void produce(transport, topic, ["four"]);
    }
    if (seen === offsets.length + 1) {
      stop.abort();
    }
  }, stop.signal);
  await following;
}

const [baseUrl, topic] = process.argv.slice(2);
if (baseUrl === undefined || topic === undefined) {
  console.error("usage: node dist/example/node.js BASE_URL TOPIC");
  process.exit(2);
}
main(baseUrl, topic).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
