"""`python -m wikistreams.producer`"""

from wikistreams.producer.main import run

run()
