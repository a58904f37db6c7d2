// One member of a kafkajs consumer group (consumer.run, the classic group
// protocol: JoinGroup, SyncGroup, Heartbeat, OffsetCommit, LeaveGroup) against
// Strata agents. integration/kafkajs_groups_test.go runs several of these
// as separate processes, stops them with SIGTERM (a clean leave) or SIGKILL,
// and checks their event logs:
//
//   node kafkajs-group-member.js BROKERS TOPIC GROUP NAME EVENTS [SESSION_MS [PROCESS_MS]]
//
// KAFKAJS_RETRIES, KAFKAJS_RESTART_ON_CRASH and KAFKAJS_LOG_LEVEL, in the
// environment, are described where they are read below.
//
// BROKERS is a comma-separated list of host:port. Each batch takes
// PROCESS_MS (default 0) to process after it is logged, so that a SIGKILL
// is likely to land between processing and committing. Events go to the file
// EVENTS, one JSON object a line, written synchronously so that a SIGKILL
// loses at most the line being written; t is Date.now() (ms), the same clock
// as the Go test's:
//
//   {"ev":"assigned","gen":G,"member":ID,"partitions":[...],"t":T}
//       after a JoinGroup and SyncGroup of generation G completed.
//   {"ev":"revoked","gen":G,"t":T}
//       before this member asks to join again (JoinGroup) or leaves
//       (LeaveGroup): it has stopped processing generation G's partitions
//       (kafkajs stops its fetchers and waits for the batch in hand first).
//   {"ev":"records","gen":G,"partition":P,"offsets":[...],"values":[...],"t":T}
//       a batch processed in generation G (eachBatch).
//   {"ev":"committed","gen":G,"committed":{"P":O,...},"t":T}
//       an OffsetCommit the coordinator acknowledged; O is the next offset.
//   {"ev":"exit","t":T}
//       after a clean disconnect on SIGTERM; the process then exits 0.
//
// kafkajs's GROUP_JOIN event has no generation; the generation is read from
// the JoinGroup answer by wrapping kafkajs's Broker.joinGroup (package-lock.json
// pins the kafkajs version whose internals this relies on). Offsets are
// committed after every batch (kafkajs's default with autoCommit and no
// interval or threshold), so a member killed mid-batch leaves at most that
// batch uncommitted.
'use strict'

const fs = require('node:fs')
const { Kafka, logLevel } = require('kafkajs')
const Broker = require('kafkajs/src/broker')

const [brokers, topic, groupId, name, eventsPath, sessionArg, processArg] = process.argv.slice(2)
if (!brokers || !topic || !groupId || !name || !eventsPath) {
  console.error('usage: node kafkajs-group-member.js BROKERS TOPIC GROUP NAME EVENTS [SESSION_MS [PROCESS_MS]]')
  process.exit(2)
}
const sessionTimeout = Number(sessionArg || 8000)
const processMs = Number(processArg || 0)

const events = fs.openSync(eventsPath, 'a')
function emit(ev) {
  fs.writeSync(events, JSON.stringify({ ...ev, t: Date.now() }) + '\n')
}

// The generation this member holds its partitions in, null between a
// revocation and the next completed join.
let generation = null
let joinedGeneration = null

function revoke() {
  if (generation !== null) {
    emit({ ev: 'revoked', gen: generation })
    generation = null
  }
}

const joinGroup = Broker.prototype.joinGroup
Broker.prototype.joinGroup = async function (...args) {
  revoke()
  const res = await joinGroup.apply(this, args)
  joinedGeneration = res.generationId
  return res
}
const leaveGroup = Broker.prototype.leaveGroup
Broker.prototype.leaveGroup = async function (...args) {
  revoke()
  return leaveGroup.apply(this, args)
}

const kafka = new Kafka({
  clientId: name,
  brokers: brokers.split(','),
  connectionTimeout: 30000,
  requestTimeout: 60000,
  retry: { retries: 20, initialRetryTime: 200, maxRetryTime: 2000 },
  // KAFKAJS_LOG_LEVEL (ERROR, WARN, INFO, DEBUG; default WARN) shows more
  // of what kafkajs sends where, to debug a run.
  logLevel: logLevel[process.env.KAFKAJS_LOG_LEVEL || 'WARN'] ?? logLevel.WARN,
  // kafkajs logs every error answer; a Heartbeat's REBALANCE_IN_PROGRESS,
  // once per batch until the member rejoins, is how a rebalance starts,
  // not news.
  logCreator:
    () =>
    ({ namespace, label, log }) => {
      if (namespace === 'Connection' && /rebalancing/.test(String(log.error))) return
      console.error(JSON.stringify({ level: label, namespace, ...log }))
    },
})

// KAFKAJS_RETRIES (default 20) is the consumer's retry count: with waits
// from 200 ms doubling up to 2 s, 5 retries spend about 5 s, under the
// session timeout, so that a member whose coordinator died restarts and
// rejoins before its session expires (see CRASH below).
const consumerRetries = Number(process.env.KAFKAJS_RETRIES || 20)

const consumer = kafka.consumer({
  groupId,
  sessionTimeout,
  rebalanceTimeout: 60000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 250,
  retry: { retries: consumerRetries, initialRetryTime: 200, maxRetryTime: 2000 },
})

consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
  generation = joinedGeneration
  emit({
    ev: 'assigned',
    gen: generation,
    member: payload.memberId,
    partitions: (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b),
  })
})

consumer.on(consumer.events.COMMIT_OFFSETS, ({ payload }) => {
  const offsets = {}
  for (const t of payload.topics) {
    if (t.topic !== topic) continue
    for (const p of t.partitions) offsets[p.partition] = Number(p.offset)
  }
  emit({ ev: 'committed', gen: payload.groupGenerationId, committed: offsets })
})

// A crash kafkajs restarts from (payload.restart: a retriable error, or its
// retry budget spent, and restartOnFailure left at its default) is how a
// kafkajs member recovers when its group coordinator's broker dies: kafkajs
// keeps sending to the coordinator it found at its last join, and only a
// restart (a new FindCoordinator and JoinGroup) moves it. The crash has
// already stopped the consumer and tried to leave the group. With
// KAFKAJS_RESTART_ON_CRASH=1 the member lets kafkajs restart (what an
// application should do, docs/cli.md); without, any crash exits 1, so that
// a test where no broker dies sees it.
const restartOnCrash = process.env.KAFKAJS_RESTART_ON_CRASH === '1'
consumer.on(consumer.events.CRASH, ({ payload }) => {
  revoke()
  if (restartOnCrash && payload.restart) {
    console.error(`${name}: consumer crashed, kafkajs restarts it:`, String(payload.error))
    return
  }
  console.error(`${name}: consumer crashed:`, payload.error)
  process.exit(1)
})

let stopping = false
process.on('SIGTERM', async () => {
  if (stopping) return
  stopping = true
  try {
    await consumer.disconnect()
    revoke()
    emit({ ev: 'exit' })
    process.exit(0)
  } catch (err) {
    console.error(`${name}: disconnect:`, err)
    process.exit(1)
  }
})

async function main() {
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return
      emit({
        ev: 'records',
        gen: generation,
        partition: batch.partition,
        offsets: batch.messages.map(m => Number(m.offset)),
        values: batch.messages.map(m => String(m.value)),
      })
      if (processMs > 0) await new Promise(resolve => setTimeout(resolve, processMs))
    },
  })
}

main().catch(err => {
  console.error(`${name}:`, err)
  process.exit(1)
})
