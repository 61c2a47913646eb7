"""fatigue-guard: fatigue-event prediction from wearable data, with a self-maintaining model."""

__version__ = "0.1.0"
