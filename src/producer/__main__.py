"""`python -m producer`"""

from producer.main import run

run()
