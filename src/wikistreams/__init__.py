"""WikiStreams: Wikimedia recentchange -> Kafka -> Druid -> Superset, and the tools that run it.

One subpackage per part (docs/architecture.md has the map): `producer` (the data path),
`druid` (the supervisor tool), `superset` (the dashboard bundle and config), `grafana` (the
provisioning generator), `native` (the launcher of the no-Docker stack) and `resources` (the
container/process resource sampler).
"""
