"""A provider whose optional dependency is missing: the registry must name the package."""

import vendorx_sdk_not_installed  # noqa: F401


class BrokenProvider:
    pass
