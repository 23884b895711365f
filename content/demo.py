"""Demo content: a banner in the media library and a template per channel that reads
the demo data's traits (first_name, plan, locale) and events (checkout_started,
order_completed with revenue and currency). Idempotent: existing templates are kept."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw

from content.models import Asset, Template
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext

DEMO = AuditContext.system("demo data")
BANNER_NAME = "welcome-banner.png"


def _banner() -> bytes:
    width, height = 1200, 400
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    top, bottom = (90, 82, 224), (31, 95, 174)
    for y in range(height):
        mix = y / (height - 1)
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(round(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True)),
        )
    for index in range(9):
        x = 70 + index * 125
        draw.ellipse([x, 250 - index * 12, x + 90, 340 - index * 12], fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _email_html(banner_url: str, heading: str, body: str, button: str) -> str:
    return (
        '<!doctype html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n<style>\n'
        "  body { margin: 0; background: #f4f4f5; font-family: Helvetica, Arial, sans-serif; }\n"
        "  .wrap { max-width: 600px; margin: 0 auto; padding: 24px; }\n"
        "  .card { background: #ffffff; border-radius: 8px; overflow: hidden; color: #1b1b1f; }\n"
        "  .inner { padding: 28px 32px 32px; }\n"
        "  h1 { font-size: 22px; margin: 0 0 12px; }\n"
        "  p { font-size: 15px; line-height: 1.5; margin: 0 0 16px; }\n"
        "  .button { display: inline-block; background: #5a52e0; color: #ffffff;"
        " padding: 12px 20px; border-radius: 6px; text-decoration: none; font-weight: bold; }\n"
        "  .foot { font-size: 12px; color: #8a8a93; text-align: center; padding: 16px; }\n"
        "  @media (max-width: 480px) { .wrap { padding: 8px; } .inner { padding: 20px; } }\n"
        '</style>\n</head>\n<body>\n<div class="wrap">\n<div class="card">\n'
        f'  <img src="{banner_url}" alt="" width="600" style="display:block;max-width:100%;height:auto;border:0">\n'
        f'  <div class="inner">\n    <h1>{heading}</h1>\n    {body}\n'
        f'    <p><a class="button" href="https://shop.example.com/?utm_source=email">{button}</a></p>\n'
        "  </div>\n</div>\n"
        '<div class="foot">{{ workspace.name }} · You get this email because you signed up. '
        '<a href="{{ message.preferences_url }}">Preferences</a> · '
        '<a href="{{ message.unsubscribe_url }}">Unsubscribe</a></div>\n'
        "</div>\n</body>\n</html>\n"
    )


def demo_content_create(*, workspace: Workspace) -> int:
    """Create the demo asset and templates that do not exist yet; returns how many
    templates were created."""
    from content.assets import asset_process, asset_upload
    from content.services import template_create

    asset = Asset.objects.filter(workspace=workspace, name=BANNER_NAME).first()
    if asset is None:
        asset = asset_upload(
            workspace=workspace,
            uploaded_file=SimpleUploadedFile(BANNER_NAME, _banner(), content_type="image/png"),
            context=DEMO,
            tags=["brand", "email"],
        )
        asset_process(asset_id=asset.pk)
    banner = asset.public_url

    templates = {
        ("Welcome email", "email"): {
            "default": {
                "subject": 'Welcome, {{ profile.first_name | default: "friend" }}!',
                "preheader": "Three things to try in your first week",
                "from_name": "{{ workspace.name }}",
                "html": _email_html(
                    banner,
                    'Hi {{ profile.first_name | default: "there" }}, welcome aboard',
                    "<p>You are on the <strong>{{ profile.plan | capitalize }}</strong> plan. "
                    "Here is how to get the most from it this week.</p>",
                    "Start exploring",
                ),
            },
            "fr": {
                "subject": 'Bienvenue, {{ profile.first_name | default: "à vous" }} !',
                "preheader": "Trois choses à essayer cette semaine",
                "from_name": "{{ workspace.name }}",
                "html": _email_html(
                    banner,
                    'Bonjour {{ profile.first_name | default: "" }}, bienvenue',
                    "<p>Vous êtes sur l'offre <strong>{{ profile.plan | capitalize }}</strong>. "
                    "Voici comment en profiter dès cette semaine.</p>",
                    "Découvrir",
                ),
            },
            "de": {
                "subject": 'Willkommen, {{ profile.first_name | default: "" }}!',
                "preheader": "Drei Dinge für Ihre erste Woche",
                "from_name": "{{ workspace.name }}",
                "html": _email_html(
                    banner,
                    'Hallo {{ profile.first_name | default: "" }}, willkommen',
                    "<p>Sie nutzen den Tarif <strong>{{ profile.plan | capitalize }}</strong>. "
                    "So holen Sie diese Woche das Beste heraus.</p>",
                    "Loslegen",
                ),
            },
        },
        ("Checkout reminder", "email"): {
            "default": {
                "subject": "You left {{ event.properties.item_count }} item{% if event.properties.item_count != 1 %}s{% endif %} in your cart",
                "preheader": "Your cart is saved: {{ event.properties.value | money: event.properties.currency }}",
                "from_name": "{{ workspace.name }}",
                "html": _email_html(
                    banner,
                    'Still thinking it over, {{ profile.first_name | default: "friend" }}?',
                    "<p>Your cart worth <strong>{{ event.properties.value | money: "
                    "event.properties.currency }}</strong> is waiting for you.</p>",
                    "Back to my cart",
                ),
            }
        },
        ("Order confirmation SMS", "sms"): {
            "default": {
                "body": '{{ workspace.name }}: thanks {{ profile.first_name | default: "" }}! '
                "Order {{ event.properties.order_id }} ({{ event.properties.revenue | money: "
                "event.properties.currency }}) is confirmed."
            },
            "de": {
                "body": '{{ workspace.name }}: Danke {{ profile.first_name | default: "" }}! '
                "Bestellung {{ event.properties.order_id }} ({{ event.properties.revenue | money: "
                "event.properties.currency }}) ist bestätigt."
            },
        },
        ("Cart reminder push", "push"): {
            "default": {
                "title": "Your cart misses you",
                "body": "{{ event.properties.item_count }} item(s) worth {{ event.properties.value | money: event.properties.currency }} are still in your cart.",
                "image_url": banner,
                "deep_link": "demoshop://cart/{{ event.properties.cart_id }}",
                "data": {"cart_id": "{{ event.properties.cart_id }}", "campaign": "cart-reminder"},
            }
        },
        ("Upgrade card", "in_app"): {
            "default": {
                "title": 'Go Pro, {{ profile.first_name | default: "friend" }}',
                "body": "Unlimited projects and priority support. First month free.",
                "image_url": banner,
                "cta_label": "See plans",
                "cta_url": "https://shop.example.com/pricing?utm_source=in_app",
            }
        },
        ("CRM order sync", "webhook"): {
            "default": {
                "method": "POST",
                "url": "https://crm.example.com/hooks/orders",
                "headers": {"Content-Type": "application/json"},
                "body": '{\n  "user_id": {{ profile.user_id | json }},\n'
                '  "order_id": {{ event.properties.order_id | json }},\n'
                '  "revenue": {{ event.properties.revenue | json }}\n}',
            }
        },
    }
    created = 0
    for (name, channel), content in templates.items():
        if Template.objects.filter(workspace=workspace, name=name).exists():
            continue
        template_create(
            workspace=workspace, name=name, channel=channel, content=content, context=DEMO
        )
        created += 1
    return created
