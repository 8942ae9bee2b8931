"""The command line: click commands (:mod:`.commands`), their help examples, completion and output formats."""
