"""EspoCRM parties (CBeteiligte) → Advoware Beteiligte: mapping, per-party sync, the queue drain, the demo."""
