"""Shoppers: the identity graph (anonymous ids ↔ user), consent, loyalty, region and stated preferences."""

from shopkeep.profiles.identity import IdentityGraph
from shopkeep.profiles.model import Consent, Profile, parse_preferences, parse_profile, profile_to_dict
from shopkeep.profiles.repository import ProfileRepository

__all__ = [
    "Consent",
    "IdentityGraph",
    "Profile",
    "ProfileRepository",
    "parse_preferences",
    "parse_profile",
    "profile_to_dict",
]
