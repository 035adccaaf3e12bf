"""On PYTHONPATH for a benchmark's server only (`bench.load --paths packet@uvloop`): the server
process runs on uvloop instead of the stdlib loop. uvloop is not a dependency: `pip install
uvloop` first. Measured (BENCHMARKS §0, "uvloop on the packet path"): it does not pay."""

import asyncio
import importlib

asyncio.set_event_loop_policy(importlib.import_module("uvloop").EventLoopPolicy())
