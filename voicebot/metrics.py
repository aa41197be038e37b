"""Every Prometheus metric of voicebot, in one place, on one registry per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from voicebot.loop_monitor import LOOP_LAG_BUCKETS_S

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    """Metrics bound to their own registry, so tests and several apps do not collide."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # process_cpu_seconds_total and process_resident_memory_bytes: the load test
        # divides them by call-minutes and by calls.
        ProcessCollector(registry=r)
        self.http_requests = Counter(
            "voicebot_http_requests_total",
            "HTTP requests",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "voicebot_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.active_calls = Gauge("voicebot_active_calls", "Live media-stream calls", registry=r)
        self.turns = Counter("voicebot_turns_total", "Completed agent turns", registry=r)
        self.barge_ins = Counter("voicebot_barge_ins_total", "Caller barge-ins", registry=r)
        self.stage_latency = Histogram(
            "voicebot_stage_latency_seconds",
            "Per-stage turn latency",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        # Overlapped turns (voicebot/call/speculation.py): how each speculation ended
        # (used, resumed, dtmf, stale, unused, ended, stt_failed), what the dropped ones
        # cost, and the end-of-turn class the words so far gave.
        self.speculations = Counter(
            "voicebot_speculative_turns_total",
            "Speculative turns by outcome",
            ["outcome"],
            registry=r,
        )
        self.speculative_wasted_requests = Counter(
            "voicebot_speculative_wasted_requests_total",
            "Provider requests made for speculative turns that were dropped",
            ["stage"],
            registry=r,
        )
        self.speculative_wasted_words = Counter(
            "voicebot_speculative_wasted_reply_words_total",
            "Words of reply text generated for dropped speculative turns (about the LLM's"
            " output tokens)",
            registry=r,
        )
        # Streaming recognition: a reply started on the partial transcript at the pause,
        # kept when the commit's final had the same words, else redone on the final.
        self.speculative_partial_replies = Counter(
            "voicebot_speculative_partial_replies_total",
            "Speculative replies started on a streaming partial, by outcome (kept, redone)",
            ["outcome"],
            registry=r,
        )
        self.caller_utterances = Counter(
            "voicebot_caller_utterances_total",
            "Caller utterances whose end the endpointer decided",
            registry=r,
        )
        self.turn_end_kinds = Counter(
            "voicebot_turn_end_kinds_total",
            "Adaptive endpointing: class of the words heard at the pause",
            ["kind"],
            registry=r,
        )
        self.provider_errors = Counter(
            "voicebot_provider_errors_total", "Provider failures", ["stage", "kind"], registry=r
        )
        self.inbound_frame_gaps = Counter(
            "voicebot_inbound_frame_gaps_total", "Inbound media gaps over 100 ms", registry=r
        )
        self.loop_lag = Histogram(
            "voicebot_event_loop_lag_seconds",
            "How late the event loop wakes a sleeping task",
            buckets=LOOP_LAG_BUCKETS_S,
            registry=r,
        )
        self.loop_lag_worst = Gauge(
            "voicebot_event_loop_lag_worst_seconds", "Worst event-loop lag seen", registry=r
        )
        self.gc_pause = Histogram(
            "voicebot_gc_pause_seconds",
            "Garbage-collection pauses by generation",
            ["generation"],
            buckets=LOOP_LAG_BUCKETS_S,
            registry=r,
        )
        self.playout_underruns = Counter(
            "voicebot_playout_underruns_total",
            "Outbound audio that ran dry mid-sentence (server side)",
            registry=r,
        )
        self.rate_limited = Counter(
            "voicebot_rate_limited_total", "Requests refused by the rate limiter", registry=r
        )
        # Campaign engine (read from the database at scrape time, so every process that
        # dials is counted; running and paused campaigns only, to bound the labels).
        self.campaign_dials = Gauge(
            "voicebot_campaign_dials", "Attempts sent to Twilio", ["campaign_id"], registry=r
        )
        self.campaign_answers = Gauge(
            "voicebot_campaign_answers", "Calls answered", ["campaign_id"], registry=r
        )
        self.campaign_outcomes = Gauge(
            "voicebot_campaign_outcomes",
            "Calls per outcome",
            ["campaign_id", "outcome"],
            registry=r,
        )
        self.campaign_due = Gauge(
            "voicebot_campaign_due", "Members due to be dialed now", ["campaign_id"], registry=r
        )
        self.campaign_in_flight = Gauge(
            "voicebot_campaign_in_flight", "Live attempts", ["campaign_id"], registry=r
        )
        self.campaign_dead_letters = Gauge(
            "voicebot_campaign_dead_letters",
            "Dead-lettered engine messages about the campaign",
            ["campaign_id"],
            registry=r,
        )
