# ruff: noqa: E501
"""An Asterisk simulator: AMI server over TCP + FastAGI client, driven by a model of channels,
bridges, queues and device states that runs the shipped dialplan.  See :mod:`.scenario`."""
from callcenter.asterisk.simulator.clock import ScaledClock
from callcenter.asterisk.simulator.dialplan import Dialplan
from callcenter.asterisk.simulator.pbx import Behaviour, Pbx, parse_queues_conf
from callcenter.asterisk.simulator.scenario import CallHandle, Simulator

__all__ = ["Behaviour", "CallHandle", "Dialplan", "Pbx", "ScaledClock", "Simulator", "parse_queues_conf"]
