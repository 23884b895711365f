"""The content library in a real browser: drop an image on the media library, watch
the RQ job make its thumbnail, write an email template that uses the image and a trait,
preview it for a real profile (and in a translation), save, and find the image public
and "used in" the template."""

from __future__ import annotations

import base64
import io
import re

import django_rq
import pytest
from PIL import Image
from playwright.sync_api import expect
from rq import SimpleWorker

from content.models import Asset, AssetUsage, Template
from segments.models import Profile
from tests.conftest import PASSWORD
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (90, 82, 224))
    for x in range(0, width, 20):
        for y in range(height):
            image.putpixel((x, y), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _run_jobs() -> None:
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def _login(page, username: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/"))


def test_drop_an_image_write_an_email_with_it_and_preview_it_for_a_profile(page, owner, workspace):
    Profile.objects.create(
        workspace=workspace,
        user_id="u-ada",
        email="ada@example.com",
        locale="fr-CA",
        traits={"first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace"},
    )
    Profile.objects.create(
        workspace=workspace, user_id="u-bob", email="bob@example.com", traits={"first_name": "Bob"}
    )
    _login(page, owner.username)

    # 1. Drop a PNG on the media library.
    page.goto(f"/w/{workspace.slug}/content/media/")
    expect(page.get_by_text("Drop images and videos here")).to_be_visible()
    encoded = base64.b64encode(_png(640, 320)).decode()
    transfer = page.evaluate_handle(
        """(encoded) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "hero banner.png", { type: "image/png" }));
            return transfer;
        }""",
        encoded,
    )
    page.dispatch_event("[data-media-library]", "dragenter", {"dataTransfer": transfer})
    expect(page.locator("[data-drop-overlay]")).to_be_visible()
    page.dispatch_event("[data-media-library]", "drop", {"dataTransfer": transfer})
    card = page.locator(".asset-card", has_text="hero banner.png")
    expect(card).to_be_visible()
    expect(page.locator("[data-drop-overlay]")).to_be_hidden()
    asset = Asset.objects.get(workspace=workspace)
    assert (asset.name, asset.mime_type, asset.kind) == ("hero banner.png", "image/png", "image")

    # 2. The processing job makes the thumbnail and reads the dimensions; the card
    # (polling) shows them.
    _run_jobs()
    expect(card.get_by_text("640\u00d7320")).to_be_visible()
    expect(card.locator(".asset-thumb img")).to_have_count(1)
    screenshot(page, "content-media-library")

    # 3. A new email template.
    page.goto(f"/w/{workspace.slug}/content/templates/new")
    page.fill("#template-name", "Welcome")
    page.check("input[name=channel][value=email]")
    page.click("[data-testid=create-template]")
    page.wait_for_url(re.compile(r"/content/templates/\d+/$"))
    template = Template.objects.get(workspace=workspace, name="Welcome")

    # 4. Write the body: a trait, then the image from the library at the cursor.
    html = page.locator("textarea[name='f.default.html']")
    html.fill(
        "<html><head><style>h1 { color: #5a52e0; }</style></head><body>"
        "<h1>Hello {{ profile.first_name | default: 'there' }}!</h1>\n</body></html>"
    )
    html.evaluate(
        "(field) => field.setSelectionRange(field.value.indexOf('</body>'), field.value.indexOf('</body>'))"
    )
    page.fill("input[name='f.default.subject']", "Welcome aboard, {{ profile.first_name }}")
    page.click("[data-pick-asset='f.default.html']")
    page.locator("#asset-picker [data-pick-asset-id]", has_text="hero banner.png").click()
    expect(page.locator("#asset-picker")).to_be_hidden()
    assert asset.public_token in html.input_value()

    # 5. Preview for Ada, found by search.
    page.fill("#preview-profile-search", "ada")
    page.locator("[data-pick-profile]", has_text="Ada Lovelace").click()
    expect(page.locator("[data-testid=preview-profile]")).to_have_text("Ada Lovelace")
    expect(page.locator("[data-testid=preview-subject]")).to_have_text("Welcome aboard, Ada")
    frame = page.frame_locator("[data-testid=preview-frame]")
    expect(frame.locator("h1")).to_have_text("Hello Ada!")
    # CSS is inlined at render time.
    assert "color" in (frame.locator("h1").get_attribute("style") or "")
    page.check("[data-testid=width-mobile]", force=True)
    expect(page.locator(".email-preview--mobile")).to_be_visible()
    screenshot(page, "content-email-preview")

    # 6. Save: version 2, the image is used by the template and public.
    page.click("[data-testid=save-template]")
    expect(page.locator(".toast", has_text="Saved version 2")).to_be_visible()
    template.refresh_from_db()
    assert template.current_version.number == 2
    assert AssetUsage.objects.filter(asset=asset, template=template).count() == 1
    asset.refresh_from_db()
    assert asset.is_public
    # The preview's image now loads from its public address.
    page.fill("#preview-profile-search", "ada")
    page.locator("[data-pick-profile]", has_text="Ada Lovelace").click()
    expect(page.locator("[data-testid=preview-profile]")).to_have_text("Ada Lovelace")
    frame = page.frame_locator("[data-testid=preview-frame]")
    expect(frame.locator("img")).to_have_count(1)
    assert _loaded_width(frame) == 640

    # 7. A French translation, picked for Ada's fr-CA locale by the fallback chain.
    page.fill("[data-new-locale]", "fr")
    page.click("[data-add-locale]")
    page.fill("input[name='f.fr.subject']", "Bienvenue, {{ profile.first_name }}")
    page.select_option("[data-preview-locale]", "profile")
    expect(page.locator("[data-testid=preview-subject]")).to_have_text("Bienvenue, Ada")
    expect(page.locator("[data-testid=preview-locale]")).to_contain_text("fr")
    page.keyboard.press("Control+s")
    expect(page.locator(".toast", has_text="Saved version 3")).to_be_visible()
    template.refresh_from_db()
    assert sorted(template.current_version.content) == ["default", "fr"]

    # 8. The asset page lists the template under "Used in".
    page.goto(f"/w/{workspace.slug}/content/media/{asset.pk}/")
    expect(page.locator("[data-testid=asset-usages]")).to_have_text(re.compile("Welcome"))
    screenshot(page, "content-asset-detail")


def _loaded_width(frame) -> int:
    """The preview image's natural width once it has loaded. The preview frame is
    replaced when the preview renders again (a profile picked, a keystroke): a frame
    detached under the call is looked up again."""
    from playwright.sync_api import Error

    for _ in range(5):
        try:
            return frame.locator("img").evaluate(
                "(img) => img.complete && img.naturalWidth ? img.naturalWidth : new Promise("
                "(resolve, reject) => { img.onload = () => resolve(img.naturalWidth);"
                " img.onerror = () => reject(new Error('image did not load')); })"
            )
        except Error as error:
            if "detached" not in str(error):
                raise
    raise AssertionError("the preview kept re-rendering")
