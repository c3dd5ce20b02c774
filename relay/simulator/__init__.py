"""A Clever API simulator (docs/simulator.md): the fake Clever of tests, the demo and benchmarks.

``World`` holds generated or scenario districts (feeds and current records), ``SimOptions`` every
switch including ``Faults``, ``build_app`` the aiohttp application and ``running_simulator`` an
in-process server. Wire format and behaviour: docs/simulator.md.
"""

from relay.simulator.faults import Faults, FaultsPatch
from relay.simulator.options import SimOptions
from relay.simulator.runner import RunningSimulator, running_simulator
from relay.simulator.server import build_app
from relay.simulator.world import District, World, token_for

__all__ = [
    "District",
    "Faults",
    "FaultsPatch",
    "RunningSimulator",
    "SimOptions",
    "World",
    "build_app",
    "running_simulator",
    "token_for",
]
