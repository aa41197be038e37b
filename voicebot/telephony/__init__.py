"""The Twilio edge: Media Streams events, TwiML, webhook signatures, stream tokens, REST dialer.

Everything Twilio-shaped (JSON messages, XML, form posts, REST calls) is parsed
or produced here; the call pipeline only sees the typed values these modules return.
"""
