"""Who may reach whom, computed from the rendered NetworkPolicies with Kubernetes' semantics,
against the intended matrix: ingress controller -> web:8080; web and worker -> engines,
PostgreSQL, Redis; migrations -> PostgreSQL; benchmarks -> PostgreSQL and their targets (web,
or listed addresses); Prometheus -> metrics ports; helm tests -> web and engines; every pod ->
DNS; listed external destinations only; nothing else."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from tests.deploy import _helm

POLICY_CASES = sorted(c for c in _helm.CASES if c != "networkpolicies-off")


@dataclass(frozen=True)
class Endpoint:
    """A pod (in a namespace, with labels and ports) or an address outside the cluster."""

    name: str
    namespace: str | None = None  # None: outside the cluster
    labels: dict = field(default_factory=dict, hash=False, compare=False)
    ports: tuple = ()  # (number, protocol, name)
    ip: str | None = None
    ours: bool = False


def _ns_labels(namespace: str) -> dict:
    return {"kubernetes.io/metadata.name": namespace}


# Pods and addresses around the release, as on a typical cluster.
OTHERS = [
    Endpoint(
        "ingress-controller",
        "ingress-nginx",
        {"app.kubernetes.io/name": "ingress-nginx"},
        ((443, "TCP", "https"),),
    ),
    Endpoint(
        "prometheus",
        "monitoring",
        {"app.kubernetes.io/name": "prometheus"},
        ((9090, "TCP", "web"),),
    ),
    Endpoint("keda", "keda", {"app": "keda-operator"}),
    Endpoint(
        "dns", "kube-system", {"k8s-app": "kube-dns"}, ((53, "UDP", "dns"), (53, "TCP", "dns-tcp"))
    ),
    Endpoint("neighbour", _helm.NAMESPACE, {"app": "another-release"}, ((80, "TCP", "http"),)),
    Endpoint("stranger", "default", {"app": "stranger"}, ((80, "TCP", "http"),)),
    Endpoint(
        "cnpg",
        _helm.NAMESPACE,
        {"cnpg.io/cluster": "hearth-postgresql"},
        ((5432, "TCP", "postgresql"),),
    ),
    Endpoint("public-https", ports=((443, "TCP", ""),), ip="140.82.112.3"),
    Endpoint("azure-https", ports=((443, "TCP", ""),), ip="20.1.2.3"),
    Endpoint("private-https", ports=((443, "TCP", ""),), ip="10.9.9.9"),
    Endpoint("db-address", ports=((5432, "TCP", ""),), ip="10.20.2.5"),
    Endpoint("redis-address", ports=((6380, "TCP", ""),), ip="10.20.3.5"),
]


def _pod_name(meta: dict) -> str:
    labels = meta["labels"]
    engine = labels.get("hearth-llm.io/engine")
    return f"engine:{engine}" if engine else labels["app.kubernetes.io/component"]


def _our_pods(objects: list[dict]) -> list[Endpoint]:
    pods = {}
    for _owner, meta, spec in _helm.pod_specs(objects):
        ports = tuple(
            (p["containerPort"], p.get("protocol", "TCP"), p.get("name", ""))
            for c in spec["containers"]
            for p in c.get("ports", [])
        )
        name = _pod_name(meta)
        pods[name] = Endpoint(name, _helm.NAMESPACE, meta["labels"], ports, ours=True)
    return list(pods.values())


# --- NetworkPolicy semantics (networking.k8s.io/v1) ---------------------------------------


def _selects(selector: dict | None, labels: dict) -> bool:
    """A label selector: matchLabels and matchExpressions, ANDed; {} selects everything."""
    selector = selector or {}
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict, other: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False  # pod IPs in ipBlocks are implementation-defined: never relied on
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], _ns_labels(other.namespace)):
            return False
    elif other.namespace != policy_ns:
        return False  # a podSelector alone means the policy's own namespace
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(rule_ports: list[dict] | None, port: tuple, dst: Endpoint) -> bool:
    if not rule_ports:
        return True
    number, protocol, _name = port
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return True
        wanted = p["port"]
        if isinstance(wanted, str):  # a named port of the destination pod
            wanted = next(
                (n for n, proto, nm in dst.ports if nm == wanted and proto == protocol), None
            )
        if wanted is not None and wanted <= number <= p.get("endPort", wanted):
            return True
    return False


def _types(policy: dict) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def _allowed(
    policies: list[dict], pod: Endpoint, other: Endpoint, port: tuple, dst: Endpoint, direction: str
) -> bool:
    """May `pod` take this connection with `other` in `direction` (its own side only)?"""
    if pod.namespace is None:
        return True  # addresses outside the cluster are not policed here
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace", _helm.NAMESPACE) == pod.namespace
        and _selects(p["spec"]["podSelector"], pod.labels)
        and direction in _types(p)
    ]
    if not selecting:
        return True  # not isolated in this direction
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        ns = policy["metadata"].get("namespace", _helm.NAMESPACE)
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(peer, other, ns) for peer in peers):
                continue
            if _port_matches(rule.get("ports"), port, dst):
                return True
    return False


def reachability(objects: list[dict]) -> set[tuple[str, str, int, str]]:
    """(source, destination, port, protocol) for every connection both sides allow, where
    at least one side is a pod of this release."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    endpoints = _our_pods(objects) + OTHERS
    out = set()
    for src in endpoints:
        if src.namespace is None:
            continue  # nothing outside the cluster calls in, in this model
        for dst in endpoints:
            if src == dst or not (src.ours or dst.ours):
                continue
            for port in dst.ports:
                if _allowed(policies, src, dst, port, dst, "Egress") and _allowed(
                    policies, dst, src, port, dst, "Ingress"
                ):
                    out.add((src.name, dst.name, port[0], port[1]))
    return out


