package kafka_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"

	"github.com/stratabroker/strata/internal/kafkafake"
	"github.com/stratabroker/strata/kafka"
)

// cluster is one kafka.Server over a fake core, listening on n loopback
// ports: n brokers, as n agents would be.
type cluster struct {
	core    *kafkafake.Core
	server  *kafka.Server
	addrs   []string
	brokers []kafka.Broker
}

// startCluster starts a server with one listener per zone given ("" for
// none); broker ids are 1, 2, ...
func startCluster(t *testing.T, zones ...string) *cluster {
	t.Helper()
	if len(zones) == 0 {
		zones = []string{""}
	}
	core := kafkafake.New("strata-test")
	srv, err := kafka.NewServer(core, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{core: core, server: srv}
	served := make(chan error, len(zones))
	for i, zone := range zones {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(l.Addr().String())
		p, _ := strconv.Atoi(port)
		c.addrs = append(c.addrs, l.Addr().String())
		c.brokers = append(c.brokers, kafka.Broker{ID: int32(i + 1), Host: host, Port: int32(p), Zone: zone})
		go func() { served <- srv.Serve(l) }()
	}
	core.SetBrokers(c.brokers...)
	t.Cleanup(func() {
		srv.Close()
		for range zones {
			if err := <-served; !errors.Is(err, kafka.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
	})
	return c
}

func topicName(t *testing.T) string {
	return fmt.Sprintf("t-%s", sanitize(t.Name()))
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
