"""Google push: the watch channels of the employees' calendars (channels.py)."""
