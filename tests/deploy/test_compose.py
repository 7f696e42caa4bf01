"""Static checks of the compose deployment (deploy/compose.yaml, deploy/Dockerfile).

No container engine is needed: the files are parsed and checked against the files they
rely on (the Makefile's serve target, ops/prometheus, ops/grafana/provisioning, env.yaml).
Each check is a function returning a list of problems; it is run on the real files
(expecting none) and on a deliberately broken copy (expecting the problem to be named).
"""

from __future__ import annotations

import copy
import fnmatch
import http.server
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from serving.auth import TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
BASE = COMPOSE.parent  # compose resolves relative paths against the compose file's folder
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MAKEFILE = ROOT / "Makefile"
ENV_YAML = ROOT / "env.yaml"
PROMETHEUS_YML = ROOT / "ops" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "ops" / "grafana" / "provisioning"
DASHBOARD = ROOT / "ops" / "grafana" / "ml_production.json"
ENV_FILE = DEPLOY / "levibot.env"

SERVICES = ("api", "prometheus", "grafana")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROMETHEUS_DEFAULT_CONFIG = "/etc/prometheus/prometheus.yml"
PROMETHEUS_DEFAULT_LISTEN = "0.0.0.0:9090"


# --- parsing helpers ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Mount:
    type: str  # "bind" or "volume"
    source: str
    target: str
    read_only: bool


def parse_mount(spec: str | dict) -> Mount:
    """A service volume entry in compose's short (`src:dst[:ro]`) or long syntax."""
    if isinstance(spec, dict):
        source = str(spec.get("source", ""))
        kind = spec.get("type") or ("bind" if _looks_like_path(source) else "volume")
        return Mount(kind, source, str(spec["target"]), bool(spec.get("read_only", False)))
    parts = spec.split(":")
    if len(parts) == 1:  # an anonymous volume
        return Mount("volume", "", parts[0], False)
    source, target, options = parts[0], parts[1], parts[2].split(",") if len(parts) > 2 else []
    kind = "bind" if _looks_like_path(source) else "volume"
    return Mount(kind, source, target, "ro" in options)


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def mounts(service: dict) -> list[Mount]:
    return [parse_mount(spec) for spec in service.get("volumes") or []]


def host_path(source: str, base: Path) -> Path:
    """A bind source as compose resolves it: relative to the compose file's folder."""
    return Path(posixpath.normpath((base / source).as_posix()))


def to_host(service: dict, container_path: str, base: Path) -> tuple[Mount, Path | None] | None:
    """Which mount serves `container_path` (the deepest target containing it) and, for a bind
    mount, the host path it maps to; None when no mount covers the path."""
    container_path = posixpath.normpath(container_path)
    covering = [
        m
        for m in mounts(service)
        if container_path == m.target or container_path.startswith(m.target.rstrip("/") + "/")
    ]
    if not covering:
        return None
    mount = max(covering, key=lambda m: len(m.target))
    if mount.type != "bind":
        return mount, None
    rest = posixpath.relpath(container_path, mount.target)
    path = host_path(mount.source, base)
    return mount, path if rest == "." else path / rest


def env_file_paths(service: dict) -> list[str]:
    value = service.get("env_file") or []
    entries = [value] if isinstance(value, str | dict) else value
    return [e["path"] if isinstance(e, dict) else e for e in entries]


