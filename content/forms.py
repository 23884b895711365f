"""The template editor's form: channel content <-> posted fields.

Fields are posted as `f.<locale>.<field>`; the locales as repeated `locale` values.
Mappings (push data, webhook headers) are edited as "key: value" lines and lists
(WhatsApp parameters) one item per line; both are parsed here with errors that name
the line.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from content.channels import CONTENT_MODELS, DEFAULT_LOCALE, normalize_locale

STARTER_CONTENT: dict[str, dict[str, Any]] = {
    "email": {
        "subject": 'Hello {{ profile.first_name | default: "there" }}',
        "preheader": "",
        "from_name": "{{ workspace.name }}",
        "reply_to": "",
        "html": (
            '<!doctype html>\n<html>\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "<style>\n"
            "  body { margin: 0; background: #f4f4f5; font-family: Helvetica, Arial, sans-serif; }\n"
            "  .wrap { max-width: 600px; margin: 0 auto; padding: 24px; }\n"
            "  .card { background: #ffffff; border-radius: 8px; padding: 32px; color: #1b1b1f; }\n"
            "  h1 { font-size: 22px; margin: 0 0 12px; }\n"
            "  p { font-size: 15px; line-height: 1.5; margin: 0 0 16px; }\n"
            "  .button { display: inline-block; background: #5a52e0; color: #ffffff;"
            " padding: 12px 20px; border-radius: 6px; text-decoration: none; }\n"
            "  @media (max-width: 480px) { .wrap { padding: 8px; } .card { padding: 20px; } }\n"
            '</style>\n</head>\n<body>\n<div class="wrap">\n  <div class="card">\n'
            '    <h1>Hi {{ profile.first_name | default: "there" }},</h1>\n'
            "    <p>Write your message here.</p>\n"
            '    <p><a class="button" href="https://example.com">Call to action</a></p>\n'
            "  </div>\n</div>\n</body>\n</html>\n"
        ),
        "text": "",
    },
    "sms": {"body": '{{ workspace.name }}: Hi {{ profile.first_name | default: "there" }}, '},
    "push": {"title": "", "body": "", "image_url": "", "deep_link": "", "data": {}},
    "web_push": {"title": "", "body": "", "icon_url": "", "url": ""},
    "whatsapp": {"template_name": "", "language": "en", "parameters": []},
    "in_app": {"title": "", "body": "", "image_url": "", "cta_label": "", "cta_url": ""},
    "webhook": {
        "method": "POST",
        "url": "https://",
        "headers": {"Content-Type": "application/json"},
        "body": '{\n  "user_id": {{ profile.user_id | json }},\n  "event": {{ event.name | json }}\n}',
    },
}


def field_name(locale: str, name: str) -> str:
    return f"f.{locale}.{name}"


def _as_text(widget: str, value: Any) -> str:
    if widget == "keyvalue":
        return "\n".join(f"{key}: {item}" for key, item in (value or {}).items())
    if widget == "list":
        return "\n".join(value or [])
    return "" if value is None else str(value)


def _parse_keyvalue(text: str) -> tuple[dict[str, str], str]:
    result: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            return result, f"line {number}: write key: value"
        result[key.strip()] = value.strip()
    return result, ""


def editor_locales(
    channel: str, content: dict[str, dict[str, Any]], errors: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """[{code, fields: [{name, input_name, label, widget, help, value, error, ...}]}]

    `errors` are keyed by input name (see errors_by_input)."""
    errors = errors or {}
    model = CONTENT_MODELS[channel]
    codes = sorted(content, key=lambda code: (code != DEFAULT_LOCALE, code))
    locales = []
    for code in codes:
        values = content.get(code) or {}
        fields = []
        for spec in model.form_fields():
            input_name = field_name(code, spec["name"])
            fields.append(
                {
                    **spec,
                    "input_name": input_name,
                    "value": _as_text(spec["widget"], values.get(spec["name"])),
                    "error": errors.get(input_name, ""),
                    "choices": _choices(model, spec["name"]),
                }
            )
        locales.append({"code": code, "fields": fields})
    return locales


def _choices(model, name: str) -> list[str]:
    annotation = model.model_fields[name].annotation
    return (
        [str(value) for value in get_args(annotation)] if get_origin(annotation) is Literal else []
    )


def content_from_post(channel: str, data) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Read the posted locales' fields. Returns (content, errors by "locale.field") for
    what could not be parsed; schema checks happen in the service."""
    model = CONTENT_MODELS[channel]
    codes: list[str] = []
    for raw in data.getlist("locale") or [DEFAULT_LOCALE]:
        code = normalize_locale(raw)
        if code and code not in codes:
            codes.append(code)
    content: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for code in codes:
        fields: dict[str, Any] = {}
        for spec in model.form_fields():
            # Read by the posted (raw) locale code so a renamed tag still finds its fields.
            raw_value = data.get(field_name(code, spec["name"]), "")
            raw_value = raw_value.replace("\r\n", "\n")
            if spec["widget"] == "keyvalue":
                parsed, error = _parse_keyvalue(raw_value)
                if error:
                    errors[f"{code}.{spec['name']}"] = error
                fields[spec["name"]] = parsed
            elif spec["widget"] == "list":
                fields[spec["name"]] = [
                    line.strip() for line in raw_value.splitlines() if line.strip()
                ]
            else:
                fields[spec["name"]] = raw_value
        content[code] = fields
    return content, errors


def errors_by_input(errors: dict[str, str]) -> dict[str, str]:
    """ContentError paths ("fr.subject", "fr.data.x") -> input names ("f.fr.subject")."""
    mapped: dict[str, str] = {}
    for path, message in errors.items():
        locale, _, rest = path.partition(".")
        field = rest.split(".", 1)[0] if rest else ""
        key = field_name(locale, field) if field else f"locale.{locale}"
        mapped.setdefault(key, message)
    return mapped
