"""The dialer against the Asterisk simulator over real AMI/TCP, with scripted outbound outcomes:
AMD, busy, no answer, the connect to an agent and the abandon message; predictive pacing stays
under the cap and keeps agents busier than progressive (occupancy reported)."""

from __future__ import annotations

import pytest

from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.simulator import Simulator
from callcenter.asterisk.simulator.outbound import OutboundScript
from callcenter.services.dialer_drive import drive

pytestmark = pytest.mark.timeout(180)


async def _run(mode: str, *, answer: float, agents: int = 16, duration_s: float = 900, seed: int = 3):
    sim = Simulator(agi_target=None, time_scale=0.01)
    await sim.start()
    events = sim.subscribe()
    script = sim.outbound(
        OutboundScript(answer=answer, machine=0.1, busy=0.1, ring_s=8, talk_s=60, seed=seed)
    )
    for i in range(agents):
        sim.agent(f"ag{i}", answer_after=0.3, talk_time=None)
    client = AMIClient("127.0.0.1", sim.ami_port, "cc", "ccsecret", ping_interval=None, reconnect=False)
    await client.start()
    await client.wait_connected(5)
    try:
        report = await drive(
            client,
            mode=mode,
            agents=agents,
            duration_s=duration_s,
            now=sim.clock.now,
            sleep=sim.clock.sleep,
            wrap_s=5.0,
        )
    finally:
        await client.close()
        await sim.close()
    names = []
    while not events.empty():
        names.append(events.get_nowait().name)
    return report, script, names


async def test_outcomes_on_the_wire_and_pacing():
    pred, script, names = await _run("predictive", answer=0.3)
    prog, _, _ = await _run("progressive", answer=0.3)
    print("\npredictive", pred.to_dict(), "\nprogressive", prog.to_dict())
    # every scripted outcome went through the real AMI path
    assert pred.connected > 0 and pred.busy > 0 and pred.machine > 0 and pred.no_answer > 0
    assert script.counts["machine"] > 0 and "OriginateResponse" in names and "UserEvent" in names
    assert pred.abandon_rate <= 0.03
    assert prog.abandoned == 0
    assert pred.occupancy > prog.occupancy
    assert pred.connects_per_agent_hour > prog.connects_per_agent_hour
