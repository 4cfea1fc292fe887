"""Counting requests per sliding window, for rate-limit assertions."""

WINDOW = 60.0


def most_in_any_window(times: list[float], window: float = WINDOW) -> int:
    """The largest number of ``times`` that fall within any one ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    first = 0
    for last, moment in enumerate(ordered):
        while ordered[first] < moment - window:
            first += 1
        best = max(best, last - first + 1)
    return best
