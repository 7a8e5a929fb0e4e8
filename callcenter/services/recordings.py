"""Recording retention: delete files older than `voice.recording_retention_days`, each deletion
logged on its interaction's timeline (`recording_purged`) and the interaction's reference cleared."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_core.errors import CrmError
from crm_core.store import CrmStore

log = logging.getLogger(__name__)
_NAME = re.compile(r"^interaction-(\d+)\.wav$")


async def purge_recordings(store: CrmStore, directory: Path, retention_days: int, *,
                           now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[int]:
    """Delete the recordings last written more than `retention_days` before `now()`; returns
    the interactions whose recording went. Files not named after an interaction are left alone."""
    cutoff = now() - timedelta(days=retention_days)
    purged: list[int] = []
    if not directory.is_dir():
        return purged
    for path in sorted(directory.iterdir()):
        m = _NAME.match(path.name)
        if m is None or not path.is_file():
            continue
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if written >= cutoff:
            continue
        iid = int(m.group(1))
        path.unlink(missing_ok=True)
        purged.append(iid)
        try:
            await store.append_event(iid, "recording_purged", data={
                "file": path.name, "written_at": written.isoformat(), "retention_days": retention_days})
            await store.update_interaction(iid, recording_ref=None)
        except CrmError:
            log.warning("purged %s, but its interaction %s could not be updated", path.name, iid)
    return purged
