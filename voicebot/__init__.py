"""voicebot: Hebrew phone agents on Twilio Media Streams."""

__version__ = "0.1.0"