def command_args(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def flag_value(args: list[str], flag: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return default


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    pairs = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def exec_form(arguments: str) -> list[str]:
    """CMD/ENTRYPOINT arguments as argv: JSON (exec) form, or shell form run by /bin/sh -c."""
    if arguments.startswith("["):
        return json.loads(arguments)
    return ["/bin/sh", "-c", arguments]


def makefile_recipe(text: str, target: str) -> list[str] | None:
    """The recipe lines of `target` (continuations joined), or None without that target."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(target)}\s*:(?!=)", line):
            recipe, current = [], ""
            for body in lines[i + 1 :]:
                if not body.startswith("\t"):
                    break
                piece = body.strip()
                if piece.endswith("\\"):
                    current += piece[:-1] + " "
                    continue
                recipe.append(current + piece)
                current = ""
            return recipe
    return None


def makefile_variables(text: str) -> dict[str, str]:
    variables = {}
    for line in text.splitlines():
        match = re.match(r"^(?:export\s+)?([A-Z_]+)\s*(?:\?=|:=|=)\s*(.*)$", line)
        if match:
            variables.setdefault(match[1], match[2].strip())
    return variables


def expand(value: str, variables: dict[str, str]) -> str:
    for _ in range(10):
        new = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m[1], m[0]), value)
        if new == value:
            break
        value = new
    return value


def serve_command(makefile_text: str) -> list[str]:
    """The argv of the serve target's uvicorn line, Make variables expanded."""
    recipe = makefile_recipe(makefile_text, "serve") or []
    variables = makefile_variables(makefile_text)
    for line in recipe:
        if "uvicorn" in line:
            return shlex.split(expand(line, variables))
    return []


def serve_address(makefile_text: str) -> tuple[str, int]:
    argv = serve_command(makefile_text)
    return flag_value(argv, "--host", "127.0.0.1"), int(flag_value(argv, "--port", "8000"))


# --- the real files ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def makefile() -> str:
    return MAKEFILE.read_text()


def state_dirs() -> dict[str, Path]:
    """The state folders `make run` creates (env.yaml's data_dir and registry_dir)."""
    env = yaml.safe_load(ENV_YAML.read_text())
    return {name: ROOT / env[name] for name in ("data_dir", "registry_dir")}


def image_links(dockerfile_text: str) -> dict[str, str]:
    """`ln -s TARGET LINK` pairs of the Dockerfile's RUN steps: {link: target}."""
    links = {}
    for keyword, arguments in dockerfile_instructions(dockerfile_text):
        if keyword == "RUN":
            for match in re.finditer(r"ln\s+-s\S*\s+(\S+)\s+(\S+)", arguments):
                links[posixpath.normpath(match[2])] = posixpath.normpath(match[1])
    return links


def workdir(dockerfile_text: str) -> str:
    dirs = [a for k, a in dockerfile_instructions(dockerfile_text) if k == "WORKDIR"]
    return dirs[-1] if dirs else "/"


# --- checks: each returns the problems it finds ------------------------------------------------
def check_services(doc: dict) -> list[str]:
    services = doc.get("services") or {}
    return [f"service {name} is missing" for name in SERVICES if name not in services]


def check_paths_exist(doc: dict, base: Path) -> list[str]:
    """Build context, Dockerfile, bind sources and env file templates exist in the repo;
    the only sources allowed to be absent are the state folders `make run` creates."""
    problems = []
    allowed_missing = set(state_dirs().values())
    declared_volumes = set(doc.get("volumes") or {})
    for name, service in (doc.get("services") or {}).items():
        build = service.get("build")
        if build is not None:
            build = {"context": build} if isinstance(build, str) else build
            context = host_path(build.get("context", "."), base)
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        for mount in mounts(service):
            if mount.type == "bind":
                source = host_path(mount.source, base)
                if not source.exists() and source not in allowed_missing:
                    problems.append(f"{name}: bind source {mount.source} does not exist")
                if not source.is_relative_to(ROOT):
                    problems.append(f"{name}: bind source {mount.source} is outside the repo")
            elif mount.source and mount.source not in declared_volumes:
                problems.append(f"{name}: volume {mount.source} is not declared")
        for env_file in env_file_paths(service):
            example = host_path(env_file + ".example", base)
            if not example.is_file():
                problems.append(f"{name}: env file template {env_file}.example does not exist")
    return problems


def check_state_mounts(doc: dict, base: Path, dockerfile_text: str) -> list[str]:
    """The api mounts the repo's data/ and registry/ where the server finds them: at the
    project folder's data/ and registry/, or where the image's symlinks for them point."""
    api = (doc.get("services") or {}).get("api", {})
    project = workdir(dockerfile_text)
    links = image_links(dockerfile_text)
    problems = []
    for setting, folder in state_dirs().items():
        in_project = posixpath.join(project, folder.name)
        container_path = links.get(in_project, in_project)
        found = to_host(api, container_path, base)
        if found is None or found[1] is None:
            problems.append(f"api: {container_path} ({setting}) is not bind-mounted")
        elif found[1] != folder:
            problems.append(f"api: {container_path} ({setting}) maps to {found[1]}, not {folder}")
        elif found[0].read_only:
            problems.append(f"api: {container_path} ({setting}) is mounted read-only")
    return problems


def check_prometheus_mounts(doc: dict, base: Path) -> list[str]:
    """The repo's prometheus.yml is the config Prometheus loads, and every rule file it
    names is mounted where Prometheus resolves it (relative to the config's folder)."""
    service = (doc.get("services") or {}).get("prometheus", {})
    config = flag_value(command_args(service), "--config.file", PROMETHEUS_DEFAULT_CONFIG)
    expected = {config: PROMETHEUS_YML}
    for rule in yaml.safe_load(PROMETHEUS_YML.read_text()).get("rule_files") or []:
        target = rule if posixpath.isabs(rule) else posixpath.join(posixpath.dirname(config), rule)
        expected[target] = PROMETHEUS_YML.parent / rule
    problems = []
    for target, source in expected.items():
        found = to_host(service, target, base)
        if found is None or found[1] != source:
            got = "nothing" if found is None else found[1]
            problems.append(f"prometheus: {target} must be {source.relative_to(ROOT)}, got {got}")
        elif not found[0].read_only:
            problems.append(f"prometheus: {target} is not mounted read-only")
    return problems


def check_grafana_mounts(doc: dict, base: Path) -> list[str]:
    """Every provisioning file is mounted in its provisioning folder, and every dashboards
    provider's options.path is a mount target holding the repo's dashboard."""
    service = (doc.get("services") or {}).get("grafana", {})
    problems = []
    sources = {host_path(m.source, base): m for m in mounts(service) if m.type == "bind"}
    for file in sorted(PROVISIONING.glob("*.y*ml")):
        content = yaml.safe_load(file.read_text())
        kind = "dashboards" if "providers" in content else "datasources"
        mount = sources.get(file)
        folder = f"/etc/grafana/provisioning/{kind}"
        if mount is None:
            problems.append(f"grafana: provisioning file {file.name} is not mounted")
        elif posixpath.dirname(mount.target) != folder or not mount.target.endswith(
            (".yaml", ".yml")
        ):
            problems.append(f"grafana: {file.name} mounted at {mount.target}, not in {folder}/")
        elif not mount.read_only:
            problems.append(f"grafana: {file.name} is not mounted read-only")
        for provider in content.get("providers") or []:
            path = posixpath.normpath(provider["options"]["path"])
            if path not in {m.target.rstrip("/") for m in mounts(service)}:
                problems.append(f"grafana: dashboards path {path} is not a mount target")
                continue
            _, host = to_host(service, path, base)
            if host is None or not (host / DASHBOARD.name).is_file():
                problems.append(f"grafana: {path} does not hold {DASHBOARD.name}")
    return problems


def shares_network(doc: dict, consumer: str, provider: str) -> bool:
    """Whether `consumer` reaches `provider`'s loopback (same network namespace)."""
    services = doc.get("services") or {}
    a = services.get(consumer, {}).get("network_mode")
    b = services.get(provider, {}).get("network_mode")
    return (
        (a == "host" and b == "host")
        or a == f"service:{provider}"
        or b == f"service:{consumer}"
        or (a is not None and a == b and a.startswith("service:"))
    )


def check_networking(doc: dict, makefile_text: str) -> list[str]:
    """The addresses in the repo's monitoring files reach the services as deployed:
    the scrape target is the api's serve address, the datasource is Prometheus' address."""
    services = doc.get("services") or {}
    prometheus_args = command_args(services.get("prometheus", {}))
    listen = flag_value(prometheus_args, "--web.listen-address", PROMETHEUS_DEFAULT_LISTEN)
    links = [
        (
            "prometheus",
            "api",
            f"scrape target {target}",
            target,
            "{}:{}".format(*serve_address(makefile_text)),
        )
        for job in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    for source in yaml.safe_load((PROVISIONING / "datasources.yaml").read_text())["datasources"]:
        if source["type"] == "prometheus":
            url = urlsplit(source["url"])
            links.append(
                ("grafana", "prometheus", f"datasource {source['url']}", url.netloc, listen)
            )
    problems = []
    for consumer, provider, what, address, listening in links:
        host, _, port = address.rpartition(":")
        listen_host, _, listen_port = listening.rpartition(":")
        if port != listen_port:
            problems.append(f"{what}: {provider} listens on port {listen_port}")
        if host in LOOPBACK:
            if not shares_network(doc, consumer, provider):
                problems.append(f"{what}: {consumer} does not share {provider}'s network")
        elif host != provider:
            problems.append(f"{what}: host {host} is neither loopback nor the service")
        elif listen_host in LOOPBACK:
            problems.append(f"{what}: {provider} listens on loopback only")
    return problems


IMAGE_RE = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]*))?(?:@sha256:[0-9a-f]{64})?$")


