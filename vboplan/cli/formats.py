"""The plan output formats, named apart from their renderers in :mod:`vboplan.output` so the CLI can offer them
without loading those at start-up."""

FORMATS = ("table", "markdown", "json", "html")
