"""When to ask the API whether a running generation is done.

Status requests are the scarcest resource and members want their video as soon as it exists,
so the schedule trades one against the other as well as the duration distribution allows.
With polls at ``t_1 < t_2 < …`` the cost is (status GETs - 1) * mean lateness; to first order
it is minimised by a local spacing proportional to ``1 / sqrt(h(t))``, where ``h = f / S`` is
the hazard of the duration. Equivalently, polls sit at equal steps ``k`` of the warped time
``W(t) = ∫ sqrt(h)``: sparse while a job is unlikely to have finished, dense as completion
becomes likely. ``k`` is calibrated so that the expected lateness meets a target.

The distribution is learned: ``DurationModel`` keeps recent (interval-censored) durations and
answers with a piecewise-linear CDF between them, plus an exponential tail beyond the largest.
Pure and deterministic: no I/O, no clock.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

# Share of the observed spread over which the tail beyond the largest sample decays
# (floor of the exponential tail's mean): jobs slower than every job seen are told "about this
# much longer", a fraction of the usual spread rather than a number that collapses to zero.
_TAIL_SPREAD_SHARE = 0.05
_MIN_TAIL_MEAN = 1.0
# Beyond this survival probability the rest of a schedule is negligible for the expectations.
_NEGLIGIBLE_SURVIVAL = 1e-9
_MAX_SCHEDULE_STEPS = 100_000
# Bisection rounds over a 16-fold bracket of the warped step: 0.07 % resolution.
_CALIBRATION_ROUNDS = 12
# The CDF runs through at most this many of the sorted samples (evenly spaced in rank): the
# density between neighbouring samples is mostly noise, and the hazard, hence the schedule,
# would follow it. 65 knots kept bimodal shapes and measured ~2 % better than all 256.
_MAX_KNOTS = 65
_GOLDEN_RATIO_FRACTION = (math.sqrt(5) - 1) / 2
# First polls within this share of a bound's time count towards its share of early finishers.
_NEAR = 0.1
# The first poll sits one warped step into the distribution, as if a poll had just been made
# where jobs start finishing. On uniform durations that is the exact discrete optimum's shape
# (spacings shrinking arithmetically from the first one); 0.85 and 1.15 measured worse.
_FIRST_POLL_STEPS = 1.0
# Default lateness target: a twentieth of the expected duration, clamped. The ceiling keeps the
# default below the ~3 s mean lateness of the common fixed 6-second poller.
_DEFAULT_LATENESS_SHARE = 1 / 20
_DEFAULT_LATENESS_FLOOR = 1.0
_DEFAULT_LATENESS_CEILING = 2.5


class _Distribution:
    """An immutable duration distribution: a piecewise-linear CDF through weighted points.

    Knots run from ``lowest`` (where the CDF is 0) through each distinct point at its plotting
    position, and beyond the last point the remaining mass decays exponentially.
    """

    __slots__ = ("_cdf", "_gain", "_knots", "_mean", "_tail_mass", "_tail_mean")

    def __init__(self, points: list[tuple[float, float]]) -> None:
        merged: dict[float, float] = {}
        for value, weight in points:
            merged[value] = merged.get(value, 0.0) + weight
        values = sorted(merged)
        if len(values) == 1:
            # One distinct duration: spread it the way the prior spreads its expectation.
            only = values[0]
            values = [0.5 * only, 1.5 * only]
            merged = {values[0]: 1.0, values[1]: 1.0}
        total = sum(merged.values())
        positions: list[float] = []
        cumulative = 0.0
        for value in values:
            weight = merged[value]
            positions.append((cumulative + weight / 2) / total)
            cumulative += weight
        if len(values) > _MAX_KNOTS:
            stride = (len(values) - 1) / (_MAX_KNOTS - 1)
            keep = sorted({round(i * stride) for i in range(_MAX_KNOTS)})
            values = [values[i] for i in keep]
            positions = [positions[i] for i in keep]
        first_slope = (positions[1] - positions[0]) / (values[1] - values[0])
        lowest = max(0.0, values[0] - positions[0] / first_slope)
        self._knots = [lowest, *values]
        self._cdf = [0.0, *positions]
        self._tail_mass = 1.0 - positions[-1]
        last_slope = (positions[-1] - positions[-2]) / (values[-1] - values[-2])
        self._tail_mean = max(
            self._tail_mass / last_slope,
            _TAIL_SPREAD_SHARE * (values[-1] - lowest),
            _MIN_TAIL_MEAN,
        )
        # Running integral of the CDF at each knot: lateness and conditional means come from it.
        gain = [0.0]
        for index in range(1, len(self._knots)):
            width = self._knots[index] - self._knots[index - 1]
            gain.append(gain[-1] + width * (self._cdf[index] + self._cdf[index - 1]) / 2)
        self._gain = gain
        self._mean = self._knots[-1] - gain[-1] + self._tail_mass * self._tail_mean

    @property
    def knots(self) -> list[float]:
        return self._knots

    @property
    def cdf_at_knots(self) -> list[float]:
        return self._cdf

    @property
    def lowest(self) -> float:
        return self._knots[0]

    @property
    def last_point(self) -> float:
        return self._knots[-1]

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def tail_mass(self) -> float:
        return self._tail_mass

    @property
    def tail_mean(self) -> float:
        return self._tail_mean

    def cdf(self, t: float) -> float:
        knots = self._knots
        if t <= knots[0]:
            return 0.0
        if t >= knots[-1]:
            return 1.0 - self._tail_mass * math.exp(-(t - knots[-1]) / self._tail_mean)
        index = bisect_right(knots, t) - 1
        share = (t - knots[index]) / (knots[index + 1] - knots[index])
        return self._cdf[index] + share * (self._cdf[index + 1] - self._cdf[index])

    def survival(self, t: float) -> float:
        if t >= self._knots[-1]:
            return self._tail_mass * math.exp(-(t - self._knots[-1]) / self._tail_mean)
        return 1.0 - self.cdf(t)

    def cdf_integral(self, t: float) -> float:
        """``∫_0^t F(s) ds``."""
        knots = self._knots
        if t <= knots[0]:
            return 0.0
        if t >= knots[-1]:
            beyond = t - knots[-1]
            decayed = self._tail_mass * self._tail_mean * -math.expm1(-beyond / self._tail_mean)
            return self._gain[-1] + beyond - decayed
        index = bisect_right(knots, t) - 1
        return self._gain[index] + (t - knots[index]) * (self._cdf[index] + self.cdf(t)) / 2

    def quantile(self, q: float) -> float:
        if q >= 1.0:
            return math.inf
        cdf = self._cdf
        if q >= cdf[-1]:
            return self._knots[-1] + self._tail_mean * math.log(self._tail_mass / (1.0 - q))
        index = max(bisect_right(cdf, q) - 1, 0)
        share = (q - cdf[index]) / (cdf[index + 1] - cdf[index])
        return self._knots[index] + share * (self._knots[index + 1] - self._knots[index])

    def expected_remaining(self, elapsed: float) -> float:
        if elapsed >= self._knots[-1]:
            return self._tail_mean  # memoryless beyond the largest sample
        start = max(elapsed, 0.0)
        last = self._knots[-1]
        surviving_area = (last - start) - (self._gain[-1] - self.cdf_integral(start))
        surviving_area += self._tail_mass * self._tail_mean
        return surviving_area / self.survival(start) - (start - elapsed)


class DurationModel:
    """What we have learned about how long generations take (seconds from submission to completion).

    Each finished job is known only between two polls. Between two later polls the bracket is
    short and its midpoint is kept. A job already done at its first poll is only known to have
    taken at most that long; the bracket from submission is long and its midpoint far too
    early, so such jobs are kept as bounds and placed when the distribution is built: evenly
    over the last ``share * bound`` seconds below their bound, as if the durations below it
    were spread evenly from zero, where ``share`` is how many jobs a first poll at about that
    time finds done. The share comes from the data, not the model, so a wrong prior cannot hold
    on to itself: when every job is done at its first poll the bound's jobs spread over all of
    [0, bound] and the first poll moves earlier; when few are, they sit just below it.

    That share is counted among first polls (``observe_running_at_first_poll`` reports the ones
    that found a job still running), not among finished jobs: early on, the jobs done at their
    first poll are the first to finish, so among finished jobs they look far more common than
    they are, and the first poll would rush towards zero. Only first polls at about the bound's
    own time count, since the first poll moves as the model learns. Extrapolating the density
    just above the bound instead measured worse: it rests on the few jobs found done at the
    second poll, all at one midpoint, and a bot that started with a prior twice too long kept
    its first poll too late for minutes.
    """

    def __init__(
        self, prior_expected: float, *, capacity: int = 256, prior_weight: int = 8
    ) -> None:
        if not (math.isfinite(prior_expected) and prior_expected > 0):
            raise ValueError(f"prior_expected must be a positive number, not {prior_expected!r}")
        if capacity < 1 or prior_weight < 1:
            raise ValueError("capacity and prior_weight must be at least 1")
        self._prior_expected = prior_expected
        self._prior_weight = prior_weight
        # (seconds, is_upper_bound): a duration estimate, or "done by then" for first-poll finds.
        self._samples: deque[tuple[float, bool]] = deque(maxlen=capacity)
        # (seconds after submission, done?) of recent first polls.
        self._first_polls: deque[tuple[float, bool]] = deque(maxlen=capacity)
        self._revision = 0
        self._distribution: _Distribution | None = None
        self._bracketed: _Distribution | None = None

    @property
    def observed(self) -> int:
        """How many real durations the model currently holds."""
        return len(self._samples)

    @property
    def first_poll_outcomes(self) -> tuple[int, int]:
        """Recent first polls: how many found the job done, and how many found it running."""
        done = sum(done for _, done in self._first_polls)
        return done, len(self._first_polls) - done

    @property
    def revision(self) -> int:
        """Increases with every observation; planners rebuild their tables when it has moved."""
        return self._revision

    def observe(self, low: float, high: float) -> None:
        """One finished job: pending at ``low`` seconds after submission, seen done at ``high``."""
        low, high = _bracket(low, high)
        if low > 0.0:
            self._add((low + high) / 2, is_upper_bound=False)
        else:
            self._first_polls.append((high, True))
            self._add(high, is_upper_bound=True)

    def observe_running_at_first_poll(self, elapsed: float) -> None:
        """A job's first poll, ``elapsed`` seconds after submission, found it still running."""
        if math.isfinite(elapsed) and elapsed > 0:
            self._first_polls.append((elapsed, False))
            # Only the spread of first-poll finds depends on it: rebuilt with the next sample.

    def observe_estimates(self, durations: Iterable[float]) -> None:
        """Warm start from point estimates stored by an earlier process (oldest first)."""
        for duration in durations:
            if math.isfinite(duration) and duration > 0:
                self._add(duration, is_upper_bound=False)

    def point_estimate(self, low: float, high: float) -> float:
        """The best single duration for a job bracketed by two polls (for storing with it).

        The midpoint between two polls; for a job done at its first poll, the centre of the
        width its kind is spread over (see the class documentation).
        """
        low, high = _bracket(low, high)
        if low > 0.0:
            return (low + high) / 2
        return high - self._imputation_width(high) / 2

    def quantile(self, q: float) -> float:
        """The duration below which a share ``q`` (0…1) of generations finish."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must lie in [0, 1], not {q}")
        return self.distribution().quantile(q)

    def survival(self, t: float) -> float:
        """P(D > t)."""
        return self.distribution().survival(t)

    def expected_remaining(self, elapsed: float) -> float:
        """E[D - elapsed | D > elapsed]; beyond every sample, a steady fraction of the spread."""
        return self.distribution().expected_remaining(elapsed)

    def distribution(self) -> _Distribution:
        """The current distribution (cached until the next observation)."""
        if self._distribution is None:
            points = self._bracketed_points()
            bounds = [seconds for seconds, is_bound in self._samples if is_bound]
            for rank, bound in enumerate(bounds):
                # Golden-ratio sequence: deterministic, and any run of it covers [0, 1) evenly.
                position = ((rank + 1) * _GOLDEN_RATIO_FRACTION) % 1.0
                points.append((bound - position * self._imputation_width(bound), 1.0))
            self._distribution = _Distribution(points)
        return self._distribution

    def _imputation_width(self, bound: float) -> float:
        """How far below ``bound`` jobs found done at a first poll at ``bound`` are spread."""
        if self._bracketed is None:
            self._bracketed = _Distribution(self._bracketed_points())
        pseudo = self._prior_weight
        # The share of jobs done by a first poll at about this time, among the first polls made
        # then, with the prior's view as pseudo-counts.
        near = [done for at, done in self._first_polls if abs(at - bound) <= _NEAR * bound]
        share = (sum(near) + pseudo * self._bracketed.cdf(bound)) / (len(near) + pseudo)
        return share * bound

    def _add(self, seconds: float, *, is_upper_bound: bool) -> None:
        self._samples.append((seconds, is_upper_bound))
        self._revision += 1
        self._distribution = None
        self._bracketed = None

    def _bracketed_points(self) -> list[tuple[float, float]]:
        """The prior's pseudo-samples and every duration known between two polls, weighted."""
        # Prior: midpoints of equal-probability bins of U[0.5E, 1.5E]. Their total weight starts
        # at prior_weight and fades like prior_weight² / (prior_weight + n), so a handful of
        # real jobs outvote it and a full window leaves it a fraction of one sample.
        count = self._prior_weight
        expected = self._prior_expected
        each = count / (count + len(self._samples))
        points = [(expected * (0.5 + (i + 0.5) / count), each) for i in range(count)]
        points.extend((seconds, 1.0) for seconds, is_bound in self._samples if not is_bound)
        return points