def check_images_pinned(doc: dict) -> list[str]:
    """Pulled images carry an explicit version tag (not `latest`); built ones are local."""
    problems = []
    for name, service in (doc.get("services") or {}).items():
        if "build" in service:
            continue
        image = service.get("image", "")
        match = IMAGE_RE.match(image)
        tag = match["tag"] if match else None
        if not tag or tag == "latest" or not re.search(r"\d", tag):
            problems.append(f"{name}: image {image!r} is not pinned to a version tag")
    return problems


def check_grafana_version(doc: dict) -> list[str]:
    """The Grafana tag is the major.minor the dashboard's __requires names."""
    dashboard = json.loads(DASHBOARD.read_text())
    required = next(r["version"] for r in dashboard["__requires"] if r["id"] == "grafana")
    image = (doc.get("services") or {}).get("grafana", {}).get("image", "")
    tag = image.rpartition(":")[2]
    if tag.split(".")[:2] != required.split(".")[:2]:
        return [f"grafana: image {image!r} does not match the dashboard's Grafana {required}"]
    return []


def check_secrets(doc: dict, base: Path) -> list[str]:
    """Secrets come from the env file: the api's admin token and Grafana's admin password
    are in its template, and no service hard-codes them."""
    services = doc.get("services") or {}
    required = {"api": TOKEN_ENV, "grafana": "GF_SECURITY_ADMIN_PASSWORD"}
    problems = []
    for name, key in required.items():
        service = services.get(name, {})
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(e.partition("=")[::2] for e in environment)
        if key in environment:
            problems.append(f"{name}: {key} is hard-coded in compose.yaml")
        files = env_file_paths(service)
        if not files:
            problems.append(f"{name}: no env_file for {key}")
        found = False
        for env_file in files:
            example = host_path(env_file + ".example", base)
            keys = (
                {
                    line.partition("=")[0].strip()
                    for line in example.read_text().splitlines()
                    if "=" in line and not line.lstrip().startswith("#")
                }
                if example.is_file()
                else set()
            )
            found = found or key in keys
            for other, secret in required.items():
                if other != name and secret in keys:
                    problems.append(
                        f"{name}: reads {other}'s {secret} from {env_file}; one file per service"
                    )
        if files and not found:
            problems.append(f"{name}: {key} is not in {' or '.join(files)} (.example)")
    return problems


