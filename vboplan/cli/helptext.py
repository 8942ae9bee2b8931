"""Examples and exit codes shown at the end of each command's ``--help``: the way a user learns a command is by
seeing it used."""

from __future__ import annotations

import click

EXIT_CODES = """\
Exit codes:
  0  success (plan: no changes, or changes without --detailed-exitcode)
  1  an error or a refusal (bad template, unreachable server, stale plan, missing approvals...)"""

PLAN_EXIT_CODES = EXIT_CODES + """
  2  changes present (only with --detailed-exitcode)"""

# Command path (as typed after "vboplan") -> example lines.
EXAMPLES: dict[str, list[str]] = {
    "": ["vboplan validate --all", "vboplan plan --env prod --out plans/prod.json",
         "vboplan approve plans/prod.json --key ~/.ssh/id_ed25519 --ticket CHG-1234", "vboplan apply plans/prod.json",
         "vboplan completion bash >> ~/.bashrc"],
    "validate": ["vboplan validate --all", "vboplan validate --env dev --env prod",
                 "vboplan validate --env dev --var smtp.port=2525"],
    "render": ["vboplan render --env prod", "vboplan render --env prod --format json > prod-desired.json"],
    "plan": ["vboplan plan --env dev", "vboplan plan --env prod --out plans/prod.json",
             "vboplan plan --env prod --out plans/prod.json --sign-key ~/.ssh/id_ed25519",
             "vboplan plan --all --out 'plans/{env}.json' --format markdown > plan.md",
             "vboplan plan --env prod --format html > prod-plan.html   # for the change ticket",
             "vboplan plan --env prod --target audit_email_settings --detailed-exitcode",
             "vboplan plan --env prod --exclude 'audit_items[\"contoso.onmicrosoft.com\"]' --out plans/prod.json",
             "vboplan plan --env dev --var smtp.host=smtp.lab.local --var smtp.port=2525",
             "vboplan plan --env prod --refresh-only --out plans/prod-refresh.json   # accept a console change"],
    "check": ["vboplan check --all --offline   # in CI, without credentials",
              "vboplan check --label tier=prod --format markdown > compliance.md",
              "vboplan check --env prod --format html > prod-compliance.html"],
    "show": ["vboplan show plans/prod.json", "vboplan show plans/prod.json --requests",
             "vboplan show plans/prod.json --format html --requests > CHG-1234.html"],
    "approve": ["vboplan approve plans/prod.json --key ~/.ssh/id_ed25519 --ticket CHG-1234",
                "vboplan approve plans/prod.json --key ~/.ssh/id_ed25519.pub --change c3 --comment 'checked with HR'",
                "vboplan approve plans/prod.json --merge alice-copy.json --merge bob-copy.json"],
    "apply": ["vboplan apply plans/prod.json", "vboplan apply --env dev", "vboplan apply --env dev --auto-approve",
              "vboplan apply plans/prod.json --lock-timeout 60s   # wait for a colleague's apply to end"],
    "state": ["vboplan state show --env prod", "vboplan state list --env prod",
              "vboplan state rm --env prod audit_email_settings.port"],
    "state list": ["vboplan state list --env prod", "vboplan state list --env prod audit_items"],
    "state rm": ["vboplan state rm --env prod audit_email_settings.userPassword",
                 "vboplan state rm --env prod 'audit_items[\"contoso.onmicrosoft.com\"]' --lock-timeout 60s"],
    "state show": ["vboplan state show --env prod", "vboplan state show --env prod --format json"],
    "state unlock": ["vboplan state unlock --env prod 6f1c2e9a"],
    "state migrate": ["vboplan state migrate --all --to-configured-backend --lock-timeout 2m",
                      "vboplan state migrate --env prod --to-configured-backend"],
    "import": ["vboplan import --env prod --dry-run", "vboplan import --env dev --env prod",
               "vboplan import --env prod --resource audit_email_settings --resource audit_items"],
    "fmt": ["vboplan fmt", "vboplan fmt --check   # in CI: exit 1 listing the files not laid out",
            "vboplan fmt --check --diff"],
    "init": ["vboplan init vbo-settings   # a new project that plans against the embedded emulator",
             "vboplan init --signers approvers/keys --signers-file approvers/prod.allowed_signers",
             "vboplan init --migrate-state   # after adding 'state:' to vboplan.yaml"],
    "completion": ["vboplan completion bash > ~/.local/share/bash-completion/completions/vboplan",
                   "vboplan completion zsh > \"${fpath[1]}/_vboplan\"",
                   "vboplan completion fish > ~/.config/fish/completions/vboplan.fish",
                   "vboplan completion powershell >> $PROFILE"],
    "emulator": ["vboplan emulator serve --port 4443 --data lab.yaml"],
    "emulator generate": ["vboplan emulator generate --organizations 10 --users 100000 --groups 500 --out big.json"],
    "emulator serve": ["vboplan emulator serve --port 4443 --data lab.yaml",
                       "vboplan emulator serve --port 0 --tls --latency-ms 1500   # a slow server"],
}


def epilog(path: str) -> str:
    """The end of ``--help`` for the command at ``path``: examples, then exit codes. ``\\b`` keeps click from
    re-wrapping the lines."""
    lines = ["\b", "Examples:", *(f"  {line}" for line in EXAMPLES.get(path, []))] if path in EXAMPLES else []
    codes = PLAN_EXIT_CODES if path == "plan" else EXIT_CODES
    return "\n".join([*lines, "", "\b", codes])


def attach(group: click.Group, prefix: str = "") -> None:
    """Give ``group`` and every command under it its examples and exit codes."""
    group.epilog = epilog(prefix)
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            attach(command, path)
        else:
            command.epilog = epilog(path)