# --- the intended matrix, from the values ------------------------------------------------

ENGINE_PORTS = {"hearth": 8081, "vllm": 8000, "ollama": 11434}


def intended(case: str) -> set[tuple[str, str, int, str]]:
    files, overrides = _helm.CASES[case]
    v = _helm.chart().merge_values(_helm.user_values(files, overrides))
    ours = {e.name for e in _our_pods(_helm.render_case(case))}
    allowed = {
        ("ingress-controller", "web", 8080, "TCP"),
        ("prometheus", "web", 8080, "TCP"),
        ("prometheus", "worker", 8082, "TCP"),
        ("test", "web", 8080, "TCP"),
    }
    database = {
        "bundled": ("postgresql", 5432),
        "cloudnative-pg": ("cnpg", 5432),
        "external": ("db-address", 5432),
    }[v["postgresql"]["mode"]]
    redis = {"bundled": ("redis", 6379), "external": ("redis-address", 6380)}.get(
        v["redis"]["mode"]
    )
    for client in ("web", "worker"):
        allowed.add((client, *database, "TCP"))
        if redis:
            allowed.add((client, *redis, "TCP"))
    allowed.add(("migrate", *database, "TCP"))
    if v["worker"]["keda"]["enabled"] and v["postgresql"]["mode"] == "bundled":
        allowed.add(("keda", "postgresql", 5432, "TCP"))
    for e in v["engines"]:
        if e["kind"] == "external":
            for client in ("web", "worker"):
                allowed.add((client, "azure-https", 443, "TCP"))
            continue
        name, port = f"engine:{e['name']}", ENGINE_PORTS[e["kind"]]
        for client in ("web", "worker", "test"):
            allowed.add((client, name, port, "TCP"))
        if e["kind"] != "ollama":
            allowed.add(("prometheus", name, port, "TCP"))
        if e.get("egress"):  # model downloads: HTTPS to public addresses
            allowed |= {(name, "public-https", 443, "TCP"), (name, "azure-https", 443, "TCP")}
    benchmarks = v["lab"]["benchmarks"]
    if benchmarks:
        allowed.add(("bench", *database, "TCP"))
    if any(not b.get("target") for b in benchmarks):
        allowed.add(("bench", "web", 8080, "TCP"))  # the gateway, the default target
    for b in benchmarks:  # an external target: the addresses its entry lists
        listed = _listed(b.get("egress", []))
        allowed |= {
            ("bench", o.name, number, proto) for o in listed for number, proto, _ in o.ports
        }
    for pod in ours:
        allowed |= {(pod, "dns", 53, "UDP"), (pod, "dns", 53, "TCP")}
    return {
        a
        for a in allowed
        if a[0] in ours | {o.name for o in OTHERS}
        and a[1] in ours | {o.name for o in OTHERS}
        and (a[0] in ours or a[1] in ours)
    }


