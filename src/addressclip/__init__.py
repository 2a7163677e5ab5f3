"""addressclip: Image Address Localization (AddressCLIP) — from a street-level photo to an address."""

__version__ = "0.1.0"
