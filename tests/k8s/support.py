"""Loading k8s/ (raw files and `kubectl kustomize` builds) and reading the Dockerfile.

Nothing here needs a network, a cluster or a Docker engine. `kubectl kustomize`
works offline; when kubectl is missing only the builds are skipped, the raw files
are still checked.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = {"dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
MONITORING = K8S / "components" / "monitoring"
KUSTOMIZATIONS = {"base": BASE, **OVERLAYS}
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET_TEMPLATE = OVERLAYS["prod"] / "s3-credentials.template.yaml"
CONFIG_NAME = "wxtiles-config"
SECRET_NAME = "wxtiles-s3"
NO_KUBECTL = "kubectl not installed: the kustomize builds are not checked (the raw YAML files still are)"

Resource = dict[str, Any]


# --- YAML ----------------------------------------------------------------------

def yaml_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize `envs:` file: KEY=VALUE lines, `#` comments, blank lines."""
    data: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path.name}:{number}: not KEY=VALUE: {line!r}")
        if key in data:
            raise ValueError(f"{path.name}:{number}: {key} given twice")
        data[key] = value
    return data


def base_raw_resources() -> list[Resource]:
    """The base's resource files as written, plus the ConfigMap its generator would make.

    Needs no kubectl, so the main invariants run on every machine.
    """
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    resources: list[Resource] = []
    for name in kustomization["resources"]:
        resources.extend(load_yaml_documents(BASE / name))
    for generator in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in generator.get("envs", []):
            data.update(read_env_file(BASE / env))
        resources.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return resources


def kubectl() -> str | None:
    return shutil.which("kubectl")


@functools.cache
def kustomize_build(name: str) -> tuple[Resource, ...]:
    """`kubectl kustomize` of k8s/base or an overlay (offline, no cluster)."""
    exe = kubectl()
    assert exe, NO_KUBECTL
    done = subprocess.run(
        [exe, "kustomize", str(KUSTOMIZATIONS[name])], capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {KUSTOMIZATIONS[name].relative_to(ROOT)} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc is not None)


def resources_for(source: str) -> list[Resource]:
    """`base-raw` (always available) or a kustomize build name."""
    if source == "base-raw":
        return base_raw_resources()
    return [json.loads(json.dumps(r)) for r in kustomize_build(source)]  # a private copy


# --- Looking things up in a list of resources -----------------------------------

