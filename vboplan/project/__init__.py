"""The user's repository as vboplan reads and writes it: ``vboplan.yaml`` and environments (:mod:`.config`),
templates rendered to desired resources (:mod:`.render`), YAML with line numbers, and ``import`` writing new files."""
