// Package connectapi is the Connect front-end of a Strata agent: the
// public API of proto/strata/v1 (ProducerService, ConsumerService,
// AdminService, GroupService) over the Connect, gRPC and gRPC-web protocols,
// on one HTTP port, over the core in package agent. It is the only code
// that knows Connect (DESIGN.md, "The layout"); the Kafka front-end,
// package kafka, is its peer over the same core, and neither imports the
// other.
//
// The handlers are thin: each unwraps the request message, calls the
// core's method of the same name (agent.Agent.Produce, .Fetch, ...), and
// wraps the answer (unary.go), or maps the core's error in the one table
// of errors.go to a Connect code with the typed details of
// proto/strata/v1/errors.proto (ErrorInfo with the Kafka error name,
// OffsetOutOfRange, LimitExceeded). The streams' loops are here where they
// are Connect's: ProduceStream (producer.go) over agent.Agent.StartProduce,
// Subscribe (consumer.go) over agent.Agent.Subscribe.
//
// server.go builds the HTTP handler (every service, gRPC health and
// reflection, CORS for browsers, the request size gate, compression),
// binds the ports (Listen) and serves them with a graceful shutdown that
// closes the agent (Serve); tlscert.go loads the API port's certificate
// and reloads it when its files change; the admin port serves Prometheus
// metrics and pprof (AdminHandler).
package connectapi
