"""The fields of a template, per channel: one pydantic model each.

The models are the single description of a channel's content: the editor's form, the
API's validation and the renderer all read them. Every string field may hold Liquid;
fields marked `liquid=False` in their metadata are not rendered (e.g. a method).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from content.models import Channel

# A locale tag as profiles carry it: "fr", "fr-CA", "pt-BR", "zh-Hant-TW".
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{4})?(-([A-Z]{2}|[0-9]{3}))?$")
DEFAULT_LOCALE = "default"


def _field(label: str, *, widget: str = "text", help: str = "", liquid: bool = True, **kw):
    extra = {"label": label, "widget": widget, "help": help, "liquid": liquid}
    return Field(json_schema_extra=extra, **kw)


class ChannelContent(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @classmethod
    def form_fields(cls) -> list[dict[str, Any]]:
        """[{name, label, widget, help, liquid, required, max_length}] in form order."""
        fields = []
        for name, info in cls.model_fields.items():
            extra = dict(info.json_schema_extra or {})
            max_length = next(
                (m.max_length for m in info.metadata if hasattr(m, "max_length")), None
            )
            fields.append(
                {
                    "name": name,
                    "label": extra.get("label", name),
                    "widget": extra.get("widget", "text"),
                    "help": extra.get("help", ""),
                    "liquid": extra.get("liquid", True),
                    "required": info.is_required(),
                    "max_length": max_length,
                }
            )
        return fields

    @classmethod
    def liquid_fields(cls) -> list[str]:
        return [f["name"] for f in cls.form_fields() if f["liquid"]]


class EmailContent(ChannelContent):
    subject: str = _field("Subject", min_length=1, max_length=998)
    preheader: str = _field(
        "Preheader", default="", max_length=300, help="The line inboxes show after the subject"
    )
    from_name: str = _field("From name", default="", max_length=100)
    reply_to: str = _field("Reply-to address", default="", max_length=254)
    html: str = _field(
        "HTML body",
        widget="code",
        min_length=1,
        max_length=500_000,
        help="CSS in <style> blocks is inlined when the message is rendered",
    )
    text: str = _field(
        "Plain-text body",
        widget="textarea",
        default="",
        max_length=200_000,
        help="Left empty, it is made from the HTML body",
    )


class SmsContent(ChannelContent):
    body: str = _field("Message", widget="sms", min_length=1, max_length=1600)


class PushContent(ChannelContent):
    title: str = _field("Title", min_length=1, max_length=200)
    body: str = _field("Body", widget="textarea", default="", max_length=2000)
    image_url: str = _field("Image", widget="asset", default="", max_length=2000)
    deep_link: str = _field(
        "Deep link", default="", max_length=2000, help="e.g. myapp://cart or https://…"
    )
    data: dict[str, str] = _field(
        "Data payload",
        widget="keyvalue",
        default_factory=dict,
        help="Key/value pairs sent to the app",
    )


class WebPushContent(ChannelContent):
    title: str = _field("Title", min_length=1, max_length=200)
    body: str = _field("Body", widget="textarea", default="", max_length=2000)
    icon_url: str = _field("Icon", widget="asset", default="", max_length=2000)
    url: str = _field("Opens", default="", max_length=2000, help="The page a click opens")


class WhatsAppContent(ChannelContent):
    template_name: str = _field(
        "Approved template name",
        min_length=1,
        max_length=512,
        liquid=False,
        help="As approved in WhatsApp Business Manager",
    )
    language: str = _field("Template language", min_length=2, max_length=15, liquid=False)
    parameters: list[str] = _field(
        "Body parameters",
        widget="list",
        default_factory=list,
        help="{{1}}, {{2}}, … of the approved template, in order",
    )

    @field_validator("template_name")
    @classmethod
    def _template_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError("use lowercase letters, digits and underscores, as WhatsApp does")
        return value


class InAppContent(ChannelContent):
    title: str = _field("Title", min_length=1, max_length=200)
    body: str = _field("Body", widget="textarea", default="", max_length=5000)
    image_url: str = _field("Image", widget="asset", default="", max_length=2000)
    cta_label: str = _field("Button label", default="", max_length=60)
    cta_url: str = _field("Button link", default="", max_length=2000)


class WebhookContent(ChannelContent):
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = _field(
        "Method", widget="select", default="POST", liquid=False
    )
    url: str = _field("URL", min_length=1, max_length=2000)
    headers: dict[str, str] = _field("Headers", widget="keyvalue", default_factory=dict)
    body: str = _field(
        "JSON body",
        widget="code",
        default="",
        max_length=200_000,
        help="Must be JSON once rendered",
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise ValueError(f"{name!r} is not a valid header name")
        return value


CONTENT_MODELS: dict[str, type[ChannelContent]] = {
    Channel.EMAIL: EmailContent,
    Channel.SMS: SmsContent,
    Channel.PUSH: PushContent,
    Channel.WEB_PUSH: WebPushContent,
    Channel.WHATSAPP: WhatsAppContent,
    Channel.IN_APP: InAppContent,
    Channel.WEBHOOK: WebhookContent,
}


class ContentError(ValueError):
    """Content that cannot be saved; `errors` maps "locale.field" to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors.items()))


def normalize_locale(code: str) -> str:
    """'fr_ca' -> 'fr-CA', 'ZH-hant-tw' -> 'zh-Hant-TW'; 'default' stays."""
    code = (code or "").strip().replace("_", "-")
    if code.lower() == DEFAULT_LOCALE:
        return DEFAULT_LOCALE
    parts = code.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(out)


def validate_content(channel: str, content: Any) -> dict[str, dict[str, Any]]:
    """Check {locale: fields} against the channel's model; return it normalised.

    Raises ContentError naming every bad "locale.field"."""
    model = CONTENT_MODELS.get(channel)
    if model is None:
        raise ContentError({"channel": f"unknown channel {channel!r}"})
    if not isinstance(content, dict) or not content:
        raise ContentError({"content": "must be an object of locales, with a 'default' entry"})
    errors: dict[str, str] = {}
    cleaned: dict[str, dict[str, Any]] = {}
    for raw_code, fields in content.items():
        code = normalize_locale(str(raw_code))
        if code != DEFAULT_LOCALE and not LOCALE_RE.match(code):
            errors[str(raw_code)] = "is not a locale tag like 'fr' or 'fr-CA'"
            continue
        if code in cleaned:
            errors[code] = "appears twice"
            continue
        try:
            cleaned[code] = model.model_validate(fields).model_dump()
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "fields"
                message = error["msg"].removeprefix("Value error, ")
                errors[f"{code}.{where}"] = message
    if DEFAULT_LOCALE not in cleaned and not any(k.startswith(DEFAULT_LOCALE) for k in errors):
        errors[DEFAULT_LOCALE] = "every template needs a default locale"
    if errors:
        raise ContentError(errors)
    return cleaned


def locale_chain(locale: str) -> list[str]:
    """The locales to try for a profile's locale: fr-CA -> [fr-CA, fr, default]."""
    chain: list[str] = []
    code = normalize_locale(locale) if locale else ""
    if code and code != DEFAULT_LOCALE and LOCALE_RE.match(code):
        parts = code.split("-")
        for end in range(len(parts), 0, -1):
            chain.append("-".join(parts[:end]))
    chain.append(DEFAULT_LOCALE)
    return chain


def resolve_locale(available: list[str] | dict, locale: str) -> str:
    """The first locale of the chain the template has (always at least 'default')."""
    for code in locale_chain(locale):
        if code in available:
            return code
    return DEFAULT_LOCALE
