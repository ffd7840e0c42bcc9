"""Running one fit: CPU thread limits, and SIGINT that never leaves a half-written row."""

import contextlib
import signal
import threading


@contextlib.contextmanager
def limit_threads(threads):
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)


class SigintGuard:
    """Count SIGINTs; raise KeyboardInterrupt for each, except inside :meth:`deferred`, which
    raises once it ends (a row is never half-written). Only the main thread can install it;
    elsewhere it counts nothing and Python's own handler stays."""

    def __init__(self):
        self.count = 0
        self._defer = 0
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            if self._previous is None:  # installed outside Python
                self._previous = signal.default_int_handler
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame):
        self.count += 1
        if not self._defer:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
        if self.count and not self._defer:
            raise KeyboardInterrupt
