"""Settings editing for the Settings page: only the file's own values are written,
never the ones pinned by environment variables (those fields are read-only)."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from agent.config import (
    ENV_VARS,
    Settings,
    env_overrides,
    load_settings,
    reset_settings,
    save_settings,
    update_settings,
)
from agent.errors import SettingsError


def field_bounds(field: str) -> tuple[float | None, float | None]:
    """(lowest, highest) value the Settings model allows for a number field. An exclusive
    bound (`gt`) is returned as is: the UI offers it and saving refuses it with the reason."""
    low = high = None
    for rule in Settings.model_fields[field].metadata:
        low = getattr(rule, "ge", getattr(rule, "gt", low))
        high = getattr(rule, "le", getattr(rule, "lt", high))
    return low, high


def field_choices(field: str) -> list[str]:
    """The values a `Literal[...]` settings field accepts, in their declared order."""
    annotation = Settings.model_fields[field].annotation
    if get_origin(annotation) is not Literal:
        raise ValueError(f"{field} is not a choice field")
    return [str(option) for option in get_args(annotation)]


def resolve_language(preference: str, locale: str | None = None) -> str:
    """"zh" or "en": the preference, or for "auto" the browser's locale (English if unknown)."""
    if preference in ("zh", "en"):
        return preference
    return "zh" if (locale or "").lower().startswith("zh") else "en"


def pinned_fields(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Field -> name of the environment variable that pins it (those fields are read-only)."""
    return {field: ENV_VARS[field] for field in env_overrides(environ)}


def file_settings(settings: Settings) -> Settings:
    """The settings as stored in the file (defaults + settings.json), without the environment."""
    return load_settings(settings.data_dir, environ={})


def save_changes(settings: Settings, environ: dict[str, str] | None = None, **changes: Any) -> Settings:
    """Validate `changes`, write them to settings.json and return the new effective settings.

    Raises SettingsError (nothing written) when a value is invalid or pinned by the
    environment. Values pinned by environment variables are never copied into the file.
    """
    pinned = pinned_fields(environ)
    locked = sorted(set(changes) & set(pinned))
    if locked:
        raise SettingsError(f"{', '.join(locked)} is set by the environment variable "
                            f"{', '.join(pinned[f] for f in locked)}.",
                            "Unset that variable to change it here; nothing was saved.",
                            code="setting_pinned", params={"vars": ", ".join(pinned[f] for f in locked)})
    try:
        update_settings(settings, **changes)  # the effective result must be valid too
        stored = update_settings(file_settings(settings), **changes)
    except SettingsError as err:
        raise SettingsError(err.message, "Nothing was saved.", code=err.code, params=err.params) from None
    save_settings(stored)
    return load_settings(settings.data_dir, environ=environ)


def reset_to_defaults(settings: Settings, environ: dict[str, str] | None = None) -> Settings:
    """Forget every stored value (settings.json back to defaults); pinned values stay pinned."""
    save_settings(reset_settings(file_settings(settings)))
    return load_settings(settings.data_dir, environ=environ)
