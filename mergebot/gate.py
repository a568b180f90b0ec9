"""May base move now, and if not, why: the one decision behind freezes, freeze windows and a
clear base (SPEC §13), as a pure function of values.

`decide(freeze, windows, clearance, now)` answers `Hold` (why base must stay where it is, by
whom, since and until when) or None (base may move). The integrator asks it right before the
compare-and-swap that moves base, so a held candidate keeps its checked integration commit and
waits; status, the queue API and the dashboard ask it too, with the same inputs, so every
surface says the same thing.

Inputs:
- `FreezeState` (from `freeze_state`): the freezes and unfreezes of the base, folded from the
  `queue_frozen` / `queue_unfrozen` facts of the event log in time order, so a replay rebuilds it;
- `Window`s from the repo's `freeze.windows` (`"Sat 00:00-Mon 06:00 UTC"`, parsed by
  `parse_window`, which `config check` uses to explain a bad one);
- `Clearance`: what the checks of the current base tip say (green, red or still pending), found
  by the integrator (the forge's checks, or `clearance.commands` run on the tip).

Precedence when several hold: a person's freeze, then a window, then the base's own health — the
first is what people must act on first. A person's `unfreeze` also opens a queue that a red base
closed, for that base sha only (the next tip is judged again).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CLEARANCE = "clearance"
"""`kind` of the `queue_frozen` / `queue_unfrozen` events mergebot writes itself for a red or
green base; any other kind (none) is a person's."""


class HoldKind(StrEnum):
    FROZEN = "frozen"  # a person froze the queue
    WINDOW = "window"  # a configured freeze window is open
    RED_BASE = "red_base"  # a clearance check failed on the base tip
    BASE_PENDING = "base_pending"  # the base tip's clearance checks have not finished


@dataclass(frozen=True)
class Hold:
    kind: HoldKind
    reason: str
    by: str
    since: datetime | None = None
    until: datetime | None = None
    sha: str | None = None  # the base tip the clearance result is about
    check: str | None = None  # the failing (or pending) clearance check

    def as_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "by": self.by,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "sha": self.sha,
            "check": self.check,
        }

    def sentence(self) -> str:
        """One line for logs, the check run and chat."""
        text = f"{self.reason} (by {self.by}"
        if self.until is not None:
            text += f", until {self.until.isoformat(timespec='minutes')}"
        return text + ")"


# -- freezes from the event log --------------------------------------------------------------


