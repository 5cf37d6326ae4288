"""What the pages say the person is signing in to: the vendor's app name, the vendor, a logo, a
support contact and the ICP filing number (the BRIDGE_BRAND_* settings). Read once from the config;
the templates get a `branding` object (every page) and `site_name` (the header and the title)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ICP_URL = "https://beian.miit.gov.cn/"
LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp", ".gif": "image/gif"}


@dataclass(frozen=True)
class Branding:
    app_name: str = ""
    vendor_name: str = ""
    logo_url: str = ""  # an https:// URL or a data: URI, used as it is
    logo_file: str = ""  # a file in the instance folder, served at /sso/brand/logo
    support: str = ""
    icp: str = ""

    @property
    def support_href(self) -> str | None:
        """mailto: for an e-mail address, the URL itself for a web address, None for plain text."""
        if self.support.startswith(("https://", "http://")):
            return self.support
        if "@" in self.support and " " not in self.support:
            return f"mailto:{self.support}"
        return None

    @property
    def logo_origin(self) -> str | None:
        """The origin a https:// logo is loaded from (the pages' CSP must allow it)."""
        if not self.logo_url.startswith("https://"):
            return None
        parts = urlsplit(self.logo_url)
        return f"{parts.scheme}://{parts.netloc}"


def branding_from(config) -> Branding:
    def text(name: str, limit: int = 120) -> str:
        value = config.get(name)
        return "" if value is None else str(value).strip()[:limit]

    logo = text("BRAND_LOGO", 100_000)
    is_url = logo.startswith(("https://", "data:image/"))
    return Branding(app_name=text("BRAND_APP_NAME"), vendor_name=text("BRAND_VENDOR_NAME"),
                    logo_url=logo if is_url else "", logo_file="" if is_url else logo,
                    support=text("BRAND_SUPPORT", 200), icp=text("BRAND_ICP", 64))


def logo_problem(config, instance_path: str) -> str | None:
    """Why BRIDGE_BRAND_LOGO cannot be shown, or None (checked at start-up)."""
    raw = str(config.get("BRAND_LOGO") or "").strip()
    if not raw or raw.startswith(("https://", "data:image/")):
        return None
    if ":" in raw.split("/")[0] or logo_path(branding_from(config), instance_path) is None:
        return (f"BRIDGE_BRAND_LOGO={raw[:80]!r} must be an https:// URL, a data:image/ URI, or the name of an "
                f"image file ({', '.join(LOGO_TYPES)}) inside the instance folder")
    return None


def logo_path(brand: Branding, instance_path: str) -> Path | None:
    """The logo file inside the instance folder, or None when it is not one (or not there)."""
    if not brand.logo_file:
        return None
    folder = Path(instance_path).resolve()
    path = (folder / brand.logo_file).resolve()
    if folder not in path.parents or path.suffix.lower() not in LOGO_TYPES or not path.is_file():
        return None
    return path
