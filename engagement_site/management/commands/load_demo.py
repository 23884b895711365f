"""Create the demo workspace (slug `demo`), its owner login, and a deterministic dataset."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from engagement_site.demo import DEMO_USERNAME, demo_owner_and_workspace


class Command(BaseCommand):
    help = "Create or refresh the demo workspace, its owner login and its generated data."

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=20261122)

    def handle(self, *args, profiles: int, seed: int, **options):
        started = time.monotonic()
        workspace, password = demo_owner_and_workspace()
        from content.demo import demo_content_create
        from segments.demo import demo_dataset_load, demo_segments_create

        counts = demo_dataset_load(workspace=workspace, profile_count=profiles, seed=seed)
        demo_segments_create(workspace=workspace)
        demo_content_create(workspace=workspace)
        from delivery.demo import demo_delivery_create

        # The welcome and checkout emails are the demo journeys' (journeys.demo); the
        # in-app cards outside journeys stay a campaign of their own.
        messages = demo_delivery_create(
            workspace=workspace, message_count=120, template_names=("Upgrade card",)
        )
        from journeys.demo import demo_journeys_create

        journeys = demo_journeys_create(workspace=workspace, seed=seed)
        messages += journeys.get("messages", 0)
        from analytics.value import value_demo_configure

        value_demo_configure(workspace=workspace)
        self.stdout.write(
            f"Demo workspace '{workspace.slug}' ready in {time.monotonic() - started:.0f}s: "
            f"{counts['profiles']} profiles, {counts['events']} events, {messages} new messages, "
            f"{journeys.get('journeys', 0)} journeys with {journeys.get('enrollments', 0)} "
            f"enrollments and {journeys.get('conversions', 0)} conversions. "
            f"Log in as {DEMO_USERNAME} / {password}"
        )
