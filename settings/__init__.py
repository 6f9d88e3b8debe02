"""One settings object for every process; see `Settings`."""

from settings.config import ConfigurationError, Settings, get_settings

__all__ = ["ConfigurationError", "Settings", "get_settings"]
