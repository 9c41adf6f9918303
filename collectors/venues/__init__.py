"""One module (or package) per venue: its whole wire dialect, client and simulator side.

The shared mechanisms they build on live one level up (``collectors.base``, ``collectors.book``,
``collectors.connection``, ``collectors.simulator``, ...); ``collectors.registry`` is the one list of venues.
"""
