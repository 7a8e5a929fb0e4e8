# ruff: noqa: E501
"""Hold and retrieve on Asterisk, as AMI actions (pure: the caller sends them).

AMI has no hold action.  The contact center holds a call by **redirecting** both legs out of
their Dial bridge: the caller into ``[cc-hold] caller`` (MusicOnHold), the agent's leg into
``[cc-hold] agent`` (Wait), in one ``Redirect`` with ``ExtraChannel``.  It retrieves the call
with the AMI ``Bridge`` action (``Tone: no``).  Checked against the captures: ``Bridge`` answers
``Channels have been bridged`` before BridgeCreate / MusicOnHoldStop / BridgeEnter ×2, and when
one side of such a bridge hangs up, the other goes on in its old dialplan at the next priority
(ami-bridge-action), so ``[cc-hold] caller`` continues into the after-dial AGI (survey).
Park (res_parking) was not chosen: it is not in every build, the parker stays in the old bridge,
and retrieval needs an Originate to the parking space (ami-park-retrieve).
"""
from __future__ import annotations

from callcenter.asterisk.ami import Action, make_action

HOLD_CONTEXT = "cc-hold"


def hold_actions(caller_channel: str, agent_channel: str, *, context: str = HOLD_CONTEXT,
                 action_id: str | None = None) -> list[Action]:
    """The actions that put ``caller_channel`` on hold (music) and park ``agent_channel``."""
    return [make_action("Redirect", action_id=action_id, Channel=caller_channel, Context=context,
                        Exten="caller", Priority=1, ExtraChannel=agent_channel, ExtraContext=context,
                        ExtraExten="agent", ExtraPriority=1)]


def retrieve_actions(caller_channel: str, agent_channel: str, *, action_id: str | None = None) -> list[Action]:
    """The actions that take the call off hold: bridge the two channels again."""
    return [make_action("Bridge", action_id=action_id, Channel1=caller_channel, Channel2=agent_channel,
                        Tone="no")]
