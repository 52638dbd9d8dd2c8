"""The Druid side: submit and check the Kafka supervisor, retention, compaction.

CLI: `wikistreams-druid`.
"""
