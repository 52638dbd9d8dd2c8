"""`python -m wikistreams.trends`"""

from wikistreams.trends.main import run

run()
