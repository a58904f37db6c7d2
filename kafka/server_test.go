package kafka_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stratabroker/strata/internal/kafkafake"
	"github.com/stratabroker/strata/kafka"
)

func TestNewServerValidatesConfig(t *testing.T) {
	t.Parallel()
	core := kafkafake.New("c")
	if _, err := kafka.NewServer(nil, kafka.Config{}); err == nil {
		t.Error("nil core accepted")
	}
	if _, err := kafka.NewServer(core, kafka.Config{MaxRequestBytes: 5}); err == nil {
		t.Error("a 5-byte request limit accepted")
	}
	if _, err := kafka.NewServer(core, kafka.Config{MaxInFlight: -1}); err == nil {
		t.Error("negative MaxInFlight accepted")
	}
	srv, err := kafka.NewServer(core, kafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l); !errors.Is(err, kafka.ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("Serve after Close left the listener open")
	}
}

func TestCloseEndsLongPolls(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 1)
	rc := dial(t, c.addrs[0])
	// A fetch that would wait a minute for data that never comes.
	rc.send(1, "x", fetchRequest(12, topic, [16]byte{}, 0, time.Minute, 1))
	deadline := time.Now().Add(30 * time.Second)
	for c.core.Polling() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fetch never started its long poll")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		c.server.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waiting after 30s on a long poll of one minute")
	}
	if _, _, err := rc.recv(); err == nil {
		t.Fatal("the long-polling connection got an answer after Close; want it closed")
	}
}
