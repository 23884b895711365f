"""Rendering templates with Liquid (python-liquid 2), safely.

The sandbox:
- Templates see plain data only: `build_context` turns profiles, events and the rest
  into dicts, lists, strings, numbers, booleans and None (a JSON round trip), so no
  Python object, method or attribute is reachable (`{{ profile.__class__ }}` renders
  nothing).
- Resource limits: at most LOOP_LIMIT loop iterations per render (nested loops
  multiply), OUTPUT_LIMIT characters of output per field, CONTEXT_DEPTH_LIMIT nested
  render contexts, LOCAL_NAMESPACE_LIMIT bytes of assigned variables, and block nesting
  of 30. Reaching one fails the render with TemplateRenderError naming it.
- No file system: the `include` and `render` tags do not exist here (a template using
  one fails to parse, naming the tag); there is no loader either.
- Undefined variables render as empty (like Shopify, Braze and Customer.io), so
  `default` supplies fallbacks; the editor warns about variables nothing is known to
  have (`undefined_variables`).
- No auto-escaping: marketers write the HTML of their emails, and values from profiles
  are inserted as they are. Use `| escape` for values that may contain markup.

`render_content` is the only entry point sends use; it raises TemplateRenderError and
nothing else, so a bad template fails its message, never the worker.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import css_inline
import html2text
import orjson
from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from liquid import Environment, is_undefined
from liquid.exceptions import LiquidError
from liquid.filter import with_context

from content.channels import CONTENT_MODELS, DEFAULT_LOCALE, resolve_locale
from content.sms import SmsStats, sms_stats

LOOP_LIMIT = 1_000
OUTPUT_LIMIT = 1_000_000
CONTEXT_DEPTH_LIMIT = 30
LOCAL_NAMESPACE_LIMIT = 200_000
# The variables a template may start from; anything else is flagged on save.
ROOT_VARIABLES = frozenset({"profile", "event", "journey", "workspace", "message", "now"})
PROFILE_COLUMNS = frozenset(
    {"id", "user_id", "email", "phone", "locale", "time_zone", "first_seen", "last_seen", "traits"}
)
_LOCALE_KEY = "__render_locale__"
URL_FIELDS = {
    "push": ("image_url",),
    "web_push": ("icon_url", "url"),
    "in_app": ("image_url", "cta_url"),
    "webhook": ("url",),
}
APP_LINK_FIELDS = {"push": ("deep_link",)}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


class TemplateRenderError(ValueError):
    """A template could not be rendered; names the locale and field."""

    def __init__(self, *, locale: str, field: str, message: str):
        self.locale = locale
        self.field = field
        self.message = message
        super().__init__(f"{locale}.{field}: {message}")


@dataclass(frozen=True)
class RenderedMessage:
    locale: str
    fields: dict[str, Any]
    sms: SmsStats | None = None
    extras: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- filters


def _babel_locale(context) -> Locale:
    globals_ = getattr(context, "globals", None)
    code = (globals_.get(_LOCALE_KEY) if globals_ is not None else "") or ""
    try:
        return Locale.parse((code or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def _blank(value: Any) -> bool:
    return value is None or value == "" or is_undefined(value)


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a number") from None


@with_context
def money_filter(value: Any, currency: Any = "USD", *, context) -> str:
    """{{ 12.5 | money: "EUR" }} -> "€12.50" (formatted for the message's locale)."""
    if _blank(value):
        return ""
    currency = str(currency or "USD").upper()
    return format_currency(_number(value), currency, locale=_babel_locale(context))


@with_context
def number_filter(value: Any, digits: Any = None, *, context) -> str:
    """{{ 1234.5 | number }} -> "1,234.5"; {{ x | number: 2 }} -> two decimals."""
    if _blank(value):
        return ""
    number = _number(value)
    if digits is not None:
        places = int(digits)
        number = round(number, places)
        return format_decimal(
            number,
            format="#,##0." + "0" * places if places else "#,##0",
            locale=_babel_locale(context),
        )
    return format_decimal(number, locale=_babel_locale(context))


def _as_datetime(value: Any) -> dt.datetime | dt.date:
    if isinstance(value, dt.datetime | dt.date):
        return value
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    text = str(value).strip()
    if text == "now":
        return dt.datetime.now(tz=dt.UTC)
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date") from None


@with_context
def datetime_filter(value: Any, style: Any = "medium", zone: Any = None, *, context) -> str:
    """{{ event.timestamp | datetime: "long", "Europe/Paris" }}: a date and time written
    for the message's locale (styles: short, medium, long, full, or a CLDR pattern)."""
    if _blank(value):
        return ""
    moment = _as_datetime(value)
    locale = _babel_locale(context)
    if isinstance(moment, dt.datetime):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        tzinfo = None
        if zone:
            try:
                tzinfo = ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{zone!r} is not a time zone") from None
        return format_datetime(moment, format=str(style), tzinfo=tzinfo, locale=locale)
    return format_date(moment, format=str(style), locale=locale)


@with_context
def date_only_filter(value: Any, style: Any = "medium", *, context) -> str:
    """{{ profile.signed_up_at | date_only: "long" }} -> "22 November 2026" (localized)."""
    if _blank(value):
        return ""
    moment = _as_datetime(value)
    if isinstance(moment, dt.datetime):
        moment = moment.date()
    return format_date(moment, format=str(style), locale=_babel_locale(context))


def json_filter(value: Any) -> str:
    """{{ profile.user_id | json }} -> "\"u-1\"": a JSON literal, for webhook bodies."""
    if is_undefined(value):
        value = None
    return orjson.dumps(value).decode()


def url_param_filter(url: Any, name: Any, value: Any = "") -> str:
    """{{ "https://shop.example/?a=1" | url_param: "utm_source", "email" }} adds or
    replaces one query parameter, encoding it properly."""
    parts = urlsplit(str(url))
    query = [
        (key, item)
        for key, item in parse_qsl(parts.query, keep_blank_values=True)
        if key != str(name)
    ]
    query.append((str(name), "" if value is None else str(value)))
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Environment(Environment):
    loop_iteration_limit = LOOP_LIMIT
    output_stream_limit = OUTPUT_LIMIT
    context_depth_limit = CONTEXT_DEPTH_LIMIT
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT


ENVIRONMENT = _Environment()
# Templates are self-contained. With these tags a template would name another one to
# load, and static analysis (filter_names, analyze) follows them even at save time,
# where a missing one raised TemplateNotFoundError out of the content check (a 500).
for _tag in ("include", "render"):
    ENVIRONMENT.tags.pop(_tag)
ENVIRONMENT.filters.update(
    {
        "money": money_filter,
        "number": number_filter,
        "datetime": datetime_filter,
        "date_only": date_only_filter,
        "json": json_filter,
        "url_param": url_param_filter,
    }
)


@functools.lru_cache(maxsize=2048)
def _parse(source: str):
    return ENVIRONMENT.from_string(source)


def _error_message(error: Exception, source: str) -> str:
    message = getattr(error, "message", None) or str(error).splitlines()[0] or type(error).__name__
    token = getattr(error, "token", None)
    index = getattr(token, "start_index", None)
    if isinstance(index, int) and 0 <= index <= len(source):
        line = source.count("\n", 0, index) + 1
        column = index - (source.rfind("\n", 0, index) + 1) + 1
        message = f"{message} (line {line}, column {column})"
    limits = {
        "LoopIterationLimitError": f"loop iteration limit reached ({LOOP_LIMIT})",
        "OutputStreamLimitError": f"output limit reached ({OUTPUT_LIMIT:,} characters)",
        "LocalNamespaceLimitError": "too much data assigned to variables",
        "ContextDepthError": "templates nested too deeply",
    }
    return limits.get(type(error).__name__, message)


# --------------------------------------------------------------------------- context


def _plain(value: Any) -> Any:
    """Only JSON data reaches Liquid (datetimes become ISO strings)."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def _profile_data(profile: Any, *, with_computed: bool = True) -> dict[str, Any]:
    if isinstance(profile, dict):
        traits = profile.get("traits") or {}
        columns = {key: value for key, value in profile.items() if key != "traits"}
    else:
        traits = profile.traits if isinstance(profile.traits, dict) else {}
        columns = {
            "id": profile.pk,
            "user_id": profile.user_id,
            "email": profile.email,
            "phone": profile.phone,
            "locale": profile.locale,
            "time_zone": profile.time_zone,
            "first_seen": profile.first_seen,
            "last_seen": profile.last_seen,
        }
    # Traits at the top level ({{ profile.first_name }}); the columns win over a trait
    # of the same name because delivery reads the columns.
    data = {**traits, **{key: value for key, value in columns.items() if value not in (None, "")}}
    for key, value in columns.items():
        data.setdefault(key, value)
    data["traits"] = traits
    state = getattr(profile, "_state", None)
    if with_computed and state is not None and not state.adding:  # stored, not a preview's
        data.setdefault("computed", _computed_values(profile))
    return data


def _computed_values(profile: Any) -> dict[str, Any]:
    """{{ profile.computed.value_tier }} and friends: the values analytics computed for
    the profile (docs/analytics.md, "Customer value"); empty before the first run. No
    query when the caller loaded them with the profile (select_related("value"), as
    the send batches do)."""
    from analytics.models import CustomerValue
    from segments.models import Profile

    if Profile.value.is_cached(profile):
        found = getattr(profile, "value", None)
    else:  # read afresh: an instance must not keep a miss from before a recompute
        found = CustomerValue.objects.filter(profile_id=profile.pk).first()
    if found is None:
        return {}
    return {
        "ltv": float(found.ltv),
        "engagement_score": found.engagement_score,
        "value_tier": found.value_tier,
        "churn_risk": found.churn_risk,
    }


def _event_data(event: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        return {
            "name": event.get("name") or event.get("event") or "",
            "timestamp": event.get("timestamp"),
            "properties": event.get("properties")
            if isinstance(event.get("properties"), dict)
            else {},
        }
    return {
        "name": event.name,
        "timestamp": event.timestamp,
        "properties": event.properties if isinstance(event.properties, dict) else {},
    }


def build_context(
    *,
    workspace: Any = None,
    profile: Any = None,
    event: Any = None,
    journey: dict | None = None,
    message: dict | None = None,
    extra: dict | None = None,
    with_computed: bool = True,
) -> dict[str, Any]:
    """The variables of one render, as plain data (`with_computed`: read the profile's
    customer value for profile.computed; a bulk writer that knows there is none yet
    skips the read):

    profile: traits at the top level plus id, user_id, email, phone, locale, time_zone,
             first_seen, last_seen (and every trait again under profile.traits)
    event:   name, timestamp, properties (the journey's trigger event)
    journey: id, name, version        workspace: name, slug
    message: id and links the delivery step adds (e.g. unsubscribe_url)
    now:     the render time (ISO 8601, UTC)
    """
    context: dict[str, Any] = {
        "profile": _profile_data(profile, with_computed=with_computed)
        if profile is not None
        else {},
        "event": _event_data(event) if event is not None else {"name": "", "properties": {}},
        "journey": dict(journey or {}),
        "workspace": {"name": workspace.name, "slug": workspace.slug}
        if workspace is not None
        else {},
        "message": dict(message or {}),
        "now": dt.datetime.now(tz=dt.UTC),
    }
    if extra:
        context.update({key: value for key, value in extra.items() if key not in context})
    return _plain(context)


# --------------------------------------------------------------------------- rendering


def _render_string(
    source: str, *, locale: str, field: str, context: dict, render_locale: str
) -> str:
    if "{" not in source:
        return source
    try:
        template = _parse(source)
        return template.render(**context, **{_LOCALE_KEY: render_locale})
    except LiquidError as error:
        raise TemplateRenderError(
            locale=locale, field=field, message=_error_message(error, source)
        ) from None
    except RecursionError:
        raise TemplateRenderError(
            locale=locale, field=field, message="templates nested too deeply"
        ) from None
    except Exception as error:  # a filter's own error (bad number, bad zone, ...)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TemplateRenderError(locale=locale, field=field, message=message) from None


def _render_value(value: Any, **kwargs) -> Any:
    if isinstance(value, str):
        return _render_string(value, **kwargs)
    if isinstance(value, list):
        return [_render_value(item, **kwargs) for item in value]
    if isinstance(value, dict):
        return {key: _render_value(item, **kwargs) for key, item in value.items()}
    return value


def _check_url(value: str, *, locale: str, field: str, app_links: bool) -> None:
    if not value:
        return
    match = _SCHEME.match(value.strip())
    scheme = match.group(1).lower() if match else ""
    if scheme in ("javascript", "data", "vbscript", "file"):
        raise TemplateRenderError(
            locale=locale, field=field, message=f"{scheme}: links are not allowed"
        )
    if scheme in ("http", "https"):
        if not urlsplit(value.strip()).netloc:
            raise TemplateRenderError(locale=locale, field=field, message=f"{value!r} has no host")
        return
    if app_links and scheme:
        return
    raise TemplateRenderError(
        locale=locale,
        field=field,
        message=f"{value[:80]!r} is not an absolute http(s) URL",
    )


def _inline_css(html: str) -> str:
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    return inliner.inline(html)


def _with_preheader(html: str, preheader: str) -> str:
    if not preheader:
        return html
    from html import escape

    hidden = (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;'
        'font-size:1px;line-height:1px;color:transparent;opacity:0">'
        f"{escape(preheader)}{'&#8204;&nbsp;' * 40}</div>"
    )
    match = re.search(r"<body[^>]*>", html, flags=re.IGNORECASE)
    if match:
        return html[: match.end()] + hidden + html[match.end() :]
    return hidden + html


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    text = converter.handle(html)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_content(*, channel: str, content: dict, locale: str, context: dict) -> RenderedMessage:
    """Render the fields of the best locale of `content` for `locale` (fr-CA -> fr ->
    default). Raises TemplateRenderError, and only that."""
    model = CONTENT_MODELS.get(channel)
    if model is None:
        raise TemplateRenderError(
            locale=DEFAULT_LOCALE, field="channel", message=f"unknown channel {channel!r}"
        )
    used = resolve_locale(content, locale)
    source = content.get(used)
    if not isinstance(source, dict):
        raise TemplateRenderError(
            locale=used, field="content", message="this locale has no content"
        )
    # Numbers, money and dates are written for the reader's locale, whichever
    # translation of the text they get.
    render_locale = locale or "en"
    liquid_fields = set(model.liquid_fields())
    fields: dict[str, Any] = {}
    for name, value in source.items():
        if name in liquid_fields:
            fields[name] = _render_value(
                value, locale=used, field=name, context=context, render_locale=render_locale
            )
        else:
            fields[name] = value
    sms = None
    try:
        if channel == "email":
            body = _inline_css(fields.get("html", ""))
            if not fields.get("text", "").strip():
                fields["text"] = html_to_text(body)
            fields["html"] = _with_preheader(body, fields.get("preheader", ""))
        elif channel == "sms":
            sms = sms_stats(fields.get("body", ""))
    except TemplateRenderError:
        raise
    except Exception as error:
        raise TemplateRenderError(
            locale=used, field="html", message=f"the HTML could not be processed: {error}"
        ) from None
    if channel == "webhook" and fields.get("body", "").strip():
        try:
            orjson.loads(fields["body"])
        except orjson.JSONDecodeError as error:
            raise TemplateRenderError(
                locale=used, field="body", message=f"the rendered body is not JSON: {error}"
            ) from None
    for name in URL_FIELDS.get(channel, ()):
        _check_url(fields.get(name, ""), locale=used, field=name, app_links=False)
    for name in APP_LINK_FIELDS.get(channel, ()):
        _check_url(fields.get(name, ""), locale=used, field=name, app_links=True)
    if channel == "email":
        for name in ("subject", "preheader", "from_name"):
            if "\n" in fields.get(name, "") or "\r" in fields.get(name, ""):
                fields[name] = " ".join(fields[name].split())
    return RenderedMessage(locale=used, fields=fields, sms=sms)


def render_version(*, version, locale: str, context: dict) -> RenderedMessage:
    return render_content(
        channel=version.template.channel, content=version.content, locale=locale, context=context
    )


# --------------------------------------------------------------------------- checks on save


def _liquid_sources(channel: str, content: dict):
    """(locale, field, source) for every Liquid string of the content."""
    liquid_fields = set(CONTENT_MODELS[channel].liquid_fields())
    for locale, fields in content.items():
        for name, value in (fields or {}).items():
            if name not in liquid_fields:
                continue
            values = (
                value
                if isinstance(value, list)
                else list(value.values())
                if isinstance(value, dict)
                else [value]
            )
            for item in values:
                if isinstance(item, str) and "{" in item:
                    yield locale, name, item


def check_syntax(*, channel: str, content: dict) -> dict[str, str]:
    """{"fr.subject": "missing expression (line 1, column 4)"} for each field whose
    Liquid does not parse (or uses a filter that does not exist)."""
    errors: dict[str, str] = {}
    for locale, name, source in _liquid_sources(channel, content):
        key = f"{locale}.{name}"
        if key in errors:
            continue
        try:
            template = _parse(source)
        except LiquidError as error:
            errors[key] = _error_message(error, source)
            continue
        unknown = sorted(set(template.filter_names()) - set(ENVIRONMENT.filters))
        if unknown:
            errors[key] = f"unknown filter {unknown[0]!r}"
    return errors


def template_variables(*, channel: str, content: dict) -> list[dict[str, Any]]:
    """[{locale, field, variable}] for every global variable path a field reads."""
    found = []
    for locale, name, source in _liquid_sources(channel, content):
        try:
            variables = [
                variable
                for occurrences in _parse(source).analyze().globals.values()
                for variable in occurrences
            ]
        except LiquidError:
            continue
        # In the order they appear, each path once per field.
        variables.sort(key=lambda variable: getattr(variable.span, "index", 0))
        seen: set[str] = set()
        for variable in variables:
            parts = [str(part) for part in variable.segments if not isinstance(part, list)]
            path = ".".join(parts)
            if path in seen:
                continue
            seen.add(path)
            found.append({"locale": locale, "field": name, "variable": path, "segments": parts})
    return found


def undefined_variables(
    *,
    channel: str,
    content: dict,
    known_traits: set[str],
    known_event_properties: set[str],
) -> list[dict[str, str]]:
    """Variables nothing is known to have: unknown roots, profile traits no profile has,
    event properties no recent event (or event schema) has. Warnings, not errors."""
    warnings: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for item in template_variables(channel=channel, content=content):
        parts = item["segments"]
        root = parts[0]
        message = ""
        if root not in ROOT_VARIABLES:
            message = (
                f"there is no variable {root!r}; use profile, event, journey, workspace or message"
            )
        elif root == "profile" and len(parts) > 1:
            key = parts[2] if parts[1] == "traits" and len(parts) > 2 else parts[1]
            if parts[1] != "traits" and key in PROFILE_COLUMNS:
                continue
            if key not in known_traits:
                message = f"no profile has the trait {key!r}"
        elif root == "event" and len(parts) > 1:
            if parts[1] == "properties" and len(parts) > 2:
                if parts[2] not in known_event_properties:
                    message = f"no event has the property {parts[2]!r}"
            elif parts[1] not in ("name", "timestamp", "properties"):
                message = f"events have name, timestamp and properties, not {parts[1]!r}"
        if message:
            key = (item["locale"], item["field"], item["variable"])
            if key in seen:
                continue
            seen.add(key)
            warnings.append(
                {
                    "locale": item["locale"],
                    "field": item["field"],
                    "variable": item["variable"],
                    "message": message,
                }
            )
    return warnings
