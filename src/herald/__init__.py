"""Herald: an open-source event platform for IoT connectivity."""

__version__ = "0.1.0"
