"""What an interrupted download leaves behind so that the next `lapse get` can resume it without spending
another download: `<target>.part` (the bytes so far) and `<target>.lapse-partial.json` (this state).

The state holds the grant, a capability for the link, so it is written like a key: whole and mode 0600.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from lapse.client.atomic import write_private
from lapse.client.naming import part_path, sidecar_path

SIDECAR_GLOB = "*.lapse-partial.json"
VERSION = 1


@dataclass(frozen=True, slots=True)
class PartialState:
    url: str  # the /d/ link, normalised: how a later `lapse get URL` finds this state again
    grant: str
    etag: str | None
    size: int | None

    def save(self, target: Path) -> None:
        write_private(sidecar_path(target), json.dumps({"version": VERSION, **asdict(self)}) + "\n")


def load(target: Path) -> PartialState | None:
    """The state saved for `target`, or None when there is none or it cannot be understood (then the download
    simply starts afresh)."""
    try:
        data = json.loads(sidecar_path(target).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        return PartialState(url=data["url"], grant=data["grant"], etag=data["etag"], size=data["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find(folder: Path, url: str) -> tuple[Path, PartialState] | None:
    """An unfinished download of `url` in `folder`: its target path and state. The target's name is the
    sidecar's minus its suffix, so the name the server suggested is not needed (nor a request to learn it)."""
    suffix = SIDECAR_GLOB.removeprefix("*")
    for sidecar in sorted(folder.glob(SIDECAR_GLOB)):
        target = sidecar.with_name(sidecar.name.removesuffix(suffix))
        state = load(target)
        if state is not None and state.url == url:
            return target, state
    return None


def discard(target: Path, *, keep_state: bool = False) -> None:
    """Remove the partial bytes, and the state too unless asked to keep it (its grant may still be good)."""
    part_path(target).unlink(missing_ok=True)
    if not keep_state:
        sidecar_path(target).unlink(missing_ok=True)
