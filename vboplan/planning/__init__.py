"""From desired and live values to a plan: addresses and changes, the plan and its file, the mass-delete guard."""
