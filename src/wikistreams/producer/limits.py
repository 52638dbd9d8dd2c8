"""Kafka's record size limit, shared by the sink (which refuses bigger records before Kafka
does) and the position record (which must stay under it with a margin)."""

# The producer's `message.max.bytes` (librdkafka's default), itself under the broker's default
# of 1,048,588: produce() refuses a bigger record with MSG_SIZE_TOO_LARGE.
MAX_RECORD_BYTES = 1_000_000