def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r.get("kind") == kind]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = [r for r in of_kind(resources, kind) if name is None or r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def config_map(resources: list[Resource]) -> Resource:
    """The settings ConfigMap (kustomize gives it a hash suffix)."""
    found = [r for r in of_kind(resources, "ConfigMap") if r["metadata"]["name"].startswith(CONFIG_NAME)]
    assert len(found) == 1, f"expected one ConfigMap {CONFIG_NAME}*, found {len(found)}"
    return found[0]


@dataclass
class Workload:
    """A pod template and where it came from."""

    kind: str
    name: str
    resource: Resource
    pod: Resource  # the pod template's metadata + spec
    path: str = ""

    @property
    def spec(self) -> Resource:
        return self.pod["spec"]

    @property
    def containers(self) -> list[Resource]:
        return list(self.spec.get("initContainers", [])) + list(self.spec["containers"])

    @property
    def main(self) -> Resource:
        return self.spec["containers"][0]


def workloads(resources: list[Resource]) -> list[Workload]:
    out: list[Workload] = []
    for r in resources:
        kind, name = r.get("kind"), r["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append(Workload(kind, name, r, r["spec"]["template"], "spec.template"))
        elif kind == "CronJob":
            out.append(Workload(kind, name, r, r["spec"]["jobTemplate"]["spec"]["template"], "spec.jobTemplate.spec.template"))
        elif kind == "Pod":
            out.append(Workload(kind, name, r, r, ""))
    return out


def server(resources: list[Resource]) -> Workload:
    found = [w for w in workloads(resources) if w.kind == "Deployment" and w.name == "wxtiles"]
    assert len(found) == 1, "expected the Deployment wxtiles"
    return found[0]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- Quantities and schedules -------------------------------------------------

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 10**-3, "": 1,
}


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (`500m`, `1Gi`, `2`) as a number of units (cores, bytes)."""
    match = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|m)?", str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match.group(1)) * _SUFFIXES[match.group(2) or ""]


def cron_period_minutes(schedule: str) -> int:
    """The period of the simple cron forms k8s/ uses: `*/N * * * *`, `M * * * *`, `M H * * *`."""
    fields = schedule.split()
    assert len(fields) == 5, f"not a 5-field cron schedule: {schedule!r}"
    minute, hour, dom, month, dow = fields
    assert (dom, month, dow) == ("*", "*", "*"), f"unexpected cron form {schedule!r}"
    if (m := re.fullmatch(r"\*/(\d+)", minute)) and hour == "*":
        step = int(m.group(1))
        assert 60 % step == 0, f"{schedule!r}: */{step} does not divide the hour evenly"
        return step
    assert minute.isdigit() and 0 <= int(minute) < 60, f"unexpected minute field in {schedule!r}"
    if hour == "*":
        return 60
    assert hour.isdigit() and 0 <= int(hour) < 24, f"unexpected hour field in {schedule!r}"
    return 24 * 60


# --- Traefik rules ------------------------------------------------------------

_RULE_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|(Host|Path|PathPrefix)\(`([^`]*)`\))")


def traefik_rule_matches(rule: str, host: str, path: str) -> bool:
    """Evaluate the subset of Traefik v3 rule syntax k8s/ uses (Host, Path, PathPrefix, &&, ||, !, parentheses).

    v3 semantics: one argument per matcher; `PathPrefix` is a plain string prefix.
    """
    tokens: list[str | bool] = []
    position = 0
    while position < len(rule.rstrip()):
        match = _RULE_TOKEN.match(rule, position)
        assert match, f"cannot read the Traefik rule at {rule[position:]!r}"
        operator, matcher, argument = match.groups()
        if operator:
            tokens.append(operator)
        elif matcher == "Host":
            tokens.append(host.lower() == argument.lower())
        elif matcher == "Path":
            tokens.append(path == argument)
        else:
            tokens.append(path.startswith(argument))
        position = match.end()

    def expression(i: int) -> tuple[bool, int]:
        value, i = term(i)
        while i < len(tokens) and tokens[i] == "||":
            right, i = term(i + 1)
            value = value or right
        return value, i

    def term(i: int) -> tuple[bool, int]:
        value, i = factor(i)
        while i < len(tokens) and tokens[i] == "&&":
            right, i = factor(i + 1)
            value = value and right
        return value, i

    def factor(i: int) -> tuple[bool, int]:
        token = tokens[i]
        if token == "!":
            value, i = factor(i + 1)
            return not value, i
        if token == "(":
            value, i = expression(i + 1)
            assert tokens[i] == ")", "unbalanced parentheses"
            return value, i + 1
        assert isinstance(token, bool), f"unexpected {token!r}"
        return token, i + 1

    value, end = expression(0)
    assert end == len(tokens), "trailing tokens in rule"
    return value


def traefik_rule_hosts(rule: str) -> list[str]:
    return re.findall(r"Host\(`([^`]*)`\)", rule)


# --- Dockerfile -----------------------------------------------------------------

@dataclass
class Instruction:
    line: int
    keyword: str
    text: str  # the arguments, continuation lines joined
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN/HEALTHCHECK CMD, else None."""
        text = self.text
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^(--\S+\s+)*", "", text)
            if not text.startswith("CMD"):
                return None
            text = text[3:].strip()
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    index: int
    base: str  # the FROM image with ARG defaults filled in
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV of this stage (KEY=VALUE form; $PATH-style references left as written)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.text):
                key, sep, value = token.partition("=")
                assert sep, f"line {instruction.line}: use ENV KEY=VALUE (the legacy `ENV KEY VALUE` form is ambiguous)"
                values[key] = value
        return values


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse_dockerfile(text: str) -> Dockerfile:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, rest = joined.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        if keyword.upper() in ("COPY", "ADD", "FROM", "RUN"):
            while m := re.match(r"--([a-z-]+)(?:=(\S+))?\s+", rest):
                flags[m.group(1)] = m.group(2) or ""
                rest = rest[m.end():]
        instructions.append(Instruction(start, keyword.upper(), rest, flags))
    assert not pending, "the Dockerfile ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.text.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(len(stages), image, name, []))
        elif not stages:
            assert instruction.keyword == "ARG", f"line {instruction.line}: only ARG may come before the first FROM"
            key, _, value = instruction.text.partition("=")
            global_args[key.strip()] = value.strip().strip('"')
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(instructions, global_args, stages)


def copy_sources_and_dest(instruction: Instruction) -> tuple[list[str], str]:
    form = instruction.exec_form
    parts = form if form is not None else shlex.split(instruction.text)
    assert len(parts) >= 2, f"line {instruction.line}: COPY needs a source and a destination"
    return parts[:-1], parts[-1]


# --- .dockerignore ------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str], str]]:
    rules: list[tuple[bool, re.Pattern[str], str]] = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        pattern = re.sub(r"^\./", "", pattern)
        rules.append((negate, _pattern_regex(pattern), line))
    return rules


def is_ignored(relative: str, rules: list[tuple[bool, re.Pattern[str], str]] | None = None) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder excludes what is below it."""
    rules = dockerignore_rules() if rules is None else rules
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex, _ in rules:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def build_context_files() -> list[str]:
    """Repository files a `docker build .` would send (the .dockerignore applied)."""
    rules = dockerignore_rules()
    prune = not any(negate for negate, _, _ in rules)  # without `!` rules an ignored folder is ignored whole
    files: list[str] = []
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if here == "." else here + "/"
        if prune:
            dirs[:] = [d for d in dirs if not is_ignored(prefix + d, rules)]
        files.extend(prefix + n for n in names if not is_ignored(prefix + n, rules))
    return sorted(files)


# --- Custom resources (schemas hand-written from the CRDs' fields) -----------------

def crd_resource_schema(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A strict JSON Schema for one custom resource: apiVersion, kind, metadata and ``spec``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                    "namespace": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": spec,
        },
    }


def schema_violation(resource: Resource, schema: dict[str, Any]) -> str | None:
    """Where and why ``resource`` breaks ``schema``, or None."""
    import jsonschema

    try:
        jsonschema.validate(resource, schema)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return f"{resource['kind']}/{resource['metadata']['name']}: {where}: {exc.message}"
    return None
