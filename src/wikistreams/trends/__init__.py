"""Trends: the stream stage that finds what the world is editing about right now.

Reads the enriched topic, keeps per-page windows and a per-page baseline, resolves the few
candidate pages to their Wikidata item (one story across languages) and writes trend records
(`record.TrendRecord`) to `TRENDS_TOPIC`. See docs/trends.md.
"""
