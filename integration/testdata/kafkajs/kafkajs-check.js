// kafkajs (npm, a Kafka client nobody here wrote) against a Strata agent's
// Kafka listener. integration/kafkajs_test.go runs it as
//
//   node kafkajs-check.js BROKER TOPIC
//
// and it: administers TOPIC (create validate-only and for real, add
// partitions, describe and alter configs, describe the cluster); produces
// keyed records with headers and timestamps with an idempotent producer
// (acks=all, one request in flight) in each codec it has here (none, gzip,
// snappy through kafkajs-snappy, lz4 through lz4js); lists offsets (earliest,
// latest and by time); reads every partition back from offset 0 and from a
// middle offset; sends with a plain producer at acks=0 and acks=1. Other
// topics are created and deleted. Every check throws on a mismatch, so
// a non-zero exit is a failure. On success it prints one JSON line: the
// records with the partitions and offsets they were acked at, for the Go test
// to check against the log over the Connect API.
//
// Reading: kafkajs consumes only through a consumer group (JoinGroup,
// SyncGroup, ...: kafkajs-group-member.js runs those). The reads here, to
// check every field of every record, go through kafkajs's own cluster and broker objects (its Fetch
// request encoder and its record batch decoder, codecs included), reached
// through the client's private cluster factory; package-lock.json pins the
// kafkajs version whose internals this relies on.
'use strict'

const assert = require('node:assert/strict')
const {
  Kafka,
  CompressionTypes,
  CompressionCodecs,
  ConfigResourceTypes,
  logLevel,
} = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
// Kafka's LZ4 is the LZ4 frame format, which lz4js reads and writes.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})

const [broker, topic] = process.argv.slice(2)
if (!broker || !topic) {
  console.error('usage: node kafkajs-check.js BROKER TOPIC')
  process.exit(2)
}

const PARTITIONS = 3
const PER_CODEC = 30
const CODECS = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
]

const kafka = new Kafka({
  clientId: 'strata-kafkajs-test',
  brokers: [broker],
  connectionTimeout: 30000,
  requestTimeout: 60000,
  retry: { retries: 10, initialRetryTime: 200 },
  logLevel: logLevel.WARN,
})

function step(name) {
  console.error(`kafkajs: ${name}`)
}

async function checkAdmin(admin) {
  step('admin')
  const retention = '3600000'
  const spec = {
    topic,
    numPartitions: PARTITIONS - 1,
    replicationFactor: 1,
    configEntries: [{ name: 'retention.ms', value: retention }],
  }
  assert.equal(await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [spec] }), true, 'validate-only createTopics')
  assert.ok(!(await admin.listTopics()).includes(topic), 'a validate-only createTopics created the topic')
  assert.equal(await admin.createTopics({ topics: [spec], waitForLeaders: true }), true, 'createTopics')
  // kafkajs answers false, not an error, for a topic that already exists.
  assert.equal(await admin.createTopics({ topics: [spec] }), false, 'createTopics of an existing topic')
  await admin.createPartitions({ topicPartitions: [{ topic, count: PARTITIONS }] })
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(topics.length, 1)
  assert.deepEqual(topics[0].partitions.map(p => p.partitionId).sort(), [0, 1, 2], 'partitions after createPartitions')
  for (const p of topics[0].partitions) {
    assert.ok(p.leader >= 0, `partition ${p.partitionId} has leader ${p.leader}`)
  }

  const scratch = `${topic}-scratch`
  assert.equal(await admin.createTopics({ topics: [{ topic: scratch, numPartitions: 1 }] }), true, 'createTopics scratch')
  await admin.deleteTopics({ topics: [scratch] })
  assert.ok(!(await admin.listTopics()).includes(scratch), 'deleteTopics left the topic listed')

  const cluster = await admin.describeCluster()
  assert.equal(cluster.brokers.length, 1, `describeCluster lists ${JSON.stringify(cluster.brokers)}, want the one agent`)
  assert.equal(`${cluster.brokers[0].host}:${cluster.brokers[0].port}`, broker, 'describeCluster: the agent advertises its listener')

  const describe = async configNames => {
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }],
    })
    assert.equal(res.resources.length, 1)
    assert.equal(res.resources[0].errorCode, 0, `describeConfigs: ${res.resources[0].errorMessage}`)
    return Object.fromEntries(res.resources[0].configEntries.map(e => [e.configName, e]))
  }
  let configs = await describe([])
  assert.ok('max.message.bytes' in configs, `describeConfigs with no names lists ${Object.keys(configs)}: want every config`)
  assert.equal(configs['retention.ms'].configValue, retention)
  assert.equal(configs['retention.ms'].isDefault, false, 'retention.ms was set on the topic')

  // alterConfigs replaces the topic's own configs: retention.ms, not named,
  // goes back to its default.
  const maxBytes = '2097152'
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: maxBytes }] }],
  })
  configs = await describe(['max.message.bytes', 'retention.ms'])
  assert.deepEqual(Object.keys(configs).sort(), ['max.message.bytes', 'retention.ms'])
  assert.equal(configs['max.message.bytes'].configValue, maxBytes)
  assert.equal(configs['max.message.bytes'].isDefault, false)
  assert.notEqual(configs['retention.ms'].configValue, retention, 'alterConfigs without retention.ms left it set')
  assert.equal(configs['retention.ms'].isDefault, true)

  await assert.rejects(
    admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: 'not-a-number' }] }],
    }),
    'alterConfigs with a bad retention.ms must fail'
  )
}

