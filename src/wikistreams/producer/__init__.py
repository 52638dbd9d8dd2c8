"""WikiStreams producer: Wikimedia EventStreams -> validated, Wikidata-enriched events -> Kafka."""
