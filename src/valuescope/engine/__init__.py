"""Where the uncached questions of a run are answered: in this process or on a Ray cluster.

The elicitation code keeps the cache: it works out which queries are missing, hands them
to an engine, and writes each batch of answers the engine streams back (the driver is the
only writer of the SQLite cache). Engines only turn queries into answers.
"""

from valuescope.engine.base import ENGINES, Engine
from valuescope.engine.factory import check_engine, make_engine
from valuescope.engine.local import LocalEngine

__all__ = ["ENGINES", "Engine", "LocalEngine", "check_engine", "make_engine"]