def check_healthcheck(doc: dict, makefile_text: str) -> list[str]:
    """The api's healthcheck asks /healthz at the serve address with python (no curl in a
    slim image), in exec form, and its code compiles."""
    test = (doc.get("services") or {}).get("api", {}).get("healthcheck", {}).get("test")
    if not isinstance(test, list) or test[:1] not in (["CMD"], ["CMD-SHELL"]):
        return ["api: healthcheck test is missing or not a CMD list"]
    argv = test[1:] if test[0] == "CMD" else shlex.split(test[1])
    problems = []
    if not argv or Path(argv[0]).name not in {"python", "python3"} or "-c" not in argv:
        return [f"api: healthcheck does not run `python -c`: {argv}"]
    code = argv[argv.index("-c") + 1]
    try:
        compile(code, "healthcheck", "exec")
    except SyntaxError as exc:
        problems.append(f"api: healthcheck code does not compile: {exc}")
    url = "http://{}:{}/healthz".format(*serve_address(makefile_text))
    if url not in code:
        problems.append(f"api: healthcheck does not ask {url}")
    return problems


def check_dockerfile(dockerfile_text: str, makefile_text: str) -> list[str]:
    """The image installs with `make install` and its final command runs the Makefile's
    serve target (or that target's uvicorn command) in the folder holding the Makefile."""
    instructions = dockerfile_instructions(dockerfile_text)
    problems = []
    froms = [a for k, a in instructions if k == "FROM"]
    if not froms or not froms[-1].startswith("python:3.11-slim"):
        problems.append(f"the base image is not python:3.11-slim: {froms}")
    if not any(k == "RUN" and re.search(r"\bmake install\b", a) for k, a in instructions):
        problems.append("no RUN step runs `make install`")
    copies = [a.split() for k, a in instructions if k == "COPY"]
    project = workdir(dockerfile_text)
    if not any(c[0] == "." and posixpath.normpath(c[-1]) in {project, "."} for c in copies):
        problems.append(f"the project is not copied to the working directory {project}")
    entrypoint = [exec_form(a) for k, a in instructions if k == "ENTRYPOINT"]
    commands = [exec_form(a) for k, a in instructions if k == "CMD"]
    if not commands:
        return [*problems, "the Dockerfile has no CMD"]
    argv = (entrypoint[-1] if entrypoint else []) + commands[-1]
    if argv[:2] == ["/bin/sh", "-c"]:
        argv = shlex.split(argv[2])
    if argv and argv[0] == "make":
        targets = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
        if targets != ["serve"]:
            problems.append(f"the final command runs make targets {targets}, not serve")
        elif makefile_recipe(makefile_text, "serve") is None:
            problems.append("the Makefile has no serve target")
    else:
        expected = serve_command(makefile_text)
        if argv != expected:
            problems.append(f"the final command {argv} is neither `make serve` nor {expected}")
    return problems