class FreezeFactLike(Protocol):
    """The fields of `readiness.FreezeFact` this module reads (kept as a protocol so the gate
    does not depend on the projection)."""

    @property
    def frozen(self) -> bool: ...
    @property
    def base(self) -> str: ...
    @property
    def by(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def reason(self) -> str: ...
    @property
    def until(self) -> datetime | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def sha(self) -> str | None: ...
    @property
    def check(self) -> str | None: ...


@dataclass(frozen=True)
class Freeze:
    reason: str
    by: str
    at: datetime
    until: datetime | None = None
    sha: str | None = None
    check: str | None = None


@dataclass(frozen=True)
class FreezeState:
    """What the log says about one base: a person's freeze, mergebot's own red-base closure,
    and the base sha a person opened despite red."""

    manual: Freeze | None = None
    red: Freeze | None = None
    waived_sha: str | None = None


def freeze_state(facts: Iterable[FreezeFactLike], base: str) -> FreezeState:
    """Fold the freeze facts of `base` in time order (in a tie a freeze counts after an
    unfreeze, so the order events arrive in never decides)."""
    manual: Freeze | None = None
    red: Freeze | None = None
    waived: str | None = None
    for fact in sorted((f for f in facts if f.base == base), key=lambda f: (f.at, f.frozen)):
        if fact.frozen:
            freeze = Freeze(fact.reason, fact.by, fact.at, fact.until, fact.sha, fact.check)
            if fact.kind == CLEARANCE:
                red = freeze
            else:
                manual = freeze
        elif fact.kind == CLEARANCE:  # mergebot saw the base green again
            red = None
        else:  # a person's unfreeze opens everything, a red base sha included
            if red is not None:
                waived = red.sha
            manual, red = None, None
    return FreezeState(manual, red, waived)


# -- windows from the config -----------------------------------------------------------------

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 24 * 60
_DAY = 24 * 60
_WINDOW = re.compile(
    r"^\s*(?:(?P<d1>[A-Za-z]+)\s+)?(?P<t1>\d{1,2}:\d{2})\s*-\s*"
    r"(?:(?P<d2>[A-Za-z]+)\s+)?(?P<t2>\d{1,2}:\d{2})\s+(?P<tz>\S+)\s*$"
)


class WindowError(ValueError):
    """A `freeze.windows` entry that cannot be read; the message says what is accepted."""


@dataclass(frozen=True)
class Window:
    """A weekly (`Sat 00:00-Mon 06:00 UTC`) or daily (`22:00-06:00 Europe/Berlin`) period in
    which base does not move. The end is exclusive; an end before the start wraps around."""

    text: str
    start: int  # minutes from Monday 00:00 (weekly) or from midnight (daily)
    end: int
    zone: str
    weekly: bool

    def _period(self) -> int:
        return _WEEK if self.weekly else _DAY

    def _minute(self, now: datetime) -> int:
        local = now.astimezone(ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        return minute + local.weekday() * _DAY if self.weekly else minute

    def _length(self) -> int:
        return (self.end - self.start) % self._period() or self._period()

    def contains(self, now: datetime) -> bool:
        return (self._minute(now) - self.start) % self._period() < self._length()

    def ends_after(self, now: datetime) -> datetime:
        """When the occurrence of the window that contains `now` closes."""
        into = (self._minute(now) - self.start) % self._period()
        left = self._length() - into
        local = now.astimezone(ZoneInfo(self.zone)).replace(second=0, microsecond=0)
        return (local + timedelta(minutes=left)).astimezone(now.tzinfo)


def _clock(text: str, whole: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if hours > 23 or minutes > 59:
        raise WindowError(f"{whole!r}: {text} is not a time of day (00:00 to 23:59)")
    return hours * 60 + minutes


def _day(text: str, whole: str) -> int:
    if text.lower() not in _DAYS:
        raise WindowError(f"{whole!r}: {text!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
    return _DAYS.index(text.lower()) * _DAY


def parse_window(text: str) -> Window:
    """`"Sat 00:00-Mon 06:00 UTC"` (weekly) or `"22:00-06:00 Europe/Berlin"` (daily)."""
    match = _WINDOW.match(text)
    if match is None:
        raise WindowError(
            f"{text!r} is not a freeze window: write `<Day> HH:MM-<Day> HH:MM <zone>` "
            "(e.g. `Sat 00:00-Mon 06:00 UTC`) or `HH:MM-HH:MM <zone>` for every day"
        )
    d1, d2, zone = match["d1"], match["d2"], match["tz"]
    if (d1 is None) != (d2 is None):
        raise WindowError(f"{text!r}: give a day on both sides of the window or on neither")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(
            f"{text!r}: {zone!r} is not a time zone (UTC or a name like Europe/Berlin)"
        ) from None
    start, end = _clock(match["t1"], text), _clock(match["t2"], text)
    weekly = d1 is not None
    if weekly:
        start += _day(d1, text)
        end += _day(d2, text)
    if start == end:
        raise WindowError(f"{text!r}: the window starts when it ends")
    return Window(text.strip(), start, end, zone, weekly)


_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhd])\s*$", re.I)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_until(text: str, now: datetime) -> datetime:
    """When a freeze ends by itself: an ISO 8601 time with an offset (`2026-12-02T18:00Z`) or a
    duration from now (`90m`, `4h`, `2d`). ValueError saying what is accepted otherwise."""
    duration = _DURATION.match(text)
    if duration:
        amount, unit = int(duration[1]), _UNITS[duration[2].lower()]
        return now + timedelta(**{unit: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(
            f"{text!r} is not a time: give an ISO 8601 time with an offset "
            "(2026-12-02T18:00+00:00) or a duration (90m, 4h, 2d)"
        )
    if when <= now:
        raise ValueError(f"{text!r} is in the past: a freeze ends after it starts")
    return when


# -- the base's own health -------------------------------------------------------------------


class ClearanceState(StrEnum):
    GREEN = "green"
    RED = "red"
    PENDING = "pending"


@dataclass(frozen=True)
class Clearance:
    """The clearance checks of one base sha. `check` and `detail` name the failing (or
    unfinished) one."""

    sha: str
    state: ClearanceState
    check: str | None = None
    detail: str = ""
    at: datetime | None = None


# -- the decision ----------------------------------------------------------------------------


def open_window(windows: Iterable[Window], now: datetime) -> Window | None:
    for window in windows:
        if window.contains(now):
            return window
    return None


def decide(
    freeze: FreezeState,
    windows: Iterable[Window],
    clearance: Clearance | None,
    now: datetime,
    *,
    base: str = "main",
) -> Hold | None:
    """Why base must not move now, or None when it may (see the module docstring)."""
    manual = freeze.manual
    if manual is not None and (manual.until is None or now < manual.until):
        return Hold(HoldKind.FROZEN, manual.reason, manual.by, manual.at, manual.until)
    window = open_window(windows, now)
    if window is not None:
        return Hold(
            HoldKind.WINDOW,
            f"freeze window {window.text}",
            "configuration",
            until=window.ends_after(now),
        )
    if clearance is None or clearance.sha == freeze.waived_sha:
        return None
    match clearance.state:
        case ClearanceState.GREEN:
            return None
        case ClearanceState.RED:
            since = freeze.red.at if freeze.red and freeze.red.sha == clearance.sha else None
            reason = f"{base} is red: {clearance.check} failed on {clearance.sha[:7]}"
            return Hold(
                HoldKind.RED_BASE,
                reason,
                "mergebot",
                since or clearance.at,
                sha=clearance.sha,
                check=clearance.check,
            )
        case ClearanceState.PENDING:
            reason = f"waiting for {clearance.check} on {base} at {clearance.sha[:7]}"
            return Hold(
                HoldKind.BASE_PENDING,
                reason,
                "mergebot",
                clearance.at,
                sha=clearance.sha,
                check=clearance.check,
            )
