"""lupus-dash: cohort exploration for SLE patients treated with belimumab."""

__version__ = "0.1.0"
