"""Session and URL state shared by every page: the chosen model, the shared prompt, and
page settings mirrored into the URL's query parameters so a link reproduces what you see.

Conventions: session keys are page-prefixed (tok_, arch_, smp_, ...); a setting's URL parameter
has the same name as its session key; defaults are left out of the URL so links stay short.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from explorer import loaders

MODEL_KEY = "model_key"
PROMPT_KEY = "prompt"
DEFAULT_MODEL = "default"
DEFAULT_PROMPT = "Once upon a time, a little fox"
URL_PROMPT_MAX = 2000  # longer prompts stay in the session but are not put into links


def current_model() -> loaders.LoadedModel:
    """The model chosen in the sidebar (session_state["model_key"], URL ?model=).

    Raises loaders.ModelUnavailable (message ready for st.error) when it cannot be loaded;
    pages normally call `require_model()` instead.
    """
    return loaders.get_model(st.session_state.get(MODEL_KEY, DEFAULT_MODEL))


def require_model() -> loaders.LoadedModel:
    """current_model(), or an st.error with the reason and st.stop() (never a traceback)."""
    try:
        return current_model()
    except loaders.ModelUnavailable as exc:
        st.error(str(exc))
        st.stop()


def shared_prompt() -> str:
    """The sidebar's shared prompt (session_state["prompt"], URL ?prompt=)."""
    return st.session_state.get(PROMPT_KEY, DEFAULT_PROMPT)


def from_url(
    key: str, default: Any, parse: Callable[[str], Any] = str, ok=None, *, param: str | None = None
) -> Any:
    """Seed session_state[key] from the URL (?param=..., param defaults to key) once, before
    its widget is drawn.

    `parse` converts the string; `ok(value)` may reject it. A bad value in a hand-edited link
    falls back to the default silently rather than breaking the page. Returns the value.
    """
    if key not in st.session_state:
        value = default
        raw = st.query_params.get(param or key)
        if raw is not None:
            try:
                parsed = parse(raw)
                if ok is None or ok(parsed):
                    value = parsed
            except (TypeError, ValueError):
                pass
        st.session_state[key] = value
    return st.session_state[key]


def to_url(key: str, value: Any, default: Any) -> None:
    """Mirror a setting into the URL as ?key=value (removed when it equals the default)."""
    if value == default or value is None:
        if key in st.query_params:
            del st.query_params[key]
        return
    text = str(value)
    if st.query_params.get(key) != text:
        st.query_params[key] = text


def parse_bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def parse_opt_int(raw: str) -> int | None:
    return None if raw in ("", "none", "off") else int(raw)
