"""One progress bar over every fit of a command, with an ETA from the completed fits."""

import sys
import time


class Progress:
    """One bar over every fit to run, with an ETA from the completed fits' durations.

    Fits of different experiments take very different times, so the remaining work is each
    experiment's remaining fits times its mean fit time so far (the overall mean before its
    first fit ends), and it is converted to wall time at the rate the run has done work since
    the first fit started (which counts parallel jobs, and not their start-up)."""

    def __init__(self, todo, enabled):
        self.left = dict(todo)
        self.times = {name: [] for name in todo}
        self.enabled = enabled
        self.first_start = None

    def __enter__(self):
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=sum(self.left.values()), desc="reproduce", unit="fit",
                            file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5 if sys.stderr.isatty() else 30,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}"
                                       " fits [{elapsed}{postfix}]")
            self.bar.set_postfix_str("ETA after the first fit", refresh=False)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.close()

    def update(self, name, started, seconds):
        """Count a finished fit of ``name`` that started at ``started`` (``time.time()``)."""
        self.left[name] -= 1
        self.times[name].append(seconds)
        if self.first_start is None or started < self.first_start:
            self.first_start = started
        if self.enabled:
            self.bar.set_postfix_str(f"ETA {duration(self.eta())}", refresh=False)
            self.bar.update(1)

    def eta(self):
        """Seconds of wall time left, estimated from the fits done so far."""
        done = [t for ts in self.times.values() for t in ts]
        if not done or sum(done) <= 0:
            return float("nan")
        overall = sum(done) / len(done)
        work = sum(n * (sum(self.times[k]) / len(self.times[k]) if self.times[k] else overall)
                   for k, n in self.left.items())
        return work * max(time.time() - self.first_start, 0.0) / sum(done)


def duration(seconds):
    if seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
