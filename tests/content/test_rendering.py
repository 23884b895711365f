"""Rendering: personalization from traits and trigger events with fallbacks, the
sandbox and its limits, filters, per-channel output (email CSS, preheader, text part;
webhook JSON; URLs), syntax checks and undefined-variable warnings, SMS counting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from content.rendering import (
    TemplateRenderError,
    build_context,
    check_syntax,
    render_content,
    undefined_variables,
)
from content.sms import sms_stats

ADA = {
    "id": 7,
    "user_id": "u-7",
    "email": "ada@example.com",
    "locale": "en-GB",
    "traits": {"first_name": "Ada", "plan": "pro"},
}
ORDER = {
    "name": "order_completed",
    "properties": {
        "product_name": "Desk lamp",
        "revenue": 1234.5,
        "currency": "EUR",
        "items": [{"sku": "A"}, {"sku": "B"}],
    },
}


def _sms(body: str, *, context=None, locale: str = "") -> str:
    context = context if context is not None else build_context(profile=ADA, event=ORDER)
    return render_content(
        channel="sms", content={"default": {"body": body}}, locale=locale, context=context
    ).fields["body"]


def test_traits_event_properties_and_fallbacks():
    assert (
        _sms(
            "Hi {{ profile.first_name | default: 'there' }}, your {{ event.properties.product_name }}"
        )
        == "Hi Ada, your Desk lamp"
    )
    nobody = build_context(profile={"traits": {}}, event={"name": "x", "properties": {}})
    assert (
        _sms(
            "Hi {{ profile.first_name | default: 'there' }}{{ event.properties.product_name }}!",
            context=nobody,
        )
        == "Hi there!"
    )
    assert _sms("{% for item in event.properties.items %}{{ item.sku }}{% endfor %}") == "AB"
    assert (
        _sms("{{ profile.user_id }} {{ profile.email }} {{ profile.traits.plan }}")
        == "u-7 ada@example.com pro"
    )


def test_context_is_plain_data_and_python_internals_render_nothing():
    profile = SimpleNamespace(
        pk=1, user_id="u1", email="", phone="", locale="", time_zone="", first_seen=None, last_seen=None,
        traits={"first_name": "Ada"},
    )  # fmt: skip
    context = build_context(profile=profile, workspace=SimpleNamespace(name="Acme", slug="acme"))
    assert type(context["profile"]) is dict and type(context["workspace"]) is dict
    body = (
        "[{{ profile.__class__ }}][{{ profile.__init__.__globals__ }}][{{ workspace.__dict__ }}]"
        "[{{ profile.first_name.upper }}][{{ profile.items }}]"
    )
    assert _sms(body, context=context) == "[][][][][]"


def test_a_huge_loop_stops_at_the_limit_with_a_clear_error():
    with pytest.raises(TemplateRenderError) as caught:
        _sms("{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}")
    assert str(caught.value) == "default.body: loop iteration limit reached (1000)"
    assert (caught.value.locale, caught.value.field) == ("default", "body")


def test_output_is_limited():
    with pytest.raises(TemplateRenderError, match=r"output limit reached \(1,000,000 characters\)"):
        _sms("{% assign s = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' %}"
             "{% for i in (1..999) %}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}{% endfor %}")  # fmt: skip


def test_filter_errors_fail_the_message_with_their_reason():
    with pytest.raises(TemplateRenderError) as caught:
        _sms("{{ profile.plan | money: 'EUR' }}")
    assert str(caught.value) == "default.body: 'pro' is not a number"


def test_money_number_dates_and_url_params():
    assert (
        _sms("{{ event.properties.revenue | money: event.properties.currency }}", locale="en-US")
        == "€1,234.50"
    )
    assert _sms("{{ event.properties.revenue | money: 'EUR' }}", locale="de-DE") == "1.234,50\xa0€"
    assert _sms("{{ event.properties.missing | money: 'EUR' }}|{{ nothing | number }}") == "|"
    assert _sms("{{ 1234.5 | number }} {{ 2 | number: 2 }}", locale="en") == "1,234.5 2.00"
    assert (
        _sms("{{ '2026-11-22T09:30:00Z' | datetime: 'short', 'Europe/Paris' }}", locale="fr-FR")
        == "22/11/2026 10:30"
    )
    assert _sms("{{ '2026-11-22' | date_only: 'long' }}", locale="en") == "November 22, 2026"
    assert _sms(
        "{{ 'https://shop.example/?a=1&utm_source=x' | url_param: 'utm_source', 'email' }}"
    ) == ("https://shop.example/?a=1&utm_source=email")
    assert _sms("{{ profile.first_name | json }} {{ nothing | json }}") == '"Ada" null'


def test_locale_fallback_picks_region_then_language_then_default():
    content = {
        "default": {"body": "Hello"},
        "fr": {"body": "Bonjour"},
        "pt-BR": {"body": "Olá"},
    }
    used = {
        locale: render_content(channel="sms", content=content, locale=locale, context={}).locale
        for locale in ("fr-CA", "fr", "pt-BR", "pt-PT", "de", "", "not a locale")
    }
    assert used == {
        "fr-CA": "fr",
        "fr": "fr",
        "pt-BR": "pt-BR",
        "pt-PT": "default",
        "de": "default",
        "": "default",
        "not a locale": "default",
    }


def test_email_inlines_css_adds_the_preheader_and_makes_the_text_part():
    rendered = render_content(
        channel="email",
        content={
            "default": {
                "subject": "Hi {{ profile.first_name }}",
                "preheader": "Your lamp ships today",
                "from_name": "",
                "reply_to": "",
                "html": "<html><head><style>p { color: red } @media (max-width: 400px) { p { color: blue } }</style></head>"
                "<body><p>Hello {{ profile.first_name }}</p><a href='https://x.example/'>Track</a></body></html>",
                "text": "",
            }
        },
        locale="",
        context=build_context(profile=ADA),
    )
    html = rendered.fields["html"]
    assert '<p style="color: red;">Hello Ada</p>' in html
    assert "@media (max-width: 400px)" in html  # kept for mail clients that read <style>
    assert html.index("Your lamp ships today") < html.index("Hello Ada")
    assert rendered.fields["text"] == "Hello Ada\n\n[Track](https://x.example/)\n"
    explicit = render_content(
        channel="email",
        content={
            "default": {
                "subject": "s",
                "preheader": "",
                "from_name": "",
                "reply_to": "",
                "html": "<p>x</p>",
                "text": "Plain {{ profile.first_name }}",
            }
        },
        locale="",
        context=build_context(profile=ADA),
    )
    assert explicit.fields["text"] == "Plain Ada"


def test_webhook_body_must_be_json_once_rendered_and_urls_must_be_safe():
    webhook = {
        "method": "POST",
        "url": "https://hooks.example/{{ profile.user_id }}",
        "headers": {"X-User": "{{ profile.user_id }}"},
        "body": '{"name": {{ profile.first_name | json }}}',
    }
    rendered = render_content(
        channel="webhook",
        content={"default": webhook},
        locale="",
        context=build_context(profile=ADA),
    )
    assert rendered.fields == {
        "method": "POST",
        "url": "https://hooks.example/u-7",
        "headers": {"X-User": "u-7"},
        "body": '{"name": "Ada"}',
    }
    with pytest.raises(TemplateRenderError, match=r"^default\.body: the rendered body is not JSON"):
        render_content(
            channel="webhook",
            content={"default": {**webhook, "body": '{"name": {{ profile.first_name }}}'}},
            locale="",
            context=build_context(profile=ADA),
        )
    with pytest.raises(
        TemplateRenderError, match=r"^default\.cta_url: javascript: links are not allowed$"
    ):
        render_content(
            channel="in_app",
            content={"default": {"title": "t", "cta_url": "javascript:alert(1)"}},
            locale="",
            context={},
        )
    with pytest.raises(TemplateRenderError, match=r"is not an absolute http\(s\) URL"):
        render_content(
            channel="web_push",
            content={"default": {"title": "t", "url": "/relative"}},
            locale="",
            context={},
        )
    push = render_content(
        channel="push",
        content={
            "default": {
                "title": "t",
                "deep_link": "myshop://cart/{{ profile.user_id }}",
                "data": {"k": "{{ profile.plan }}"},
            }
        },
        locale="",
        context=build_context(profile=ADA),
    )
    assert (push.fields["deep_link"], push.fields["data"]) == ("myshop://cart/u-7", {"k": "pro"})


def test_syntax_errors_are_named_by_locale_and_field():
    errors = check_syntax(
        channel="email",
        content={
            "default": {"subject": "Hi {{ profile.first_name", "html": "<p>{% if %}</p>"},
            "fr": {"subject": "{{ x | frobnicate }}", "html": "ok"},
        },
    )
    assert errors == {
        "default.subject": "expected '}}', found end of file (line 1, column 4)",
        "default.html": "missing expression (line 1, column 7)",
        "fr.subject": "unknown filter 'frobnicate'",
    }


def test_undefined_variables_are_flagged_but_assigned_and_loop_variables_are_not():
    warnings = undefined_variables(
        channel="sms",
        content={
            "default": {
                "body": "{{ profile.frist_name }} {{ profile.email }} {% assign total = 3 %}{{ total }}"
                "{% for item in event.properties.items %}{{ item.sku }}{% endfor %}"
                "{{ event.properties.coupon }} {{ customer.name }} {{ event.name }}"
            }
        },
        known_traits={"first_name"},
        known_event_properties={"items"},
    )
    assert [(w["variable"], w["message"]) for w in warnings] == [
        ("profile.frist_name", "no profile has the trait 'frist_name'"),
        ("event.properties.coupon", "no event has the property 'coupon'"),
        (
            "customer.name",
            "there is no variable 'customer'; use profile, event, journey, workspace or message",
        ),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 0, 0, 160, 160)),
        ("x" * 160, ("GSM-7", 160, 1, 160, 0)),
        ("x" * 161, ("GSM-7", 161, 2, 153, 145)),
        ("x" * 306, ("GSM-7", 306, 2, 153, 0)),
        ("€" * 80, ("GSM-7", 160, 1, 160, 0)),  # extension characters count twice
        ("€" * 81, ("GSM-7", 162, 2, 153, 143)),  # and never straddle two parts
        ("Grüße à Noël", ("UCS-2", 12, 1, 70, 58)),  # ë is not in GSM 03.38
        ("é" * 160, ("GSM-7", 160, 1, 160, 0)),  # é is
        ("😀" * 35, ("UCS-2", 70, 1, 70, 0)),  # an emoji is two UTF-16 units
        ("😀" * 36, ("UCS-2", 72, 2, 67, 61)),
        ("x" * 70 + "ë", ("UCS-2", 71, 2, 67, 63)),
    ],
)
def test_sms_segments(text, expected):
    stats = sms_stats(text)
    assert (
        stats.encoding,
        stats.characters,
        stats.segments,
        stats.per_segment,
        stats.remaining,
    ) == expected
