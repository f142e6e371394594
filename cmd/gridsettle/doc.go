// Command gridsettle is the one binary of gridsettle: it parses the
// configuration, starts the platform and wires the components together.
//
// It owns: the Config (shared flags, each also read from GRIDSETTLE_<NAME>, a
// command's own flags from GRIDSETTLE_<COMMAND>_<NAME>; a flag
// on the command line beats its environment variable, which beats the
// default), validated before anything connects, with errors that name the
// flag; the embedded broker (`gridsettle broker`, franz-go kfake persisted
// under <data-dir>/kafka); the choice between --database-url and the private
// cluster under <data-dir>/postgres, and migrations on start; creation of
// missing topics; the lifecycle of the components (ingest, publish,
// scheduler, bridge, api), all started from componentBuilders and
// runComponents, and
// the services several of them share (wire_services.go: one ingest Applier
// with the alerts hook, one Runs whose completions wake one Exporter, whose
// worker runs in the scheduler, else the api component); and
// the commands that drive those packages: demo, simulate, import, registry
// import, token create, ledger verify, explain, export verify / public-key, bench,
// chaos and bridge mqtt (the MQTT bridge alone, with its /metrics, /healthz
// and /readyz).
//
// It does not own any business rule, SQL or HTTP handler: those live in the
// packages it wires. No other package reads flags or the environment.
//
// Invariants:
//   - context.Background() appears only in main; SIGINT/SIGTERM cancel the
//     root context and a graceful shutdown exits 0.
//   - Shutdown is the reverse of start-up: components in reverse order
//     (api first, ingest last), then the database, then the broker child.
//   - dev runs the broker as a child process in its own process group and
//     stops it with SIGTERM, never SIGKILL while it answers, because a hard
//     kill of kfake with a transaction open corrupts read_committed reads of
//     that transactional id (settlement/README.md "Exactly-once").
//   - --components accepts only the names of api/README.md, and the bridge
//     (meters/README.md "Edge ingest: the MQTT bridge"), which runs only when
//     named and then needs --mqtt-broker.
//   - The api component has its own database pool, whose connections run
//     under --api-statement-timeout; ingest, publish, the scheduler, runs
//     started through the API and exports use the pipeline's pool, so API
//     traffic cannot starve settlement.
//   - serve never generates, prints or logs a secret: its admin token is
//     given (at least 32 characters) or absent; only dev and demo generate
//     and print one.
//
// # How to add a component
//
// Write a builder func(p *Platform) (Component, error) in its own file and
// add it to componentBuilders under its api/README.md name. The Platform
// carries the validated Config (Market, Schedule, Kafka, ExportDir, SigningKey,
// ...), the migrated pool, a plain Kafka client, the topic names, the outbox
// writer (partition counts read from the cluster), the metrics registry and,
// for the api, the bound listener; a builder may add a readiness check to
// Platform.Ready, which the api (built last) serves at /readyz. The builder
// must not start work: Run does,
// until its context is cancelled. Components start in componentNames order
// and stop in reverse.
package main