// produce sends PER_CODEC records in each codec, one send per codec, and
// returns them with their acked partitions and offsets. A send answers the
// base offset of each partition's batch; the records of one partition in one
// send are one batch, in the order given.
async function produce(producer) {
  step('produce')
  const base = Date.now() - 3600 * 1000
  const records = []
  let n = 0
  for (const [name, codec] of CODECS) {
    const batch = []
    for (let i = 0; i < PER_CODEC; i++, n++) {
      batch.push({
        key: `key-${n % 7}`,
        value: `${name}-value-${String(n).padStart(4, '0')}`,
        headers: { codec: name, n: String(n) },
        timestamp: base + n, // distinct, increasing with the produce order
        partition: n % PARTITIONS,
      })
    }
    const acks = await producer.send({
      topic,
      acks: -1,
      compression: codec,
      messages: batch.map(r => ({ key: r.key, value: r.value, headers: r.headers, timestamp: String(r.timestamp), partition: r.partition })),
    })
    const baseOffsets = new Map(acks.map(a => [a.partition, BigInt(a.baseOffset)]))
    assert.equal(baseOffsets.size, PARTITIONS, `${name}: acks ${JSON.stringify(acks)}`)
    for (const a of acks) {
      assert.equal(a.errorCode, 0, `${name}: partition ${a.partition} answered error ${a.errorCode}`)
    }
    const nextInPartition = new Map()
    for (const r of batch) {
      const k = nextInPartition.get(r.partition) ?? 0n
      nextInPartition.set(r.partition, k + 1n)
      records.push({ ...r, offset: Number(baseOffsets.get(r.partition) + k) })
    }
  }
  // Acked offsets are dense from 0 and given once each.
  for (let p = 0; p < PARTITIONS; p++) {
    const offsets = records.filter(r => r.partition === p).map(r => r.offset)
    assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p}: acked offsets ${offsets}`)
  }
  return records
}

// checkAcks sends with a plain (not idempotent) producer at acks=0 (no
// answer: kafkajs does not wait for one) and acks=1 to a topic of one
// partition, and checks that every record is stored once, in order.
async function checkAcks(admin) {
  step('acks 0 and 1')
  const t = `${topic}-acks`
  assert.equal(await admin.createTopics({ topics: [{ topic: t, numPartitions: 1 }] }), true, 'createTopics acks')
  const plain = kafka.producer({ allowAutoTopicCreation: false })
  await plain.connect()
  try {
    const none = await plain.send({ topic: t, acks: 0, messages: [0, 1, 2, 3, 4].map(i => ({ value: `v${i}` })) })
    assert.deepEqual(none, [], 'acks=0 has no answer')
    const one = await plain.send({ topic: t, acks: 1, messages: [5, 6, 7, 8, 9].map(i => ({ value: `v${i}` })) })
    assert.equal(one.length, 1)
    // The acks=0 request went first on the same connection.
    assert.equal(one[0].baseOffset, '5', `acks=1 batch at ${one[0].baseOffset}, after the 5 records sent at acks=0`)
  } finally {
    await plain.disconnect()
  }
  const [end] = await admin.fetchTopicOffsets(t)
  assert.equal(end.high, '10', `the acks topic ends at ${end.high}, want 10`)
  await admin.deleteTopics({ topics: [t] })
}

async function checkOffsets(admin, records) {
  step('list offsets')
  const byPartition = p => records.filter(r => r.partition === p)
  const ends = await admin.fetchTopicOffsets(topic)
  assert.equal(ends.length, PARTITIONS)
  for (const e of ends) {
    assert.equal(e.low, '0', `partition ${e.partition}: earliest ${e.low}`)
    assert.equal(e.high, String(byPartition(e.partition).length), `partition ${e.partition}: latest ${e.high}`)
  }
  // By time: each record's own timestamp finds its offset (timestamps
  // increase with offsets); a time before them all finds 0.
  for (const r of [records[0], records[records.length >> 1], records[records.length - 1]]) {
    const res = await admin.fetchTopicOffsetsByTimestamp(topic, r.timestamp)
    const got = res.find(x => x.partition === r.partition)
    assert.equal(got.offset, String(r.offset), `offset of partition ${r.partition} for time ${r.timestamp}`)
  }
  const first = await admin.fetchTopicOffsetsByTimestamp(topic, records[0].timestamp - 1)
  for (const x of first) {
    assert.equal(x.offset, '0', `partition ${x.partition}: offset for a time before every record`)
  }
}

// read fetches topic/partition from offset up to its high watermark with
// kafkajs's own Fetch (see the note at the top).
async function read(cluster, partition, offset) {
  const metadata = cluster.findTopicPartitionMetadata(topic)
  const leader = metadata.find(m => m.partitionId === partition).leader
  const b = await cluster.findBroker({ nodeId: leader })
  const out = []
  for (let empty = 0; empty < 3; ) {
    const res = await b.fetch({
      replicaId: -1,
      isolationLevel: 1,
      maxWaitTime: 100,
      minBytes: 1,
      maxBytes: 4096,
      topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes: 1024 }] }],
    })
    const pd = res.responses[0].partitions[0]
    assert.equal(pd.errorCode, 0, `fetch ${topic}/${partition} at ${offset}: error ${pd.errorCode}`)
    // A fetch may return a batch that starts before the offset asked.
    const msgs = pd.messages.filter(m => BigInt(m.offset) >= BigInt(offset))
    if (msgs.length === 0) {
      if (BigInt(pd.highWatermark) <= BigInt(offset)) empty++
      continue
    }
    for (const m of msgs) {
      assert.equal(m.offset, String(offset), `fetch ${topic}/${partition}: offset ${m.offset} where ${offset} was next: offsets must be dense`)
      out.push(m)
      offset++
    }
  }
  return out
}

async function checkReads(records) {
  step('fetch')
  const cluster = Object.getOwnPropertySymbols(kafka)
    .map(s => kafka[s])
    .find(v => typeof v === 'function' && v.length <= 1 && String(v).includes('new Cluster'))
  assert.ok(cluster, 'kafkajs no longer has the private cluster factory this test reads through')
  const c = cluster({ metadataMaxAge: 300000, allowAutoTopicCreation: false })
  await c.connect()
  try {
    await c.addTargetTopic(topic)
    for (let p = 0; p < PARTITIONS; p++) {
      const want = records.filter(r => r.partition === p)
      const got = await read(c, p, 0)
      assert.equal(got.length, want.length, `partition ${p}: read ${got.length} records, want ${want.length}`)
      got.forEach((m, i) => {
        const w = want[i]
        const where = `partition ${p} offset ${m.offset}`
        assert.equal(m.offset, String(w.offset), where)
        assert.equal(String(m.key), w.key, `${where}: key`)
        assert.equal(String(m.value), w.value, `${where}: value`)
        assert.equal(m.timestamp, String(w.timestamp), `${where}: timestamp`)
        const headers = Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, String(v)]))
        assert.deepEqual(headers, w.headers, `${where}: headers`)
        // Stored as kafkajs's idempotent producer sent it: with its
        // producer id and the sequence of the record's batch.
        assert.notEqual(m.batchContext.producerId, '-1', `${where}: the batch has no producer id`)
        assert.ok(m.batchContext.firstSequence >= 0, `${where}: the batch has no sequence`)
      })
      const from = want.length >> 1
      const tail = await read(c, p, from)
      assert.equal(tail.length, want.length - from, `partition ${p} from ${from}`)
      assert.equal(String(tail[0].value), want[from].value, `partition ${p} from ${from}: first value`)
    }
  } finally {
    await c.disconnect()
  }
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  try {
    await checkAdmin(admin)
    await producer.connect()
    const records = await produce(producer)
    await checkOffsets(admin, records)
    await checkReads(records)
    await checkAcks(admin)
    console.log(JSON.stringify({ records }))
  } finally {
    await producer.disconnect()
    await admin.disconnect()
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
