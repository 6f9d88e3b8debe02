"""Activity names: the workflow refers to activities by these strings only,
so `workflows/` never imports the activity code (store, broker) into the sandbox."""

RECORD_EVENT = "record_event"
DEMO_STEP = "demo_step"
REQUEST_CANCELLATION = "request_cancellation"

# ApplicationError types.
INVALID_EVENT = "InvalidEvent"
STEP_FAILED = "StepFailed"
# An event of a chapter that has ended, or of a run a reset left behind: refused.
CHAPTER_CLOSED = "ChapterClosed"
