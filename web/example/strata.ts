// The calls of docs/typescript.md, written once over any Transport: the
// browser (browser.ts, @connectrpc/connect-web) and Node (node.ts,
// @connectrpc/connect-node) examples build the transport and call these.
// make typecheck-ts type-checks this folder against the generated code in
// ../src/gen, so the guide cannot drift from the API.

import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AdminService } from "../src/gen/strata/v1/admin_pb.js";
import { ConsumerService } from "../src/gen/strata/v1/consumer_pb.js";
import { ProducerService } from "../src/gen/strata/v1/producer_pb.js";
import type { ConsumedRecord } from "../src/gen/strata/v1/records_pb.js";

const utf8 = new TextEncoder();

/** Creates the topic unless it exists already (ALREADY_EXISTS is fine). */
export async function ensureTopic(transport: Transport, name: string, partitions: number): Promise<void> {
  const admin = createClient(AdminService, transport);
  try {
    await admin.createTopic({ name, partitions });
  } catch (err) {
    if (ConnectError.from(err).code !== Code.AlreadyExists) {
      throw err;
    }
  }
}

/**
 * Produces one record per value to partition 0 and returns their offsets.
 * int64 fields (offsets) are bigint; bytes fields are Uint8Array.
 */
export async function produce(transport: Transport, topic: string, values: string[]): Promise<bigint[]> {
  const producer = createClient(ProducerService, transport);
  const res = await producer.produce({
    topics: [{ topic, records: values.map((v) => ({ value: utf8.encode(v), partition: 0 })) }],
  });
  return res.topics.flatMap((t) => t.results.map((r) => r.offset));
}

/**
 * Reads what partition 0 holds from offset on, at most one answer's worth
 * (max_bytes), without waiting for more. An offset outside the log fails
 * with OUT_OF_RANGE.
 */
export async function fetchOnce(transport: Transport, topic: string, offset: bigint): Promise<ConsumedRecord[]> {
  const consumer = createClient(ConsumerService, transport);
  const res = await consumer.fetch({ topic, partition: 0, offset });
  return res.records;
}

/**
 * Follows partition 0 from offset until signal aborts, handing each record
 * to onRecord. Subscribe is a server stream; the agent ends it when it shuts
 * down (UNAVAILABLE), and a proxy may cut it, so the loop reopens it from the
 * next offset it has not seen, and each record is handed over once. It
 * reopens with the topic's id from the stream's answers (KIP-516): a topic
 * deleted and created again while the stream was down then fails with
 * NOT_FOUND, rather than resuming the new topic at the old topic's offset.
 */
export async function follow(
  transport: Transport,
  topic: string,
  offset: bigint,
  onRecord: (record: ConsumedRecord) => void,
  signal: AbortSignal,
): Promise<void> {
  const consumer = createClient(ConsumerService, transport);
  let next = offset;
  let topicId = ""; // empty: whichever topic has the name when the first stream opens
  while (!signal.aborted) {
    try {
      const stream = consumer.subscribe(
        { topic, topicId, partitions: [0], start: { case: "offset", value: next } },
        { signal },
      );
      for await (const res of stream) {
        topicId = res.topicId || topicId; // every message carries it, keep-alives too
        for (const record of res.records) {
          onRecord(record);
          next = record.offset + 1n;
        }
      }
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (signal.aborted || code === Code.Canceled) {
        return;
      }
      // Unavailable (agent shutting down, store or index failing) and an
      // idle connection cut by a proxy (Unknown, Internal) are worth a retry.
      // The rest are final: NotFound (the topic is gone, or is another topic
      // now under its name), OutOfRange, InvalidArgument, ...
      if (code !== Code.Unavailable && code !== Code.Unknown && code !== Code.Internal) {
        throw err;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Formats a record for a log line. */
export function describe(record: ConsumedRecord): string {
  const value = record.value === undefined ? "null" : new TextDecoder().decode(record.value);
  const at = record.timestamp === undefined ? "" : ` at ${timestampDate(record.timestamp).toISOString()}`;
  return `${record.topic}/${record.partition}@${record.offset}${at}: ${value}`;
}
