package client_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/stratabroker/strata/client"
)

// A member of group "billing" that processes the records of two topics at
// least once: what Poll returned is committed once the next Poll starts
// (every second), when partitions move to another member, and on Close.
func ExampleNewGroupConsumer() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := client.NewGroupConsumer(ctx, client.GroupConsumerConfig{
		BaseURL: "http://127.0.0.1:7070",
		Group:   "billing",
		Topics:  []string{"orders", "refunds"},
		Reset:   client.ResetEarliest,
		OnRevoked: func(_ context.Context, parts []client.TopicPartition) {
			log.Printf("handing over %v", parts)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Commits what was processed and leaves: the group hands the
		// partitions over at once.
		if err := c.Close(context.WithoutCancel(ctx)); err != nil {
			log.Print(err)
		}
	}()
	for {
		recs, err := c.Poll(ctx)
		if ctx.Err() != nil {
			return // Ctrl-C
		}
		if err != nil {
			log.Print(err)
			return
		}
		for _, r := range recs {
			log.Printf("%s/%d@%d: %s", r.Topic, r.Partition, r.Offset, r.Value)
		}
	}
}