def _listed(egress: list[dict]) -> list[Endpoint]:
    """The addresses outside the cluster that an `egress` list ({cidr, except, ports}) names."""
    out = []
    for other in OTHERS:
        if other.ip is None:
            continue
        address = ipaddress.ip_address(other.ip)
        for item in egress:
            inside = address in ipaddress.ip_network(item["cidr"]) and not any(
                address in ipaddress.ip_network(e) for e in item.get("except", [])
            )
            if inside and all(not item.get("ports") or p[0] in item["ports"] for p in other.ports):
                out.append(other)
                break
    return out


@pytest.mark.parametrize("case", POLICY_CASES)
def test_reachability_is_exactly_the_intended_matrix(case: str) -> None:
    actual = reachability(_helm.render_case(case))
    wanted = intended(case)
    extra = sorted(actual - wanted)
    missing = sorted(wanted - actual)
    assert not extra and not missing, (
        f"{case}: allowed but not intended: {extra}; intended but denied: {missing}"
    )


@pytest.mark.parametrize("case", POLICY_CASES)
def test_every_pod_is_selected_by_a_policy(case: str) -> None:
    objects = _helm.render_case(case)
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for owner, meta, _spec in _helm.pod_specs(objects):
        types = {
            t
            for p in policies
            if _selects(p["spec"]["podSelector"], meta["labels"])
            for t in _types(p)
        }
        assert types == {"Ingress", "Egress"}, f"{owner}: isolated only for {types}"
        own = [
            p
            for p in policies
            if _selects(p["spec"]["podSelector"], meta["labels"])
            and p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
        ]
        assert own, f"{owner}: only the release-wide policies select it"


def test_samples_of_what_must_be_denied() -> None:
    actual = reachability(_helm.render_case("prod-aks"))
    reached = {(s, d) for s, d, _p, _proto in actual}
    for pair in [
        ("engine:llama-spot", "postgresql"),
        ("engine:llama-spot", "db-address"),
        ("web", "web"),
        ("worker", "web"),
        ("stranger", "web"),
        ("neighbour", "web"),
        ("neighbour", "engine:llama-spot"),
        ("web", "private-https"),
        ("web", "public-https"),
        ("engine:embed", "public-https"),
        ("engine:llama-spot", "private-https"),
        ("migrate", "engine:embed"),
        ("prometheus", "redis"),
        ("ingress-controller", "worker"),
    ]:
        assert pair not in reached, f"{pair[0]} reaches {pair[1]}"


def test_policies_off_renders_none() -> None:
    assert not [o for o in _helm.render_case("networkpolicies-off") if o["kind"] == "NetworkPolicy"]


def test_semantics_of_the_model_itself() -> None:
    """The evaluator on hand-made policies: both sides must allow; namespace scoping."""
    a = Endpoint("a", "ns", {"app": "a"}, ((80, "TCP", "http"),), ours=True)
    b = Endpoint("b", "ns", {"app": "b"}, ((80, "TCP", "http"),), ours=True)
    deny_b_in = {
        "kind": "NetworkPolicy",
        "metadata": {"namespace": "ns"},
        "spec": {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]},
    }
    allow_a = {
        "kind": "NetworkPolicy",
        "metadata": {"namespace": "ns"},
        "spec": {
            "podSelector": {
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["b"]}]
            },
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                    "ports": [{"port": "http"}],
                }
            ],
        },
    }
    port = b.ports[0]
    assert _allowed([], b, a, port, b, "Ingress")
    assert not _allowed([deny_b_in], b, a, port, b, "Ingress")
    assert _allowed([deny_b_in, allow_a], b, a, port, b, "Ingress")
    elsewhere = Endpoint("a2", "other", {"app": "a"})
    assert not _allowed([deny_b_in, allow_a], b, elsewhere, port, b, "Ingress")
    assert not _allowed([deny_b_in, allow_a], b, a, (81, "TCP", ""), b, "Ingress")
