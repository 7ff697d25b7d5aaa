"""A real password hasher that counts how often a password is evaluated (for the throttling race test)."""

import threading
import time

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingMD5PasswordHasher(MD5PasswordHasher):
    """MD5 (the test suite's hasher), counting verify() calls.

    Each evaluation also takes a little while, as a real hasher does: that is
    the window in which unthrottled parallel guesses all get evaluated.
    """

    calls = 0
    _lock = threading.Lock()

    def verify(self, password, encoded):
        with CountingMD5PasswordHasher._lock:
            CountingMD5PasswordHasher.calls += 1
        time.sleep(0.05)
        return super().verify(password, encoded)
