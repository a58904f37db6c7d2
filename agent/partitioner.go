package agent

import "github.com/stratabroker/strata/internal/kafkahash"

// keyPartition is Kafka's default partition for a key:
// (murmur2(key) & 0x7fffffff) % partitions, so data keyed by Kafka clients,
// by Strata's Go producer and by the API's keyed records lands in the same
// partitions.
func keyPartition(key []byte, partitions int32) int32 {
	return kafkahash.KeyPartition(key, partitions)
}