def _bracket(low: float, high: float) -> tuple[float, float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= 0:
        raise ValueError(f"a duration needs finite bounds with high > 0, not ({low}, {high})")
    return min(max(low, 0.0), high), high


class _WarpedTime:
    """``W(t) = ∫ sqrt(f/S)`` over the distribution's body, in closed form per segment.

    On a segment the density ``f`` is constant and ``S`` linear, so
    ``∫ sqrt(f/S) ds = (2 / sqrt(f)) (sqrt(S_start) - sqrt(S(s)))`` and it inverts exactly.
    Beyond the last point the planner switches to a steady pace, so W stops there.
    """

    __slots__ = ("_density", "_knots", "_root_survival", "_warped")

    def __init__(self, distribution: _Distribution) -> None:
        knots = distribution.knots
        cdf = distribution.cdf_at_knots
        self._knots = knots
        self._density = [
            (cdf[i + 1] - cdf[i]) / (knots[i + 1] - knots[i]) for i in range(len(knots) - 1)
        ]
        self._root_survival = [math.sqrt(1.0 - value) for value in cdf]
        warped = [0.0]
        for index, density in enumerate(self._density):
            drop = self._root_survival[index] - self._root_survival[index + 1]
            warped.append(warped[-1] + 2 * drop / math.sqrt(density))
        self._warped = warped

    @property
    def end(self) -> float:
        return self._warped[-1]

    def mean_inverse_root_hazard(self) -> float:
        """``E[1 / sqrt(h(D))]`` over the body: ``∫ sqrt(f S)``, in closed form per segment."""
        total = 0.0
        for index, density in enumerate(self._density):
            start, end = self._root_survival[index], self._root_survival[index + 1]
            total += 2 * (start**3 - end**3) / (3 * math.sqrt(density))
        return total

    def warp(self, t: float) -> float:
        knots = self._knots
        if t <= knots[0]:
            return 0.0
        if t >= knots[-1]:
            return self._warped[-1]
        index = bisect_right(knots, t) - 1
        density = self._density[index]
        root_now = math.sqrt(max(self._root_survival[index] ** 2 - density * (t - knots[index]), 0))
        return self._warped[index] + 2 * (self._root_survival[index] - root_now) / math.sqrt(
            density
        )

    def unwarp(self, w: float) -> float:
        """The time whose warped time is ``w`` (``0 ≤ w ≤ end``)."""
        warped = self._warped
        if w <= 0.0:
            return self._knots[0]
        if w >= warped[-1]:
            return self._knots[-1]
        index = min(bisect_right(warped, w) - 1, len(self._density) - 1)
        density = self._density[index]
        root_start = self._root_survival[index]
        root_now = max(root_start - (w - warped[index]) * math.sqrt(density) / 2, 0.0)
        t = self._knots[index] + (root_start**2 - root_now**2) / density
        return min(max(t, self._knots[index]), self._knots[index + 1])


@dataclass(frozen=True, slots=True)
class _Outlook:
    """What a schedule costs under the model: status GETs per job and mean lateness (s)."""

    requests: float
    lateness: float


class _Schedule:
    """Poll times for one model revision and one warped step ``k``."""

    __slots__ = (
        "_distribution",
        "_max_interval",
        "_min_interval",
        "_step",
        "_tail_pace",
        "_warp",
    )

    def __init__(
        self,
        distribution: _Distribution,
        warp: _WarpedTime,
        *,
        step: float,
        tail_pace: float,
        min_interval: float,
        max_interval: float,
    ) -> None:
        self._distribution = distribution
        self._warp = warp
        self._step = step
        self._tail_pace = tail_pace
        self._min_interval = min_interval
        self._max_interval = max_interval

    def first_poll(self) -> float:
        return max(self._time_at(_FIRST_POLL_STEPS * self._step), self._min_interval)

    def next_poll(self, elapsed: float, pressure: float) -> float:
        ideal = self._time_at(self._warp_at(elapsed) + self._step) - elapsed
        spacing = min(max(ideal * pressure, self._min_interval), self._max_interval)
        return elapsed + spacing

    # Past the last point the warped time runs on at one step per tail pace, so the tail is
    # polled steadily: the model knows nothing there, and the pace meets the lateness target.
    def _warp_at(self, t: float) -> float:
        last = self._distribution.last_point
        if t >= last:
            return self._warp.end + (t - last) * self._step / self._tail_pace
        return self._warp.warp(t)

    def _time_at(self, w: float) -> float:
        if w >= self._warp.end:
            return (
                self._distribution.last_point + (w - self._warp.end) * self._tail_pace / self._step
            )
        return self._warp.unwarp(w)

    def outlook(self, pressure: float) -> _Outlook:
        """Expected GETs per job and mean lateness, walking the schedule under the model."""
        distribution = self._distribution
        previous = 0.0
        poll = self.first_poll()
        requests = 1.0  # the first poll always happens
        lateness = 0.0
        for _ in range(_MAX_SCHEDULE_STEPS):
            if previous >= distribution.last_point:
                # Steady spacing in the exponential tail: the rest is a geometric series.
                spacing = poll - previous
                surviving = distribution.survival(previous)
                decay = math.exp(-spacing / distribution.tail_mean)
                per_interval = spacing - distribution.tail_mean * (1.0 - decay)
                lateness += surviving * per_interval / (1.0 - decay)
                requests += surviving * decay / (1.0 - decay)
                break
            below = distribution.cdf(previous)
            lateness += (
                distribution.cdf_integral(poll)
                - distribution.cdf_integral(previous)
                - (poll - previous) * below
            )
            surviving = distribution.survival(poll)
            if surviving < _NEGLIGIBLE_SURVIVAL:
                break
            requests += surviving
            previous, poll = poll, self.next_poll(poll, pressure)
        return _Outlook(requests=requests, lateness=lateness)


class PollSchedule(Protocol):
    """When a job's status is asked for: what the service and the poller need of a planner.

    ``PollPlanner`` is the one the bot uses; benchmarks plug in fixed intervals to compare.
    """

    def first_poll(self) -> float: ...

    def next_poll(self, elapsed: float, *, pressure: float = 1.0) -> float: ...

    def expected_requests(self, *, pressure: float = 1.0) -> float: ...


class PollPlanner:
    """Turns a ``DurationModel`` into poll times. Cheap per call: tables are rebuilt lazily.

    Without a ``lateness_target`` the planner aims for a twentieth of the expected duration,
    clamped to [1 s, 2.5 s]: 3 s for one-minute jobs would be the fixed 6-second poller's
    lateness, and the ceiling keeps every default at or under it while still asking for far
    fewer status requests.
    """

    def __init__(
        self,
        model: DurationModel,
        *,
        lateness_target: float | None = None,
        min_interval: float = 1.0,
        max_interval: float = 60.0,
    ) -> None:
        if lateness_target is not None and not lateness_target > 0:
            raise ValueError(f"lateness_target must be positive, not {lateness_target}")
        if not 0 < min_interval <= max_interval:
            raise ValueError("intervals need 0 < min_interval <= max_interval")
        self._model = model
        self._lateness_target = lateness_target
        self._min_interval = min_interval
        self._max_interval = max_interval
        self._schedule: _Schedule | None = None
        self._built_at_revision = -1
        self._outlooks: dict[float, _Outlook] = {}

    @property
    def lateness_target(self) -> float:
        """The mean lateness (s) the current schedule is calibrated for."""
        if self._lateness_target is not None:
            return self._lateness_target
        expected = self._model.distribution().mean
        share = _DEFAULT_LATENESS_SHARE * expected
        return min(max(share, _DEFAULT_LATENESS_FLOOR), _DEFAULT_LATENESS_CEILING)

    def first_poll(self) -> float:
        """Seconds after submission of the first status request."""
        return self._current().first_poll()

    def next_poll(self, elapsed: float, *, pressure: float = 1.0) -> float:
        """When to poll next (s after submission), for a job still running at ``elapsed``.

        ``pressure`` ≥ 1 stretches the spacing when the shared budget is short; below 1 it is
        treated as 1. The spacing always stays within [min_interval, max_interval].
        """
        if not math.isfinite(elapsed) or elapsed < 0:
            raise ValueError(f"elapsed must be a finite number of seconds ≥ 0, not {elapsed}")
        return self._current().next_poll(elapsed, _stretch(pressure))

    def expected_requests(self, *, pressure: float = 1.0) -> float:
        """Expected status GETs per job under the current model."""
        return self._outlook(_stretch(pressure)).requests

    def _outlook(self, pressure: float) -> _Outlook:
        schedule = self._current()
        key = round(pressure, 3)
        outlook = self._outlooks.get(key)
        if outlook is None:
            outlook = self._outlooks[key] = schedule.outlook(key)
        return outlook

    def _current(self) -> _Schedule:
        model = self._model
        # A few new samples barely move a large window; rebuild when enough have arrived.
        stale_after = max(1, model.observed // 32)
        if self._schedule is None or model.revision - self._built_at_revision >= stale_after:
            self._schedule = self._calibrate(model.distribution())
            self._built_at_revision = model.revision
            self._outlooks.clear()
        return self._schedule

    def _calibrate(self, distribution: _Distribution) -> _Schedule:
        """Find the warped step whose expected lateness meets the target (bisection)."""
        target = self.lateness_target
        warp = _WarpedTime(distribution)
        tail_pace = min(max(2 * target, self._min_interval), self._max_interval)

        def schedule(step: float) -> _Schedule:
            return _Schedule(
                distribution,
                warp,
                step=step,
                tail_pace=tail_pace,
                min_interval=self._min_interval,
                max_interval=self._max_interval,
            )

        # Bisect around the continuous estimate (lateness ~ E[spacing] / 2 with spacing
        # k / sqrt(h)); lateness grows with k, though in small jumps as polls come and go.
        estimate = 2 * target / warp.mean_inverse_root_hazard()
        low, high = math.log(estimate / 4), math.log(estimate * 4)
        for _ in range(_CALIBRATION_ROUNDS):
            middle = (low + high) / 2
            if schedule(math.exp(middle)).outlook(1.0).lateness > target:
                high = middle
            else:
                low = middle
        return schedule(math.exp(low))


def _stretch(pressure: float) -> float:
    if math.isnan(pressure):
        raise ValueError("pressure must be a number")
    return max(pressure, 1.0)
