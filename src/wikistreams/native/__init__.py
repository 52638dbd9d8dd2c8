"""The native launcher: the WikiStreams services as plain processes, without Docker.

Why: the target machines have Java and Maven but no container engine, so the real servers (Kafka
in KRaft mode, ZooKeeper and Druid as JVMs whose jars Maven resolves from Central) and the
project's own services (the producer, Superset, the log stack) run as supervised processes on
127.0.0.1. What runs, and how, is data in native/services.toml; this package starts it in
dependency order, checks health, restarts what exits (like compose's `restart: unless-stopped`),
and stops exactly what it started. Modules, one job each:

    paths       the repository root and the var/ folder (WIKISTREAMS_VAR_DIR)
    config      services.toml + versions.env -> pydantic Service/Lib models (the schema)
    placeholders  the {root}, {var}, {KAFKA_VERSION}... of services.toml, expanded
    order       names and groups -> services, dependency order, what needs what
    maven       jars of a [libs] entry resolved by Maven into var/lib/<lib>
    procinfo    psutil facts: process identity, process groups, memory, port owners
    records     the pid, keeper and one-shot files in var/run
    processes   start one service process (log, env, init step), stop its group, locks
    keeper      the per-service process that restarts its service with backoff
    oneshot     a step that runs once per `up` (success = exit 0)
    health      http / tcp / kafka health checks (the Kafka admin client)
    startup     `up`: waves of starts, health waits, failures collected
    shutdown    `down`, `clean`
    status      the `status` table
    cli         the `wikistreams-native` command (`python -m wikistreams.native`)
    with_stack  run a command with the stack up; stop only what it started
    prereq      what `make test` needs on the machine (standard library only)
"""
