package kafka

import (
	"cmp"
	"context"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
)

// Leaders. Every agent can serve every partition, so a partition's "leader"
// only steers clients: it spreads their connections and requests evenly over
// the agents. It is picked by rendezvous (highest random weight) hashing of
// (topic id, partition) over the agent ids: deterministic on every agent
// without coordination, even in expectation, and stable under churn: when an
// agent leaves, only the partitions it led move, and a new agent takes about
// 1/N of the partitions from the others. Leader epochs are -1 (unknown): we
// have no replicas to fence, and clients skip epoch checks for -1.

// partitionLeader returns the broker that leads (topic, partition) among
// brokers, and false when brokers is empty.
func partitionLeader(brokers []Broker, topic TopicID, partition int32) (Broker, bool) {
	var key [16 + 4]byte
	copy(key[:], topic[:])
	binary.BigEndian.PutUint32(key[16:], uint32(partition))
	return rendezvous(brokers, key[:])
}

// rendezvous returns the broker of brokers with the highest
// rendezvousScore for key (the lowest id among equals), and false when
// brokers is empty. Partition leaders and group and transaction
// coordinators (10_find_coordinator.go) are picked with it.
func rendezvous(brokers []Broker, key []byte) (Broker, bool) {
	var best Broker
	var bestScore uint64
	found := false
	for _, b := range brokers {
		sc := rendezvousScore(key, b.ID)
		if !found || sc > bestScore || (sc == bestScore && b.ID < best.ID) {
			best, bestScore, found = b, sc, true
		}
	}
	return best, found
}

// rendezvousScore is a well-mixed 64-bit hash of (key, broker): FNV-1a over
// the key's bytes and the broker id's, then the SplitMix64 finalizer,
// because FNV alone mixes the last bytes (the broker id) poorly into the
// high bits.
func rendezvousScore(key []byte, broker int32) uint64 {
	h := fnv.New64a()
	h.Write(key)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(broker))
	h.Write(b[:])
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// clientZone returns the zone a client names in its client id, "" for none:
// the value of a "zone=" key, where the key starts the id or follows a
// character that cannot be part of a key (so "myzone=x" names no zone), and
// the value runs to the next ',', ';', '&', whitespace or the end. Kafka
// users already put such tags in client.id for quota and log purposes, e.g.
// "billing-consumer,zone=us-east-1a".
func clientZone(clientID string) string {
	for i := 0; ; {
		j := strings.Index(clientID[i:], "zone=")
		if j < 0 {
			return ""
		}
		j += i
		if j == 0 || !isKeyByte(clientID[j-1]) {
			v := clientID[j+len("zone="):]
			if k := strings.IndexAny(v, ",;& \t"); k >= 0 {
				v = v[:k]
			}
			return v
		}
		i = j + 1
	}
}

func isKeyByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// brokersInZone returns the brokers of zone when there are any, else all of
// them, sorted by id either way.
func brokersInZone(all []Broker, zone string) []Broker {
	out := all
	if zone != "" {
		var in []Broker
		for _, b := range all {
			if b.Zone == zone {
				in = append(in, b)
			}
		}
		if len(in) > 0 {
			out = in
		}
	}
	out = slices.Clone(out)
	slices.SortFunc(out, func(a, b Broker) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// brokersFor returns the brokers a client sees: those of its zone when it
// names one that has live agents, else all.
func (s *Server) brokersFor(ctx context.Context, cc *clientConn) ([]Broker, error) {
	all, err := s.core.Brokers(ctx)
	if err != nil {
		return nil, err
	}
	return brokersInZone(all, clientZone(cc.clientID)), nil
}

// controllerID is the broker reported as controller: the lowest id seen.
// Strata has no controller; admin requests go to any agent, and naming a
// live one keeps clients that route admin requests to "the controller" happy.
func controllerID(brokers []Broker) int32 {
	if len(brokers) == 0 {
		return -1
	}
	return brokers[0].ID // brokers are sorted by id
}
