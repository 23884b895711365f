"""STORAGES entries of the content library, from the environment.

"assets" holds originals and thumbnails (private: served to members through the app,
or by signed URLs); "assets_public" holds the copies messages link to (public URLs).
"""

from __future__ import annotations

from pathlib import Path

from engagement_site.env import env_str, required


def asset_storages_from_env(kind: str, *, media_root: Path) -> dict[str, dict]:
    if kind == "local":
        return {
            "assets": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": media_root / "assets", "base_url": None},
            },
            "assets_public": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": media_root / "public", "base_url": "/media/public/"},
            },
        }
    common = {
        "endpoint_url": env_str("S3_ENDPOINT_URL", None),
        "region_name": env_str("S3_REGION", None),
        "access_key": env_str("S3_ACCESS_KEY_ID", None),
        "secret_key": env_str("S3_SECRET_ACCESS_KEY", None),
        "file_overwrite": False,
    }
    private_bucket = required(
        "S3_PRIVATE_BUCKET", env_str("S3_PRIVATE_BUCKET", None), "with ASSET_STORAGE=s3"
    )
    public_bucket = required(
        "S3_PUBLIC_BUCKET", env_str("S3_PUBLIC_BUCKET", None), "with ASSET_STORAGE=s3"
    )
    public_options = {
        **common,
        "bucket_name": public_bucket,
        "default_acl": env_str("S3_PUBLIC_ACL", "public-read") or None,
        "querystring_auth": False,
    }
    public_domain = env_str("S3_PUBLIC_DOMAIN", None)
    if public_domain:
        public_options["custom_domain"] = public_domain
    return {
        "assets": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                **common,
                "bucket_name": private_bucket,
                "default_acl": "private",
                "querystring_auth": True,
            },
        },
        "assets_public": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": public_options,
        },
    }
