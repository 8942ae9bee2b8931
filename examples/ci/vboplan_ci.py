#!/usr/bin/env python3
"""The steps vboplan's CI examples run (GitHub Actions and Azure DevOps), as one script that works the same on Linux,
macOS and Windows runners.

    python vboplan_ci.py [-C PROJECT] plan    --out-dir vboplan-plans [--sign-key KEY]   # on a pull request
    python vboplan_ci.py comment --file vboplan-plans/plan.md --provider github|azure|file [--to FILE]
    python vboplan_ci.py [-C PROJECT] apply   PLANFILE_OR_FOLDER ... [--archive DIR]   # on merge

    python vboplan_ci.py [-C PROJECT] plan-shard --shard I/N --out-dir DIR   # a fleet: one CI job per shard
    python vboplan_ci.py [-C PROJECT] report DIR ... --out vboplan-report.md # then one job over every shard

Run it with the Python vboplan is installed in (``pip install ...`` in the same job, or the virtual environment's
``python``): it runs ``python -m vboplan`` with that interpreter, and says so when vboplan is not there.

``plan`` plans every environment, writes each plan file (``<env>.json``, the artifact an approver signs and the
merge applies), the Markdown for the pull request (``plan.md``) and the JSON of all plans (``plans.json``). It exits
1 if an environment could not be planned, after writing what it could (the Markdown names the failure). Each plan
file is signed as its author by the runner's key (``--sign-key``, default VBOPLAN_AUTHOR_KEY; list it in each
environment's allowed_signers, best with ``namespaces="vboplan-plan"`` so it can sign nothing else) and records the
commits its templates and variable files came from since the environment's last apply: whoever signed one of
those commits (``git commit -S`` with an SSH key listed in allowed_signers) is an author too and cannot approve
it. Check out the pull request's own commits with their whole history (``fetch-depth: 0``).

``comment`` posts the Markdown on the pull request, or updates the comment it posted before (it carries a hidden
marker), so a pull request has one plan comment that follows its latest push. ``github`` needs GITHUB_TOKEN,
GITHUB_REPOSITORY and PR_NUMBER (GITHUB_API_URL for GitHub Enterprise); ``azure`` needs SYSTEM_ACCESSTOKEN,
SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT, BUILD_REPOSITORY_ID and SYSTEM_PULLREQUEST_PULLREQUESTID (what Azure
Pipelines sets); ``file`` writes to ``--to`` (for trying it out).

``apply`` applies each plan file given (a folder means every ``*.json`` in it) with ``vboplan apply``, which refuses
a plan that is stale, altered or not approved; the state backend of vboplan.yaml (S3 or Azure Blob) and its lock
make this safe from any runner. It exits 1 if any apply failed. With ``--archive DIR`` each plan file that applied
is moved into DIR (``plans/applied/``, kept out of the folder applied next time), so the next merge applies only
the plan files committed since; the workflow commits that move.

``plan-shard`` plans the I-th of N stable slices of the fleet (``vboplan plan --all --shard I/N --out-dir DIR``):
one plan file per environment, converged ones included, and a failure record for each that could not be planned.
``report`` merges the directories of every shard into one report (``vboplan report``): ``--out`` gets the Markdown
for the pull request, ``--json`` the JSON with the fleet's totals. Both exit 1 if an environment failed to plan,
after writing what they could.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MARKER = "<!-- vboplan-plan -->"


def vboplan(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vboplan", "-C", str(project), "--no-color", *args]
    return subprocess.run(command, capture_output=True, text=True, encoding="utf-8", check=False)


def require_vboplan() -> None:
    """Stop with one line when this Python cannot run vboplan (a system Python beside a virtual environment's)."""
    found = subprocess.run([sys.executable, "-m", "vboplan", "--version"], capture_output=True, text=True,
                           encoding="utf-8", check=False)
    if found.returncode != 0:
        last = (found.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"Error: vboplan does not run with {sys.executable} ({last}): install it for this Python, "
                         "or run this script with the Python it is installed in")


def environments(project: Path) -> list[str]:
    listed = vboplan(project, "validate", "--all")
    if listed.returncode != 0:
        sys.stderr.write(listed.stderr)
        raise SystemExit(1)
    return [line.split(":", 1)[0] for line in listed.stdout.splitlines() if ":" in line]


def provenance(project: Path, planfile: Path) -> list[str]:
    """Who the plan's author is and which commits it came from, as ``vboplan show`` verified them: the lines a
    reviewer of the pull request needs to know who may not approve it."""
    shown = vboplan(project, "show", str(planfile))
    lines = [line for line in shown.stdout.splitlines()
             if line.startswith(("author:", "commits:", "  commit "))] if shown.returncode == 0 else []
    return ["```", *lines, "```", ""] if lines else []


def plan(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections, documents, failed = [MARKER, "## vboplan plan", ""], [], False
    for env in environments(args.project):
        planfile = out / f"{env}.json"
        signing = ["--sign-key", args.sign_key] if args.sign_key else []
        result = vboplan(args.project, "plan", "--env", env, "--out", str(planfile), "--format", "markdown",
                         *signing)
        sys.stderr.write(result.stderr)
        if result.returncode != 0:
            failed = True
            errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")] or ["Error: (none)"]
            sections += [f"### {env}: could not be planned", "", "```", *errors, "```", ""]
            documents.append({"environment": env, "error": "\n".join(errors)})
            continue
        sections += [result.stdout.rstrip(), "", *provenance(args.project, planfile)]
        shown = vboplan(args.project, "show", str(planfile), "--format", "json")
        # show --format json prints {"format_version": 2, "plans": [the plan]}.
        documents.append(json.loads(shown.stdout)["plans"][0] if shown.returncode == 0 else
                         {"environment": env, "error": shown.stderr.strip()})
    (out / "plan.md").write_text("\n".join(sections) + "\n", encoding="utf-8")
    (out / "plans.json").write_text(json.dumps({"format_version": 2, "plans": documents}, indent=2) + "\n",
                                    encoding="utf-8")
    print(f"Plans of {len(documents)} environments in {out}")
    return 1 if failed else 0


def comment(args: argparse.Namespace) -> int:
    body = Path(args.file).read_text(encoding="utf-8")
    if MARKER not in body:
        body = f"{MARKER}\n{body}"
    if args.provider == "file":
        Path(args.to).write_text(body, encoding="utf-8")
        return 0
    import httpx

    if args.provider == "github":
        api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        repo, number = os.environ["GITHUB_REPOSITORY"], os.environ["PR_NUMBER"]
        headers = {"Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}", "Accept": "application/vnd.github+json"}
        with httpx.Client(base_url=api, headers=headers, timeout=30) as http:
            mine = None
            url: str | None = f"/repos/{repo}/issues/{number}/comments?per_page=100"
            while url and mine is None:
                page = http.get(url)
                page.raise_for_status()
                mine = next((c for c in page.json() if MARKER in (c.get("body") or "")), None)
                url = page.links.get("next", {}).get("url")
            if mine:
                http.patch(f"/repos/{repo}/issues/comments/{mine['id']}", json={"body": body}).raise_for_status()
            else:
                http.post(f"/repos/{repo}/issues/{number}/comments", json={"body": body}).raise_for_status()
        return 0
    base = (f"{os.environ['SYSTEM_COLLECTIONURI'].rstrip('/')}/{os.environ['SYSTEM_TEAMPROJECT']}/_apis/git/"
            f"repositories/{os.environ['BUILD_REPOSITORY_ID']}/pullRequests/"
            f"{os.environ['SYSTEM_PULLREQUEST_PULLREQUESTID']}/threads")
    version = {"api-version": "7.1"}
    headers = {"Authorization": f"Bearer {os.environ['SYSTEM_ACCESSTOKEN']}"}
    with httpx.Client(headers=headers, timeout=30) as http:
        threads = http.get(base, params=version)
        threads.raise_for_status()
        for thread in threads.json().get("value", []):
            first = (thread.get("comments") or [{}])[0]
            if MARKER in (first.get("content") or ""):
                http.patch(f"{base}/{thread['id']}/comments/{first['id']}", params=version,
                           json={"content": body}).raise_for_status()
                return 0
        http.post(base, params=version, json={"comments": [{"parentCommentId": 0, "content": body,
                                                            "commentType": 1}], "status": "active"}
                  ).raise_for_status()
    return 0


def plan_shard(args: argparse.Namespace) -> int:
    result = vboplan(args.project, "-q", "plan", "--all", "--shard", args.shard, "--out-dir", args.out_dir)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def report(args: argparse.Namespace) -> int:
    markdown = vboplan(args.project, "report", *args.dirs, "--format", "markdown")
    sys.stderr.write(markdown.stderr)
    if not markdown.stdout:  # refused (a shard's folder missing, say): the pull request is told why
        errors = [line for line in markdown.stderr.splitlines() if line.startswith("Error:")] or ["Error: (none)"]
        Path(args.out).write_text("\n".join([MARKER, "## vboplan fleet report: not made", "", "```", *errors, "```", ""]),
                                  encoding="utf-8")
        return 1
    Path(args.out).write_text(f"{MARKER}\n{markdown.stdout}", encoding="utf-8")
    if args.json:
        document = vboplan(args.project, "report", *args.dirs, "--format", "json")
        Path(args.json).write_text(document.stdout, encoding="utf-8")
    print(f"Report of {len(args.dirs)} shard folder{'s' if len(args.dirs) != 1 else ''} in {args.out}")
    return markdown.returncode


def archive(planfile: Path, folder: Path) -> Path:
    """Move an applied plan file into ``folder`` under a name no later plan file of the environment takes."""
    import datetime

    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{planfile.stem}-{stamp}{planfile.suffix}"
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{planfile.stem}-{stamp}-{number}{planfile.suffix}"
    planfile.replace(target)
    return target


def apply(args: argparse.Namespace) -> int:
    files: list[Path] = []
    for given in args.planfiles:
        path = Path(given) if Path(given).is_absolute() else args.project / given
        files += sorted(p for p in path.glob("*.json") if p.name != "plans.json") if path.is_dir() else [path]
    if not files:
        print("No plan file to apply")
        return 0
    failed = 0
    for planfile in files:
        result = vboplan(args.project, "apply", str(planfile))
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        failed += result.returncode != 0
        if result.returncode == 0 and args.archive:
            folder = Path(args.archive) if Path(args.archive).is_absolute() else args.project / args.archive
            print(f"Archived {planfile.name} as {archive(planfile, folder)}")
    print(f"Applied {len(files) - failed} of {len(files)} plan files")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-C", dest="project", type=Path, default=Path("."), help="the vboplan project (vboplan.yaml)")
    steps = parser.add_subparsers(dest="step", required=True)
    planning = steps.add_parser("plan", help="plan every environment")
    planning.add_argument("--out-dir", default="vboplan-plans")
    planning.add_argument("--sign-key", default=os.environ.get("VBOPLAN_AUTHOR_KEY"),
                          help="the runner's SSH key that signs each plan as its author (default: VBOPLAN_AUTHOR_KEY)")
    commenting = steps.add_parser("comment", help="post or update the pull request's plan comment")
    commenting.add_argument("--file", required=True)
    commenting.add_argument("--provider", choices=("github", "azure", "file"), required=True)
    commenting.add_argument("--to", help="with --provider file: where to write")
    applying = steps.add_parser("apply", help="apply approved plan files")
    applying.add_argument("planfiles", nargs="+")
    applying.add_argument("--archive", metavar="DIR", help="move each plan file that applied into DIR")
    sharding = steps.add_parser("plan-shard", help="plan one shard of the fleet")
    sharding.add_argument("--shard", required=True, metavar="I/N")
    sharding.add_argument("--out-dir", default="vboplan-plans")
    reporting = steps.add_parser("report", help="one report over the plan folders of every shard")
    reporting.add_argument("dirs", nargs="+", metavar="DIR")
    reporting.add_argument("--out", default="vboplan-report.md", help="the Markdown for the pull request")
    reporting.add_argument("--json", help="also write the report's JSON (fleet totals) here")
    args = parser.parse_args(argv)
    if args.step != "comment":
        require_vboplan()
    return {"plan": plan, "comment": comment, "apply": apply, "plan-shard": plan_shard,
            "report": report}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
