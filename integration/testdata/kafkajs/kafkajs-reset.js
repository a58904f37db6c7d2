// kafkajs's admin offset resets against a Strata agent's Kafka listener
// (issue 13). integration/kafkajs_test.go runs it as
//
//   node kafkajs-reset.js BROKER TOPIC GROUP
//
// and it: creates TOPIC with 2 partitions and produces 5 records to each;
// sets GROUP's offsets (admin.setOffsets, a consumer of the group committing
// what it seeked to); resets them to the earliest (admin.resetOffsets with
// earliest: kafkajs commits -2, Kafka's "earliest", for clients to resolve)
// and checks that OffsetFetch returns -2 as committed and that fetchOffsets
// with resolveOffsets turns it into 0; then resets to the latest (-1). Every
// check throws on a mismatch, so a non-zero exit is a failure; on success it
// prints one JSON line with the offsets it saw.
'use strict'

const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')

const [broker, topic, groupId] = process.argv.slice(2)
if (!broker || !topic || !groupId) {
  console.error('usage: node kafkajs-reset.js BROKER TOPIC GROUP')
  process.exit(2)
}

const kafka = new Kafka({ clientId: 'kafkajs-reset', brokers: [broker], logLevel: logLevel.NOTHING })

const committed = async (admin) => {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  return t.partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset)
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  const producer = kafka.producer()
  await producer.connect()
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }), true)
    for (const partition of [0, 1]) {
      await producer.send({ topic, messages: [1, 2, 3, 4, 5].map((i) => ({ partition, value: `v${i}` })) })
    }
    const report = {}
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '3' }, { partition: 1, offset: '4' }] })
    report.set = await committed(admin)
    assert.deepEqual(report.set, ['3', '4'])

    await admin.resetOffsets({ groupId, topic, earliest: true })
    report.earliest = await committed(admin)
    assert.deepEqual(report.earliest, ['-2', '-2'])
    const [resolved] = await admin.fetchOffsets({ groupId, topics: [topic], resolveOffsets: true })
    report.resolved = resolved.partitions.sort((a, b) => a.partition - b.partition).map((p) => p.offset)
    assert.deepEqual(report.resolved, ['0', '0'])

    await admin.resetOffsets({ groupId, topic })
    report.latest = await committed(admin)
    assert.deepEqual(report.latest, ['-1', '-1'])
    console.log(JSON.stringify(report))
  } finally {
    await producer.disconnect()
    await admin.disconnect()
  }
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