def check_dockerignore(patterns: list[str]) -> list[str]:
    """The build context leaves out environments, generated state, git and the secrets."""
    excluded = ("deploy/levibot.env", ".venv", "data", "registry", "reports", ".git")
    return [
        f".dockerignore does not exclude {path}"
        for path in excluded
        if not any(fnmatch.fnmatch(path, p.strip("/")) for p in patterns)
    ]


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# --- the real files pass -----------------------------------------------------------------------
def test_compose_parses_with_the_three_services(doc: dict) -> None:
    assert check_services(doc) == []


def test_referenced_paths_exist(doc: dict) -> None:
    assert check_paths_exist(doc, BASE) == []


def test_state_is_the_repos_data_and_registry(doc: dict, dockerfile: str) -> None:
    assert check_state_mounts(doc, BASE, dockerfile) == []


def test_prometheus_uses_the_repos_config_and_rules(doc: dict) -> None:
    assert check_prometheus_mounts(doc, BASE) == []


def test_grafana_provisioning_and_dashboard_are_mounted(doc: dict) -> None:
    assert check_grafana_mounts(doc, BASE) == []


def test_monitoring_addresses_reach_the_services(doc: dict, makefile: str) -> None:
    assert check_networking(doc, makefile) == []


def test_images_are_pinned(doc: dict) -> None:
    assert check_images_pinned(doc) == []
    assert check_grafana_version(doc) == []


def test_secrets_come_from_the_env_file(doc: dict) -> None:
    assert check_secrets(doc, BASE) == []


def test_healthcheck_targets_healthz(doc: dict, makefile: str) -> None:
    assert check_healthcheck(doc, makefile) == []


def test_dockerfile_runs_make_serve(dockerfile: str, makefile: str) -> None:
    assert check_dockerfile(dockerfile, makefile) == []


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    assert check_dockerignore(dockerignore_patterns()) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_env_file_is_ignored_and_untracked() -> None:
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    if git("rev-parse", "--is-inside-work-tree").returncode != 0:
        pytest.skip("not a git checkout")
    relative = ENV_FILE.relative_to(ROOT).as_posix()
    assert git("check-ignore", "-q", "--no-index", relative).returncode == 0
    assert git("ls-files", "--error-unmatch", relative).returncode != 0
    example = f"{relative}.example"
    assert git("check-ignore", "-q", "--no-index", example).returncode == 1


class _Health(http.server.BaseHTTPRequestHandler):
    status = "ok"

    def do_GET(self) -> None:
        body = json.dumps({"status": self.status if self.path == "/healthz" else "?"}).encode()
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("status", "exit_code"), [("ok", 0), ("degraded", 0), ("unavailable", 1)])
def test_healthcheck_exit_code(doc: dict, makefile: str, status: str, exit_code: int) -> None:
    """The healthcheck's own code, against a stand-in /healthz on a free port."""
    test = doc["services"]["api"]["healthcheck"]["test"]
    code = test[test.index("-c") + 1]
    handler = type("Health", (_Health,), {"status": status})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = serve_address(makefile)
            local = code.replace(f"{host}:{port}", f"127.0.0.1:{server.server_port}")
            run = subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30)
        finally:
            server.shutdown()
            thread.join()
    assert run.returncode == exit_code, run.stderr


