"""Temporal activities: `record_event` and the steps of the built-in task types."""

from activities.demo import DemoActivities
from activities.recorder import EventRecorder
from activities.recording import RecordingActivities

__all__ = ["DemoActivities", "EventRecorder", "RecordingActivities"]
