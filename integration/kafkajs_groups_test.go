package integration

// kafkajs consumer groups (consumer.run: JoinGroup, SyncGroup, Heartbeat,
// OffsetCommit, LeaveGroup, kafkajs's round-robin assignor, the only one it
// has built in) under load against two agent processes, each member a node
// process running testdata/kafkajs/kafkajs-group-member.js: the scenario and
// checks of groupload_test.go.

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestKafkaJSGroupMembersUnderLoad: kafkajs members join one at a time
// (1, 2, 3) while a producer writes to every partition; one leaves cleanly,
// one is killed with SIGKILL (its partitions move when its session
// expires), the last is stopped and two new ones resume from the committed
// offsets. No partition is ever held by two members, every acked record is
// consumed in order, and only what the killed member had not committed is
// read twice.
func TestKafkaJSGroupMembersUnderLoad(t *testing.T) {
	t.Parallel()
	node, check := kafkajsScript(t)
	script := filepath.Join(filepath.Dir(check), "kafkajs-group-member.js")
	runGroupLoad(t, groupLoadClient{
		start: func(t *testing.T, name, brokers, topic, group, path string) *proc {
			return startBinary(t, node, name, childEnv("KAFKAJS_NO_PARTITIONER_WARNING=1"),
				script, brokers, topic, group, name, path,
				strconv.Itoa(int(loadSession.Milliseconds())), strconv.Itoa(int(loadProcess.Milliseconds())))
		},
	})
}
