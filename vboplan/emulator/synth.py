"""Synthetic tenants for tests and benchmarks: many organizations, users and groups, deterministic per seed."""

from __future__ import annotations

import random
from typing import Any

_FIRST = ("Adele", "Alex", "Allan", "Bianca", "Christie", "Debra", "Diego", "Emily", "Enrico", "Grady", "Henrietta",
          "Irvin", "Isaiah", "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti",
          "Pradeep",
          "Raul", "Sofia", "Tomas", "Uma", "Vera", "Wanda", "Yusuf")
_LAST = ("Vance", "Wilber", "Deyoung", "Pires", "Cline", "Berg", "Siciliani", "Braun", "Mondadori", "Archie",
         "Gonzalez", "Sellers", "Henderson", "Lauer", "Sherman", "Gu", "Holloway", "Robbins", "Bowen", "Hooper",
         "Wilke", "Fernandez", "Gupta", "Rodriguez", "Novak", "Keller", "Osei", "Lindqvist", "Tanaka", "Haddad")
_DEPARTMENTS = ("Finance", "HR", "Legal", "Sales", "Marketing", "Engineering", "Support", "Operations", "Research",
                "Security", "Facilities", "Procurement")


def generate_tenant(organizations: int, users: int, groups: int, seed: int = 0, *,
                    duplicate_display_names: int = 0) -> dict[str, Any]:
    """Seed data (contract format, without credentials) with ``users`` and ``groups`` spread evenly over
    ``organizations`` named ``org1.onmicrosoft.com``... Users are ``user00001@orgN.onmicrosoft.com`` with unique
    display names; ``duplicate_display_names`` users instead repeat another user's display name (for testing
    ambiguous names). The same arguments always give the same data; ``seed`` shuffles which names go where.
    """
    if organizations < 1 and (users or groups):
        raise ValueError("users and groups need at least one organization")
    rng = random.Random(seed)
    first, last = list(_FIRST), list(_LAST)
    rng.shuffle(first)
    rng.shuffle(last)
    combos = len(first) * len(last)
    orgs: list[dict[str, Any]] = [{"name": f"org{k + 1}.onmicrosoft.com", "users": [], "groups": []}
                                  for k in range(organizations)]
    for i in range(users):
        org_index = i * organizations // users
        round_, slot = divmod(i, combos)
        display = f"{first[slot % len(first)]} {last[slot // len(first)]}" + (f" {round_ + 1}" if round_ else "")
        domain = orgs[org_index]["name"]
        orgs[org_index]["users"].append({"displayName": display, "name": f"user{i + 1:05d}@{domain}"})
    remaining = duplicate_display_names
    for org in orgs:
        members = org["users"]
        # Pair the k-th user of an organization with its k-th from the end: same display name, same tenant.
        for k in range(len(members) // 2):
            if not remaining:
                break
            members[-1 - k]["displayName"] = members[k]["displayName"]
            remaining -= 1
    for j in range(groups):
        org_index = j * organizations // groups
        department = _DEPARTMENTS[j % len(_DEPARTMENTS)]
        number = j // len(_DEPARTMENTS) + 1
        display = f"{department} Team {number}" if number > 1 else f"{department} Team"
        domain = orgs[org_index]["name"]
        orgs[org_index]["groups"].append({"displayName": display, "name": f"group{j + 1:05d}@{domain}"})
    return {"organizations": orgs}
