"""Waiting for a condition in tests: poll until it holds, fail after a bound."""
import time


def wait_for(predicate, timeout=20, interval=0.05):
    """The first true value ``predicate()`` returns within ``timeout`` seconds (polled every ``interval``); AssertionError after."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('condition not reached in %ss' % timeout)
