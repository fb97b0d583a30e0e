"""The carrier, the SMS send, campaign controls, status callbacks and delivery tracking.

One group of :class:`app.config.Settings`; the fields keep their environment names."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class MessagingSettings(BaseModel):
    # --- carrier (Twilio) -------------------------------------------------------------
    twilio_account_sid: SecretStr | None = Field(
        default=None, description="Carrier account (secret; *_FILE accepted)."
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, description="Carrier token (secret; *_FILE accepted)."
    )
    twilio_from: str | None = Field(default=None, description="Sender number or alphanumeric id.")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Sender pool; used instead of TWILIO_FROM when set."
    )
    twilio_base_url: str | None = Field(
        default=None, description="Twilio-compatible server to call instead of api.twilio.com."
    )
    twilio_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="HTTP timeout of every carrier call (the SDK has none by default).",
    )

    # --- SMS (app/notifications) ------------------------------------------------------
    sms_mps: float = Field(
        default=30.0, ge=0, description="Carrier limit in message segments per second; 0 = none."
    )
    sms_rate_window_margin_seconds: float = Field(
        default=0.04,
        ge=0,
        lt=1,
        description="The limiter counts over 1 s + this margin so network jitter between "
        "worker and carrier cannot push a carrier-side one-second window over the limit.",
    )
    sms_send_window: str = Field(
        default="sun-thu 09:00-20:00; fri 09:00-13:00",
        description="Local (BANK_TIMEZONE) send window; days mon..sun, ';' between rules.",
    )
    sms_template_language: str = Field(default="he", description="Template used: he or en.")
    sms_template_he: str | None = Field(default=None, description="Overrides the Hebrew text.")
    sms_template_en: str | None = Field(default=None, description="Overrides the English text.")
    sms_max_segments: int = Field(
        default=3,
        ge=1,
        le=10,
        description="A rendered message longer than this is refused before sending.",
    )
    sms_batch_size: int = Field(default=100, ge=1, description="Outbox rows per send batch.")
    sms_claim_chunk: int = Field(
        default=50,
        ge=1,
        description="Rows claimed (Queued -> Sending) per transaction; outcomes are recorded "
        "per chunk too (a crash leaves at most this many rows for the reconciler).",
    )
    sms_max_transient_retries: int = Field(
        default=8, ge=0, description="Transient carrier errors (429, 21611) tolerated per message."
    )
    sms_batch_time_budget_seconds: float = Field(
        default=120.0, gt=0, description="A send batch re-enqueues itself after this long."
    )
    sms_reconcile_queued_after_seconds: float = Field(
        default=900.0, ge=0, description="Queued rows untouched this long are re-enqueued."
    )
    sms_reconcile_sending_after_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Rows in Sending this long are looked up at the carrier (found -> "
        "Submitted). Keep it well above TWILIO_TIMEOUT_SECONDS.",
    )
    sms_reconcile_list_lag_margin_seconds: float = Field(
        default=900.0,
        ge=0,
        description="A Sending row no callback and no lookup found goes back to Queued only "
        "this long after its ValidityPeriod ran out (docs/sms.md): at least the carrier's "
        "list lag.",
    )
    sms_status_callback_url: str | None = Field(
        default=None,
        description="StatusCallback of every create when CALLBACK_PUBLIC_URL is unset (with "
        "it, each create carries its notification's own URL).",
    )
    sms_validity_period_seconds: int = Field(
        default=3600,
        ge=1,
        le=36000,
        description="ValidityPeriod of every create: the carrier drops a message still in "
        "its queue after this long (Twilio: 1-36000).",
    )

    # --- campaign controls (issue 20: app/campaign, docs/campaign.md) -----------------------
    sms_pause_check_seconds: float = Field(
        default=2.0, ge=0, le=30, description="Senders re-read the kill switch (sms pause) "
        "from the database at most this long after their last read.",
    )  # fmt: skip
    sms_paused_recheck_seconds: float = Field(
        default=15.0, gt=0, description="While sending is paused, a send batch re-enqueues "
        "itself after this long (its rows stay Queued).",
    )  # fmt: skip
    sms_breaker_window_seconds: float = Field(
        default=300.0, gt=0, description="The circuit breaker judges each sender's carrier "
        "answers of this many past seconds.",
    )  # fmt: skip
    sms_breaker_min_attempts: int = Field(
        default=20, ge=0, description="Carrier answers a window needs before the breaker may "
        "pause sending; 0 = no automatic pause.",
    )  # fmt: skip
    sms_breaker_failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="Pause sending when at least this share of a "
        "window's answers are permanent refusals (21610, an opt-out, excluded).",
    )  # fmt: skip
    sms_breaker_error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Pause sending when at least this share of a "
        "window's answers are errors of any kind (429, 5xx, timeouts too); 0 = off (backoff "
        "handles an outage).",
    )  # fmt: skip

    # --- status callbacks (issue 19: app/callbacks) -----------------------------------
    callback_public_url: str | None = Field(
        default=None,
        description="Public base URL of the callback receiver as the carrier calls it (the "
        "bank's proxy); signatures are checked against it, callback URLs start with it.",
    )  # fmt: skip
    callback_max_body_bytes: int = Field(
        default=16384, ge=1024, description="Larger callback requests are refused (413)."
    )
    callback_rate_per_second: float = Field(
        default=200.0, ge=0, description="Callback requests per second one receiver process "
        "accepts (bursts of twice that); more: 429. 0 = no limit.",
    )  # fmt: skip

    # --- delivery tracking (issue 6: app/delivery) ------------------------------------
    delivery_poll_cron: str = Field(
        default="*/3 * * * *", description="periodiq cron of the delivery-poll kick."
    )
    delivery_backoff_minutes: str = Field(
        default="1,2,5,10,30,60",
        pattern=r"^\d+(,\d+)*$",
        description="Minutes before poll N+1 of a message (by its attempts so far); "
        "the last value repeats.",
    )
    delivery_deadline_hours: float = Field(
        default=72.0, gt=0, description="Not final after this long: final 'Unknown' status."
    )
    delivery_lookback_days: int = Field(
        default=14, ge=1, description="Submitted messages older than this are not polled."
    )
    delivery_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Messages per carrier list page (max 1000)."
    )
    delivery_carrier_rps: float = Field(
        default=25.0,
        ge=0,
        description="Carrier read calls (list pages + fetches) per second "
        "across all workers; 0 = no limit. Separate from SMS_MPS (sends).",
    )
    delivery_fetch_cap: int = Field(
        default=2000, ge=0, description="Per-message fetches per day batch and poll round."
    )