# --- broken copies are caught ------------------------------------------------------------------
def _broken(doc: dict, service: str, **changes: object) -> dict:
    broken = copy.deepcopy(doc)
    for key, value in changes.items():
        if value is None:
            broken["services"][service].pop(key, None)
        else:
            broken["services"][service][key] = value
    return broken


def _without_mount(doc: dict, service: str, target: str) -> dict:
    broken = copy.deepcopy(doc)
    volumes = broken["services"][service]["volumes"]
    broken["services"][service]["volumes"] = [v for v in volumes if parse_mount(v).target != target]
    return broken


def test_missing_service_is_named(doc: dict) -> None:
    broken = copy.deepcopy(doc)
    del broken["services"]["grafana"]
    assert check_services(broken) == ["service grafana is missing"]


def test_missing_paths_are_named(doc: dict) -> None:
    broken = _broken(doc, "api", build={"context": "..", "dockerfile": "deploy/Nope"})
    broken["services"]["prometheus"]["volumes"].append("../ops/nope.yml:/etc/nope.yml:ro")
    broken["services"]["grafana"]["volumes"].append("undeclared:/x")
    problems = check_paths_exist(broken, BASE)
    assert any("Dockerfile" in p and "Nope" in p for p in problems)
    assert any("../ops/nope.yml does not exist" in p for p in problems)
    assert any("volume undeclared is not declared" in p for p in problems)
    # resolved against the compose file's folder: from the repo root nothing is found
    assert any("prometheus.yml does not exist" in p for p in check_paths_exist(doc, ROOT))


def test_state_mount_elsewhere_is_named(doc: dict, dockerfile: str) -> None:
    broken = copy.deepcopy(doc)
    for volume in broken["services"]["api"]["volumes"]:
        if isinstance(volume, dict) and volume["source"] == "../registry":
            volume["source"] = "../reports"
    problems = check_state_mounts(broken, BASE, dockerfile)
    assert len(problems) == 1 and "registry_dir" in problems[0], problems
    target = parse_mount(doc["services"]["api"]["volumes"][0]).target
    problems = check_state_mounts(_without_mount(doc, "api", target), BASE, dockerfile)
    assert any("data_dir" in p and "not bind-mounted" in p for p in problems), problems


def test_rule_file_not_next_to_config_is_named(doc: dict) -> None:
    broken = copy.deepcopy(doc)
    broken["services"]["prometheus"]["volumes"] = [
        v.replace(":/etc/prometheus/alerts.yml", ":/etc/prometheus/rules/alerts.yml")
        for v in broken["services"]["prometheus"]["volumes"]
    ]
    problems = check_prometheus_mounts(broken, BASE)
    assert problems == [
        "prometheus: /etc/prometheus/alerts.yml must be ops/prometheus/alerts.yml, got nothing"
    ]
    moved = _broken(doc, "prometheus", command=["--config.file=/config/prometheus.yml"])
    assert len(check_prometheus_mounts(moved, BASE)) == 2


def test_grafana_dashboards_path_unmounted_is_named(doc: dict) -> None:
    broken = _without_mount(doc, "grafana", "/var/lib/grafana/dashboards/levibot")
    problems = check_grafana_mounts(broken, BASE)
    assert problems == [
        "grafana: dashboards path /var/lib/grafana/dashboards/levibot is not a mount target"
    ]
    broken = _without_mount(doc, "grafana", "/etc/grafana/provisioning/datasources/levibot.yaml")
    assert check_grafana_mounts(broken, BASE) == [
        "grafana: provisioning file datasources.yaml is not mounted"
    ]


