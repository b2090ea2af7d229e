"""looopbot: a control loop whose whole memory is a git repository."""

__version__ = "0.1.0"
