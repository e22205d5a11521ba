"""Checks of groups of settings (the mail and reminders; the workbench's promises, worklist and activity report),
kept apart from portal/core/config.py so that each stays readable: `validate` there calls them, and a bad value
raises ConfigError naming the key and what is wrong with it."""

from __future__ import annotations

import re
from typing import Any

from portal.core.errors import ConfigError

_EMAIL = re.compile(r"[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"']+")


def validate_mail(settings: Any) -> None:  # portal.core.config.Settings (which imports this)
    for key in ("mail_from", "ar_inbox", "support_email"):
        value = getattr(settings, key)
        if value and not _EMAIL.fullmatch(value):
            raise ConfigError(f"{key}: {value!r} is not an email address")
    if not 1 <= settings.mail_attempts <= 10:
        raise ConfigError(f"mail_attempts: {settings.mail_attempts} must be between 1 and 10")
    if settings.mail_retry_delay_ms < 0:
        raise ConfigError(f"mail_retry_delay_ms: {settings.mail_retry_delay_ms} must not be negative")
    for key in ("reminder_unopened_days", "reminder_interval_days", "reminder_escalate_after",
                "digest_unopened_days", "digest_min_amount"):
        if getattr(settings, key) < 0:
            raise ConfigError(f"{key}: {getattr(settings, key)} must not be negative")
    for key in ("reminder_days_before_due", "reminder_days_overdue"):
        if any(days < 0 for days in getattr(settings, key)):
            raise ConfigError(f"{key}: {list(getattr(settings, key))} must be day counts of 0 or more")
    for group, rules in settings.reminder_groups:
        for key, rule in rules:
            if any(v < 0 for v in (rule if isinstance(rule, tuple) else (rule,))):
                raise ConfigError(f"reminder_groups: {group}: {key}: must not be negative")


def validate_promises(settings: Any) -> None:  # portal.core.config.Settings (which imports this)
    if not 0 <= settings.promise_grace_days <= 60:
        raise ConfigError(f"promise_grace_days: {settings.promise_grace_days} must be between 0 and 60")
    if not 1 <= settings.promise_max_days <= 366:
        raise ConfigError(f"promise_max_days: {settings.promise_max_days} must be between 1 and 366")
    for key in ("worklist_large_amount", "worklist_big_account", "worklist_due_soon_days"):
        if getattr(settings, key) < 0:
            raise ConfigError(f"{key}: {getattr(settings, key)} must not be negative")
    for key in ("activity_touches_per_hour", "activity_emails_per_ten_calls"):
        pair = getattr(settings, key)
        if len(pair) != 2 or not 0 <= pair[0] <= pair[1]:
            raise ConfigError(f"{key}: {list(pair)} must be two numbers, the lower first (e.g. 18,26)")
    if not 0 <= settings.activity_schedule_hours <= 24:
        raise ConfigError(f"activity_schedule_hours: {settings.activity_schedule_hours} must be between 0 and 24")
    if not 1 <= settings.promise_min_percent <= 100:
        raise ConfigError(f"promise_min_percent: {settings.promise_min_percent} must be between 1 and 100")
