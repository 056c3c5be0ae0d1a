"""The one lock around moto's in-memory backends.

moto's models are not thread-safe. The WSGI server is threaded and the
emulator's own threads (task log pumps, App Runner timers) write into moto's
backends too, so every call into moto - an HTTP request forwarded to moto's
app or a direct backend call - holds MOTO_LOCK. Work that can be slow
(PostgreSQL, processes) should not be done while holding it where avoidable.
"""

import threading

MOTO_LOCK = threading.RLock()