def test_unshared_network_is_named(doc: dict, makefile: str) -> None:
    broken = _broken(doc, "prometheus", network_mode=None)
    problems = check_networking(broken, makefile)
    assert any("scrape target 127.0.0.1:8000" in p for p in problems), problems
    assert any("datasource http://localhost:9090" in p for p in problems), problems
    args = ["--web.listen-address=127.0.0.1:9091"]
    moved = _broken(doc, "prometheus", command=args)
    assert check_networking(moved, makefile) == [
        "datasource http://localhost:9090: prometheus listens on port 9091"
    ]
    # sharing the api's namespace would do as well
    shared = _broken(doc, "prometheus", network_mode="service:api")
    shared = _broken(shared, "grafana", network_mode="service:api")
    shared = _broken(shared, "api", network_mode=None)
    assert check_networking(shared, makefile) == []


@pytest.mark.parametrize("image", ["prom/prometheus", "prom/prometheus:latest", "prom/x:main"])
def test_unpinned_image_is_named(doc: dict, image: str) -> None:
    problems = check_images_pinned(_broken(doc, "prometheus", image=image))
    assert problems == [f"prometheus: image {image!r} is not pinned to a version tag"]


def test_grafana_of_another_version_is_named(doc: dict) -> None:
    broken = _broken(doc, "grafana", image="grafana/grafana:11.0.0")
    assert "does not match the dashboard's Grafana" in check_grafana_version(broken)[0]


def test_hard_coded_secret_is_named(doc: dict) -> None:
    broken = _broken(doc, "grafana", environment={"GF_SECURITY_ADMIN_PASSWORD": "admin"})
    broken = _broken(broken, "api", env_file=None)
    assert check_secrets(broken, BASE) == [
        f"api: no env_file for {TOKEN_ENV}",
        "grafana: GF_SECURITY_ADMIN_PASSWORD is hard-coded in compose.yaml",
    ]


def test_a_secret_shared_with_another_service_is_named(doc: dict) -> None:
    broken = _broken(doc, "grafana", env_file="levibot.env")
    assert check_secrets(broken, BASE) == [
        "grafana: reads api's LEVIBOT_ADMIN_TOKEN from levibot.env; one file per service",
        "grafana: GF_SECURITY_ADMIN_PASSWORD is not in levibot.env (.example)",
    ]
    broken = _broken(doc, "api", env_file=["levibot.env", "grafana.env"])
    assert check_secrets(broken, BASE) == [
        "api: reads grafana's GF_SECURITY_ADMIN_PASSWORD from grafana.env; one file per service",
    ]


def test_bad_healthcheck_is_named(doc: dict, makefile: str) -> None:
    curl = ["CMD", "curl", "-f", "http://127.0.0.1:8000/healthz"]
    assert (
        "does not run `python -c`"
        in check_healthcheck(_broken(doc, "api", healthcheck={"test": curl}), makefile)[0]
    )
    wrong = ["CMD", "python", "-c", "import urllib.request as u; u.urlopen('http://x/ready')"]
    assert check_healthcheck(_broken(doc, "api", healthcheck={"test": wrong}), makefile) == [
        "api: healthcheck does not ask http://127.0.0.1:8000/healthz"
    ]
    assert check_healthcheck(_broken(doc, "api", healthcheck=None), makefile) == [
        "api: healthcheck test is missing or not a CMD list"
    ]


def test_dockerfile_with_another_command_is_named(dockerfile: str, makefile: str) -> None:
    other = dockerfile.replace('CMD ["make", "serve"]', 'CMD ["make", "marathon"]')
    assert check_dockerfile(other, makefile) == [
        "the final command runs make targets ['marathon'], not serve"
    ]
    direct = " ".join(shlex.quote(a) for a in serve_command(makefile))
    same = dockerfile.replace('CMD ["make", "serve"]', f"CMD {direct}")
    assert check_dockerfile(same, makefile) == []
    elsewhere = same.replace("--host 127.0.0.1", "--host 0.0.0.0")
    assert "neither `make serve`" in check_dockerfile(elsewhere, makefile)[0]
    no_serve = makefile.replace("\nserve:", "\nserve-api:")
    assert check_dockerfile(dockerfile, no_serve) == ["the Makefile has no serve target"]
    no_install = dockerfile.replace("make install", "pip install .")
    assert check_dockerfile(no_install, makefile) == ["no RUN step runs `make install`"]


def test_dockerignore_gap_is_named() -> None:
    patterns = [p for p in dockerignore_patterns() if p != "deploy/*.env"]
    assert check_dockerignore(patterns) == [".dockerignore does not exclude deploy/levibot.env"]
