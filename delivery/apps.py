from django.apps import AppConfig
from django.core import checks


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        checks.register(channels_check)


def channels_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A channel that cannot be loaded stops `manage.py check`, `migrate` and
    `runstack` at start-up, naming it, instead of failing the first sends."""
    from delivery.channels import channels

    channels.cache_clear()
    try:
        channels()
    except Exception as error:  # an import error, a non-channel, two with one id
        return [
            checks.Error(
                f"Delivery channels cannot be loaded: {type(error).__name__}: {error}",
                hint="Check DELIVERY_CHANNELS and the packages installed under the "
                "'engagement.channels' entry point group (docs/plugins.md).",
                id="delivery.E001",
            )
        ]
    return []
