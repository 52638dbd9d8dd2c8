"""The file Superset loads through SUPERSET_CONFIG_PATH: WikiStreams' config, by module name.

Superset executes this file by path; the settings themselves live in the installed package
(``wikistreams.superset.config``, which says why each one is set), so nothing else ever loads
Python by file path. Superset takes every upper-case name from here.
"""

from wikistreams.superset.config import *  # noqa: F401,F403
