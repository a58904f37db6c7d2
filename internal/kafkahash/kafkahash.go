// Package kafkahash holds Kafka's default partitioner hash, shared by the
// agent (records sent without a partition) and the Go producer of package
// client, so both put a key where a Kafka client would. It imports nothing
// of Strata.
package kafkahash

// Murmur2 is Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils),
// seed 0x9747b28c. Keyed records go to partition
// (Murmur2(key) & 0x7fffffff) % partitions, exactly as Kafka's default
// partitioner puts them, so data keyed by Kafka clients and by Strata's own
// API lands in the same partitions.
func Murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition is Kafka's default partition for a key among partitions.
func KeyPartition(key []byte, partitions int32) int32 {
	return (Murmur2(key) & 0x7fffffff) % partitions
}
